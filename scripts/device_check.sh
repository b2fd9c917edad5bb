#!/usr/bin/env bash
# device_check.sh — one call on a lent GPU machine: build, run every test (GPU tests included),
# then the default kernel sweep with a wall-clock cap per section, so that the whole call fits
# the device tool's 10-minute limit. Rows are appended and flushed, so a section cut by its cap
# keeps what it measured, and a later call continues where it stopped.
#   scripts/device_check.sh [SWEEP_SECONDS]      (default 300, split L mamba : L others : W : K = 1 : 2 : 1 : 1)
# Logs and the CSV go to $OUT when it is set (the device tool's output folder), else build/: five
# files (gpu.txt, build.log, test.log, sweep.log, the device's CSV), because the device tool
# returns only a few files per call.
# Provenance: rows record `git rev-parse` of the tree they run in; the lent machine's copy of the
# repository may carry stale git metadata (seen in session 2: rows named the session's first
# commit), so call it as `LONGCTX_GIT_SHA=<sha of the tree you sent> scripts/device_check.sh`.
set -u
out=${OUT:-build}
mkdir -p "$out"
total=${1:-300}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv >"$out/gpu.txt" 2>&1
t0=$(date +%s)
make -j"$(nproc)" all >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
make test >"$out/test.log" 2>&1
test_rc=$?
grep -E '^\[.*\] [0-9]+ passed|FAIL|skipped|passed, ' "$out/test.log" | tail -40
bin=build/longctx
gpu=$("$bin" info --has-gpu) || { echo "no GPU: $gpu"; exit 1; }
echo "rows will name git_sha ${LONGCTX_GIT_SHA:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown) (from git; set LONGCTX_GIT_SHA if stale)}"
csv=results/kernels_$(echo "$gpu" | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-').csv
mixers=$("$bin" sweep --dry-run --L 4K 2>/dev/null | cut -d. -f1 | sort -u)
others=$(echo "$mixers" | grep -v '^mamba' | paste -sd, -)
mamba=$(echo "$mixers" | grep '^mamba' | paste -sd, -)
# the Mamba mixers first (fast), then the rest; Mamba has no backward-only point: fwd and fwdbwd
[ -n "$mamba" ] && timeout $((total / 5)) "$bin" sweep --tag L --mixer "$mamba" --direction fwd,fwdbwd --L 4K..16M --budget-s 20 --reps 5 2>>"$out/sweep.log" | tail -3
[ -n "$others" ] && timeout $((total * 2 / 5)) "$bin" sweep --tag L --mixer "$others" --direction fwd,bwd --L 4K..16M --budget-s 20 --reps 5 2>>"$out/sweep.log" | tail -3
timeout $((total / 5)) "$bin" sweep --tag W --mixer swa --direction fwd,bwd --L 1M --W 256..64K --budget-s 20 --reps 5 2>>"$out/sweep.log" | tail -3
hsa=$("$bin" sweep --dry-run --L 4K 2>/dev/null | cut -d. -f1 | sort -u | grep '^hsa' | paste -sd, -)
timeout $((total / 5)) "$bin" sweep --tag K --mixer "$hsa" --direction fwd,bwd --L 1M --K 1..64 --budget-s 20 --reps 5 2>>"$out/sweep.log" | tail -3
cp "$csv" "$out/" 2>/dev/null
grep 'sweep: done' "$out/sweep.log"
echo "tests: exit $test_rc; csv: $csv ($(wc -l <"$csv") lines)"
exit $test_rc
