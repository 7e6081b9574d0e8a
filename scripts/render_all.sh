#!/usr/bin/env bash
# Re-render every committed results file into OUTDIR: each file's report (md, csv, json), the
# compare and history tables the results README shows, and the native-ratio / contenders tables.
# Run it before and after a change to the reading side; `diff -r BEFORE AFTER` must be empty (or explained).
#   scripts/render_all.sh OUTDIR   (uses .venv/bin, or BIN=...)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/render_all.sh OUTDIR}
BIN=${BIN:-.venv/bin}
mkdir -p "$OUT"
for f in $(find results -name '*.jsonl' | sort); do
  n=$(echo "$f" | tr / _)
  for fmt in md csv json; do
    "$BIN/gnnbench" report "$f" --format "$fmt" --title "render $f" > "$OUT/$n.$fmt" 2> "$OUT/$n.$fmt.err"
    echo "exit $?" >> "$OUT/$n.$fmt.err"
  done
done
run() { local name=$1; shift; "$@" > "$OUT/$name" 2> "$OUT/$name.err"; echo "exit $?" >> "$OUT/$name.err"; }
run citation-all.md "$BIN/gnnbench" report results/citation.jsonl results/citation-contenders.jsonl results/citation-compile-pair.jsonl
run tu-all.md "$BIN/gnnbench" report results/tu.jsonl results/tu-enzymes.jsonl
run scaling-all.md "$BIN/gnnbench" report results/scaling.jsonl results/scaling-limit.jsonl results/scaling-sampled.jsonl results/scaling-sampled-limit.jsonl
run compare-ci.md "$BIN/gnnbench" compare results/baseline/ci.jsonl results/perf-check/run-1.jsonl --normalize-by pyg
run compare-ci.json "$BIN/gnnbench" compare results/baseline/ci.jsonl results/perf-check/run-1.jsonl --normalize-by pyg --format json
run compare-sleep.md "$BIN/gnnbench" compare results/figures/data/test-ok-sleep10.jsonl results/figures/data/test-ok-sleep12.jsonl
run compare-sametree.md "$BIN/gnnbench" compare results/figures/data/same-tree-A.jsonl results/figures/data/same-tree-B.jsonl
run compare-citation.md "$BIN/gnnbench" compare results/citation-2026-11-30.jsonl results/citation.jsonl --normalize-by pyg
run compare-tta.md "$BIN/gnnbench" compare results/citation-tta.jsonl results/citation-tta.jsonl
run compare-perf.md "$BIN/gnnbench" compare results/figures/data/perf-check-1.jsonl results/figures/data/perf-check-3.jsonl
run history-ci.md "$BIN/gnnbench" history results/baseline/ci.jsonl results/perf-check/run-1.jsonl results/perf-check/run-2.jsonl results/perf-check/run-3.jsonl --format md --no-plot
run history-perf.md "$BIN/gnnbench" history results/figures/data/perf-check-1.jsonl results/figures/data/perf-check-2.jsonl results/figures/data/perf-check-3.jsonl --no-plot
run native-ratios.txt "$BIN/python" benchmarks/native_ratios.py results/citation.jsonl results/quick-sparse.jsonl
run contenders.txt "$BIN/python" benchmarks/contenders.py results/citation.jsonl results/citation-contenders.jsonl
run contenders-tta.txt "$BIN/python" benchmarks/contenders.py results/citation-tta.jsonl
# figures' data are compared through the tables; the figures themselves are binary (not diffed)
