#!/usr/bin/env bash
# attn11_check.sh — device check of the dh-64 backward (results/notes-attn11.md): gpu_attention
# --wsb 18,19 (the L = 2^24 case with the default backward, then ws-backward variants 18, 19 on every
# ws shape against the C reference), the backward at the SWA points of issue 3 and dense 64K with
# the defaults, and their per-stage times (attention_bench --stages: memset, dot, main, dq
# conversion). attn11's two device calls ran earlier forms of this script (commits cdf7294 and
# 9b6e217: full gpu_attention / --wsb 19,25,26, racecheck --small, variants 25 / 26 and
# LC_ATTN_BWD_ZERO=0, since removed). Binaries built on the CPU machine (see attn8_check.sh).
# Usage: scripts/attn11_check.sh OUTDIR SHA
set -u
out=$1 sha=$2
t0=$(date +%s); el() { echo "[$(( $(date +%s)-t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout ${TEST_S:-60} build/tests/gpu_attention --wsb 18,19 > $out/test.log 2>&1; rc=$?; el "gpu_attention --wsb 18,19 rc $rc"
echo "  PASS $(grep -c '^PASS' $out/test.log) FAIL $(grep -c '^FAIL' $out/test.log)"; grep -A3 '^FAIL' $out/test.log | head -20
[ $rc = 124 ] && { tail -3 $out/test.log; exit 1; } # a hang: stop here
P512="swa,bwd,1,131072,16,16,64,512 swa,bwd,1,1048576,16,16,64,512"
P4K="swa,bwd,1,131072,16,16,64,4096 swa,bwd,1,1048576,16,16,64,4096 dense,bwd,1,65536,16,16,64,0"
timeout 30 build/attention_bench $out/ours.csv $sha $P512 $P4K > /dev/null 2>>$out/bench.err; el "defaults"
timeout 40 build/attention_bench --stages $out/stages.csv $sha $P512 swa,bwd,1,1048576,16,16,64,4096 > $out/stages.txt 2>>$out/bench.err; el "stages"
grep "stage" $out/stages.txt
awk -F, '$1!="kernel" {printf "%-6s L=%-8s W=%-5s %9.3f ms %6.1f TF %s\n", $1, $5, $9, $10, $14, $21}' $out/ours.csv
