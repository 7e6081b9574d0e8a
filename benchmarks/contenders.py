"""The library comparison with the newer contenders beside it: median epoch time (ms) and test
accuracy per cell, one column per library and variant (e.g. ``pyg compile=True``), the rank of each
column in the cell, and whether the ranking changes when a variant replaces its eager library.

    python benchmarks/contenders.py results/citation.jsonl results/citation-contenders.jsonl
    python benchmarks/contenders.py results/citation-tta.jsonl      (time-to-accuracy runs)

Rows are ``gnnbench.report.rows`` (so the medians are the report's); only ``ok`` and
``accuracy_mismatch`` rows are shown, a mismatch marked ¹. Columns measured in different runs are
from the files given, each with its own run time in the report's header; nothing is re-scaled.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnnbench.cells import RAN  # noqa: E402
from gnnbench.report import rows, tta_rows  # noqa: E402
from gnnbench.results import read_records  # noqa: E402


def tta(recs) -> None:
    """Seconds to the target (training steps only; median over the seeds that reached it), epochs to it,
    seeds that reached it; then the ranking by time to target next to the ranking by epoch time."""
    table = tta_rows(recs)
    cols = list(dict.fromkeys(f"{r['library']} {r['variant']}".strip() for r in table))
    cells = list(dict.fromkeys((r["dataset"], r["model"]) for r in table))
    by = {(r["dataset"], r["model"], f"{r['library']} {r['variant']}".strip()): r for r in table}
    print("| dataset | model | target | " + " | ".join(cols) + " | order by time to target | order by epoch time |")
    print("|---|---|---|" + "---|" * len(cols) + "---|---|")
    differ = 0
    for d, m in cells:
        out, target = [], ""
        for c in cols:
            r = by.get((d, m, c))
            if r is None:
                out.append("–")
                continue
            target = f"{r['target']:g}"
            s_ = "–" if r["s_to_target"] is None else f"{r['s_to_target']:.2f} s"
            e_ = "" if r["epochs_to_target"] is None else f" ({r['epochs_to_target']:g} ep)"
            out.append(f"{s_}{e_} {r['reached']}/{r['seeds']}")
        here = [c for c in cols if (d, m, c) in by]
        by_tta = sorted([c for c in here if by[(d, m, c)]["rank_tta"] is not None], key=lambda c: by[(d, m, c)]["rank_tta"])
        by_ep = sorted(here, key=lambda c: by[(d, m, c)]["rank_epoch"])
        differ += by_tta != [c for c in by_ep if c in by_tta]
        print(f"| {d} | {m} | {target} | " + " | ".join(out) + f" | {' < '.join(by_tta)} | {' < '.join(by_ep)} |")
    print(f"\nRows whose every seed reached the target are ranked; the order by time to target differs from the "
          f"order by epoch time (over the same rows) in {differ} of {len(cells)} cells.")


def main(paths: list[str]) -> None:
    recs = [r for p in paths for r in read_records(p)]
    if any(r.get("time_to_accuracy") for r in recs):
        return tta(recs)
    table = [r for r in rows(recs) if r["status"] in RAN]
    cols = list(dict.fromkeys(f"{r['library']} {r['variant']}".strip() for r in table))
    cells = list(dict.fromkeys((r["dataset"], r["model"]) for r in table))
    by = {(r["dataset"], r["model"], f"{r['library']} {r['variant']}".strip()): r for r in table}
    order = sorted(cols, key=lambda c: sum(by[(d, m, c)]["median_ms"] for d, m in cells if (d, m, c) in by))
    print("| dataset | model | " + " | ".join(order) + " | fastest |")
    print("|---|---|" + "---|" * len(order) + "---|")
    changed = []
    for d, m in cells:
        row = [by.get((d, m, c)) for c in order]
        out = []
        for r in row:
            if r is None:
                out.append("–")
                continue
            acc = f"{100 * r['test_acc_mean']:.1f}" if r["test_acc_mean"] is not None else "–"
            out.append(f"{r['median_ms']:.1f} ({acc}){'¹' if r['status'] == 'accuracy_mismatch' else ''}")
        ok = {c: by[(d, m, c)]["median_ms"] for c in order if (d, m, c) in by and by[(d, m, c)]["status"] == "ok"}
        ranked = sorted(ok, key=ok.get)
        print(f"| {d} | {m} | " + " | ".join(out) + f" | {ranked[0] if ranked else '–'} |")
        for c in order:           # a variant (``lib var``) against its eager library (``lib``)
            lib = c.split(" ", 1)[0]
            if c != lib and c in ok and lib in ok:
                eager_rank = sorted([x for x in ok if x != c], key=ok.get).index(lib) + 1
                var_rank = sorted([x for x in ok if x != lib], key=ok.get).index(c) + 1
                changed.append(f"{d}/{m}: {c} {ok[c]:.1f} ms vs {lib} {ok[lib]:.1f} ms ({ok[c] / ok[lib]:.2f}x); "
                               f"rank among the others {eager_rank} -> {var_rank}")
    print("\n¹ accuracy_mismatch (outside the published band): never counted as fastest.")
    if changed:
        print("\nVariant vs its eager library (rank among the other columns, 1 = fastest):")
        for line in changed:
            print("- " + line)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python benchmarks/contenders.py RESULTS.jsonl [...]")
    main(sys.argv[1:])
