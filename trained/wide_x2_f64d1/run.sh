#!/usr/bin/env bash
# Issue 2/5, item 1 (width and depth): a wider, shallower x2 than the bundled small
# (n_feats 64, depth 1 against 32 and 4), at about the same forward cost per pixel, trained from
# scratch with exactly the recipe of the bundled x2's first run (trained/small_x2: lr 2e-4,
# 200 warm-up steps, cosine to 1e-6 over 20,000 steps of batch 8 x LR patch 24, Set5
# validation every 2,500 steps on the default tiles), so that its curve compares with
# trained/small_x2/log.csv step for step. One thread (the other width candidate trains
# beside it). Resumable: the same command continues from the latest checkpoint (stop the
# main process with SIGTERM, not its data-loader worker). Run from the project root with the
# environment that has `csnln` active.
set -euo pipefail
exec csnln train configs/cpu_small_x2.yaml train.precision=bf16 model.n_feats=64 model.depth=1 steps=20000 \
    val.every=2500 train.threads=1 data.workers=1 checkpoint.every=500 checkpoint.keep_last=1 \
    log.progress=false output_dir=trained/wide_x2_f64d1 --resume "$@" >> trained/wide_x2_f64d1/stdout.log 2>&1
