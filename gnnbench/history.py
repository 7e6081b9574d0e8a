"""History: how one cell's median epoch time moved over several results files.

Each results file contributes one point per cell (library/model/dataset/device and
model spec; seeds pooled): its median, p25 and p75 epoch time, status, mean test
accuracy, git revision and the time it was measured (the latest record timestamp of
that cell in that file). Points are ordered by that timestamp, not by argument order.

A cell measured on different hardware (``gnnbench.hardware``) is one series per hardware, named
``... @ HARDWARE`` when the files hold more than one: a point is never divided by one from other hardware.

Time-to-accuracy runs (``--until``) are left out: their epochs stop at a target, so their medians are
not points of the same series (``gnnbench compare`` compares them).
"""
from __future__ import annotations

import fnmatch
import json
from datetime import datetime

from .cells import cells_of, hardware_of, latest_per_key, spec_key, until_of, variant
from .errors import UsageError
from .stats import summarize


def _when(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def points(files: list[tuple[str, list[dict]]]) -> dict[str, list[dict]]:
    """cell name -> its points over ``files`` [(path, records)], in time order."""
    series: dict[str, list[dict]] = {}
    order = 0
    several = len({hardware_of(r) for _, records in files for r in records}) > 1
    for path, records in files:
        latest = [r for r in latest_per_key(records) if not until_of(r)]
        meta: dict[tuple, dict] = {}
        for r in latest:
            c = r["cell"]
            ident = (c["library"], c["model"], c["dataset"], c["device"], spec_key(r.get("spec")), hardware_of(r))
            m = meta.setdefault(ident, {"ts": [], "git": set(), "variant": variant(r)})
            if r.get("timestamp"):
                m["ts"].append(r["timestamp"])
            m["git"].add((r.get("env") or {}).get("git_revision") or "?")
        for ident, cd in cells_of(latest).items():
            m = meta.get(ident, {"ts": [], "git": set()})
            ts = max(m["ts"]) if m["ts"] else None
            q = summarize(cd.samples)
            # runs of a non-default spec (an ablation) are their own line: 'lib/model/dataset/device [dropout=0.0]'
            name = cd.name + (f" [{m['variant']}]" if m.get("variant") else "") + (f" @ {cd.hardware}" if several else "")
            series.setdefault(name, []).append({
                "file": str(path), "timestamp": ts, "when": _when(ts), "order": order,
                "git": ",".join(sorted(m["git"])), "spec_hash": ident[-2], "hardware": cd.hardware,
                "status": cd.status,
                "median_ms": q["median"], "p25_ms": q["p25"], "p75_ms": q["p75"], "epochs": q["n"],
                "seeds": cd.seeds, "test_acc": cd.acc,
            })
            order += 1
    for pts in series.values():
        pts.sort(key=lambda p: (p["when"] is None, p["when"] or datetime.min, p["order"]))
    return series


def select(series: dict[str, list[dict]], patterns: list[str] | tuple[str, ...]) -> dict[str, list[dict]]:
    """Cells whose name library/model/dataset/device matches any pattern (shell globs allowed)."""
    if not patterns:
        return series
    for p in patterns:
        if p.count("/") != 3:
            raise UsageError(f"--cell '{p}': expected library/model/dataset/device (globs allowed, e.g. pyg/gcn/*/cpu)")
    chosen = {n: v for n, v in series.items()
              if any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n.partition(" @ ")[0].partition(" [")[0], p)
                     for p in patterns)}
    if not chosen:
        raise UsageError(f"no cell matches {', '.join(patterns)}; cells present: {', '.join(sorted(series))}")
    return chosen


def to_markdown(series: dict[str, list[dict]], figure: str | None = None) -> str:
    out = ["# gnnbench history", ""]
    if figure:
        out += [f"![median epoch time over time]({figure})", ""]
    for name in sorted(series):
        pts = series[name]
        out += [f"## {name}", "",
                "| # | measured (UTC) | git | file | median ms [p25–p75] | vs previous | vs first | test acc % "
                "| status | notes |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        first = prev = None
        prev_spec = None
        for i, p in enumerate(pts, 1):
            med = "–" if p["median_ms"] is None else f"{p['median_ms']:.2f} [{p['p25_ms']:.2f}–{p['p75_ms']:.2f}]"
            vs_prev = _ratio(p, prev)
            vs_first = _ratio(p, first)
            acc = "–" if p["test_acc"] is None else f"{100 * p['test_acc']:.1f}"
            notes = []
            if prev_spec is not None and p["spec_hash"] != prev_spec:
                notes.append(f"model spec changed ({prev_spec}→{p['spec_hash']})")
            when = (p["timestamp"] or "?")[:19].replace("T", " ")
            out.append(f"| {i} | {when} | {p['git']} | `{p['file']}` | {med} | {vs_prev} | {vs_first} | "
                       f"{acc} | {p['status']} | {'; '.join(notes)} |")
            if p["median_ms"] is not None:
                prev = p
                first = first or p
            prev_spec = p["spec_hash"]
        out.append("")
    out.append("Ratios: this point's median / the earlier point's median (>1 is slower). Ordered by the "
               "record timestamps, not by the order the files were given.")
    return "\n".join(out) + "\n"


def _ratio(p: dict, ref: dict | None) -> str:
    if ref is None or p["median_ms"] is None or not ref["median_ms"]:
        return "–"
    return f"{p['median_ms'] / ref['median_ms']:.3f}×"


def to_json(series: dict[str, list[dict]]) -> str:
    clean = {n: [{k: v for k, v in p.items() if k not in ("when", "order")} for p in pts] for n, pts in series.items()}
    return json.dumps(clean, indent=2, default=str) + "\n"
