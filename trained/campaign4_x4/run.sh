#!/usr/bin/env bash
# Issue 2/5: the x4 fifth cosine. Continues the bundled x4 (trained/campaign3_x4/best.safetensors,
# Set5 validation 30.9888 in tiles 32/4; `csnln eval` at the default plan 20/4: 30.9972, 0.003 dB
# under issue 2/5's 31.0) with a lower restart, 5e-5 -> 1e-6 over 5,000 steps of batch 8 x LR
# patch 16 (configs/cpu_small_x4.yaml, bf16 autocast: on this session's CPU 0.95 s/step against
# 1.19 in fp32), every tensor loaded. Two threads (nothing trains beside it). Validation on Set5
# every 1,000 steps in the bundled x4 tile plan (20/4), so that it is the figure `csnln eval`
# prints. Resumable: the same command continues from the latest checkpoint (stop the main
# process, not its data-loader worker, with Ctrl-C / SIGTERM; a checkpoint is written). Run
# from the project root with the environment that has `csnln` active.
set -euo pipefail
exec csnln train configs/cpu_small_x4.yaml train.precision=bf16 model.n_feats=32 model.depth=4 \
    model.init=trained/campaign3_x4/best.safetensors \
    optim.lr=5e-5 optim.warmup_steps=0 optim.min_lr=1e-6 \
    train.steps=5000 train.threads=2 data.workers=1 val.every=1000 val.tile=20 \
    val.tile_overlap=4 checkpoint.every=500 checkpoint.keep_last=1 log.every=100 \
    log.progress=false output_dir=trained/campaign4_x4 --resume "$@" >> trained/campaign4_x4/stdout.log 2>&1
