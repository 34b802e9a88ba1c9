#!/usr/bin/env bash
# Issue 2/5: the x4 campaign's third cosine. Continues the bundled x4 of 2026-12-02
# (trained/campaign_x4/best.safetensors, Set5 validation 30.6519 in the 16/4 plan) with a new
# cosine, 1e-4 -> 1e-6 over 6,000 steps of batch 8 x LR patch 16 (configs/cpu_small_x4.yaml),
# every tensor loaded. One thread (the x3 run trains beside it). Validation on Set5 every
# 1,000 steps in the bundled x4 tile plan (32/4). Resumable: the same command continues from
# the latest checkpoint (stop with Ctrl-C / SIGTERM; a checkpoint is written).
# Run from the project root with the environment that has `csnln` active.
set -euo pipefail
exec csnln train configs/cpu_small_x4.yaml train.precision=bf16 model.n_feats=32 model.depth=4 \
    model.init=trained/campaign_x4/best.safetensors \
    optim.lr=1e-4 optim.warmup_steps=0 optim.min_lr=1e-6 \
    train.steps=6000 train.threads=1 data.workers=1 val.every=1000 val.tile=32 \
    val.tile_overlap=4 checkpoint.every=500 checkpoint.keep_last=1 log.every=100 \
    log.progress=false output_dir=trained/campaign2_x4 --resume "$@" >> trained/campaign2_x4/stdout.log 2>&1
