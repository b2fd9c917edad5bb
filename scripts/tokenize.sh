#!/usr/bin/env bash
# tokenize.sh — byte-level tokenizing of any text file into a longctx token file (uint16 .bin
# with a 32-byte header, vocab 256; format in model/data.h), for `longctx train` and perplexity
# evaluation. Builds longctx if needed.
#   scripts/tokenize.sh IN [OUT] [--dtype u16|u32]     OUT defaults to IN with .bin appended
set -euo pipefail
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
    exit $([ $# -lt 1 ] && echo 2 || echo 0)
fi
root=$(cd "$(dirname "$0")/.." && pwd)
in=$1; shift
out=$in.bin
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then out=$1; shift; fi
bin=${LONGCTX:-$root/build/longctx}
[ -x "$bin" ] || make -C "$root" -s >/dev/null
exec "$bin" tokenize "$in" "$out" "$@"
