#!/usr/bin/env bash
# Issue 2/5: a third cosine for the bundled x2 (n_feats 64, depth 1), from the shipped weights
# (trained/campaign2_wide_x2/best.safetensors: csnln eval Set5 37.0027 in the bundled plan).
# The restarts before gained more the longer they ran (+0.14 dB over 12,000 steps, +0.04 over
# 8,000), so this one is longer: 18,000 steps of batch 8 x LR patch 24 from a peak of 1e-4
# (it dips in its first third and recovers) down to 1e-6. fp32 pinned (what `auto` picks on a
# CPU without AMX; pinned so that a resume elsewhere keeps it). Validation on Set5 every 1,000
# steps in tiles of 32 overlapping by 8 (the bundled x2 plan); a checkpoint every 500. The same
# command starts and continues it (--resume); extra key=value arguments override the config
# (e.g. train.threads=1 while another run shares the CPU). Stop the main process with SIGTERM
# (a checkpoint is written). Run from the project root with the environment that has `csnln`.
set -euo pipefail
exec csnln train configs/cpu_small_x2.yaml train.precision=fp32 model.n_feats=64 model.depth=1 \
    model.init=trained/campaign2_wide_x2/best.safetensors \
    optim.lr=1e-4 optim.warmup_steps=0 optim.min_lr=1e-6 \
    train.steps=18000 train.threads=2 data.workers=1 val.every=1000 val.tile=32 \
    val.tile_overlap=8 checkpoint.every=500 checkpoint.keep_last=1 log.every=100 \
    log.progress=false output_dir=trained/campaign3_wide_x2 --resume "$@" \
    >> trained/campaign3_wide_x2/stdout.log 2>&1
