#!/usr/bin/env bash
# Issue 2/5: the x4 campaign. Continues the warm-started x4 (trained/warm_x4/best.safetensors:
# 3,000 steps from the x2 campaign's step-21,000 weights, Set5 30.3800 in the bundled x4 tile
# plan) with a second cosine, 1e-4 -> 1e-6 over 4,000 steps of batch 8 x LR patch 16
# (configs/cpu_small_x4.yaml), every tensor loaded. One thread (the x3 campaign trains beside
# it). Validation on Set5 every 500 steps in the bundled x4 tile plan (16/4). Resumable: the
# same command continues from the latest checkpoint (stop with Ctrl-C / SIGTERM; a checkpoint
# is written). Run from the project root with the environment that has `csnln` active.
set -euo pipefail
exec csnln train configs/cpu_small_x4.yaml train.precision=bf16 model.n_feats=32 model.depth=4 \
    model.init=trained/warm_x4/best.safetensors \
    optim.lr=1e-4 optim.warmup_steps=0 optim.min_lr=1e-6 \
    train.steps=4000 train.threads=1 data.workers=1 val.every=500 val.tile=16 \
    val.tile_overlap=4 checkpoint.every=500 checkpoint.keep_last=1 log.every=100 \
    log.progress=false output_dir=trained/campaign_x4 --resume "$@" >> trained/campaign_x4/stdout.log 2>&1
