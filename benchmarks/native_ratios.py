"""Native vs the fastest library, per cell: native median epoch time / fastest library's.

    python benchmarks/native_ratios.py RESULTS.jsonl [...]   (goal: every ratio <= 0.5)

Only rows with status `ok` count as "fastest library" (a fast wrong implementation must not
set the bar); the library rows' accuracy status is shown beside. Rows measured on different hardware
(CPU model and cores, GPU: gnnbench.hardware) are never divided: each hardware has its own table.
The headline (and the goal) is native with dense features, like for like; native's
`features=sparse` rows follow in their own table.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnnbench.cells import by_hardware  # noqa: E402
from gnnbench.report import rows  # noqa: E402
from gnnbench.results import read_records  # noqa: E402


SPARSE = "features=sparse"


def _strip_sparse(var: str) -> str:
    return ",".join(v for v in var.split(",") if v and v != SPARSE)


def table(records) -> tuple[str, bool]:
    hardware = by_hardware(rows(records))
    parts, all_met = [], True
    for hw, hw_rows in hardware.items():
        text, met = _one_table(hw_rows)
        parts.append((f"### {hw}\n\n" if len(hardware) > 1 else "") + text)
        all_met &= met
    return "\n\n".join(parts), all_met


def _one_table(rs) -> tuple[str, bool]:
    """The headline: native with dense features (the layout every library gets) against the fastest
    library in the same variant; only these rows decide the goal. Then native's sparse-feature rows,
    each against the fastest library with sparse features where one ran them, else against the fastest
    library's dense row (what a user of that library gets); they never count towards the goal."""
    cells = sorted({(r["dataset"], r["device"], r["model"], r["variant"]) for r in rs})
    head = ["| dataset | device | model | native ms | fastest library | its ms | native / fastest | goal ≤ 0.5 |",
            "|---|---|---|---|---|---|---|---|"]
    lines, sparse_lines = list(head), ["| dataset | device | model | native ms (sparse features) | fastest library "
                                       "| its features | its ms | native / fastest |", "|---|---|---|---|---|---|---|---|"]
    all_met, any_dense = True, False

    def fastest(ds, dev, model, var):
        libs = [r for r in rs if (r["dataset"], r["device"], r["model"], r["variant"]) == (ds, dev, model, var)
                and r["library"] != "native" and r["median_ms"] and r["status"] == "ok"]
        return min(libs, key=lambda r: r["median_ms"]) if libs else None

    for ds, dev, model, var in cells:
        nat = next((r for r in rs if (r["dataset"], r["device"], r["model"], r["variant"]) == (ds, dev, model, var)
                    and r["library"] == "native" and r["median_ms"]), None)
        if not nat:
            continue
        sparse = SPARSE in var.split(",")
        best, against = fastest(ds, dev, model, var), "sparse"
        if sparse and best is None:
            best, against = fastest(ds, dev, model, _strip_sparse(var)), "dense"
        if best is None:
            continue
        ratio = nat["median_ms"] / best["median_ms"]
        if sparse:
            rest = _strip_sparse(var)
            name = model + (f" ({rest})" if rest else "")
            sparse_lines.append(f"| {ds} | {dev} | {name} | {nat['median_ms']:.2f} | {best['library']} | {against} | "
                                f"{best['median_ms']:.2f} | {ratio:.3f} |")
            continue
        any_dense = True
        met = ratio <= 0.5 and nat["status"] == "ok"
        all_met &= met
        name = model + (f" ({var})" if var else "")
        lines.append(f"| {ds} | {dev} | {name} | {nat['median_ms']:.2f} | {best['library']} | {best['median_ms']:.2f} | "
                     f"{ratio:.3f} | {'met' if met else 'MISSED'}{'' if nat['status'] == 'ok' else ' (native ' + nat['status'] + ')'} |")
    text = "Native with dense features (the matrix every library gets) vs the fastest library:\n\n" + "\n".join(lines)
    if len(sparse_lines) > 2:
        text += ("\n\nNative with sparse (CSR) features, not counted towards the goal:\n\n" + "\n".join(sparse_lines))
    return text, all_met and any_dense


def main(argv):
    if not argv:
        raise SystemExit("usage: native_ratios.py RESULTS.jsonl [...]")
    records = [r for p in argv for r in read_records(p)]
    text, ok = table(records)
    print(text)
    print(f"\nall dense-feature cells met the goal: {'yes' if ok else 'no'}")


if __name__ == "__main__":
    main(sys.argv[1:])
