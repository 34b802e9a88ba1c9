#!/usr/bin/env bash
# Issue 2/5: the x2 campaign. A long cosine (1e-4 -> 1e-6 over 40,000 steps of LR patch 24 x
# batch 8, recipe decision 1 in trained/ab_x2/) from the best weights so far
# (trained/ab_x2/p24/best.safetensors, Set5 36.4865 dB). Validation on Set5 every 1,000 steps;
# a checkpoint every 500 (the last one committed at the end of each session). The same
# command starts it and continues it (--resume: from the latest checkpoint when there is one),
# so a session runs `bash trained/campaign_x2/run.sh` in the background and stops it with
# Ctrl-C / SIGTERM (a checkpoint is written) before committing. Run from the project root, with
# the environment that has `csnln` active (e.g. `. .venv/bin/activate`).
set -euo pipefail
exec csnln train configs/cpu_small_x2.yaml train.precision=bf16 model.n_feats=32 model.depth=4 \
    model.init=trained/ab_x2/p24/best.safetensors \
    optim.lr=1e-4 optim.warmup_steps=0 optim.min_lr=1e-6 \
    train.steps=40000 data.workers=1 val.every=1000 \
    checkpoint.every=500 checkpoint.keep_last=1 log.every=100 log.progress=false \
    output_dir=trained/campaign_x2 --resume "$@" >> trained/campaign_x2/stdout.log 2>&1
