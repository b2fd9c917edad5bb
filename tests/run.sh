#!/usr/bin/env bash
# run.sh — runs test binaries, echoes their PASS/FAIL/SKIP lines, prints "N passed, N failed"
# and exits non-zero on any failure. A binary that crashes or fails without a FAIL line counts
# as one failure. GPU test binaries (gpu_*) run only when a CUDA device is present.
set -u
build=${BUILD:-build}
pass=0 fail=0 skip=0
gpu_why=""
if ! "$build/longctx" info --has-gpu >/dev/null 2>&1; then
    gpu_why=$("$build/longctx" info --has-gpu 2>&1 | head -1)
    [ -n "$gpu_why" ] || gpu_why="longctx info --has-gpu failed"
fi
gpu_skipped=0
for bin in "$@"; do
    name=$(basename "$bin")
    if [[ $name == gpu_* && -n $gpu_why ]]; then
        gpu_skipped=$((gpu_skipped + 1))
        continue
    fi
    out=$(mktemp)
    start=$(date +%s)
    "$bin" >"$out" 2>&1
    rc=$?
    grep -E '^(PASS|FAIL|SKIP) ' "$out" | sed "s|^|[$name] |"
    p=$(grep -c '^PASS ' "$out"); f=$(grep -c '^FAIL ' "$out"); s=$(grep -c '^SKIP ' "$out")
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "[$name] FAIL $name: exited with status $rc; last output:"
        tail -n 20 "$out" | sed 's/^/    /'
        f=1
    elif [ "$f" -gt 0 ]; then
        grep -v -E '^(PASS|SKIP) ' "$out" | grep -v '^FAIL ' | tail -n 10 | sed 's/^/    /'
    fi
    echo "[$name] $((p)) passed, $((f)) failed, $((s)) skipped in $(( $(date +%s) - start ))s"
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    rm -f "$out"
done
if [ $gpu_skipped -gt 0 ]; then
    echo "GPU tests skipped ($gpu_skipped binaries): $gpu_why"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
