#!/usr/bin/env bash
# Issue 2/5, recipe decision "warm-start x3 from x2": the small x3 model initialised from the
# x2 campaign's best weights at step 14,000 (Set5 x2 36.8132; copied here as
# init_x2_step14000.safetensors so the run does not depend on the campaign's moving best).
# The shared body loads; the x3-specific strided (de)convolutions start fresh. 6,000 steps of
# batch 8 x LR patch 24, cosine 2e-4 -> 1e-6 after 200 warm-up steps (configs/cpu_small_x3.yaml),
# one thread (the x2 campaign runs beside it on the other core). Validation on Set5 every 1,000
# steps. Resumable: the same command continues from the latest checkpoint. Compare with the
# bundled x3 (7,200 steps of batch 32 from scratch on a GPU: Set5 32.39, trained/small_x3/).
# Run from the project root with the environment that has `csnln` active.
set -euo pipefail
exec csnln train configs/cpu_small_x3.yaml train.precision=bf16 model.n_feats=32 model.depth=4 \
    model.init=trained/warm_x3/init_x2_step14000.safetensors \
    train.steps=6000 train.threads=1 data.workers=1 val.every=1000 \
    checkpoint.every=500 checkpoint.keep_last=1 log.every=100 log.progress=false \
    output_dir=trained/warm_x3 --resume "$@" >> trained/warm_x3/stdout.log 2>&1
