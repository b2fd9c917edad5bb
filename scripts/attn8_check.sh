#!/usr/bin/env bash
# attn8_check.sh — one device check of the dh-64 forward (results/notes-attn.md, session 5, attn8):
# gpu_attention against the C reference (every kept ws-forward variant, ragged L, large logits,
# dense causal dh 64 / 128, the backwards), compute-sanitizer racecheck / memcheck on --small
# (default dispatch, and racecheck with LC_ATTN_WG=13 and 16), our forward per variant at the SWA
# points of issue 3 and dense 64K, FlexAttention's forward in the same run (anchors_attention.py, ANCHOR_DIRS=fwd) and
# the ratio file. Run from the repository root with binaries built on the CPU machine:
#   make -j16 all build/tests/gpu_attention
#   gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -DLC_CUDA=1 -Ikernels -Ibench -I$CUDA/include \
#       scripts/attention_bench.c build/liblongctx.a -L$CUDA/lib64 -Wl,-rpath,$CUDA/lib64 \
#       -lcudart -lcublasLt -lcublas -lm -lstdc++ -o build/attention_bench
# Usage: scripts/attn8_check.sh OUTDIR GIT_SHA. Env: V4K / V512 (LC_ATTN_WG values timed at W 4096
# and dense / at W 512, in this order, a value may repeat), TESTS=all|ws|none (ws: only
# `gpu_attention --ws-forward`), SAN (runs "tool:variant", variant - = default dispatch),
# SKIP_FLEX=1.
set -u
out=$1 sha=$2
t0=$(date +%s); el() { echo "[$(( $(date +%s)-t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
if [ "${TESTS:-all}" != none ]; then
  [ "${TESTS:-all}" = ws ] && targ=--ws-forward || targ=
  timeout 200 build/tests/gpu_attention $targ > $out/test.log 2>&1; el "gpu_attention $targ rc $?"
  echo "  PASS $(grep -c '^PASS' $out/test.log) FAIL $(grep -c '^FAIL' $out/test.log)"; grep -A3 '^FAIL' $out/test.log | head -20
fi
if [ -n "${SAN-racecheck:- racecheck:13 racecheck:16 memcheck:-}" ]; then
  for run in ${SAN-racecheck:- racecheck:13 racecheck:16 memcheck:-}; do
    set -- ${run/:/ }
    if [ "$2" = - ]; then unset LC_ATTN_WG; else export LC_ATTN_WG=$2; fi
    timeout 90 compute-sanitizer --tool $1 build/tests/gpu_attention --small > $out/san_$1_$2.log 2>&1; el "$1 (LC_ATTN_WG $2) rc $?"
    grep -E "SUMMARY" $out/san_$1_$2.log; echo "  PASS $(grep -c '^PASS' $out/san_$1_$2.log) FAIL $(grep -c '^FAIL' $out/san_$1_$2.log)"
  done
  unset LC_ATTN_WG
fi
W4K="swa,fwd,1,131072,16,16,64,4096 swa,fwd,1,1048576,16,16,64,4096 dense,fwd,1,65536,16,16,64,0"
W512="swa,fwd,1,131072,16,16,64,512 swa,fwd,1,1048576,16,16,64,512"
build/attention_bench $out/ours.csv $sha $W512 $W4K > /dev/null 2>>$out/bench.err; el "defaults"
for v in ${V4K:-16 24}; do LC_ATTN_WG=$v timeout 40 build/attention_bench $out/variants.csv $sha $W4K > /dev/null 2>>$out/bench.err; done
for v in ${V512:-13}; do LC_ATTN_WG=$v timeout 40 build/attention_bench $out/variants.csv $sha $W512 > /dev/null 2>>$out/bench.err; done; el "variants"
if [ -z "${SKIP_FLEX:-}" ]; then
  ANCHOR_SET=swa ANCHOR_DIRS=fwd PYTHONUNBUFFERED=1 timeout 150 python3 scripts/anchors_attention.py measure $out/flex.csv $sha > $out/flex.log 2>&1; el "flex rc $?"
  python3 scripts/anchors_attention.py ratio $out/ours.csv $out/flex.csv $out/ratio.csv > /dev/null 2>>$out/flex.log
  cut -d, -f1,2,4,8,9,10,11,14 $out/ratio.csv
fi
cat $out/ours.csv $out/variants.csv | awk -F, '$1!="kernel" {v=$21; if (v=="") v="default"; printf "%-16s %-6s L=%-8s W=%-5s %9.3f ms %6.1f TF %s\n", v, $1, $5, $9, $10, $14, $19}'
