#!/usr/bin/env bash
# Issue 3/5 in a session lent a CUDA GPU: the four ablation studies at the `medium` budget
# (n_feats 32, LR patch 32, 20k steps, 2 seeds; csnln/ablation.py), resumable across
# sessions, stopped cleanly (SIGINT: each run saves a checkpoint) after END seconds.
#
# Here, once:   bash benchmarks/ablation_gpu.sh --prepare
#   copies T91, BSD200 (training) and Set5, B100 (evaluation) into .device/shared (ignored;
#   50 MB, within what a device run carries). Then, as the device command, carrying
#   .device and ablations/medium (the runs so far):
#               OUT=$OUT END=520 bash benchmarks/ablation_gpu.sh
#   -> $OUT/ablations_medium.tgz (unpack here and commit; the next session resumes from it).
set -u
if [ "${1:-}" = "--prepare" ]; then
    mkdir -p .device/shared/data/train .device/shared/data/benchmark
    cp -r ../shared/data/train/T91 ../shared/data/train/BSD200 .device/shared/data/train/
    cp -r ../shared/data/benchmark/Set5 ../shared/data/benchmark/B100 .device/shared/data/benchmark/
    du -sh .device
    exit 0
fi
OUT=${OUT:-/tmp/ablation_gpu}
END=${END:-520}
WORKERS=${WORKERS:-4}   # processes sharing the GPU (the medium runs leave most of it idle)
mkdir -p "$OUT"
[ -e ../shared ] || ln -s "$PWD/.device/shared" ../shared
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv
for i in $(seq "$WORKERS"); do
    timeout -s INT "$END" python3 -m csnln ablate all --budget medium --resume --device cuda \
        --no-timing > "$OUT/worker$i.log" 2>&1 &
    sleep 5
done
wait
python3 -m csnln ablate all --budget medium --report --no-timing > "$OUT/report.log" 2>&1
tar czf "$OUT/ablations_medium.tgz" ablations/medium
ls -la "$OUT"
