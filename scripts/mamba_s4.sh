#!/bin/bash
# mamba_s4.sh — session-4 device run for the wgmma kernels (kernels/mamba_ssd_wg.cuh): GPU tests,
# compute-sanitizer on the small shapes (wgmma paths selected), same-run timing of the forward
# versions (LC_MAMBA_FWD) and backward local dh passes (LC_MAMBA_DHL) at 64K and 1M, then the CSV
# points (ALL = scripts/mamba_dev.sh's set) with the fastest passing configuration exported.
# MODE FINAL: the tests, an mma.sync baseline (LC_MAMBA_FWD=2 LC_MAMBA_DHL=0) and the scan CSV
# points of the defaults only (no sanitizer, no sweep).
# Uses binaries in prebuilt/ when present (built on the CPU machine with the same nvcc 13.0: saves
# the device-side compile), else builds. Usage (device, repository root):
#   scripts/mamba_s4.sh SHA [ALL|FINAL]  writes logs and CSVs under $OUT
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
  grep "^FAIL" $OUT/gpu_test.log | head -20
  grep "rel err" $OUT/gpu_test.log | sort -k5 -g | tail -4
fi
[ "$MODE" = FINAL ] && SAN=0
if [ "${SAN:-1}" = 1 ]; then
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
  for cfg in "3 1" "2 0"; do
    set -- $cfg
    LC_MAMBA_FWD=$1 LC_MAMBA_DHL=$2 timeout 90 $CS --tool memcheck ./$B/gpu_mamba --quiet --small >$OUT/memcheck_$1$2.log 2>&1
    echo "memcheck FWD=$1 DHL=$2 rc=$? $(grep -E 'ERROR SUMMARY' $OUT/memcheck_$1$2.log) $(grep -c '^PASS' $OUT/memcheck_$1$2.log) PASS $(grep -c '^FAIL' $OUT/memcheck_$1$2.log) FAIL"
    LC_MAMBA_FWD=$1 LC_MAMBA_DHL=$2 timeout 90 $CS --tool racecheck ./$B/gpu_mamba --quiet --small >$OUT/racecheck_$1$2.log 2>&1
    echo "racecheck FWD=$1 DHL=$2 rc=$? $(grep -E 'RACECHECK SUMMARY' $OUT/racecheck_$1$2.log) $(grep '^FAIL' $OUT/racecheck_$1$2.log | head -3)"
  done
fi
R="32,64,1,128"
F="mamba_scan,fwd,1,65536,$R mamba_scan,fwd,1,1048576,$R"
FB="mamba_scan,fwdbwd,1,65536,$R mamba_scan,fwdbwd,1,1048576,$R"
run() { # tag env... -- points
  local tag=$1; shift
  env "$@" timeout 60 ./$B/mamba_bench $OUT/t_$tag.csv $SHA $PTS 2>&1 | sed "s/^/[$tag] /"
}
if [ "$MODE" = FINAL ]; then # a same-run mma.sync baseline, then the scan CSV points of the defaults
  S="mamba_scan"
  PTS="$F $FB"
  run v2 LC_MAMBA_FWD=2 LC_MAMBA_DHL=0
  PTS="$S,fwd,1,4096,$R $S,fwd,1,16384,$R $S,fwd,1,65536,$R $S,fwd,1,262144,$R $S,fwd,1,1048576,$R $S,fwd,1,4194304,$R
 $S,fwd,1,16777216,$R $S,fwdbwd,1,4096,$R $S,fwdbwd,1,65536,$R $S,fwdbwd,1,262144,$R $S,fwdbwd,1,1048576,$R
 $S,fwdbwd,1,4194304,$R"
  run default
  exit 0
fi
PTS="$F $FB"
for rep in 1 2; do
  run v2 LC_MAMBA_FWD=2 LC_MAMBA_DHL=0
  run v3 LC_MAMBA_FWD=3 LC_MAMBA_DHL=0
  run v3dhl LC_MAMBA_FWD=3 LC_MAMBA_DHL=1
done
PTS="$F"
run v3t2048 LC_MAMBA_FWD=3 LC_MAMBA_TFWD=2048
run v3t8192 LC_MAMBA_FWD=3 LC_MAMBA_TFWD=8192
ms() { awk -F, -v d=$2 '$2 == d && $5 == 1048576 {s += $10; n++} END {if (n) printf "%.4f", s / n}' $OUT/t_$1.csv; }
best=3; bestdhl=0
[ "$FAILS" = 0 ] && awk "BEGIN{exit !($(ms v3dhl fwdbwd) < $(ms v3 fwdbwd))}" && bestdhl=1
echo "1M means: fwd v2 $(ms v2 fwd) v3 $(ms v3 fwd); fwdbwd v2 $(ms v2 fwdbwd) v3 $(ms v3 fwdbwd) v3+dhl $(ms v3dhl fwdbwd)"
echo "picked LC_MAMBA_FWD=$best LC_MAMBA_DHL=$bestdhl (tests: $FAILS FAIL)"
if [ "$MODE" = ALL ]; then
  S="mamba_scan" C="mamba_conv"
  ALL="$S,fwd,1,4096,$R $S,fwd,1,16384,$R $S,fwd,1,65536,$R $S,fwd,1,262144,$R $S,fwd,1,1048576,$R $S,fwd,1,4194304,$R
 $S,fwd,1,16777216,$R $S,fwdbwd,1,4096,$R $S,fwdbwd,1,65536,$R $S,fwdbwd,1,262144,$R $S,fwdbwd,1,1048576,$R
 $S,fwdbwd,1,4194304,$R $S,fwdbwd,1,16777216,$R $S,decode,1,1,$R $S,decode,16,1,$R $C,fwd,1,4096,$R $C,fwd,1,65536,$R
 $C,fwd,1,1048576,$R $C,fwd,1,4194304,$R $C,fwd,1,16777216,$R $C,fwdbwd,1,4096,$R $C,fwdbwd,1,65536,$R
 $C,fwdbwd,1,1048576,$R $C,decode,1,1,$R $C,decode,16,1,$R $S,fwd,1,512,$R,cpu $S,fwdbwd,1,128,$R,cpu
 $C,fwd,1,4096,$R,cpu $S,decode,1,1,$R,cpu"
  LC_MAMBA_FWD=$best LC_MAMBA_DHL=$bestdhl timeout ${BENCH_T:-100} ./$B/mamba_bench $OUT/mamba_h100.csv $SHA $ALL
fi
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
if [ -n "$NCU" ] && [ "${PROF:-1}" = 1 ]; then # kernel times and stalls of one fwd+bwd at 64K (ncu clocks)
  LC_MAMBA_FWD=$best LC_MAMBA_DHL=1 timeout 60 $NCU --kernel-name regex:"ssd|state_pass" --launch-count 8 \
      --section SpeedOfLight --section WarpStateStats --csv ./$B/mamba_bench $OUT/ncu_dummy.csv $SHA \
      mamba_scan,fwdbwd,1,65536,$R >$OUT/ncu.csv 2>$OUT/ncu.err
  echo "ncu rc=$?"
  grep -E '"Duration"|"Compute \(SM\) Throughput"|"DRAM Throughput"' $OUT/ncu.csv | awk -F'","' '{print $5" | "$(NF-2)" "$(NF-1)" "$NF}' | cut -c1-150
fi
exit 0
