"""Reports: records -> one row per (dataset, device, library, model) -> markdown / csv / json.

Times pool every timed epoch of every seed; accuracy is mean ± std over seeds.
A row whose mean test accuracy lies outside the reference band is
``accuracy_mismatch``: a fast wrong implementation must not win.
"""
from __future__ import annotations

import json
from collections import OrderedDict

from .cells import (MEMORY_MEASURES, RAN, band_status, cross_check, edge_counts, hardware_of, hardware_set,
                    latest_per_key, median_of as _median, memory_key, row_status, sweeps, until_of, variant)
from .published import AGREEMENT_MARGIN, reference
from .record import Record
from .stats import mean_std, summarize

__all__ = ["rows", "tta_rows", "growth_exponents", "memory_key", "MEMORY_MEASURES", "variant", "render",
           "to_markdown", "to_csv", "to_json", "CSV_FIELDS"]


def rows(records: list[dict]) -> list[dict]:
    """The rows of the fixed-length runs (time-to-accuracy runs are in ``tta_rows``)."""
    groups: "OrderedDict[tuple, list[dict]]" = OrderedDict()
    for r in latest_per_key(records):
        if until_of(r):
            continue
        c = r["cell"]
        groups.setdefault((c["dataset"], c["device"], c["library"], c["model"], variant(r), hardware_of(r)),
                          []).append(r)
    out = []
    for (dataset, device, library, model, var, hw), dicts in groups.items():
        recs = [Record.from_dict(r) for r in dicts]
        ok = [r for r in recs if r.times]
        epochs = [t for r in ok for t in r.times.epoch_ms]
        s = summarize(epochs)
        acc_mean, acc_std = mean_std([r.accuracy.test for r in ok if r.accuracy])
        status = row_status(r.status for r in recs)
        if status in RAN:     # judged on the mean over seeds
            status = band_status(model, dataset, acc_mean)
        mems = [r.memory for r in ok if r.memory]
        # the whole process's peak is at least either part's (records before 2026-12-01 read
        # ru_maxrss alone, which lags the kernel's high-water mark by a fraction of a MB)
        peak = [max(v for v in (m.peak_rss_mb, m.load_peak_rss_mb, m.peak_rss_after_load_mb) if v is not None)
                for m in mems if m.peak_rss_mb is not None]
        # records since 2026-12-01 keep the dataset build's peak apart from the peak from prepare on
        load_mem = [m.load_peak_rss_mb for m in mems]
        after_mem = [m.peak_rss_after_load_mb for m in mems]
        dmem = [m.device_peak_mb for m in mems if m.device_peak_mb]
        errors = [r.error for r in recs if r.error]
        times = [r.times for r in ok]
        sampled = [r.sampled for r in ok if r.sampled]
        out.append({
            "dataset": dataset, "device": device, "library": library, "model": model, "variant": var,
            "hardware": hw, "seeds": len(recs), "status": status,
            "median_ms": s["median"], "p25_ms": s["p25"], "p75_ms": s["p75"], "epochs": s["n"],
            "first_epoch_ms": _median([t.first_epoch_ms for t in times]),
            "setup_s": _median([t.setup_s for t in times]),
            "infer_ms": _median([t.infer_median_ms for t in times]),
            "collate_ms": _median([t.collate_median_ms for t in times]),
            "sample_ms": _median([t.sample_median_ms for t in times]),
            "sampled_nodes": _median([x.input_nodes_per_batch_mean for x in sampled]),
            "sampled_edges": _median([x.edges_per_batch_mean for x in sampled]),
            "test_acc_mean": acc_mean, "test_acc_std": acc_std,
            "reference_acc": (reference(model, dataset) or {}).get("test"),
            "peak_rss_mb": max(peak) if peak else None,
            "load_peak_rss_mb": max(load_mem) if load_mem and None not in load_mem else None,
            "peak_rss_after_load_mb": max(after_mem) if after_mem and None not in after_mem else None,
            "device_peak_mb": max(dmem) if dmem else None,
            "params": ok[0].params if ok else None,
            "version": next((r.library_version for r in recs if r.library_version), None),
            "fingerprint": next((r.dataset.fingerprint for r in ok if r.dataset), None),
            "error": errors[-1].strip().splitlines()[0] if errors else "",
            "notes": sorted({n for r in recs for n in (r.notes or [])}),
        })
    cross_check(out)
    # relative speed: among the rows of one model (all libraries and variants) on one dataset, device and
    # hardware (a row is never ranked against one measured on other hardware)
    for group in {(r["dataset"], r["device"], r["model"], r["hardware"]) for r in out}:
        table = [r for r in out if (r["dataset"], r["device"], r["model"], r["hardware"]) == group]
        valid = [r["median_ms"] for r in table if r["median_ms"] and r["status"] == "ok"]
        fastest = min(valid) if valid else None
        for r in table:
            r["relative"] = (r["median_ms"] / fastest) if (fastest and r["median_ms"]) else None
    return out


def _f(x, fmt="{:.2f}", none="–"):
    return none if x is None else fmt.format(x)


def environment_lines(records: list[dict]) -> list[str]:
    if not records:
        return []
    env = records[-1].get("env", {})
    versions: dict[str, str] = {}
    for r in records:
        versions.update(r.get("env", {}).get("library_versions") or {})
    dates = sorted(r["timestamp"] for r in records if r.get("timestamp"))
    runs = sorted({r.get("run_id") for r in records if r.get("run_id")})
    protocols: dict[tuple, int] = {}
    for r in records:
        c = r.get("config", {})
        k = (c.get("warmup", "?"), c.get("epochs", "?"), c.get("infer_reps", "?"))
        if c.get("until"):     # time to accuracy: epochs is the most it trains
            k = (k[0], f"up to {k[1]}", k[2])
        protocols[k] = protocols.get(k, 0) + 1
    if len(protocols) == 1:
        (w, e, i), = protocols
        protocol = (f"{w} warm-up epochs, {e} timed epochs per seed, each `train_step(); sync()` timed by the "
                    f"harness; inference median of {i} forward passes")
    else:   # files measured under different protocols: say so, never show one as if it held for all
        protocol = ("runs differ (warm-up / timed epochs / inference passes): "
                    + "; ".join(f"{w} / {e} / {i} in {n} run(s)" for (w, e, i), n in protocols.items())
                    + "; each `train_step(); sync()` timed by the harness")
    limits = sorted({r.get("config", {}).get("rss_limit_gb") for r in records} - {None})
    hws = hardware_set(records)
    machine = (f"- Machine: {env.get('cpu_model', '?')}, {env.get('cores', '?')} cores; "
               f"threads per run: {env.get('threads', '?')}; {env.get('os', '?')}")
    if len(hws) > 1:     # a cluster, or files from several machines: each table names its hardware
        machine = (f"- Hardware ({len(hws)}; each has its own tables, never ranked against another): "
                   + "; ".join(f"{h} ({sum(hardware_of(r) == h for r in records)} runs)" for h in hws)
                   + f"; threads per run: {', '.join(sorted({str(r.get('env', {}).get('threads', '?')) for r in records}))}")
    nodes = sorted({(r.get("node") or {}).get("hostname") or "?" for r in records if r.get("node")})
    lines = [
        machine + (f"; Ray nodes: {', '.join(nodes)}" if nodes else ""),
        f"- Python {env.get('python', '?')}; gnnbench {env.get('gnnbench', '?')} (git {env.get('git_revision') or '?'})",
        f"- Libraries: " + (", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "–"),
        f"- Measured: {dates[0]} to {dates[-1]} (run {', '.join(runs)})" if dates else "- Measured: ?",
        f"- Protocol: {protocol}; peak memory is the child process's peak RSS"
        + (" (whole process / from `prepare` on, after the dataset was loaded)"
           if any((r.get("memory") or {}).get("peak_rss_after_load_mb") for r in records) else "")
        + (f"; resident-memory limit per child: {', '.join(f'{x:g}' for x in limits)} GiB (past it: `oom`)"
           if limits else ""),
    ]
    return lines


def to_markdown(records: list[dict], title: str = "gnnbench report") -> str:
    table_rows = rows(records)
    out = [f"# {title}", "", *environment_lines(records), ""]
    keys = []
    for r in table_rows:
        if (r["dataset"], r["device"], r["hardware"]) not in keys:
            keys.append((r["dataset"], r["device"], r["hardware"]))
    several = len({r["hardware"] for r in table_rows}) > 1
    for dataset, device, hw in keys:
        table = [r for r in table_rows if (r["dataset"], r["device"], r["hardware"]) == (dataset, device, hw)]
        fp = next((r["fingerprint"] for r in table if r["fingerprint"]), None)
        out.append(f"## {dataset} on {device}" + (f" — {hw}" if several else "")
                   + (f" (input fingerprint `{fp}`)" if fp else ""))
        out.append("")
        split_mem = any(r.get("peak_rss_after_load_mb") for r in table)
        out.append("| library | model | median epoch ms [p25–p75] | first epoch ms | setup s | inference ms "
                   f"| test acc % (ref) | peak MB{' (whole / after load)' if split_mem else ''} | status | relative |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        table.sort(key=lambda r: (r["model"], r["variant"], r["median_ms"] is None, r["median_ms"] or 0))
        for r in table:
            acc = "–"
            if r["test_acc_mean"] is not None:
                acc = f"{100 * r['test_acc_mean']:.1f} ± {100 * (r['test_acc_std'] or 0):.1f}"
                if r["seeds"] > 1:
                    acc += f" (n={r['seeds']})"
                if r["reference_acc"] is not None:
                    acc += f" ({r['reference_acc']:.1f})"
            med = "–" if r["median_ms"] is None else \
                f"{r['median_ms']:.2f} [{r['p25_ms']:.2f}–{r['p75_ms']:.2f}]"
            if r.get("collate_ms") is not None:    # graph task: the part of the epoch spent batching
                med += f" (collate {r['collate_ms']:.2f})"
            if r.get("sample_ms") is not None:     # sampled task: the part spent sampling, and what was sampled
                med += f" (sample {r['sample_ms']:.2f}; per batch {r['sampled_nodes']:.0f} nodes, {r['sampled_edges']:.0f} edges)"
            mem = _f(r["peak_rss_mb"], "{:.0f}")
            if r.get("peak_rss_after_load_mb") and r["peak_rss_mb"]:
                mem += f" / {r['peak_rss_after_load_mb']:.0f}"
            if r["device_peak_mb"]:
                mem += f" (dev {r['device_peak_mb']:.0f})"
            status = r["status"] if r["status"] in ("ok",) or not r["error"] else f"{r['status']}: {_short(r['error'])}"
            rel = "–" if r["relative"] is None else f"{r['relative']:.2f}×"
            model = r["model"] + (f" ({r['variant']})" if r["variant"] else "")
            out.append(f"| {r['library']} | {model} | {med} | {_f(r['first_epoch_ms'], '{:.1f}')} | "
                       f"{_f(r['setup_s'], '{:.2f}')} | {_f(r['infer_ms'])} | {acc} | {mem} | {status} | {rel} |")
        out.append("")
    out.extend(growth_section(records, table_rows))
    tta = tta_rows(records)
    out.extend(tta_section(tta))
    notes = sorted({(r["library"], n) for r in table_rows + tta for n in r["notes"]})
    if notes:
        out.append("## Notes from the adapters")
        out.append("")
        out.extend(f"- **{lib}**: {n}" for lib, n in notes)
        out.append("")
    if not table_rows:
        return "\n".join(out) + "\n"
    out.append("Relative: median epoch time divided by that of the fastest `ok` row of the same model in the "
               "same table (1.00× is fastest). Accuracy: mean ± std of test accuracy over seeds, published reference "
               "in parentheses; rows more than the band away are `accuracy_mismatch` and never count as fastest; "
               f"without a published reference, rows more than {AGREEMENT_MARGIN:g} points from the median of the "
               "libraries in the same table are."
               + (" Graph classification: an epoch is every training batch, each library's own collation "
                  "included; `collate` is the median per-epoch part of it spent batching; the test set is one "
                  "fold of a stratified 10-fold split." if any(r.get("collate_ms") is not None for r in table_rows)
                  else "")
               + (" Neighbour-sampled rows: an epoch is every training batch, the library's own sampling and "
                  "feature gather included; `sample` is the median per-epoch part of it spent sampling, then the "
                  "mean input nodes and block edges each batch sampled; accuracy from full-graph inference."
                  if any(r.get("sample_ms") is not None for r in table_rows) else ""))
    return "\n".join(out) + "\n"


def tta_rows(records: list[dict]) -> list[dict]:
    """One row per (dataset, device, library, model, spec variant, hardware, target) of the
    time-to-accuracy runs: how many seeds reached the target, the medians over those seeds of the
    epochs and training seconds it took, the median epoch time of all their epochs, and two ranks
    among the rows of one model, target, dataset, device and hardware: by seconds to target (rows
    whose every seed reached it) and by median epoch time (every row that ran)."""
    groups: "OrderedDict[tuple, list[dict]]" = OrderedDict()
    for r in latest_per_key(records):
        u = until_of(r)
        if not u:
            continue
        c = r["cell"]
        groups.setdefault((c["dataset"], c["device"], c["library"], c["model"], variant(r), hardware_of(r),
                           u["metric"], u["target"]), []).append(r)
    out = []
    for (dataset, device, library, model, var, hw, metric, target), dicts in groups.items():
        recs = [Record.from_dict(r) for r in dicts]
        ran = [r for r in recs if r.times and r.time_to_accuracy]
        tta = [r.time_to_accuracy for r in ran]
        hit = [t for t in tta if t.reached]
        errors = [r.error for r in recs if r.error]
        out.append({
            "dataset": dataset, "device": device, "library": library, "model": model, "variant": var,
            "hardware": hw, "metric": metric, "target": target,
            "source": recs[0].config.until.source, "seeds": len(recs), "reached": len(hit),
            "cap": max((t.cap for t in tta), default=None),
            "epochs_to_target": _median([t.epochs for t in hit]),
            "s_to_target": _median([t.train_s for t in hit]),
            "median_ms": summarize([e for r in ran for e in r.times.epoch_ms])["median"],
            "eval_s": _median([t.eval_s for t in tta]),
            "best": _median([getattr(t, f"best_{metric}", None) for t in tta]),
            "status": row_status(r.status for r in recs),
            "error": errors[-1].strip().splitlines()[0] if errors else "",
            "notes": sorted({n for r in recs for n in (r.notes or [])}),
        })
    for group in {(r["dataset"], r["device"], r["model"], r["metric"], r["target"], r["hardware"]) for r in out}:
        table = [r for r in out if (r["dataset"], r["device"], r["model"], r["metric"], r["target"], r["hardware"]) == group]
        _rank(table, "rank_tta", "s_to_target", lambda r: r["seeds"] and r["reached"] == r["seeds"])
        _rank(table, "rank_epoch", "median_ms", lambda r: True)
    return out


def _rank(table: list[dict], key: str, by: str, eligible) -> None:
    """1 for the smallest ``by`` among the eligible rows that have it, ties sharing a rank; else None."""
    values = sorted({r[by] for r in table if r[by] is not None and eligible(r)})
    for r in table:
        r[key] = values.index(r[by]) + 1 if r[by] is not None and eligible(r) else None


def tta_section(table: list[dict]) -> list[str]:
    if not table:
        return []
    several = len({r["hardware"] for r in table}) > 1
    out = ["## Time to accuracy", "",
           "Each run trains from the initial weights (no warm-up) until the validation accuracy, computed by the "
           "harness from the library's logits after every epoch, first reaches the target, or for at most "
           "`cap` epochs. Epochs and seconds to target are medians over the seeds that reached it; the "
           "seconds are the training steps only (each epoch timed as for the epoch time, the first epoch's "
           "one-time costs included), the evaluation after each epoch is not in them: its total per run is "
           "`eval s`. Ranks are among the rows of one model and target on one dataset and device: by seconds "
           "to target (only rows whose every seed reached it) and by median epoch time.", "",
           "| dataset | device | library | model | target | reached | epochs to target | s to target "
           "| epoch ms | eval s | rank: time to target | rank: epoch time | status |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    table = sorted(table, key=lambda r: (r["dataset"], r["device"], r["hardware"], r["model"], r["variant"],
                                         r["metric"], r["target"], r["rank_tta"] is None, r["rank_tta"] or 0,
                                         r["median_ms"] is None, r["median_ms"] or 0))
    for r in table:
        target = f"{r['metric']} ≥ {r['target']:g}" + (" (ref − band)" if r["source"] == "ref" else "")
        reached = f"{r['reached']}/{r['seeds']}" + (f" in ≤ {r['cap']}" if r["cap"] else "")
        if r["reached"] < r["seeds"] and r["best"] is not None:
            reached += f" (best {r['best']:.3f})"
        status = r["status"] if r["status"] == "ok" or not r["error"] else f"{r['status']}: {_short(r['error'])}"
        model = r["model"] + (f" ({r['variant']})" if r["variant"] else "")
        dataset = r["dataset"] + (f" — {r['hardware']}" if several else "")
        out.append(f"| {dataset} | {r['device']} | {r['library']} | {model} | {target} | {reached} | "
                   f"{_f(r['epochs_to_target'], '{:g}')} | {_f(r['s_to_target'], '{:.3f}')} | "
                   f"{_f(r['median_ms'])} | {_f(r['eval_s'], '{:.3f}')} | {_f(r['rank_tta'], '{}')} | "
                   f"{_f(r['rank_epoch'], '{}')} | {status} |")
    out.append("")
    return out


def growth_exponents(records: list[dict], table_rows: list[dict] | None = None) -> list[dict]:
    """For each synthetic size sweep: per library and model, the least-squares slope of
    log(median epoch time) and log(peak RSS) against log(edges) over the sizes that ran, and the
    largest graph it handled (and what happened above it)."""
    table_rows = rows(records) if table_rows is None else table_rows
    edges = edge_counts(records)
    out = []
    for family, names in sweeps(records).items():
        keys = sorted({(r["library"], r["model"], r["device"], r["variant"], r["hardware"]) for r in table_rows
                       if r["dataset"] in names})
        mem_keys = {(m, d, h): memory_key([r for r in table_rows if r["dataset"] in names and r["median_ms"]
                                           and (r["model"], r["device"], r["hardware"]) == (m, d, h)])
                    for _, m, d, _, h in keys}
        for lib, model, device, var, hw in keys:    # a slope never mixes sizes measured on different hardware
            mk = mem_keys[(model, device, hw)]
            pts = sorted(((edges[r["dataset"]], r) for r in table_rows
                          if r["dataset"] in names and r["dataset"] in edges and (r["library"], r["model"], r["device"],
                                                                                  r["variant"], r["hardware"]) == (lib, model, device, var, hw)),
                         key=lambda p: p[0])
            ran = [(e, r) for e, r in pts if r["median_ms"] and r["status"] in ("ok", "accuracy_mismatch")]
            failed = [(e, r["status"], _phase_of(r.get("error") or "")) for e, r in pts if (e, r) not in ran]
            # runs killed by the parent have no edge count in their record: named by their node count
            unloaded = sorted((_nodes(r["dataset"]), r["status"], _phase_of(r.get("error") or "")) for r in table_rows
                              if r["dataset"] in names and r["dataset"] not in edges
                              and (r["library"], r["model"], r["device"], r["variant"], r["hardware"]) == (lib, model, device, var, hw))
            out.append({"family": family, "library": lib, "model": model, "device": device, "variant": var,
                        "hardware": hw, "sizes": len(ran),
                        "time_exponent": _slope([(e, r["median_ms"]) for e, r in ran]),
                        "memory_measure": mk,
                        "memory_exponent": _slope([(e, r[mk]) for e, r in ran if r[mk]]),
                        "largest_edges": ran[-1][0] if ran else None,
                        "largest_ms": ran[-1][1]["median_ms"] if ran else None,
                        "largest_mb": ran[-1][1][mk] if ran else None,
                        "largest_load_mb": ran[-1][1].get("load_peak_rss_mb") if ran else None,
                        "failed": failed, "failed_unloaded": unloaded})
    return out


PHASE_UNKNOWN = "phase not recorded"


def _phase_of(error: str) -> str:
    import re
    m = re.search(r"during ([a-z ]+?)[;:,]", error)
    return m.group(1) if m else PHASE_UNKNOWN


def _during(phase: str) -> str:
    return "" if phase == PHASE_UNKNOWN else f" (during {phase})"


def _nodes(dataset: str) -> int:
    from .datasets.synthetic import parse_params
    return parse_params(dataset.split(":", 1)[1])["nodes"]


def _slope(points):
    import math
    if len(points) < 2:
        return None
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return None if sxx == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def growth_section(records: list[dict], table_rows: list[dict]) -> list[str]:
    growth = growth_exponents(records, table_rows)
    if not growth:
        return []
    measures = sorted({g["memory_measure"] for g in growth})
    several = len({g["hardware"] for g in growth}) > 1
    out = ["## Growth with graph size", "",
           "Least-squares slope of log(median epoch time) and log(peak memory) against log(edges) over the sizes "
           "that ran (1.0 = linear in the edge count; memory includes the process's fixed import cost, so its "
           "slope is low on small graphs). Peak memory here: "
           + "; ".join(f"{MEMORY_MEASURES[m]}" + (f" (`{m}`)" if len(measures) > 1 else "") for m in measures)
           + ". The dataset build's own peak, where recorded, is shown beside it in parentheses: gnnbench's "
           "work with the library already imported, so it differs between libraries only by their import "
           "footprint; it says nothing about the libraries, but a run needs that much too.", "",
           "| sweep | library | model | sizes | time exponent | memory exponent | largest graph handled | "
           "its epoch ms / peak MB (load peak MB) | larger sizes |",
           "|---|---|---|---|---|---|---|---|---|"]
    for g in sorted(growth, key=lambda g: (g["hardware"], g["family"], g["model"], g["library"])):
        fail = ", ".join([f"{st} at {e:,} edges{_during(ph)}" for e, st, ph in g["failed"]]
                         + [f"{st} at {n:,} nodes{_during(ph)}" for n, st, ph in g["failed_unloaded"]]) or "–"
        if not g["sizes"] and len({st for _, st, _ in g["failed"] + g["failed_unloaded"]}) == 1:
            fail = f"{(g['failed'] + g['failed_unloaded'])[0][1]} at every size"   # e.g. no sampler: skipped
        model = g["model"] + (f" ({g['variant']})" if g["variant"] else "")
        family = g["family"] + (f" ({g['hardware']})" if several else "")
        out.append(f"| {family} | {g['library']} | {model} | {g['sizes']} | {_f(g['time_exponent'])} | "
                   f"{_f(g['memory_exponent'])} | {_f(g['largest_edges'], '{:,}')} edges | "
                   f"{_f(g['largest_ms'], '{:.1f}')} / {_f(g['largest_mb'], '{:.0f}')}"
                   + (f" ({g['largest_load_mb']:.0f})" if g.get("largest_load_mb") else "")
                   + (f" [`{g['memory_measure']}`]" if len(measures) > 1 else "") + f" | {fail} |")
    out.append("")
    return out


def _short(text: str, n: int = 90) -> str:
    text = text.replace("|", "/").replace("\n", " ").strip()
    return text if len(text) <= n else text[: n - 1] + "…"


CSV_FIELDS = ("dataset", "device", "library", "model", "variant", "seeds", "status", "median_ms", "p25_ms", "p75_ms",
              "epochs", "first_epoch_ms", "setup_s", "infer_ms", "collate_ms", "sample_ms", "sampled_nodes", "sampled_edges", "test_acc_mean", "test_acc_std",
              "reference_acc", "peak_rss_mb", "load_peak_rss_mb", "peak_rss_after_load_mb", "device_peak_mb", "params", "version", "relative", "fingerprint",
              "error", "hardware")


def to_csv(records: list[dict]) -> str:
    """The rows as CSV, columns CSV_FIELDS (what csv.DictWriter wrote before: object columns keep
    ints as ints and None as an empty field; lines end in CRLF)."""
    import pandas as pd
    frame = pd.DataFrame(rows(records), columns=list(CSV_FIELDS), dtype=object)
    return frame.to_csv(index=False, lineterminator="\r\n")


def to_json(records: list[dict]) -> str:
    return json.dumps(rows(records), indent=2, default=str) + "\n"


def render(records: list[dict], fmt: str = "md", title: str = "gnnbench report") -> str:
    if fmt == "md":
        return to_markdown(records, title)
    if fmt == "csv":
        return to_csv(records)
    if fmt == "json":
        return to_json(records)
    raise ValueError(fmt)
