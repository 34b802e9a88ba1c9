#!/usr/bin/env bash
# Issue 2/5: a restarted cosine for the bundled x3 (n_feats 64, depth 1), the pattern that paid
# at x4 (trained/campaign4_x4: 5e-5 -> 1e-6 from the best weights so far). Starts from the
# shipped x3 (trained/wide_x3_f64d1/best.safetensors, step 18,000: csnln eval Set5 33.2672 in
# the bundled plan 27/6; issue 2/5's x3 target is 33.4), 8,000 steps of batch 8 x LR patch 24
# (configs/cpu_small_x3.yaml, whose shape it is), fp32 pinned (what `auto` chose on this kind of
# CPU; pin it so a resume elsewhere keeps it), validation on Set5 every 1,000 steps in the
# bundled plan 27/6. Resumable: the same command continues from the latest checkpoint (stop
# the main process with SIGTERM, not its data-loader worker). Run from the project root with
# the environment that has `csnln` active.
set -euo pipefail
exec csnln train configs/cpu_small_x3.yaml train.precision=fp32 model.n_feats=64 model.depth=1 \
    model.init=trained/wide_x3_f64d1/best.safetensors \
    optim.lr=5e-5 optim.warmup_steps=0 optim.min_lr=1e-6 \
    train.steps=8000 train.threads=2 data.workers=1 val.every=1000 val.tile=27 \
    val.tile_overlap=6 checkpoint.every=500 checkpoint.keep_last=1 log.every=100 \
    log.progress=false output_dir=trained/campaign_wide_x3 --resume "$@" \
    >> trained/campaign_wide_x3/stdout.log 2>&1
