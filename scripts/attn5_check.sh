#!/usr/bin/env bash
# attn5_check.sh — one device check of the attn5 opt-in attention variants (results/notes-attn.md,
# session 3, attn5): correctness of every variant against the C reference (tests/gpu_attention.c), then
# their time next to the current defaults at the SWA / dense points of issue 3 (HQ = H = 16,
# dh 64, B = 1). Run from the repository root after
#   make -j16 all && make -j16 build/tests/gpu_attention
# Variants (env var = value): forward LC_ATTN_WG 21 <192-key tiles, 2 consumer WGs, 4 slots, Q in
# registers>, 22 <192, 2 WGs, 3 slots, Q in shared memory>, 23 <192, 2 WGs, 2 slots, Q in
# registers>, 24 = the default 16 <128 keys, 3 WGs> with int32 tile bookkeeping (spills 8 B, 16
# spills 76 B), 25 = the default 13 <64 keys, 3 WGs, Q in registers> with int32 bookkeeping;
# backward LC_ATTN_WGB 11 / 12 = the default 7 with a 4- / 2-slot Q, dO ring, 13 <each warpgroup
# its own dQ (warpgroups not in lockstep) in two 32-column halves, K, V in shared memory>.
# Timed: forward 21, 22, 24, 25; backward 11, 13 (23 and 12 are tested, not timed: time budget).
# Defaults: forward 13 (W <= 1024) / 16 (W > 1024, dense); backward 7.
# Prints PASS/FAIL counts and FAIL lines, then one line per (variant, point): ms. Under ~100 s.
# Logs and the CSV go to $OUT when set (else build/attn5/).
set -u
out=${OUT:-build/attn5}
mkdir -p "$out"
CUDA=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")}
t0=$(date +%s)

echo "== gpu_attention (timeout 120 s)"
timeout 120 build/tests/gpu_attention >"$out/attn5_test.log" 2>&1
rc=$?
echo "rc=$rc PASS=$(grep -c '^PASS' "$out/attn5_test.log") FAIL=$(grep -c '^FAIL' "$out/attn5_test.log") ($(( $(date +%s) - t0 )) s)"
grep '^FAIL' "$out/attn5_test.log" | cut -c1-160 | head -20
[ "$rc" -eq 124 ] && { echo "gpu_attention timed out; last lines:"; tail -3 "$out/attn5_test.log"; }

bench=build/attn5_bench
gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -DLC_CUDA=1 -Ikernels -Ibench -I"$CUDA/include" scripts/attention_bench.c \
    build/liblongctx.a -L"$CUDA/lib64" -Wl,-rpath,"$CUDA/lib64" -lcudart -lcublasLt -lcublas -lm -lstdc++ -o "$bench" \
    >"$out/attn5_bench_build.log" 2>&1 || { echo "bench build failed:"; head -5 "$out/attn5_bench_build.log"; exit 1; }

rm -f "$out"/attn5_bench_*.csv
sha=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
W512=swa,DIR,1,1048576,16,16,64,512
W4K=swa,DIR,1,1048576,16,16,64,4096
DENSE=dense,DIR,1,65536,16,16,64,0
pts() { local d=$1; shift; for p in "$@"; do printf '%s ' "${p/DIR/$d}"; done; }
# one bench process per variant (the env var selects it for every point of that process)
runv() { # label envvar value timeout points...
    local label=$1 var=$2 val=$3 to=$4; shift 4
    local csv="$out/attn5_bench_$label.csv"
    if [ -n "$var" ]; then env "$var=$val" timeout "$to" "$bench" "$csv" "$sha" "$@" >>"$out/attn5_bench.log" 2>&1
    else timeout "$to" "$bench" "$csv" "$sha" "$@" >>"$out/attn5_bench.log" 2>&1; fi
    local r=$?
    [ $r -ne 0 ] && echo "  ($label: exit $r)"
}
echo "== timing (ms, median; $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1))"
: >"$out/attn5_bench.log"
# forward: defaults (13 at W 512, 16 at W 4096 and dense) and the new variants
runv fwd-default "" "" 20 $(pts fwd $W512 $W4K $DENSE)
for v in 21 22 24 25; do runv "fwd-WG$v" LC_ATTN_WG $v 20 $(pts fwd $W512 $W4K $DENSE); done
# backward: the default 7 and the new variants
runv bwd-default "" "" 25 $(pts bwd $W512 $W4K $DENSE)
for v in 11 13; do runv "bwd-WGB$v" LC_ATTN_WGB $v 25 $(pts bwd $W512 $W4K $DENSE); done

# table: variant (the file's label), point, ms, TFLOP/s; a point that did not run says why.
# Then one CSV (label, then the bench's columns) in place of the per-variant files.
: >"$out/attn5_bench.csv"
for label in fwd-default fwd-WG21 fwd-WG22 fwd-WG24 fwd-WG25 bwd-default bwd-WGB11 bwd-WGB13; do
    f="$out/attn5_bench_$label.csv"
    [ -f "$f" ] || { echo "$label: no rows"; continue; }
    awk -F, -v l="$label" 'NR > 1 {
        n = ($5 == 1048576 ? "1M" : $5 == 65536 ? "64K" : $5);
        pt = ($1 == "swa" ? "W" $9 " L" n : "dense L" n);
        printf "%-12s %-11s %9.3f ms %6.1f TF/s %s\n", l, pt, $10, $14, ($19 == "ok" ? "" : $19 " " substr($21, 1, 60))
    }' "$f"
    sed "s/^/$label,/" "$f" >>"$out/attn5_bench.csv"
    rm -f "$f"
done
# the csv fields: kernel,direction,backend,B,L,HQ,H,dh,W,ms,ms_min,ms_max,reps,tflops,gbps,device,git_sha,date,status,anchor,note
echo "total $(( $(date +%s) - t0 )) s"
