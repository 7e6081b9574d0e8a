#!/usr/bin/env bash
# Time from `git clone` to the quick table on a fresh machine, pip cache empty (issue 14).
#
#   scripts/time_to_first_table.sh [REPO] [REV]
#
# REPO: a path or URL to clone (default: the repository this script is in; a local clone takes its
# committed HEAD, not the working tree). REV: a commit or branch to check out (default: REPO's HEAD).
# The clone goes into a fresh temp folder with a fresh, empty PIP_CACHE_DIR beside it (the user's own
# pip cache is never read, written or deleted); then, timed apart:
#   clone      git clone REPO
#   install    make install            (.venv + gnnbench[all,dev]: what `make bench` does first)
#   quick      make bench              (the quick suite, install already done: prints the table)
# and, with WITH_SAMPLING=1, a fourth phase `make install-sampling` (torch-scatter/torch-sparse from
# source: what `make test` adds; not on the first table's path).
#
# Data: GNNBENCH_DATA if set, else ../shared/datasets beside REPO when it exists, else nothing (the
# raw files are then downloaded into ~/.cache/gnnbench, which is not emptied: delete it yourself for
# a truly cold run). The native kernels build into a fresh GNNBENCH_CACHE (unless given). Pip's index settings (PIP_INDEX_URL, PIP_FIND_LINKS, pip.conf) are left as they
# are and printed: a local wheel folder makes the install faster than a cold PyPI one.
# KEEP=1 keeps the temp folder (clone, venv, logs); otherwise it is removed at the end.
# Takes ~10 minutes of both cores on the 2-core development machine: run it when the machine is quiet.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
repo="${1:-$here}"
rev="${2:-}"

work="$(mktemp -d "${TMPDIR:-/tmp}/gnnbench-ttft.XXXXXX")"
cleanup() {
    if [[ "${KEEP:-0}" == 1 ]]; then echo "kept: $work"; else rm -rf -- "$work"; fi
}
trap cleanup EXIT

export PIP_CACHE_DIR="$work/pip-cache"      # fresh and empty: never the user's cache
mkdir -p "$PIP_CACHE_DIR"
unset PIP_NO_CACHE_DIR
# gnnbench's own cache (the native kernels' build, downloaded datasets) fresh too, as on a new machine
export GNNBENCH_CACHE="${GNNBENCH_CACHE:-$work/gnnbench-cache}"

if [[ -z "${GNNBENCH_DATA:-}" && -d "$repo/../shared/datasets" ]]; then
    GNNBENCH_DATA="$(cd "$repo/../shared/datasets" && pwd)"
fi
export GNNBENCH_DATA="${GNNBENCH_DATA:-}"     # empty: make passes none, gnnbench downloads into its cache

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
declare -a names=() times=()

phase() {   # phase NAME LOG COMMAND...: run, time, and on failure show the log's tail
    local name="$1" log="$work/$2"; shift 2
    echo "== $name: $*"
    local t0; t0="$(now)"
    if ! "$@" >"$log" 2>&1; then
        echo "FAILED after $(secs "$t0" "$(now)") s: $name (last lines of $log):" >&2
        tail -n 40 "$log" >&2
        KEEP=1
        exit 1
    fi
    local dt; dt="$(secs "$t0" "$(now)")"
    names+=("$name"); times+=("$dt")
    echo "   $dt s"
}

echo "repo:          $repo${rev:+ @ $rev}"
echo "work dir:      $work"
echo "PIP_CACHE_DIR: $PIP_CACHE_DIR (empty)"
echo "GNNBENCH_CACHE: $GNNBENCH_CACHE (native kernel builds; empty unless given)"
echo "GNNBENCH_DATA: ${GNNBENCH_DATA:-(unset: downloads into ~/.cache/gnnbench)}"
echo "pip index:     PIP_INDEX_URL=${PIP_INDEX_URL:-} PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL:-} PIP_FIND_LINKS=${PIP_FIND_LINKS:-}"
python3 -m pip config list 2>/dev/null | sed 's/^/  pip config: /' || true
echo "machine:       $(nproc) cores, $(uname -srm), $(python3 --version 2>&1)"
echo "started:       $(date -u '+%Y-%m-%d %H:%M:%S UTC')"

start="$(now)"
phase clone clone.log git clone --quiet "$repo" "$work/gnnbench"
cd "$work/gnnbench"
if [[ -n "$rev" ]]; then git checkout --quiet "$rev"; fi
echo "   commit $(git rev-parse --short HEAD)"
phase install install.log make install
phase quick quick.log make bench
total="$(secs "$start" "$(now)")"
if [[ "${WITH_SAMPLING:-0}" == 1 ]]; then
    phase install-sampling sampling.log make install-sampling
fi

echo
echo "== the quick table (make bench's output)"
grep -E '^(## |\| )' "$work/quick.log" || tail -n 40 "$work/quick.log"
echo
echo "== time to first table, $(date -u '+%Y-%m-%d %H:%M UTC'), pip cache empty"
for i in "${!names[@]}"; do printf '%-17s %8s s\n' "${names[$i]}" "${times[$i]}"; done
printf '%-17s %8s s   (clone + install + quick)\n' "total" "$total"
