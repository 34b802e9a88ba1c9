#!/usr/bin/env bash
# Issue 2/5: the x3 campaign. Continues the warm-started x3 (trained/warm_x3/best.safetensors:
# 6,000 steps from the x2 campaign's step-14,000 weights, Set5 32.4401) with a second cosine,
# 1e-4 -> 1e-6 over 7,000 steps of batch 8 x LR patch 24 (configs/cpu_small_x3.yaml), every
# tensor loaded (started as 10,000 steps; shortened to 7,000 at step 614 to end within the
# session of 2026-12-02: the learning rate there went from 9.91e-5 to 9.81e-5). One thread
# (another run trains beside it on the other core). Validation on
# Set5 every 1,000 steps in the bundled x3 tile plan (36/6). Resumable: the same command
# continues from the latest checkpoint (stop with Ctrl-C / SIGTERM; a checkpoint is written).
# Run from the project root with the environment that has `csnln` active.
set -euo pipefail
exec csnln train configs/cpu_small_x3.yaml train.precision=bf16 model.n_feats=32 model.depth=4 \
    model.init=trained/warm_x3/best.safetensors \
    optim.lr=1e-4 optim.warmup_steps=0 optim.min_lr=1e-6 \
    train.steps=7000 train.threads=1 data.workers=1 val.every=1000 val.tile=36 \
    val.tile_overlap=6 checkpoint.every=500 checkpoint.keep_last=1 log.every=100 \
    log.progress=false output_dir=trained/campaign_x3 --resume "$@" >> trained/campaign_x3/stdout.log 2>&1
