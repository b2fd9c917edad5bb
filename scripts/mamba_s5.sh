#!/bin/bash
# mamba_s5.sh — session-5 device run for the wgmma gradient kernel (kernels/mamba_ssd_bwd_wg.cuh):
# GPU tests, compute-sanitizer memcheck and racecheck on the small shapes (the defaults: every
# wgmma kernel; the --small list also runs the mma.sync backward, LC_MAMBA_DHL=0 LC_MAMBA_BWG=0),
# same-run timing of the two gradient kernels (LC_MAMBA_BWG=0 / default) at 64K and 1M, NCU=1 one
# ssd_bwd_wg launch under Nsight Compute, then the
# scan CSV points of the defaults (MODE ALL; the FINAL points skip the sanitizer).
# Uses binaries in prebuilt/ when present (built on the CPU machine with the same nvcc 13.0: saves
# the device-side compile), else builds. Usage (device, repository root):
#   scripts/mamba_s5.sh SHA [ALL|FINAL]  writes logs and CSVs under $OUT
cd "$(dirname "$0")/.."
SHA=${1:-dev}
MODE=$2
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
if [ -x prebuilt/gpu_mamba ] && [ -x prebuilt/mamba_bench ]; then B=prebuilt; else
  make -j16 >$OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
  make build/tests/gpu_mamba >>$OUT/build.log 2>&1
  gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -DLC_CUDA=1 -Ikernels -Ibench -I/usr/local/cuda/include scripts/mamba_bench.c \
      build/liblongctx.a -L/usr/local/cuda/lib64 -lcudart -lcublas -lm -lstdc++ -o build/mamba_bench || exit 1
  cp build/tests/gpu_mamba build/gpu_mamba; B=build
fi
FAILS=0
if [ "${TESTS:-1}" = 1 ]; then
  timeout ${TEST_T:-120} ./$B/gpu_mamba >$OUT/gpu_test.log 2>&1
  rc=$?
  FAILS=$(grep -c '^FAIL' $OUT/gpu_test.log)
  [ $rc = 0 ] || [ $FAILS != 0 ] || FAILS=rc$rc
  echo "gpu_mamba rc=$rc $(grep -c '^PASS' $OUT/gpu_test.log) PASS, $FAILS FAIL, $(grep -c '^SKIP' $OUT/gpu_test.log) SKIP"
  grep -A12 "^FAIL" $OUT/gpu_test.log | head -40
  grep "rel err" $OUT/gpu_test.log | sort -k5 -g | tail -6
fi
[ "$MODE" = FINAL ] && SAN=0
if [ "${SAN:-1}" = 1 ]; then
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
  # the test verdicts under the sanitizers count too (session 4 found a global-memory race that way)
  timeout 90 $CS --tool memcheck ./$B/gpu_mamba --quiet --small >$OUT/memcheck.log 2>&1
  echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' $OUT/memcheck.log) $(grep -c '^PASS' $OUT/memcheck.log) PASS $(grep -c '^FAIL' $OUT/memcheck.log) FAIL"
  timeout 120 $CS --tool racecheck ./$B/gpu_mamba --quiet --small >$OUT/racecheck.log 2>&1
  echo "racecheck rc=$? $(grep -E 'RACECHECK SUMMARY' $OUT/racecheck.log) $(grep -c '^PASS' $OUT/racecheck.log) PASS $(grep -c '^FAIL' $OUT/racecheck.log) FAIL"
  grep -h '^FAIL' $OUT/memcheck.log $OUT/racecheck.log | head -5
fi
R="32,64,1,128"
S="mamba_scan"
run() { # tag env... (the points in $PTS)
  local tag=$1; shift
  env "$@" timeout 90 ./$B/mamba_bench $OUT/t_$tag.csv $SHA $PTS 2>&1 | sed "s/^/[$tag] /"
}
PTS="$S,fwdbwd,1,65536,$R $S,fwdbwd,1,1048576,$R"
run bwg0 LC_MAMBA_BWG=0
run default
if [ "${NCU:-0}" = 1 ]; then # one ssd_bwd_wg launch at fwdbwd 64K under Nsight Compute (clocks locked: ~1.3x slower)
  NC=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
  timeout 90 $NC --kernel-name regex:ssd_bwd_wg --launch-count 1 --section SpeedOfLight --section WarpStateStats \
    --section Occupancy --section MemoryWorkloadAnalysis ./$B/mamba_bench /tmp/ncu.csv $SHA $S,fwdbwd,1,65536,$R >$OUT/ncu.txt 2>&1
  grep -E "Duration|Throughput|Achieved Occupancy|Theoretical Occupancy|Block Limit|Warp Cycles Per Issued|Stall|Issued Warp|L1/TEX Hit|L2 Hit|Executed Ipc" $OUT/ncu.txt | head -40
fi
[ "$MODE" = ALL ] || [ "$MODE" = FINAL ] || exit 0
[ "$FAILS" = 0 ] || { echo "tests failed: no CSV points"; exit 0; }
PTS="$S,fwd,1,4096,$R $S,fwd,1,16384,$R $S,fwd,1,65536,$R $S,fwd,1,262144,$R $S,fwd,1,1048576,$R $S,fwd,1,4194304,$R
 $S,fwd,1,16777216,$R $S,fwdbwd,1,4096,$R $S,fwdbwd,1,65536,$R $S,fwdbwd,1,262144,$R $S,fwdbwd,1,1048576,$R
 $S,fwdbwd,1,4194304,$R $S,fwdbwd,1,16777216,$R"
timeout 240 ./$B/mamba_bench $OUT/mamba_h100.csv $SHA $PTS
exit 0
