#!/usr/bin/env bash
# suite_timing.sh [LENGTH] [SAMPLES] — time on-the-fly generation of one sample of every synthetic
# task at LENGTH tokens (default 16777216) on one CPU core (taskset -c 0), SAMPLES samples each
# (default 3, separate indices), and write results/suite_timing.csv: median and max seconds per
# sample, peak RSS of the process, and the sample's own size (token ids int32 + text bytes).
# The prose-haystack tasks need jargon-text (scripts/setup.sh test); qa_1/qa_2 need user files
# and are not timed.
set -eu
L=${1:-16777216}
N=${2:-3}
BIN=${BIN:-build/longctx}
OUT=${OUT:-results/suite_timing.csv}
[ -x "$BIN" ] || { echo "suite_timing: build first (make)" >&2; exit 1; }
pin=""
command -v taskset >/dev/null && pin="taskset -c 0"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
sha=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
tasks="niah_single_1 niah_single_2 niah_single_3 niah_multikey_1 niah_multikey_2 niah_multikey_3 niah_multivalue niah_multiquery vt cwe fwe tok_sniah tok_mqniah tok_vt tok_fwe passkey mqar"
mkdir -p "$(dirname "$OUT")"
echo "task,length,tokens,text_bytes,samples,s_median,s_max,peak_rss_bytes,sample_bytes,rss_over_sample,cpu,git_sha,date" > "$OUT"
for t in $tasks; do
    # one process per task, so the peak RSS is that task's
    lines=$($pin "$BIN" suite gen --task "$t" --length "$L" --samples "$N" --bench) || { echo "suite_timing: $t failed" >&2; continue; }
    secs=$(echo "$lines" | cut -d, -f4 | sort -g | tr '\n' ' ')
    echo "$lines" | awk -F, -v t="$t" -v L="$L" -v n="$N" -v cpu="$cpu" -v sha="$sha" -v date="$date" -v secs="$secs" '
        { tok = $5; tb = $6; if ($7 > rss) rss = $7 }
        END {
            m = split(secs, s, " ")
            med = (m % 2) ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
            sb = 4 * tok + tb
            printf "%s,%d,%d,%d,%d,%.4f,%.4f,%d,%d,%.3f,\"%s\",%s,%s\n", t, L, tok, tb, n, med, s[m], rss * 1024, sb, rss * 1024 / sb, cpu, sha, date
        }' >> "$OUT"
    tail -1 "$OUT" | cut -d, -f1,6,7,8,10
done
echo "wrote $OUT" >&2
