#!/usr/bin/env bash
# setup.sh MODE — make sure the Debian packages longctx uses are present.
#   test   optional extras for `make test` (Google Benchmark, gnuplot, a prose haystack):
#          installed when root and a package registry answers; otherwise listed and skipped
#          (the tests that need them say so), never fatal.
#   run    `make run` renders figures with gnuplot: installed when root. Not root: the exact
#          apt-get line is printed and setup stops with status 1. Root without a package
#          registry (the lent GPU machines): the sweep runs without figures, and `make plots`
#          renders them later on a machine with gnuplot.
#   plots  gnuplot only: without it the apt-get line is printed and setup stops with status 1.
# Compilers (gcc, make) must already be there; nvcc is optional (CUDA backend).
set -u
mode=${1:-test}
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
command -v gcc >/dev/null || { echo "setup: gcc is missing: apt-get install -y build-essential" >&2; exit 1; }
case $mode in
    test) want=(libbenchmark-dev gnuplot-nox jargon-text) ;;
    run)  want=(gnuplot-nox libbenchmark-dev jargon-text) ;;
    plots) want=(gnuplot-nox) ;;
    *) echo "setup.sh: unknown mode '$mode' (test | run | plots)" >&2; exit 2 ;;
esac
for p in "${want[@]}"; do
    case $p in
        gnuplot-nox) command -v gnuplot >/dev/null && continue ;;
        libbenchmark-dev) [ -f /usr/include/benchmark/benchmark.h ] || [ -f /usr/local/include/benchmark/benchmark.h ] && continue ;;
    esac
    have_pkg "$p" || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${need[*]}"
installed=0
# A machine with no route to its package registry (e.g. the lent GPU machines) answers the
# name lookup at once with a failure: do not spend minutes on apt-get there.
registry_reachable() {
    local host
    host=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -oE '^(deb|URIs:)[^#]*https?://[^/ ]+' |
        grep -oE 'https?://[^/ ]+' | head -1 | sed 's|.*://||')
    [ -n "$host" ] && timeout 5 getent hosts "$host" >/dev/null 2>&1
}
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && registry_reachable; then
    echo "setup: installing ${need[*]}" >&2
    if timeout 120 apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
        installed=1
    else
        echo "setup: could not install ${need[*]} (no package registry reachable?)" >&2
    fi
fi
[ $installed = 1 ] && exit 0
case $mode in
    test)
        echo "setup: continuing without ${need[*]}; tests that need them are skipped. To install: sudo $line" >&2
        exit 0 ;;
    *)
        if [[ " ${need[*]} " == *" gnuplot-nox "* && $mode == run && "$(id -u)" = 0 ]]; then
            # root, but no package registry (e.g. the lent GPU machines): the sweep needs no
            # gnuplot, so measure now and render the figures elsewhere with `make plots`
            echo "setup: no gnuplot and no package registry: 'make run' will measure but not render figures. To install: $line" >&2
            exit 0
        fi
        if [[ " ${need[*]} " == *" gnuplot-nox "* ]]; then
            echo "setup: 'make $mode' needs gnuplot to render figures. Install it with: sudo $line" >&2
            exit 1
        fi
        echo "setup: continuing without ${need[*]}. To install: sudo $line" >&2
        exit 0 ;;
esac
