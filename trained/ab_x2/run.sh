#!/usr/bin/env bash
# Issue 2/5, recipe decision 1: LR patch size. Two fine-tuning runs of the bundled small x2
# (model.init=small) with the same number of LR pixels per step (24x24 x 8 = 48x48 x 2), the
# same steps, schedule and seed; Set5 validation every 250 steps. Both run at once, one thread
# each, so they share the machine alike. Run from the project root; add --resume to continue.
set -euo pipefail
common=(model.init=small optim.lr=1e-4 optim.warmup_steps=0 optim.min_lr=1e-6
        train.steps=2000 train.threads=1 data.workers=0 val.every=250
        checkpoint.every=250 checkpoint.keep_last=1 log.every=50 log.progress=false)
csnln train configs/cpu_small_x2.yaml train.precision=bf16 model.n_feats=32 model.depth=4 "${common[@]}" data.patch_size=24 data.batch_size=8 \
    output_dir=trained/ab_x2/p24 "$@" > trained/ab_x2/p24.out 2>&1 &
csnln train configs/cpu_small_x2.yaml train.precision=bf16 model.n_feats=32 model.depth=4 "${common[@]}" data.patch_size=48 data.batch_size=2 \
    output_dir=trained/ab_x2/p48 "$@" > trained/ab_x2/p48.out 2>&1 &
wait
