#!/usr/bin/env bash
# run.sh — what `make run` runs: the default kernel sweep, then the figures.
#   With a CUDA device: every mixer in the build, fwd and bwd (backward alone; the Mamba mixers,
#   which have no backward-only point, fwd and fwdbwd), L = 4K..16M (a point that cannot
#   fit is an `oom` row, one over the 30 s budget stops its series), plus SWA time vs window
#   (L = 1M, W = 256..64K) and HSA time vs top-k (L = 1M, K = 1..64), into
#   results/kernels_<gpu-name>.csv.
#   Without one: the C backend at small sizes (L = 1K..16K, HQ = 4, H = 1, dh = 64, swa W = 512, a 10 s
#   budget per point; W = 32..2K at L = 4K; K = 1..32 at L = 8K) into results/kernels_cpu.csv:
#   a few minutes on 2 cores.
# Rows already in the CSV are skipped, so a rerun after an interruption continues where it
# stopped; delete the CSV to measure again. Then `make plots` when gnuplot is installed.
# Environment: BUILD (build folder, default build), RUN_QUICK=1 (CPU: L up to 4K only).
set -u
build=${BUILD:-build}
bin=$build/longctx
[ -x "$bin" ] || { echo "run: $bin is missing: run make first" >&2; exit 1; }

has_mixer() { "$bin" sweep --dry-run --mixer "$1" --L 4K >/dev/null 2>&1; }
mixers=$("$bin" sweep --dry-run --L 4K 2>/dev/null | cut -d. -f1 | sort -u | tr '\n' ' ')
if [ -z "$mixers" ]; then
    echo "run: no kernel family is in this build (bench/bench_*.c): nothing to sweep" >&2
    exit 1
fi
hsa=$(for m in $mixers; do case $m in hsa*) printf '%s,' "$m" ;; esac; done)
hsa=${hsa%,}
mamba=$(for m in $mixers; do case $m in mamba*) printf '%s,' "$m" ;; esac; done)
mamba=${mamba%,}
others=$(for m in $mixers; do case $m in mamba*) ;; *) printf '%s,' "$m" ;; esac; done)
others=${others%,}

status=0
if gpu=$("$bin" info --has-gpu 2>/dev/null); then
    echo "run: CUDA sweep on $gpu over: $mixers"
    if [ -n "$others" ]; then
        "$bin" sweep --tag L --mixer "$others" --direction fwd,bwd --L 4K..16M --budget-s 30 || status=1
    fi
    if [ -n "$mamba" ]; then
        "$bin" sweep --tag L --mixer "$mamba" --direction fwd,fwdbwd --L 4K..16M --budget-s 30 || status=1
    fi
    if has_mixer swa; then
        "$bin" sweep --tag W --mixer swa --direction fwd,bwd --L 1M --W 256..64K --budget-s 30 || status=1
    fi
    if [ -n "$hsa" ]; then
        "$bin" sweep --tag K --mixer "$hsa" --direction fwd,bwd --L 1M --K 1..64 --budget-s 30 || status=1
    fi
else
    echo "run: C backend sweep (no GPU: $("$bin" info --has-gpu 2>&1 | head -1)) over: $mixers"
    lmax=16K
    [ "${RUN_QUICK:-0}" = 1 ] && lmax=4K
    small=(--backend cpu --HQ 4 --H 1 --dh 64 --budget-s 10 --reps 5 --warmup 1)
    "$bin" sweep --tag L --L 1K..$lmax --W 512 "${small[@]}" || status=1
    if has_mixer swa; then
        "$bin" sweep --tag W --mixer swa --L 4K --W 32..2K "${small[@]}" || status=1
    fi
    if [ -n "$hsa" ]; then
        "$bin" sweep --tag K --mixer "$hsa" --L 8K --K 1..32 "${small[@]}" || status=1
    fi
fi
ls -l results/kernels_*.csv 2>/dev/null | awk '{print "run: wrote " $NF " (" $5 " bytes)"}'

if command -v gnuplot >/dev/null; then
    make --no-print-directory plots || status=1
else
    echo "run: gnuplot is not installed here: the figures are rendered later, on a machine with"
    echo "     gnuplot, from the committed results/*.csv with: make plots"
fi
exit $status
