#!/usr/bin/env bash
# profile.sh POINT [ncu options...] — Nsight Compute on one sweep point.
#   POINT is the point's name as the sweep prints it (progress line, or `longctx sweep
#   --dry-run`), e.g. hsa_attend.fwd.cuda.B1.L1048576.HQ16.H1.dh64.S64.K8.dr64. The point is run
#   once by the sweep (one probe run + one timed run, no warm-up) under
#     ncu --nvtx --nvtx-include "longctx@POINT/" --clock-control none
#   so only the kernels inside that point's NVTX range are profiled, at the clocks the
#   benchmarks run at. The report goes to build/profiles/POINT.ncu-rep (open it with ncu-ui, or
#   `ncu --import FILE --page details`); a per-kernel summary is printed. Extra arguments go to
#   ncu (default: --set full --launch-count 20). Environment: BUILD, NCU (path of ncu).
set -euo pipefail
if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
point=$1
shift
build=${BUILD:-build}
bin=$build/longctx
ncu=${NCU:-$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | tail -1 || true)}
[ -x "$bin" ] || { echo "profile: $bin is missing: run make first" >&2; exit 1; }
[ -n "$ncu" ] && [ -x "$ncu" ] || { echo "profile: Nsight Compute (ncu) not found; set NCU=/path/to/ncu" >&2; exit 1; }

# POINT -> sweep flags: mixer.direction.backend then dims as <name><number>
IFS=. read -r -a part <<<"$point"
[ ${#part[@]} -ge 4 ] || { echo "profile: '$point' is not a point name (mixer.direction.backend.B1.L4096...)" >&2; exit 2; }
flags=(--mixer "${part[0]}" --direction "${part[1]}" --backend "${part[2]}")
for p in "${part[@]:3}"; do
    if [[ $p =~ ^(B|L|HQ|H|dh|W|S|K|dr|N)([0-9]+)$ ]]; then
        flags+=("--${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}")
    else
        echo "profile: '$p' in '$point' is not a dim (B L HQ H dh W S K dr N followed by a number)" >&2
        exit 2
    fi
done
# dims the point leaves out are 0 for its mixer
for d in W S K dr N; do [[ " ${flags[*]} " == *" --$d "* ]] || flags+=("--$d" 0); done
# the sweep must name the point the same way, or ncu would profile nothing
name=$("$bin" sweep --dry-run "${flags[@]}" | awk '{print $1}')
[ "$name" = "$point" ] || { echo "profile: '$point' does not name one point (the sweep calls it '$name')" >&2; exit 2; }

mkdir -p "$build/profiles"
rep="$build/profiles/$point"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
extra=("$@")
[ ${#extra[@]} -gt 0 ] || extra=(--set full --launch-count 20)
echo "profile: $ncu --nvtx --nvtx-include 'longctx@$point/' --clock-control none ${extra[*]} -o $rep"
"$ncu" --nvtx --nvtx-include "longctx@$point/" --clock-control none "${extra[@]}" -f -o "$rep" \
    "$bin" sweep "${flags[@]}" --warmup 0 --reps 1 --budget-s 600 --tag profile --out "$tmp/point.csv"
echo "profile: report $rep.ncu-rep"
"$ncu" --import "$rep.ncu-rep" --print-summary per-kernel 2>/dev/null | head -60 || true
