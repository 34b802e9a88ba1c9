#!/usr/bin/env bash
# Issue 2/5: the x2 campaign for the wider shape (n_feats 64, depth 1; trained/wide_x2_f64d1,
# Set5 36.8232 dB after its 20,000 from-scratch steps). The recipe that took the bundled shape
# from 36.49 to 36.97 (trained/campaign_x2: a restarted cosine 1e-4 -> 1e-6, no warm-up, LR
# patch 24 x batch 8), shortened to 12,000 steps so that it ends within one session (2.7-3.2
# steps/s alone at two threads on 2026-12-02's CPU).
# Validation on Set5 every 1,000 steps; a checkpoint every 500. The same command starts and
# continues it (--resume); extra arguments override the config (e.g. train.threads=1 while
# another run shares the CPU). Stop the main process with SIGTERM (a checkpoint is written).
# Run from the project root with the environment that has `csnln` active.
set -euo pipefail
exec csnln train configs/cpu_small_x2.yaml train.precision=bf16 model.n_feats=64 model.depth=1 \
    model.init=trained/wide_x2_f64d1/final.safetensors \
    optim.lr=1e-4 optim.warmup_steps=0 optim.min_lr=1e-6 \
    train.steps=12000 data.workers=1 val.every=1000 \
    checkpoint.every=500 checkpoint.keep_last=1 log.every=100 log.progress=false \
    output_dir=trained/campaign_wide_x2 --resume "$@" >> trained/campaign_wide_x2/stdout.log 2>&1
