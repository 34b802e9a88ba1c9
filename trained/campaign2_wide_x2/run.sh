#!/usr/bin/env bash
# Issue 2/5: a second, shorter cosine for the wider x2 shape (n_feats 64, depth 1), from the
# best weights of its first campaign (trained/campaign_wide_x2). 8,000 steps of LR patch 24 x
# batch 8, from a peak of 5e-5 (half the first campaign's: a short run has no time to recover
# from the dip a restart at 1e-4 causes in its first third, trained/campaign_wide_x2/README.md)
# down to 1e-6. Validation on Set5 every 1,000 steps; a checkpoint every 500. The same command
# starts and continues it (--resume); extra arguments override the config. Stop the main
# process with SIGTERM (a checkpoint is written). Run from the project root with the
# environment that has `csnln` active.
set -euo pipefail
exec csnln train configs/cpu_small_x2.yaml train.precision=bf16 model.n_feats=64 model.depth=1 \
    model.init=trained/campaign_wide_x2/best.safetensors \
    optim.lr=5e-5 optim.warmup_steps=0 optim.min_lr=1e-6 \
    train.steps=8000 data.workers=1 val.every=1000 \
    checkpoint.every=500 checkpoint.keep_last=1 log.every=100 log.progress=false \
    output_dir=trained/campaign2_wide_x2 --resume "$@" >> trained/campaign2_wide_x2/stdout.log 2>&1
