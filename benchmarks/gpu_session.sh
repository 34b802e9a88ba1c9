#!/usr/bin/env bash
# One session on a machine with a CUDA GPU, from the project root, within a fixed time:
#   1. the test suite (tests/test_cuda.py runs only there)               -> $OUT/pytest.log
#      beside it, a 300-step probe of the two trainings below, to measure their speed;
#   2. the bundled small x3 and x4 models trained side by side, their step count sized from
#      the probe so that both end by TRAIN_END seconds          -> $OUT/small_x3.tgz, x4.tgz
#   3. python benchmarks/gpu.py in the time left                  -> $OUT/gpu.md, gpu.json
# (the runs' stdout is in the .tgz as stdout.log; the probes' logs end up in session.log)
# Everything is logged to $OUT/session.log. Needs ../shared (Set5, training images, golden
# vectors); a copy carried in .device/shared is linked there when ../shared is absent.
#
#   OUT=/tmp/out TRAIN_END=390 END=560 bash benchmarks/gpu_session.sh
set -u
OUT=${OUT:-/tmp/gpu_session}
TRAIN_END=${TRAIN_END:-390}   # seconds from start: the trainings are over by then
END=${END:-560}               # seconds from start: everything is over by then
BATCH=${BATCH:-32}
LR=${LR:-4e-4}
DEVICE=${DEVICE:-cuda}        # a dry run without a GPU: DEVICE=cpu TESTS="" EXTRA="model.n_feats=4"
TESTS=${TESTS-tests}          # what pytest runs ("" for none)
EXTRA=${EXTRA:-}              # more overrides for both trainings
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
START=$(date +%s)
now() { echo $(( $(date +%s) - START )); }
say() { echo "[$(now) s] $*"; }

[ -e ../shared ] || { [ -d .device/shared ] && ln -s "$PWD/.device/shared" ../shared; }
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
$PY -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name())"
nproc

train() {  # train SCALE STEPS DIR [extra overrides...]
  local scale=$1 steps=$2 dir=$3; shift 3
  # exec: the signal of `timeout` must reach the trainer (which then saves and stops)
  exec $PY -m csnln train "configs/cpu_small_x$scale.yaml" "steps=$steps" "output_dir=$dir" \
    "train.device=$DEVICE" "data.batch_size=$BATCH" "optim.lr=$LR" data.workers=4 \
    log.progress=false $EXTRA "$@"
}
export -f train
export PY BATCH LR DEVICE EXTRA

# 1. probes (they also fill the decoded-image cache) beside the test suite
say "probes and tests start"
PIDS=()
for s in 3 4; do
  timeout 150 bash -c "train $s 300 /tmp/probe_x$s 'val.dirs=[]' checkpoint.every=1000" \
    > "$OUT/probe_x$s.log" 2>&1 &
  PIDS+=($!)
done
[ -n "$TESTS" ] && timeout 200 $PY -m pytest -q -p no:cacheprovider -ra $TESTS > "$OUT/pytest.log" 2>&1
say "pytest exit $? : $(tail -1 "$OUT/pytest.log")"
wait "${PIDS[@]}"  # (a bare `wait` would also wait for the tee above)
rate() {  # steps/s between steps 100 and 300 of a probe's log.csv
  $PY - "$1" <<'EOF'
import csv, sys
rows = {int(r["step"]): float(r["elapsed_s"]) for r in csv.DictReader(open(sys.argv[1])) if r.get("elapsed_s")}
print(f"{200 / (rows[300] - rows[100]):.2f}" if 100 in rows and 300 in rows else "0")
EOF
}
R3=$(rate /tmp/probe_x3/log.csv 2>/dev/null || echo 0)
R4=$(rate /tmp/probe_x4/log.csv 2>/dev/null || echo 0)
say "probe steps/s: x3 $R3, x4 $R4"
tail -n 3 "$OUT"/probe_x*.log

# 2. the two trainings, side by side, sized to end by TRAIN_END (20 s for start and validation)
PIDS=()
LEFT=$(( TRAIN_END - $(now) - 20 ))
for s in 3 4; do
  R=$([ "$s" = 3 ] && echo "$R3" || echo "$R4")
  STEPS=$($PY -c "print(max(0, int($R * $LEFT * 0.9) // 400 * 400))")
  if [ "$STEPS" -ge 1000 ]; then
    say "x$s: $STEPS steps (batch $BATCH, lr $LR)"
    echo "$STEPS" > "/tmp/steps_x$s"
    timeout -s TERM $(( LEFT + 15 )) bash -c "train $s $STEPS runs/small_x$s val.every=$(( STEPS / 4 ))" \
      > "$OUT/train_x$s.out" 2>&1 &
    PIDS+=($!)
  else
    say "x$s: no training (probe rate $R steps/s, $LEFT s left)"
  fi
done
[ ${#PIDS[@]} -gt 0 ] && wait "${PIDS[@]}"
for s in 3 4; do
  if [ -d "runs/small_x$s" ]; then
    cp "$OUT/train_x$s.out" "runs/small_x$s/stdout.log"
    tar czf "$OUT/small_x$s.tgz" --exclude=checkpoints -C runs "small_x$s" && rm "$OUT/train_x$s.out"
    say "x$s: $(tail -2 "runs/small_x$s/train.log" | tr '\n' ' ')"
  fi
done

# 3. GPU benchmarks in the time left
BUDGET=$(( END - $(now) - 25 ))
say "benchmarks/gpu.py --budget $BUDGET"
[ "$BUDGET" -gt 30 ] && timeout $(( BUDGET + 20 )) $PY benchmarks/gpu.py --budget "$BUDGET" \
  --json "$OUT/gpu.json" > "$OUT/gpu.md" 2>&1
say "gpu.py exit $?"
cat "$OUT/gpu.md"
for f in "$OUT"/probe_x*.log; do echo "== $f"; cat "$f"; rm "$f"; done  # (at most 8 files back)
say "done"
