#!/usr/bin/env bash
# Reproduce the bundled `small` weights of one scale: the chain of runs that made them, each
# from its own config.yaml (the resolved config of the run, as it ran), into runs/reproduce/.
# Each run starts from the final weights of the one before (so did the shipped chain: in each
# of its runs the best Set5 step was the last), validating on the validation split of
# csnln.data.splits; the x2 chain's last run ships its best step on that split
# (best.safetensors: step 8,000 of 9,000), x3 and x4 their last.
#
#   bash trained/reproduce.sh 2      # x2: 4 runs, 49,000 steps (about 5 h on 2 CPU cores)
#   bash trained/reproduce.sh 3      # x3 from the bundled x2: 2 runs (about 4 h)
#   bash trained/reproduce.sh 4      # x4 from the x2 chain: 2 runs (about 2.5 h)
#
# Config overrides after the scale apply to every run of the chain, into
# runs/reproduce-<overrides>/; x3 then starts from that folder's x2, not the bundled one. The
# chain of another CSNLN configuration, e.g. local only at the bundled cell's cost (the
# attention study, docs/ablations.md):
#
#   bash trained/reproduce.sh 2 model.n_feats=86 'model.branches=[local]'
#   bash trained/reproduce.sh 3 model.n_feats=86 'model.branches=[local]'
#
# Needs ../shared/data/train. Stopped runs continue where they stopped on a second call.
set -euo pipefail
scale=${1:?usage: bash trained/reproduce.sh 2|3|4 [key=value ...]}
shift
overrides=("$@")
out=runs/reproduce
x2_weights=src/csnln/weights/csnln_small_x2.safetensors
if [ ${#overrides[@]} -gt 0 ]; then
    out=runs/reproduce-$(printf '%s_' "${overrides[@]}" | tr -c 'A-Za-z0-9._=-' '_' | sed 's/_*$//')
    x2_weights=$out/campaign3_wide_x2/best.safetensors
    if [ "$scale" = 3 ] && [ ! -f "$x2_weights" ]; then
        echo "x3 with overrides starts from their x2: run 'bash trained/reproduce.sh 2 $*' first" >&2
        exit 2
    fi
fi
split=$(python -c 'import json; from csnln.data.splits import validation_files as v
print(json.dumps(v("../shared/data/train")))')
run() {  # run NAME INIT [key=value ...]: trained/NAME/config.yaml into runs/reproduce/NAME
    local name=$1 init=$2
    shift 2
    csnln train "trained/$name/config.yaml" "output_dir=$out/$name" "model.init=$init" \
        "val.dirs=$split" "$@" ${overrides[@]+"${overrides[@]}"} --resume
}
case $scale in
2)
    run wide_x2_f64d1 null
    run campaign_wide_x2 "$out/wide_x2_f64d1/final.safetensors"
    run campaign2_wide_x2 "$out/campaign_wide_x2/final.safetensors"
    run campaign3_wide_x2 "$out/campaign2_wide_x2/final.safetensors" train.steps=9000
    echo "x2: $out/campaign3_wide_x2/best.safetensors (its best step on the split)" ;;
3)
    # The shipped chain stopped its first run at step 18,000 of its 20,000-step cosine.
    run wide_x3_f64d1 "$x2_weights"
    run campaign_wide_x3 "$out/wide_x3_f64d1/final.safetensors"
    echo "x3: $out/campaign_wide_x3/final.safetensors" ;;
4)
    run wide_x2_f64d1 null
    run campaign_wide_x2 "$out/wide_x2_f64d1/final.safetensors"
    run campaign2_wide_x2 "$out/campaign_wide_x2/final.safetensors"
    run wide_x4_f64d1 "$out/campaign2_wide_x2/final.safetensors"
    run restart_wide_x4 "$out/wide_x4_f64d1/final.safetensors"
    echo "x4: $out/restart_wide_x4/final.safetensors" ;;
*) echo "scale must be 2, 3 or 4, got $scale" >&2; exit 2 ;;
esac
