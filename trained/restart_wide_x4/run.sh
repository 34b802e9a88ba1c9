#!/usr/bin/env bash
# Issue 2/5's follow-up: a lower learning-rate restart of the bundled x4 (n_feats 64, depth 1),
# the pattern that paid for every other model here (x3: +0.04 dB on Set5 from a cosine 5e-5 ->
# 1e-6 over 8,000 steps). From trained/wide_x4_f64d1/best.safetensors (the shipped x4: csnln
# eval Set5 / Set14 / B100 31.2095 / 27.9783 / 27.1876 in plan 24/6), configs/cpu_small_x4.yaml's
# data (LR patch 16, batch 8), cosine 5e-5 -> 1e-6 without warm-up over 5,000 steps (what fits
# the rest of one session on two threads: about 2 steps/s in fp32), fp32 pinned like the run it
# continues. Validation on Set5 every 1,000 steps in the bundled x4 plan (24/6). Resumable: the
# same command continues from the latest checkpoint (stop the main process with SIGTERM, not its
# data-loader worker); extra key=value arguments override the config (train.threads=1 while
# another run shares the CPU). Run from the project root with the environment that has csnln.
set -euo pipefail
exec csnln train configs/cpu_small_x4.yaml train.precision=fp32 model.n_feats=64 model.depth=1 \
    model.init=trained/wide_x4_f64d1/best.safetensors optim.lr=5e-5 optim.warmup_steps=0 \
    optim.min_lr=1e-6 train.steps=5000 train.threads=2 data.workers=1 val.every=1000 \
    val.tile=24 val.tile_overlap=6 checkpoint.every=500 checkpoint.keep_last=1 log.every=100 \
    log.progress=false output_dir=trained/restart_wide_x4 --resume "$@" \
    >> trained/restart_wide_x4/stdout.log 2>&1
