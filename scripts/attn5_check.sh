#!/usr/bin/env bash
# attn5_check.sh — one device check of the attention kernels and their opt-in variants
# (results/notes-attn.md, sessions 3 and 4): correctness against the C reference
# (tests/gpu_attention.c), compute-sanitizer racecheck and memcheck on --small, then the time of
# the defaults next to the variants at the SWA / dense points of issue 3 (HQ = H = 16, dh 64,
# B = 1: SWA W 512 and 4096 at L = 1M, dense causal at L = 64K).
# Run from the repository root with prebuilt binaries (nvcc 13.0 builds them on a CPU machine):
#   make -j16 all build/tests/gpu_attention
#   gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -DLC_CUDA=1 -Ikernels -Ibench -I$CUDA/include \
#       scripts/attention_bench.c build/liblongctx.a -L$CUDA/lib64 -Wl,-rpath,$CUDA/lib64 \
#       -lcudart -lcublasLt -lcublas -lm -lstdc++ -o build/attn6/attn_bench
# Environment: BWD_VARIANTS (LC_ATTN_WGB values timed next to the default; default "7 18 19"),
# FWD_VARIANTS (LC_ATTN_WG values; default none), SKIP_SAN=1 skips the sanitizers, SAN_TOOLS picks
# them (default "racecheck memcheck").
# Prints PASS/FAIL counts and FAIL lines, the sanitizer summaries, then one line per (variant,
# point): ms and TFLOP/s. Logs and the CSV go to $OUT when set (else build/attn6/).
set -u
out=${OUT:-build/attn6}
mkdir -p "$out"
CUDA=${CUDA_HOME:-/usr/local/cuda}
SAN=$CUDA/bin/compute-sanitizer
test_bin=build/tests/gpu_attention
bench=build/attn6/attn_bench
t0=$(date +%s)
el() { echo "$(( $(date +%s) - t0 )) s"; }
echo "== $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"

echo "== gpu_attention (timeout ${TEST_TIMEOUT:-150} s)"
timeout "${TEST_TIMEOUT:-150}" $test_bin >"$out/test.log" 2>&1
rc=$?
echo "rc=$rc PASS=$(grep -c '^PASS' "$out/test.log") FAIL=$(grep -c '^FAIL' "$out/test.log") ($(el))"
grep '^FAIL' "$out/test.log" | cut -c1-160 | head -20
[ "$rc" -eq 124 ] && { echo "gpu_attention timed out; last lines:"; tail -3 "$out/test.log"; }

if [ "${SKIP_SAN:-0}" != 1 ]; then
    for tool in ${SAN_TOOLS:-racecheck memcheck}; do
        echo "== compute-sanitizer --tool $tool $test_bin --small (timeout ${SAN_TIMEOUT:-120} s)"
        timeout "${SAN_TIMEOUT:-120}" "$SAN" --tool $tool $test_bin --small >"$out/$tool.log" 2>&1
        echo "rc=$? PASS=$(grep -c '^PASS' "$out/$tool.log") FAIL=$(grep -c '^FAIL' "$out/$tool.log") ($(el))"
        grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|hazard|Error' "$out/$tool.log" | sort | uniq -c | head -8
    done
fi

rm -f "$out"/bench_*.csv
sha=${GIT_SHA:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)} # GIT_SHA first: a copied tree may sit inside another repository
W512=swa,DIR,1,1048576,16,16,64,512
W4K=swa,DIR,1,1048576,16,16,64,4096
DENSE=dense,DIR,1,65536,16,16,64,0
pts() { local d=$1; shift; for p in "$@"; do printf '%s ' "${p/DIR/$d}"; done; }
runv() { # label envvar value timeout points...
    local label=$1 var=$2 val=$3 to=$4; shift 4
    local csv="$out/bench_$label.csv"
    if [ -n "$var" ]; then env "$var=$val" timeout "$to" "$bench" "$csv" "$sha" "$@" >>"$out/bench.log" 2>&1
    else timeout "$to" "$bench" "$csv" "$sha" "$@" >>"$out/bench.log" 2>&1; fi
    local r=$?
    [ $r -ne 0 ] && echo "  ($label: exit $r)"
}
echo "== timing (ms, median)"
: >"$out/bench.log"
labels=""
if [ -n "${FWD_VARIANTS:-}" ]; then
    runv fwd-default "" "" 20 $(pts fwd $W512 $W4K $DENSE); labels="$labels fwd-default"
    for v in $FWD_VARIANTS; do runv "fwd-WG$v" LC_ATTN_WG $v 20 $(pts fwd $W512 $W4K $DENSE); labels="$labels fwd-WG$v"; done
fi
runv bwd-default "" "" 25 $(pts bwd $W512 $W4K $DENSE); labels="$labels bwd-default"
for v in ${BWD_VARIANTS-7 18 19}; do runv "bwd-WGB$v" LC_ATTN_WGB $v 25 $(pts bwd $W512 $W4K $DENSE); labels="$labels bwd-WGB$v"; done

# table: variant, point, ms, TFLOP/s; a point that did not run says why. Then one CSV (label,
# then the bench's columns: kernel,direction,backend,B,L,HQ,H,dh,W,ms,ms_min,ms_max,reps,tflops,
# gbps,device,git_sha,date,status,anchor,note) in place of the per-variant files.
: >"$out/bench.csv"
for label in $labels; do
    f="$out/bench_$label.csv"
    [ -f "$f" ] || { echo "$label: no rows"; continue; }
    awk -F, -v l="$label" 'NR > 1 {
        n = ($5 == 1048576 ? "1M" : $5 == 65536 ? "64K" : $5);
        pt = ($1 == "swa" ? "W" $9 " L" n : "dense L" n);
        printf "%-12s %-11s %9.3f ms %6.1f TF/s %s\n", l, pt, $10, $14, ($19 == "ok" ? "" : $19 " " substr($21, 1, 60))
    }' "$f"
    sed "s/^/$label,/" "$f" >>"$out/bench.csv"
    rm -f "$f"
done
echo "total $(el)"
