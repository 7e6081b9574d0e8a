"""Compare two results files cell by cell and decide what regressed.

A cell is (library, model, dataset, device, model spec); the timed epochs of all
its seeds are pooled. For every cell present in both files:

* time: ratio of median epoch times current/base with a seeded percentile-bootstrap
  confidence interval, and a two-sided Mann-Whitney U test on the per-epoch samples.
  ``regressed`` only when the slowdown exceeds ``threshold`` AND p < ``alpha``;
  ``improved`` when the speed-up exceeds ``threshold`` (ratio < 1 - threshold) AND p < ``alpha``.
* accuracy: a drop of mean test accuracy by more than ``acc_threshold`` percentage points
  is a regression.
* status: a cell that ran in base (ok or accuracy_mismatch) but failed, timed out, ran
  out of memory or was skipped in current is a regression; the reverse is an improvement.

Cells present in only one file are listed as ``missing`` (only in base) or ``new``
(only in current), never dropped. With ``normalize_by=LIB`` every cell's samples are
divided by LIB's median epoch time for the same (model, dataset, device, spec) in the
same file, so files measured on different machines can be compared; LIB's own cells
are then judged on status and accuracy only.

Hardware (``gnnbench.hardware``: CPU model and core count, the GPU for CUDA cells) is part of a
cell: seeds measured on different hardware are never pooled, and normalisation divides only by LIB
measured on the same hardware. Files measured on different hardware are compared only with
``normalize_by`` (else a UsageError: raw times of different machines say nothing about the code).

Pure functions of record lists (no ML imports); the CLI lives in gnnbench.cli.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field

from .errors import UsageError
from .hardware import hardware_of, hardware_set
from .results import latest_per_key
from .specs import spec_hash
from .stats import bootstrap_ratio_ci, mann_whitney_u, mean_std, summarize

RAN = ("ok", "accuracy_mismatch")
# worst first: a cell's status is the worst among its seeds
STATUS_ORDER = ("failed", "oom", "timeout", "skipped", "accuracy_mismatch", "ok")
VERDICT_ORDER = ("regressed", "improved", "incomparable", "missing", "new", "unchanged")


@dataclass
class CellData:
    library: str
    model: str
    dataset: str
    device: str
    spec: dict
    status: str = "ok"
    samples: list = field(default_factory=list)      # pooled timed epochs (ms) of every seed that ran
    acc: float | None = None                         # mean test accuracy over seeds (fraction)
    seeds: int = 0
    error: str = ""
    config: dict = field(default_factory=dict)
    variant: str = ""                                # how the spec differs from the model's default
    hardware: str = ""                               # gnnbench.hardware.hardware_of its records

    @property
    def group(self) -> tuple:
        """What normalisation matches on: the same model, dataset, device, spec and hardware."""
        return (self.model, self.dataset, self.device, spec_hash(self.spec), self.hardware)

    @property
    def ident(self) -> tuple:
        return (self.library,) + self.group

    @property
    def name(self) -> str:
        return f"{self.library}/{self.model}/{self.dataset}/{self.device}"

    @property
    def ran(self) -> bool:
        return self.status in RAN and bool(self.samples)

    @property
    def median(self) -> float | None:
        import numpy as np
        return float(np.median(self.samples)) if self.samples else None


def cells_of(records: list[dict]) -> "OrderedDict[tuple, CellData]":
    """Group the latest record of every run key into cells (seeds pooled)."""
    from .report import variant

    cells: "OrderedDict[tuple, CellData]" = OrderedDict()
    accs: dict[tuple, list] = {}
    for r in latest_per_key(records):
        c = r.get("cell") or {}
        try:
            cd = CellData(c["library"], c["model"], c["dataset"], c["device"], r.get("spec") or {},
                          hardware=hardware_of(r))
        except KeyError as exc:
            raise UsageError(f"record {r.get('key', '?')} has no cell.{exc.args[0]}") from None
        if cd.ident not in cells:
            cd.variant = variant(r)
        cd = cells.setdefault(cd.ident, cd)
        cd.seeds += 1
        status = r.get("status", "failed")
        if STATUS_ORDER.index(status if status in STATUS_ORDER else "failed") < STATUS_ORDER.index(cd.status):
            cd.status = status if status in STATUS_ORDER else "failed"
        times = r.get("times") or {}
        if status in RAN and times.get("epoch_ms"):
            cd.samples.extend(float(t) for t in times["epoch_ms"])
            acc = (r.get("accuracy") or {}).get("test")
            if acc is not None:
                accs.setdefault(cd.ident, []).append(acc)
        if r.get("error") and status not in RAN:
            cd.error = r["error"].strip().splitlines()[0] if r["error"].strip() else ""
        if not cd.config:
            cd.config = {k: (r.get("config") or {}).get(k) for k in ("epochs", "warmup", "threads")}
    for ident, values in accs.items():
        cells[ident].acc = mean_std(values)[0]
    # as in the report: when every seed ran, the accuracy band is checked on the mean over seeds
    from .references import in_band
    for cd in cells.values():
        if cd.status in RAN:
            cd.status = "accuracy_mismatch" if in_band(cd.model, cd.dataset, cd.acc) is False else "ok"
    return cells


def _across_hardware(cells: dict, side: str) -> dict:
    """Cells keyed without their hardware, to match a file measured on other hardware (normalised
    times only); one cell measured on several hardware in one file cannot be matched."""
    out: dict = {}
    for ident, cd in cells.items():
        key = ident[:-1]
        if key in out:
            raise UsageError(f"{side}: {cd.name} was measured on more than one hardware ({out[key].hardware}; "
                             f"{cd.hardware}) and the other file on other hardware: compare files from one "
                             f"hardware each")
        out[key] = cd
    return out


def _references(cells: dict, lib: str) -> dict[tuple, float]:
    return {cd.group: cd.median for cd in cells.values() if cd.library == lib and cd.ran and cd.median}


def _spec_diff(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}={a.get(k)!r}→{b.get(k)!r}" for k in keys[:4]) + (" …" if len(keys) > 4 else "")


def compare(base_records: list[dict], current_records: list[dict], *, threshold: float = 0.10,
            alpha: float = 0.01, acc_threshold: float = 2.0, normalize_by: str | None = None,
            resamples: int = 2000, seed: int = 0) -> dict:
    """Compare two lists of records; returns {"settings", "summary", "regressed", "cells"}."""
    if threshold <= 0 or threshold >= 1:
        raise UsageError(f"--threshold must lie in (0, 1), got {threshold:g}")
    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must lie in (0, 1), got {alpha:g}")
    if acc_threshold < 0:
        raise UsageError(f"--acc-threshold must not be negative, got {acc_threshold:g}")
    base, cur = cells_of(base_records), cells_of(current_records)
    hw_b, hw_c = sorted({cd.hardware for cd in base.values()}), sorted({cd.hardware for cd in cur.values()})
    if hw_b != hw_c:
        if not normalize_by:
            raise UsageError(f"base and current were measured on different hardware (base: {' + '.join(hw_b)}; "
                             f"current: {' + '.join(hw_c)}); their times do not compare: pass --normalize-by LIB "
                             f"to compare each cell relative to LIB on its own hardware")
        base, cur = _across_hardware(base, "base"), _across_hardware(cur, "current")
    refs_b = refs_c = None
    if normalize_by:
        libs = sorted({cd.library for cd in list(base.values()) + list(cur.values())})
        if normalize_by not in libs:
            raise UsageError(f"--normalize-by {normalize_by}: no such library in either file; "
                             f"libraries present: {', '.join(libs)}")
        refs_b, refs_c = _references(base, normalize_by), _references(cur, normalize_by)

    out = []
    for ident in list(base) + [i for i in cur if i not in base]:
        b, c = base.get(ident), cur.get(ident)
        cd = b or c
        row = {"library": cd.library, "model": cd.model, "dataset": cd.dataset, "device": cd.device,
               "variant": cd.variant, "spec_hash": spec_hash(cd.spec), "verdict": "unchanged", "reasons": [], "notes": [],
               "base": _side(b), "current": _side(c), "ratio": None, "ci_low": None, "ci_high": None,
               "p_value": None, "raw_ratio": None, "normalized": False, "acc_delta_pt": None,
               "hardware": {"base": b.hardware if b else None, "current": c.hardware if c else None}}
        out.append(row)
        if b is None or c is None:
            row["verdict"] = "new" if b is None else "missing"
            other = base if b is None else cur
            twin = [o for o in other.values() if (o.library, o.model, o.dataset, o.device) ==
                    (cd.library, cd.model, cd.dataset, cd.device)]
            if twin:
                diff = _spec_diff(twin[0].spec, cd.spec) if b is None else _spec_diff(cd.spec, twin[0].spec)
                row["notes"].append(f"model spec differs between the files ({diff})")
            else:
                row["notes"].append("only in current" if b is None else "only in base")
            continue
        _judge(row, b, c, threshold, alpha, acc_threshold, normalize_by, refs_b, refs_c, resamples, seed)

    out.sort(key=lambda r: (VERDICT_ORDER.index(r["verdict"]), r["dataset"], r["device"], r["model"], r["library"]))
    summary = {v: sum(r["verdict"] == v for r in out) for v in VERDICT_ORDER}
    return {
        "settings": {"threshold": threshold, "alpha": alpha, "acc_threshold_pt": acc_threshold,
                     "normalize_by": normalize_by, "resamples": resamples, "seed": seed,
                     "confidence": 0.95, "test": "Mann-Whitney U, two-sided, normal approximation, tie-corrected"},
        "summary": summary,
        "regressed": summary["regressed"] > 0,
        "cells": out,
    }


def _side(cd: CellData | None) -> dict | None:
    if cd is None:
        return None
    q = summarize(cd.samples)
    return {"status": cd.status, "median_ms": q["median"], "p25_ms": q["p25"], "p75_ms": q["p75"],
            "epochs": len(cd.samples), "seeds": cd.seeds, "test_acc": cd.acc, "error": cd.error,
            "config": cd.config}


def _judge(row, b: CellData, c: CellData, threshold, alpha, acc_threshold, normalize_by, refs_b, refs_c,
           resamples, seed) -> None:
    reasons, notes = row["reasons"], row["notes"]
    regressed = improved = False
    if b.ran and not c.ran:
        reasons.append(f"status {b.status} → {c.status}" + (f": {c.error}" if c.error else ""))
        regressed = True
    elif c.ran and not b.ran:
        reasons.append(f"status {b.status} → {c.status} (runs again)")
        improved = True
    elif not b.ran and not c.ran:
        notes.append(f"did not run in either file ({b.status} / {c.status})")
    else:
        for k in ("epochs", "warmup", "threads"):
            if b.config.get(k) != c.config.get(k):
                notes.append(f"{k} differ: {b.config.get(k)} vs {c.config.get(k)}")
        if b.status != c.status:
            notes.append(f"status {b.status} → {c.status}")
        bs, cs = b.samples, c.samples
        row["raw_ratio"] = c.median / b.median if b.median else None
        timing = True
        if normalize_by:
            if b.library == normalize_by:
                notes.append(f"reference for normalisation (raw ratio {row['raw_ratio']:.3f})")
                timing = False
            else:
                rb, rc = refs_b.get(b.group), refs_c.get(c.group)
                if not rb or not rc:
                    where = " and ".join(n for n, r in (("base", rb), ("current", rc)) if not r)
                    notes.append(f"cannot normalise: {normalize_by} has no timing for this model/dataset/device "
                                 f"in {where}")
                    row["verdict"] = "incomparable"
                    timing = False
                else:
                    bs, cs = [x / rb for x in bs], [x / rc for x in cs]
                    row["normalized"] = True
                    notes.append(f"raw ratio {row['raw_ratio']:.3f}")
        if timing:
            ratio, lo, hi = bootstrap_ratio_ci(bs, cs, resamples=resamples, seed=seed)
            _, p = mann_whitney_u(cs, bs)
            row.update(ratio=ratio, ci_low=lo, ci_high=hi, p_value=p)
            if ratio is not None and p < alpha and ratio > 1 + threshold:
                reasons.append(f"median epoch time +{100 * (ratio - 1):.1f}% ({_p_eq(p)})")
                regressed = True
            elif ratio is not None and p < alpha and ratio < 1 - threshold:
                reasons.append(f"median epoch time −{100 * (1 - ratio):.1f}% ({_p_eq(p)})")
                improved = True
        if b.acc is not None and c.acc is not None:
            delta = 100 * (c.acc - b.acc)
            row["acc_delta_pt"] = delta
            if delta < -acc_threshold:
                reasons.append(f"test accuracy {delta:+.1f} points")
                regressed = True
    if regressed:
        row["verdict"] = "regressed"
    elif improved:
        row["verdict"] = "improved"


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _p_eq(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _describe(records: list[dict]) -> str:
    if not records:
        return "no records"
    env = records[-1].get("env") or {}
    hws = hardware_set(records)
    if len(hws) > 1:
        return (f"git {', '.join(sorted({(r.get('env') or {}).get('git_revision') or '?' for r in records}))}, "
                f"{len(hws)} hardware: " + "; ".join(hws))
    revs = sorted({(r.get("env") or {}).get("git_revision") or "?" for r in records})
    dates = sorted(r["timestamp"] for r in records if r.get("timestamp"))
    when = f"{dates[0][:16].replace('T', ' ')}" if dates else "?"
    return (f"git {', '.join(revs)}, {when}, {env.get('cpu_model', '?')} ({env.get('cores', '?')} cores, "
            f"{env.get('threads', '?')} threads)")


def to_markdown(result: dict, base_name: str = "base", current_name: str = "current",
                base_records: list[dict] | None = None, current_records: list[dict] | None = None) -> str:
    s, st = result["summary"], result["settings"]
    head = ", ".join(f"{n} {v}" for v, n in ((v, s[v]) for v in VERDICT_ORDER) if n)
    title = "regression" if result["regressed"] else "no regression"
    out = [f"### gnnbench compare: {title} ({head or 'no cells'})", ""]
    if base_records is not None and current_records is not None:
        out += [f"- base: `{base_name}` — {_describe(base_records)}",
                f"- current: `{current_name}` — {_describe(current_records)}"]
    rule = (f"- rule: **regressed** when the median epoch time rises by more than {100 * st['threshold']:g}% "
            f"and the Mann–Whitney U test gives p < {st['alpha']:g}, when mean test accuracy drops by more than "
            f"{st['acc_threshold_pt']:g} points, or when a cell that ran in base fails in current; "
            f"**improved** when the time falls by more than {100 * st['threshold']:g}% with p < {st['alpha']:g}")
    out.append(rule)
    if st["normalize_by"]:
        out.append(f"- times normalised by **{st['normalize_by']}**'s median epoch time on the same "
                   f"model/dataset/device in each file (ratio and p use normalised samples; base/current ms are raw)")
    tables: dict[str, list] = {}     # one table per hardware (pair), headed by it when there are several
    for r in result["cells"]:
        hw = r.get("hardware") or {}
        b, c = hw.get("base"), hw.get("current")
        tables.setdefault(b if b == c or c is None else c if b is None else f"base {b} → current {c}", []).append(r)
    for label, cells in tables.items():
        if len(tables) > 1:
            out += ["", f"#### {label}"]
        out += _table(cells)
    out += ["", f"Ratio = current / base median epoch time (<1 is faster); 95% CI from {st['resamples']} "
                f"seeded bootstrap resamples of each side's epochs; p from a two-sided Mann–Whitney U test "
                f"on the per-epoch times (epochs within one run are not fully independent, so p is optimistic: "
                f"the {100 * st['threshold']:g}% threshold is the main guard)."]
    return "\n".join(out) + "\n"


def _table(cells: list[dict]) -> list[str]:
    out = ["", "| verdict | library | model | dataset | device | base ms [p25–p75] | current ms [p25–p75] "
               "| ratio [95% CI] | p | Δ acc (pt) | why / notes |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in cells:
        verdict = f"**{r['verdict']}**" if r["verdict"] == "regressed" else r["verdict"]
        ratio = "–"
        if r["ratio"] is not None:
            ratio = f"{r['ratio']:.3f}"
            if r["ci_low"] is not None:
                ratio += f" [{r['ci_low']:.3f}–{r['ci_high']:.3f}]"
        acc = "–" if r["acc_delta_pt"] is None else f"{r['acc_delta_pt']:+.1f}"
        why = "; ".join(r["reasons"] + r["notes"]).replace("|", "/") or ""
        model = r["model"] + (f" ({r['variant']})" if r.get("variant") else "")
        out.append(f"| {verdict} | {r['library']} | {model} | {r['dataset']} | {r['device']} | "
                   f"{_ms(r['base'])} | {_ms(r['current'])} | {ratio} | {_p(r['p_value'])} | {acc} | {why} |")
    return out


def _ms(side: dict | None) -> str:
    if side is None:
        return "–"
    if side["median_ms"] is None:
        return side["status"]
    return f"{side['median_ms']:.2f} [{side['p25_ms']:.2f}–{side['p75_ms']:.2f}]"


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, default=str) + "\n"
