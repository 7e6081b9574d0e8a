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

Time-to-accuracy runs (``--until``) are cells of their own, keyed by their target too: never pooled
with fixed-length runs of the same cell. Their samples are the per-seed training seconds to the target
(seeds that reached it). For such a cell:

* reached: a smaller share of seeds reaching the target in current is a regression, a larger one an
  improvement.
* time to target: ratio of the median seconds to target current/base with a seeded bootstrap CI
  over the seeds. With a handful of seeds a rank test on seconds cannot reach ``alpha`` (3 seeds a
  side: p >= 0.08), so the change counts only where it is not noise: ``regressed`` when the ratio
  exceeds 1 + ``threshold`` AND either the median epochs to target rose (a count) or the epochs of the
  runs are slower by the Mann-Whitney U test on their per-epoch times (p < ``alpha``); ``improved``
  the mirror image. The p shown is that per-epoch test's.
* test accuracy at the stop is shown, not judged (the run stops at a validation target).

Pure functions of record lists (no ML imports); the CLI lives in gnnbench.cli.
"""
from __future__ import annotations

import json

from .cells import RAN, STATUS_ORDER, CellData, cells_of, hardware_set, spec_key
from .errors import UsageError
from .stats import bootstrap_ratio_ci, mann_whitney_u, summarize

__all__ = ["compare", "cells_of", "CellData", "RAN", "STATUS_ORDER", "VERDICT_ORDER", "to_markdown", "to_json"]

VERDICT_ORDER = ("regressed", "improved", "incomparable", "missing", "new", "unchanged")


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


def _epoch_references(cells: dict, lib: str) -> dict[tuple, float]:
    """LIB's median epoch time in each time-to-accuracy group (normalises the per-epoch test)."""
    import numpy as np
    return {cd.group: float(np.median(cd.epoch_samples)) for cd in cells.values()
            if cd.library == lib and cd.until and cd.ran}


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
        refs_b.update({("epoch",) + g: m for g, m in _epoch_references(base, normalize_by).items()})
        refs_c.update({("epoch",) + g: m for g, m in _epoch_references(cur, normalize_by).items()})

    out = []
    for ident in list(base) + [i for i in cur if i not in base]:
        b, c = base.get(ident), cur.get(ident)
        cd = b or c
        row = {"library": cd.library, "model": cd.model, "dataset": cd.dataset, "device": cd.device,
               "variant": cd.variant, "spec_hash": spec_key(cd.spec), "verdict": "unchanged", "reasons": [], "notes": [],
               "base": _side(b), "current": _side(c), "ratio": None, "ci_low": None, "ci_high": None,
               "p_value": None, "raw_ratio": None, "normalized": False, "acc_delta_pt": None,
               "hardware": {"base": b.hardware if b else None, "current": c.hardware if c else None}}
        if cd.until:
            row["until"] = dict(cd.until)
        out.append(row)
        if b is None or c is None:
            row["verdict"] = "new" if b is None else "missing"
            other = base if b is None else cur
            twin = [o for o in other.values() if (o.library, o.model, o.dataset, o.device) ==
                    (cd.library, cd.model, cd.dataset, cd.device)]
            same_spec = [o for o in twin if spec_key(o.spec) == spec_key(cd.spec)]
            if same_spec:      # the same cell and spec, run in another mode (fixed length / time to accuracy)
                modes = [_mode_text(o) for o in (same_spec[0], cd)]
                row["notes"].append("run mode differs between the files ({} → {})".format(*(modes if b is None
                                                                                            else modes[::-1])))
            elif twin:
                diff = _spec_diff(twin[0].spec, cd.spec) if b is None else _spec_diff(cd.spec, twin[0].spec)
                row["notes"].append(f"model spec differs between the files ({diff})")
            else:
                row["notes"].append("only in current" if b is None else "only in base")
            continue
        judge = _judge_tta if cd.until else _judge
        judge(row, b, c, threshold, alpha, acc_threshold, normalize_by, refs_b, refs_c, resamples, seed)

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


def _mode_text(cd: CellData) -> str:
    return f"until {cd.until['metric']} ≥ {cd.until['target']:g}" if cd.until else "fixed length"


def _side(cd: CellData | None) -> dict | None:
    if cd is None:
        return None
    if cd.until:
        q, t = summarize(cd.epoch_samples), summarize(cd.samples)
        return {"status": cd.status, "median_ms": q["median"], "p25_ms": q["p25"], "p75_ms": q["p75"],
                "epochs": len(cd.epoch_samples), "seeds": cd.seeds, "test_acc": cd.acc, "error": cd.error,
                "config": cd.config,
                "time_to_target": {"reached": cd.reached_seeds, "ran": cd.ran_seeds, "median_s": t["median"],
                                   "p25_s": t["p25"], "p75_s": t["p75"],
                                   "epochs_median": summarize(cd.tta_epochs)["median"]}}
    q = summarize(cd.samples)
    return {"status": cd.status, "median_ms": q["median"], "p25_ms": q["p25"], "p75_ms": q["p75"],
            "epochs": len(cd.samples), "seeds": cd.seeds, "test_acc": cd.acc, "error": cd.error,
            "config": cd.config}


def _status_change(row, b: CellData, c: CellData) -> tuple[bool, bool, bool]:
    """(both ran, regressed, improved) from the two sides' statuses, with the reason or note in ``row``."""
    if b.ran and not c.ran:
        row["reasons"].append(f"status {b.status} → {c.status}" + (f": {c.error}" if c.error else ""))
        return False, True, False
    if c.ran and not b.ran:
        row["reasons"].append(f"status {b.status} → {c.status} (runs again)")
        return False, False, True
    if not b.ran and not c.ran:
        row["notes"].append(f"did not run in either file ({b.status} / {c.status})")
        return False, False, False
    return True, False, False


def _normalisation(row, b: CellData, c: CellData, lib, refs_b, refs_c, prefixes, missing):
    """``--normalize-by LIB`` for one cell (fixed-length and time-to-accuracy alike): (timed, refs).
    Without LIB: (True, None), raw times. LIB's own cell: (False, None), judged on status and accuracy
    only. Otherwise LIB's (base, current) medians in this cell's group for each key prefix (``refs_b`` /
    ``refs_c``), or, where one is missing, (False, None) with ``missing(pairs)`` noted and the verdict
    ``incomparable``."""
    if not lib:
        return True, None
    if b.library == lib:
        row["notes"].append(f"reference for normalisation (raw ratio {row['raw_ratio']:.3f})")
        return False, None
    pairs = [(refs_b.get(p + b.group), refs_c.get(p + c.group)) for p in prefixes]
    if not all(rb and rc for rb, rc in pairs):
        row["notes"].append(missing(pairs))
        row["verdict"] = "incomparable"
        return False, None
    row["normalized"] = True
    row["notes"].append(f"raw ratio {row['raw_ratio']:.3f}")
    return True, pairs


def _judge(row, b: CellData, c: CellData, threshold, alpha, acc_threshold, normalize_by, refs_b, refs_c,
           resamples, seed) -> None:
    reasons, notes = row["reasons"], row["notes"]
    both, regressed, improved = _status_change(row, b, c)
    if both:
        for k in ("epochs", "warmup", "threads"):
            if b.config.get(k) != c.config.get(k):
                notes.append(f"{k} differ: {b.config.get(k)} vs {c.config.get(k)}")
        if b.status != c.status:
            notes.append(f"status {b.status} → {c.status}")
        bs, cs = b.samples, c.samples
        row["raw_ratio"] = c.median / b.median if b.median else None
        timing, refs = _normalisation(row, b, c, normalize_by, refs_b, refs_c, ((),), lambda pairs: (
            f"cannot normalise: {normalize_by} has no timing for this model/dataset/device in "
            + " and ".join(n for n, r in zip(("base", "current"), pairs[0]) if not r)))
        if refs:
            (rb, rc), = refs
            bs, cs = [x / rb for x in bs], [x / rc for x in cs]
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


def _judge_tta(row, b: CellData, c: CellData, threshold, alpha, acc_threshold, normalize_by, refs_b, refs_c,
               resamples, seed) -> None:
    """A time-to-accuracy cell: the share of seeds that reached the target, then the median seconds
    to it (see the module docstring for when a change counts)."""
    import numpy as np
    reasons, notes = row["reasons"], row["notes"]
    both, regressed, improved = _status_change(row, b, c)
    if both:
        for k in ("epochs", "threads"):
            if b.config.get(k) != c.config.get(k):
                notes.append(f"{'epoch cap' if k == 'epochs' else k} differ: {b.config.get(k)} vs {c.config.get(k)}")
        fb, fc = b.reached_seeds / b.ran_seeds, c.reached_seeds / c.ran_seeds
        if fb != fc:
            reasons.append(f"reached the target in {b.reached_seeds}/{b.ran_seeds} → {c.reached_seeds}/{c.ran_seeds} seeds")
            regressed, improved = fc < fb, fc > fb
        if not b.samples or not c.samples:
            if not b.samples and not c.samples:
                notes.append("the target was reached in neither file")
        else:
            bs, cs, be, ce = b.samples, c.samples, b.epoch_samples, c.epoch_samples
            row["raw_ratio"] = c.median / b.median if b.median else None
            timing, refs = _normalisation(row, b, c, normalize_by, refs_b, refs_c, ((), ("epoch",)), lambda pairs: (
                f"cannot normalise: {normalize_by} did not reach this target on this model/dataset/device in "
                f"both files"))
            if refs:
                (rb, rc), (eb, ec) = refs
                bs, cs = [x / rb for x in bs], [x / rc for x in cs]
                be, ce = [x / eb for x in be], [x / ec for x in ce]
            if timing:
                ratio, lo, hi = bootstrap_ratio_ci(bs, cs, resamples=resamples, seed=seed)
                _, p = mann_whitney_u(ce, be)
                ep_b, ep_c = float(np.median(b.tta_epochs)), float(np.median(c.tta_epochs))
                epoch_ratio = float(np.median(ce) / np.median(be))
                row.update(ratio=ratio, ci_low=lo, ci_high=hi, p_value=p, epochs_to_target=[ep_b, ep_c],
                           epoch_ratio=epoch_ratio)
                why = (f"epochs to target {ep_b:g} → {ep_c:g}, epoch time {100 * (epoch_ratio - 1):+.1f}% "
                       f"({_p_eq(p)})")
                slower = ep_c > ep_b or (p < alpha and epoch_ratio > 1)
                faster = ep_c < ep_b or (p < alpha and epoch_ratio < 1)
                if ratio > 1 + threshold and slower:
                    reasons.append(f"median time to target +{100 * (ratio - 1):.1f}% ({why})")
                    regressed = True
                elif ratio < 1 - threshold and faster:
                    reasons.append(f"median time to target −{100 * (1 - ratio):.1f}% ({why})")
                    improved = True
                elif abs(ratio - 1) > threshold:
                    notes.append(f"time to target {100 * (ratio - 1):+.1f}%, not counted: {why}")
        if b.acc is not None and c.acc is not None:
            row["acc_delta_pt"] = 100 * (c.acc - b.acc)
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
    tta = [r for r in result["cells"] if r.get("until")]
    for r in result["cells"]:
        if r.get("until"):
            continue
        hw = r.get("hardware") or {}
        b, c = hw.get("base"), hw.get("current")
        tables.setdefault(b if b == c or c is None else c if b is None else f"base {b} → current {c}", []).append(r)
    for label, cells in tables.items():
        if len(tables) > 1:
            out += ["", f"#### {label}"]
        out += _table(cells)
    if tta:
        out += ["", "#### Time to accuracy", ""] + _tta_table(tta)[1:]
    out += ["", f"Ratio = current / base median epoch time (<1 is faster); 95% CI from {st['resamples']} "
                f"seeded bootstrap resamples of each side's epochs; p from a two-sided Mann–Whitney U test "
                f"on the per-epoch times (epochs within one run are not fully independent, so p is optimistic: "
                f"the {100 * st['threshold']:g}% threshold is the main guard)."]
    if tta:
        out[-1] += (f" Time to accuracy: ratio = current / base median training seconds to the target over the "
                    f"seeds that reached it, 95% CI from bootstrap resamples of those seeds; p is the per-epoch "
                    f"test on those runs' epochs. A change beyond {100 * st['threshold']:g}% counts only when the "
                    f"median epochs to target moved the same way or the epoch time did with p < {st['alpha']:g}; "
                    f"fewer seeds reaching the target is a regression; test accuracy at the stop is not judged.")
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


def _tta_table(cells: list[dict]) -> list[str]:
    out = ["", "| verdict | library | model | dataset | device | target | base s to target (epochs; reached) "
               "| current s to target (epochs; reached) | ratio [95% CI] | epoch-time p | why / notes |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in cells:
        verdict = f"**{r['verdict']}**" if r["verdict"] == "regressed" else r["verdict"]
        ratio = "–"
        if r["ratio"] is not None:
            ratio = f"{r['ratio']:.3f}" + (f" [{r['ci_low']:.3f}–{r['ci_high']:.3f}]" if r["ci_low"] is not None else "")
        why = "; ".join(r["reasons"] + r["notes"]).replace("|", "/") or ""
        model = r["model"] + (f" ({r['variant']})" if r.get("variant") else "")
        target = f"{r['until']['metric']} ≥ {r['until']['target']:g}"
        out.append(f"| {verdict} | {r['library']} | {model} | {r['dataset']} | {r['device']} | {target} | "
                   f"{_tta_side(r['base'])} | {_tta_side(r['current'])} | {ratio} | {_p(r['p_value'])} | {why} |")
    return out


def _tta_side(side: dict | None) -> str:
    if side is None:
        return "–"
    t = side.get("time_to_target") or {}
    if not t.get("ran"):
        return side["status"]
    reached = f"{t['reached']}/{t['ran']}"
    if t["median_s"] is None:
        return f"not reached ({reached})"
    return f"{t['median_s']:.3f} ({t['epochs_median']:g} ep; {reached})"


def _ms(side: dict | None) -> str:
    if side is None:
        return "–"
    if side["median_ms"] is None:
        return side["status"]
    return f"{side['median_ms']:.2f} [{side['p25_ms']:.2f}–{side['p75_ms']:.2f}]"


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, default=str) + "\n"
