#!/usr/bin/env bash
# Issue 2/5: the x3 campaign's third cosine. Continues the bundled x3 of 2026-12-02
# (trained/campaign_x3/best.safetensors, Set5 validation 32.6759) with a new cosine,
# 1e-4 -> 1e-6 over 9,000 steps of batch 8 x LR patch 24 (configs/cpu_small_x3.yaml), every
# tensor loaded (started as 10,000 steps; shortened to 9,000 at step 2,500 so that it ends in
# the session of 2026-12-02: the learning rate there went from 8.55e-5 to 8.23e-5). One thread
# (the x4 run trains beside it on the other core). Validation on
# Set5 every 1,000 steps in the bundled x3 tile plan (30/6). Resumable: the same command
# continues from the latest checkpoint (stop with Ctrl-C / SIGTERM; a checkpoint is written).
# Run from the project root with the environment that has `csnln` active.
set -euo pipefail
exec csnln train configs/cpu_small_x3.yaml train.precision=bf16 model.n_feats=32 model.depth=4 \
    model.init=trained/campaign_x3/best.safetensors \
    optim.lr=1e-4 optim.warmup_steps=0 optim.min_lr=1e-6 \
    train.steps=9000 train.threads=1 data.workers=1 val.every=1000 val.tile=30 \
    val.tile_overlap=6 checkpoint.every=500 checkpoint.keep_last=1 log.every=100 \
    log.progress=false output_dir=trained/campaign2_x3 --resume "$@" >> trained/campaign2_x3/stdout.log 2>&1
