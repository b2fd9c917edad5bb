#!/usr/bin/env bash
# attn11_check.sh — one device check of the dh-64 backward (results/notes-attn11.md): gpu_attention
# --wsb 19,25,26 (the L = 2^24 case with the default backward, then ws-backward variants 19, 25, 26
# on every ws shape against the C reference), compute-sanitizer racecheck on --small (ws variants
# 4, 7, 18, 19, 25, 26), the backward at the SWA points of issue 3 and dense 64K with the defaults and
# LC_ATTN_WGB=25 / 26 (dq written by the main kernel), the per-stage times of the default backward
# (attention_bench --stages: memset, dot, main, dq conversion), the defaults again.
# Binaries built on the CPU machine (see attn8_check.sh). Usage: scripts/attn11_check.sh OUTDIR SHA
set -u
out=$1 sha=$2
t0=$(date +%s); el() { echo "[$(( $(date +%s)-t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout ${TEST_S:-60} build/tests/gpu_attention --wsb 19,25,26 > $out/test.log 2>&1; rc=$?; el "gpu_attention --wsb 19,25,26 rc $rc"
echo "  PASS $(grep -c '^PASS' $out/test.log) FAIL $(grep -c '^FAIL' $out/test.log)"; grep -A3 '^FAIL' $out/test.log | head -20
[ $rc = 124 ] && { tail -3 $out/test.log; exit 1; } # a hang: stop here
timeout ${SAN_S:-40} compute-sanitizer --tool racecheck build/tests/gpu_attention --small > $out/san_racecheck.log 2>&1; el "racecheck rc $?"
grep -E "SUMMARY|Race reported" $out/san_racecheck.log | sort | uniq -c | head; echo "  PASS $(grep -c '^PASS' $out/san_racecheck.log) FAIL $(grep -c '^FAIL' $out/san_racecheck.log)"
P512="swa,bwd,1,131072,16,16,64,512 swa,bwd,1,1048576,16,16,64,512"
P4K="swa,bwd,1,131072,16,16,64,4096 swa,bwd,1,1048576,16,16,64,4096 dense,bwd,1,65536,16,16,64,0"
timeout 30 build/attention_bench $out/ours.csv $sha $P512 $P4K > /dev/null 2>>$out/bench.err; el "defaults"
for v in 25 26; do LC_ATTN_WGB=$v timeout 40 build/attention_bench $out/variants.csv $sha $P512 $P4K > /dev/null 2>>$out/bench.err; el "$v"; done
timeout 40 build/attention_bench --stages $out/stages.csv $sha $P512 swa,bwd,1,1048576,16,16,64,4096 > $out/stages.txt 2>>$out/bench.err; el "stages"
timeout 30 build/attention_bench $out/variants.csv $sha $P512 $P4K > /dev/null 2>>$out/bench.err; el "defaults again"
grep "stage" $out/stages.txt
cat $out/ours.csv $out/variants.csv | awk -F, '$1!="kernel" {v=$21; if (v=="") v="default"; printf "%-18s %-6s L=%-8s W=%-5s %9.3f ms %6.1f TF %s\n", v, $1, $5, $9, $10, $14, $19}'
