#!/bin/bash
# mamba_dev.sh — one device run for the Mamba-2 kernels: build, GPU tests, compute-sanitizer
# (memcheck, racecheck) on small shapes, then the timing driver over the points given.
# Usage (on the device, from the repository root): scripts/mamba_dev.sh GIT_SHA POINT...
# Writes logs and mamba_h100.csv under $OUT. SAN=0 skips the sanitizer.
cd "$(dirname "$0")/.."
set -o pipefail
SHA=${1:-dev}
shift
make -j16 >$OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
make build/tests/gpu_mamba >>$OUT/build.log 2>&1
if [ "${TESTS:-1}" = 1 ]; then
  timeout 120 ./build/tests/gpu_mamba 2>&1 | tee $OUT/gpu_test.log | grep -v "^  " | grep -v "^scan B"
  grep "rel err" $OUT/gpu_test.log | sort -k5 -g | tail -4
fi
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
if [ -n "$CS" ] && [ "${SAN:-1}" = 1 ]; then
  timeout 150 $CS --tool memcheck ./build/tests/gpu_mamba --quiet --small >$OUT/memcheck.log 2>&1
  echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' $OUT/memcheck.log)"
  timeout 150 $CS --tool racecheck ./build/tests/gpu_mamba --quiet --small >$OUT/racecheck.log 2>&1
  echo "racecheck rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' $OUT/racecheck.log)"
fi
gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -DLC_CUDA=1 -Ikernels -Ibench -I/usr/local/cuda/include scripts/mamba_bench.c \
    build/liblongctx.a -L/usr/local/cuda/lib64 -lcudart -lcublas -lm -lstdc++ -o build/mamba_bench || exit 1
[ $# -gt 0 ] && timeout ${BENCH_T:-200} ./build/mamba_bench $OUT/mamba_h100.csv $SHA "$@"
exit 0
