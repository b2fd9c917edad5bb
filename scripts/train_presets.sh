#!/usr/bin/env bash
# train_presets.sh — train every listed preset briefly and evaluate it (issue 8's "a device run
# trains each preset briefly and evaluates it"), appending rows to results/model_train.csv and
# results/model_eval.csv. Training data: byte tokens of this repository's C/CUDA sources; held-out
# text: the README and results notes (prose), so the perplexities show the pipeline, not quality.
#   scripts/train_presets.sh [PRESET ...]          (default: every preset `longctx config --list` names)
# Environment: STEPS (default 30), BATCH (default 16), SEQ (default: the preset's context),
#   LENGTHS (eval lengths, default 4096,16384), BACKEND (default auto), TRAIN_CSV, EVAL_CSV,
#   OUTDIR (tokens and checkpoints, default build/train_presets).
# A preset that fails (e.g. does not fit) is reported and the next one runs; the exit status is
# 1 when any failed. Checked on the CPU (3 tiny presets, STEPS=3 BATCH=2 SEQ=256: ~90 s on 2
# cores). For the full-size presets within one 10-minute device call, keep it short, e.g.
# STEPS=10 BATCH=4 scripts/train_presets.sh swa-hsa mamba-hsa swa-gca swa mamba
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${LONGCTX:-build/longctx}
[ -x "$bin" ] || make -s >/dev/null || { echo "train_presets: build failed" >&2; exit 1; }
steps=${STEPS:-30} batch=${BATCH:-16} lengths=${LENGTHS:-4096,16384} backend=${BACKEND:-auto}
train_csv=${TRAIN_CSV:-results/model_train.csv} eval_csv=${EVAL_CSV:-results/model_eval.csv}
out=${OUTDIR:-build/train_presets}
mkdir -p "$out"

if [ $# -gt 0 ]; then presets=("$@"); else mapfile -t presets < <("$bin" config --list | awk 'NR > 1 {print $1}'); fi
[ ${#presets[@]} -gt 0 ] || { echo "train_presets: no presets (longctx config --list printed none)" >&2; exit 1; }

# the corpora, made once: sources for training, prose for the held-out perplexity
if [ ! -s "$out/src.bin" ]; then
    cat kernels/*.c kernels/*.cu kernels/*.cuh kernels/*.h model/*.c model/*.h suites/*.c bench/*.c >"$out/src.txt"
    "$bin" tokenize "$out/src.txt" "$out/src.bin" >/dev/null || exit 1
fi
if [ ! -s "$out/held.bin" ]; then
    cat README.md results/notes-*.md >"$out/held.txt"
    "$bin" tokenize "$out/held.txt" "$out/held.bin" >/dev/null || exit 1
fi

status=0
for p in "${presets[@]}"; do
    seq_args=()
    [ -n "${SEQ:-}" ] && seq_args=(--seq "$SEQ")
    echo "== $p: train $steps steps of batch $batch (backend $backend), log $out/$p.train.log"
    "$bin" train --config "$p" --backend "$backend" --data "$out/src.bin" --steps "$steps" --batch "$batch" \
        "${seq_args[@]}" --save "$out/$p.ckpt" --csv "$train_csv" >"$out/$p.train.log" 2>&1
    rc=$?
    tail -2 "$out/$p.train.log"
    if [ $rc != 0 ]; then
        echo "train_presets: $p: training failed (exit $rc)" >&2
        status=1
        continue
    fi
    echo "== $p: eval at $lengths"
    "$bin" eval --config "$p" --backend "$backend" --ckpt "$out/$p.ckpt" --data "$out/held.bin" --lengths "$lengths" \
        --batches 2 --csv "$eval_csv" >"$out/$p.eval.log" 2>&1
    rc=$?
    tail -3 "$out/$p.eval.log"
    [ $rc = 0 ] || { echo "train_presets: $p: eval failed (exit $rc)" >&2; status=1; }
done
exit $status
