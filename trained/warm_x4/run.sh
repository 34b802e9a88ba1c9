#!/usr/bin/env bash
# Issue 2/5, recipe decision "warm-start x4 from x2": the small x4 model initialised from the
# x2 campaign's best weights at step 21,000 (Set5 x2 36.8969; copied here as
# init_x2_step21000.safetensors). The shared body loads; the x4-specific layers (the 8x8
# strided (de)convolutions of both projection stages, the second stage's attentions) start
# fresh. 3,000 steps of batch 8 x LR patch 16, cosine 2e-4 -> 1e-6 after 200 warm-up steps
# (configs/cpu_small_x4.yaml), one thread (the x2 campaign runs beside it). Validation on Set5
# every 500 steps in the bundled x4 tile plan (LR tiles of 16 overlapping by 4). Resumable:
# the same command continues from the latest checkpoint. Compare with the bundled x4 (3,300
# steps of batch 32 from scratch on a GPU, trained/small_x4/).
# Run from the project root with the environment that has `csnln` active.
set -euo pipefail
exec csnln train configs/cpu_small_x4.yaml train.precision=bf16 model.n_feats=32 model.depth=4 \
    model.init=trained/warm_x4/init_x2_step21000.safetensors \
    train.steps=3000 train.threads=1 data.workers=1 val.every=500 val.tile=16 \
    val.tile_overlap=4 checkpoint.every=500 checkpoint.keep_last=1 log.every=100 \
    log.progress=false output_dir=trained/warm_x4 --resume "$@" >> trained/warm_x4/stdout.log 2>&1
