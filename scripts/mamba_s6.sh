#!/bin/bash
# mamba_s6.sh — first device run of the two-heads-per-block gradient kernel (LC_MAMBA_BWG=2,
# kernels/mamba_ssd_bwd_wg2.cuh, written without a GPU in session 6): GPU tests (its cases and the
# segmented backward are in gpu_mamba), compute-sanitizer memcheck and racecheck on the small
# shapes (the --small list runs BWG=2 too), then same-run timing of the gradient kernels at
# fwdbwd 64K and 1M in the order BWG=1, BWG=2, BWG=1, BWG=2 (two repeats each: 1M times drift ~2%
# between calls), and NCU=1: ssd_bwd_wg and ssd_bwd_wg2 at fwdbwd 64K under Nsight Compute (L2
# throughput is the number that should fall). Uses binaries in prebuilt/ when present (built on
# the CPU machine with the same nvcc 13.0), else builds.
# Usage (device, repository root): scripts/mamba_s6.sh SHA   writes logs and CSVs under $OUT
cd "$(dirname "$0")/.."
SHA=${1:-dev}
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
  timeout ${TEST_T:-150} ./$B/gpu_mamba >$OUT/gpu_test.log 2>&1
  rc=$?
  FAILS=$(grep -c '^FAIL' $OUT/gpu_test.log)
  [ $rc = 0 ] || [ $FAILS != 0 ] || FAILS=rc$rc
  echo "gpu_mamba rc=$rc $(grep -c '^PASS' $OUT/gpu_test.log) PASS, $FAILS FAIL, $(grep -c '^SKIP' $OUT/gpu_test.log) SKIP"
  grep -A12 "^FAIL" $OUT/gpu_test.log | head -40
  grep "rel err" $OUT/gpu_test.log | sort -k5 -g | tail -6
fi
if [ "${SAN:-1}" = 1 ]; then
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
  timeout 100 $CS --tool memcheck ./$B/gpu_mamba --quiet --small >$OUT/memcheck.log 2>&1
  echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' $OUT/memcheck.log) $(grep -c '^PASS' $OUT/memcheck.log) PASS $(grep -c '^FAIL' $OUT/memcheck.log) FAIL"
  timeout 140 $CS --tool racecheck ./$B/gpu_mamba --quiet --small >$OUT/racecheck.log 2>&1
  echo "racecheck rc=$? $(grep -E 'RACECHECK SUMMARY' $OUT/racecheck.log) $(grep -c '^PASS' $OUT/racecheck.log) PASS $(grep -c '^FAIL' $OUT/racecheck.log) FAIL"
  grep -h '^FAIL' $OUT/memcheck.log $OUT/racecheck.log | head -5
fi
[ "$FAILS" = 0 ] || { echo "tests failed: no timing"; exit 0; }
R="32,64,1,128"
S="mamba_scan"
PTS="$S,fwdbwd,1,65536,$R $S,fwdbwd,1,1048576,$R"
for rep in 1 2; do
  for v in 1 2; do
    LC_MAMBA_BWG=$v timeout 90 ./$B/mamba_bench $OUT/t_bwg${v}_$rep.csv $SHA $PTS 2>&1 | sed "s/^/[BWG=$v rep $rep] /"
  done
done
if [ "${NCU:-0}" = 1 ]; then # clocks locked by ncu: ~1.3x the timed durations
  NC=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
  for v in 1 2; do
    LC_MAMBA_BWG=$v timeout 90 $NC --kernel-name regex:ssd_bwd_wg --launch-count 1 --section SpeedOfLight --section WarpStateStats \
      --section Occupancy --section MemoryWorkloadAnalysis ./$B/mamba_bench /tmp/ncu.csv $SHA $S,fwdbwd,1,65536,$R >$OUT/ncu_bwg$v.txt 2>&1
    echo "== ncu BWG=$v"
    grep -E "Duration|L2 Cache Throughput|DRAM Throughput|Compute \(SM\) Throughput|Warp Cycles Per Issued|Achieved Occupancy|Stall Barrier|Stall Long" $OUT/ncu_bwg$v.txt | head -12
  done
fi
exit 0
