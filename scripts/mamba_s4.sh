#!/bin/bash
# mamba_s4.sh — session-4 device run for the wgmma forward (kernels/mamba_ssd_wg.cuh): GPU tests,
# same-run timing of the forward versions (LC_MAMBA_FWD=2 and 3) at 64K and 1M (fwd, fwdbwd),
# then compute-sanitizer on the small shapes. Uses binaries in prebuilt/ when present (built on
# the CPU machine with the same nvcc 13.0: saves the device-side compile), else builds.
# Usage (device, repository root): scripts/mamba_s4.sh SHA [SAN=1] ; writes under $OUT.
cd "$(dirname "$0")/.."
SHA=${1:-dev}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
if [ -x prebuilt/gpu_mamba ] && [ -x prebuilt/mamba_bench ]; then B=prebuilt; else
  make -j16 >$OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
  make build/tests/gpu_mamba >>$OUT/build.log 2>&1
  gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -DLC_CUDA=1 -Ikernels -Ibench -I/usr/local/cuda/include scripts/mamba_bench.c \
      build/liblongctx.a -L/usr/local/cuda/lib64 -lcudart -lcublas -lm -lstdc++ -o build/mamba_bench || exit 1
  mkdir -p build/tests; B=build; cp build/tests/gpu_mamba build/gpu_mamba
fi
if [ "${TESTS:-1}" = 1 ]; then
  t0=$(date +%s.%N)
  timeout ${TEST_T:-120} ./$B/gpu_mamba >$OUT/gpu_test.log 2>&1
  echo "gpu_mamba rc=$? $(grep -c '^PASS' $OUT/gpu_test.log) PASS, $(grep -c '^FAIL' $OUT/gpu_test.log) FAIL, $(grep -c '^SKIP' $OUT/gpu_test.log) SKIP ($(echo "$(date +%s.%N) - $t0" | bc) s)"
  grep -B2 -A6 "^FAIL" $OUT/gpu_test.log | head -40
  grep -A12 "FWD=3" $OUT/gpu_test.log | grep "rel err" | sort -k5 -g | tail -3
fi
R="32,64,1,128"
PTS=${PTS:-"mamba_scan,fwd,1,65536,$R mamba_scan,fwd,1,1048576,$R mamba_scan,fwdbwd,1,65536,$R mamba_scan,fwdbwd,1,1048576,$R"}
for v in ${FWD:-2 3 2 3}; do
  LC_MAMBA_FWD=$v timeout 60 ./$B/mamba_bench $OUT/t_$v.csv $SHA $PTS 2>&1 | sed "s/^/[FWD=$v] /" | grep -v "^\[FWD=.\] *$"
done
if [ "${SAN:-1}" = 1 ]; then
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
  LC_MAMBA_FWD=3 timeout 90 $CS --tool memcheck ./$B/gpu_mamba --quiet --small >$OUT/memcheck.log 2>&1
  echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' $OUT/memcheck.log) $(grep -c '^PASS' $OUT/memcheck.log) PASS $(grep -c '^FAIL' $OUT/memcheck.log) FAIL"
  LC_MAMBA_FWD=3 timeout 90 $CS --tool racecheck ./$B/gpu_mamba --quiet --small >$OUT/racecheck.log 2>&1
  echo "racecheck rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' $OUT/racecheck.log | tr '\n' ' ')"
fi
exit 0
