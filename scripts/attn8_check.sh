#!/usr/bin/env bash
# attn8 device check (run from the repository root on the device, binaries built on the CPU machine
# and carried): the ws-forward tests of every variant, then forward timings per variant
# (LC_ATTN_WG) at SWA W 4096 / 512 and dense, printed as a table (variant, point, ms, TFLOP/s).
# Usage: scripts/attn8_check.sh OUTDIR [tests]
set -u
out=$1
t0=$(date +%s); el() { echo "[$(( $(date +%s)-t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
if [ "${2:-}" = tests ]; then
  timeout 150 build/tests/gpu_attention --ws-forward > $out/ws_test.log 2>&1; el "ws-forward tests rc $?"
  echo "  PASS $(grep -c '^PASS' $out/ws_test.log) FAIL $(grep -c '^FAIL' $out/ws_test.log)"; grep -A3 '^FAIL' $out/ws_test.log | head -20
fi
W4K="swa,fwd,1,131072,16,16,64,4096 swa,fwd,1,1048576,16,16,64,4096 dense,fwd,1,65536,16,16,64,0"
W512="swa,fwd,1,131072,16,16,64,512 swa,fwd,1,1048576,16,16,64,512"
for v in ${V4K:-16 30 31 32 33 34 39}; do LC_ATTN_WG=$v timeout 40 build/attention_bench $out/fwd.csv attn8 $W4K > /dev/null 2>>$out/bench.err; done; el "W4096 / dense variants"
for v in ${V512:-13 35 36 37 38}; do LC_ATTN_WG=$v timeout 40 build/attention_bench $out/fwd.csv attn8 $W512 > /dev/null 2>>$out/bench.err; done; el "W512 variants"
awk -F, 'NR>1 {printf "%-6s %-6s L=%-8s W=%-5s %9.3f ms %6.1f TF %s\n", $21, $1, $5, $9, $10, $14, $19}' $out/fwd.csv 2>/dev/null | sed 's/LC_ATTN_WG=//'
