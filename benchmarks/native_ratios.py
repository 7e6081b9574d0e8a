"""Native vs the fastest library, per cell: native median epoch time / fastest library's.

    python benchmarks/native_ratios.py RESULTS.jsonl [...]   (goal: every ratio <= 0.5)

Only rows with status `ok` count as "fastest library" (a fast wrong implementation must not
set the bar); the library rows' accuracy status is shown beside. Rows measured on different hardware
(CPU model and cores, GPU: gnnbench.hardware) are never divided: each hardware has its own table.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnnbench.report import rows  # noqa: E402
from gnnbench.results import read_records  # noqa: E402


def table(records) -> tuple[str, bool]:
    all_rows = rows(records)
    hardware = list(dict.fromkeys(r["hardware"] for r in all_rows))
    parts, all_met = [], True
    for hw in hardware:
        text, met = _one_table([r for r in all_rows if r["hardware"] == hw])
        parts.append((f"### {hw}\n\n" if len(hardware) > 1 else "") + text)
        all_met &= met
    return "\n\n".join(parts), all_met


def _one_table(rs) -> tuple[str, bool]:
    cells = sorted({(r["dataset"], r["device"], r["model"], r["variant"]) for r in rs})
    lines = ["| dataset | device | model | native ms | fastest library | its ms | native / fastest | goal ≤ 0.5 |",
             "|---|---|---|---|---|---|---|---|"]
    all_met = True
    for ds, dev, model, var in cells:
        group = [r for r in rs if (r["dataset"], r["device"], r["model"], r["variant"]) == (ds, dev, model, var)]
        nat = next((r for r in group if r["library"] == "native" and r["median_ms"]), None)
        libs = [r for r in group if r["library"] != "native" and r["median_ms"] and r["status"] == "ok"]
        if not nat or not libs:
            continue
        best = min(libs, key=lambda r: r["median_ms"])
        ratio = nat["median_ms"] / best["median_ms"]
        met = ratio <= 0.5 and nat["status"] == "ok"
        all_met &= met
        name = model + (f" ({var})" if var else "")
        lines.append(f"| {ds} | {dev} | {name} | {nat['median_ms']:.2f} | {best['library']} | {best['median_ms']:.2f} | "
                     f"{ratio:.3f} | {'met' if met else 'MISSED'}{'' if nat['status'] == 'ok' else ' (native ' + nat['status'] + ')'} |")
    return "\n".join(lines), all_met


def main(argv):
    if not argv:
        raise SystemExit("usage: native_ratios.py RESULTS.jsonl [...]")
    records = [r for p in argv for r in read_records(p)]
    text, ok = table(records)
    print(text)
    print(f"\nall cells met the goal: {'yes' if ok else 'no'}")


if __name__ == "__main__":
    main(sys.argv[1:])
