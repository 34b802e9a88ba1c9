#!/usr/bin/env bash
# Issues 1/5 and 2/5: x4 in the shape that won at x2 and x3 (n_feats 64, depth 1). At x2 it
# beat n_feats 32 x depth 4 at 0.51-0.59x the seconds per image, and the x3 of that shape
# passed the n_feats 32 x depth 4 x3 (34,000 steps of training) by step 8,000 of its own run.
# A x4 tile of 20 costs 4.08 GFLOP in this shape against 5.38 in the bundled x4's (n_feats 32,
# depth 4), so it may close issue 1/5's x4 speed target on a CPU without AMX if it matches the
# bundled x4's quality (csnln eval Set5 31.0524 in plan 20/4). Starts from the bundled x2
# weights (`model.init` loads every tensor whose shape matches; the x4 layers start fresh),
# then configs/cpu_small_x4.yaml's recipe (LR patch 16, batch 8, lr 2e-4, 200 warm-up steps,
# cosine to 1e-6) over 10,000 steps (what fits one session beside the x3 run), fp32 pinned
# (what `auto` picks on a CPU without AMX).
# Validation on Set5 every 1,000 steps in the bundled x4 plan (20/4). Resumable: the same
# command continues from the latest checkpoint (stop the main process with SIGTERM, not its
# data-loader worker); extra key=value arguments override the config (train.threads=1 while
# another run shares the CPU). Run from the project root with the environment that has csnln.
set -euo pipefail
exec csnln train configs/cpu_small_x4.yaml train.precision=fp32 model.n_feats=64 model.depth=1 \
    model.init=trained/campaign2_wide_x2/best.safetensors steps=10000 train.threads=2 \
    data.workers=1 val.tile=20 val.tile_overlap=4 checkpoint.every=500 checkpoint.keep_last=1 \
    log.every=100 log.progress=false output_dir=trained/wide_x4_f64d1 --resume "$@" \
    >> trained/wide_x4_f64d1/stdout.log 2>&1
