"""Figures for reports and histories (matplotlib, Agg backend, imported only when called).

``write_report_plots(records, out_dir, stem)`` writes, as PNG and SVG:

* ``<stem>-epoch-time``: grouped bars of median epoch time per library, one group per
  model, one panel per (dataset, device); whiskers p25-p75; log scale when the
  largest median is more than 20x the smallest in a panel. Rows that are not ``ok``
  (e.g. accuracy_mismatch) are hatched.
* ``<stem>-accuracy-vs-time``: mean test accuracy (± std over seeds) against median
  epoch time, one panel per (dataset, device).
* ``<stem>-scaling``: for synthetic size sweeps (the same synthetic graph family at two
  or more sizes), median epoch time against edge count on log-log axes, one line per
  library. Sweep datasets are left out of the two figures above.
"""
from __future__ import annotations

import math
from pathlib import Path

from .cells import SWEEP_KEYS, edge_counts, memory_key, sweeps
from .errors import UsageError

__all__ = ["write_report_plots", "markdown_links", "plot_history", "plot_epoch_times", "plot_accuracy_vs_time",
           "plot_scaling", "short_dataset", "edge_counts", "sweeps", "SWEEP_KEYS"]

LOG_RATIO = 20.0          # log scale when max/min of the plotted values exceeds this


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise UsageError("plots need matplotlib: pip install 'gnnbench[plots]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _colors(libraries) -> dict[str, str]:
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    return {lib: palette[i % len(palette)] for i, lib in enumerate(sorted(set(libraries)))}


MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _label(r: dict) -> str:
    """Model name plus its spec variant, if the report row has one (e.g. 'GCN (dropout=0.0)')."""
    return r["model"].upper() + (f" ({r['variant']})" if r.get("variant") else "")


def short_dataset(name: str) -> str:
    """'synthetic:nodes=1000,avg_degree=10,features=128,...' -> 'synthetic nodes=1000' (defaults dropped)."""
    if not name.startswith("synthetic"):
        return name
    from .datasets.synthetic import DEFAULTS
    parts = []
    for item in name.partition(":")[2].split(","):
        k, _, v = item.partition("=")
        if k and (k in SWEEP_KEYS or str(DEFAULTS.get(k)) != v):
            parts.append(f"{k}={v}")
    return "synthetic " + " ".join(parts)


def _panels(n: int, plt, w: float = 5.2, h: float = 3.8):
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _save(fig, path_stem: Path, plt) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        p = path_stem.with_name(path_stem.name + "." + ext)
        fig.savefig(p, dpi=130 if ext == "png" else None, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def _use_log(values) -> bool:
    v = [x for x in values if x and x > 0]
    return bool(v) and max(v) / min(v) > LOG_RATIO


def plot_epoch_times(table: list[dict], path_stem: Path) -> list[Path]:
    """Grouped bars: median epoch time per library, grouped by model, one panel per (dataset, device)."""
    plt = _plt()
    table = [r for r in table if r["median_ms"]]
    groups = list(dict.fromkeys((r["dataset"], r["device"]) for r in table))
    if not groups:
        return []
    colors = _colors(r["library"] for r in table)
    fig, axes = _panels(len(groups), plt)
    hatched = False
    for ax, (dataset, device) in zip(axes, groups):
        rows = [r for r in table if (r["dataset"], r["device"]) == (dataset, device)]
        models = sorted({_label(r) for r in rows})
        libs = sorted({r["library"] for r in rows})
        width = 0.8 / len(libs)
        for j, lib in enumerate(libs):
            for i, model in enumerate(models):
                r = next((r for r in rows if r["library"] == lib and _label(r) == model), None)
                if r is None:
                    continue
                x = i - 0.4 + width * (j + 0.5)
                med = r["median_ms"]
                err = [[max(med - (r["p25_ms"] or med), 0)], [max((r["p75_ms"] or med) - med, 0)]]
                bad = r["status"] != "ok"
                hatched |= bad
                ax.bar(x, med, width * 0.92, color=colors[lib], yerr=err, capsize=3, ecolor="#333333",
                       hatch="//" if bad else None, edgecolor="white" if not bad else "#222222",
                       label=lib)
                ax.annotate(f"{med:.3g}", (x, r["p75_ms"] or med), textcoords="offset points", xytext=(0, 2),
                            ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, fontsize=9 if max(map(len, models)) < 14 else 7)
        if _use_log([r["median_ms"] for r in rows] + [r["p25_ms"] for r in rows]):
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, max((r["p75_ms"] or r["median_ms"]) for r in rows) * 1.18)
        ax.set_ylabel("median epoch time (ms)")
        ax.set_title(f"{short_dataset(dataset)} on {device}", fontsize=10)
        ax.grid(axis="y", alpha=0.3, which="both")
        handles, labels = ax.get_legend_handles_labels()
        uniq = dict(zip(labels, handles))
        ax.legend(uniq.values(), uniq.keys(), fontsize=8, frameon=False)
    fig.suptitle("Training epoch time (median; whiskers p25–p75; lower is better)"
                 + ("\nhatched: not ok (e.g. accuracy outside the reference band)" if hatched else ""),
                 fontsize=11)
    fig.tight_layout()
    return _save(fig, path_stem, plt)


def plot_accuracy_vs_time(table: list[dict], path_stem: Path) -> list[Path]:
    """Scatter: mean test accuracy vs median epoch time, one panel per (dataset, device)."""
    plt = _plt()
    table = [r for r in table if r["median_ms"] and r["test_acc_mean"] is not None]
    groups = list(dict.fromkeys((r["dataset"], r["device"]) for r in table))
    if not groups:
        return []
    colors = _colors(r["library"] for r in table)
    models = sorted({r["model"] for r in table})
    marker = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(models)}
    fig, axes = _panels(len(groups), plt)
    for ax, (dataset, device) in zip(axes, groups):
        rows = [r for r in table if (r["dataset"], r["device"]) == (dataset, device)]
        for k, r in enumerate(sorted(rows, key=lambda r: r["median_ms"])):
            med = r["median_ms"]
            ax.errorbar(med, 100 * r["test_acc_mean"], yerr=100 * (r["test_acc_std"] or 0),
                        xerr=[[max(med - (r["p25_ms"] or med), 0)], [max((r["p75_ms"] or med) - med, 0)]],
                        fmt=marker[r["model"]], color=colors[r["library"]], ms=7, capsize=2,
                        mfc="none" if r["status"] != "ok" else colors[r["library"]])
            ax.annotate(f"{r['library']}/{r['model']}" + (f" ({r['variant']})" if r.get("variant") else ""), (med, 100 * r["test_acc_mean"]),
                        textcoords="offset points", xytext=(5, (4, -11, 14)[k % 3]), fontsize=7)
        refs = sorted((r["reference_acc"], m) for m in {r["model"] for r in rows}
                      for r in rows if r["model"] == m and r["reference_acc"])
        refs = sorted(dict((m, ref) for ref, m in refs).items(), key=lambda kv: kv[1])
        for k, (m, ref) in enumerate(refs):
            ax.axhline(ref, color="#999999", ls=":", lw=1)
            ax.annotate(f"{m.upper()} reference {ref:.1f}%", (0.99 if k % 2 else 0.01, ref),
                        xycoords=("axes fraction", "data"), fontsize=7, color="#666666", va="bottom",
                        ha="right" if k % 2 else "left")
        if _use_log([r["median_ms"] for r in rows]):
            ax.set_xscale("log")
        top = max([100 * (r["test_acc_mean"] + (r["test_acc_std"] or 0)) for r in rows] + [ref for _, ref in refs])
        ax.set_ylim(top=top + 4)
        ax.set_xlabel("median epoch time (ms, lower is better)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{short_dataset(dataset)} on {device}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=c, marker="o", ls="", label=lib) for lib, c in colors.items()]
    handles += [Line2D([], [], color="#444444", marker=marker[m], ls="", label=m.upper()) for m in models]
    fig.legend(handles=handles, loc="upper center", ncol=min(8, len(handles)), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    fig.suptitle("Accuracy vs epoch time (hollow: status not ok)", fontsize=11, y=1.06)
    fig.tight_layout()
    return _save(fig, path_stem, plt)


def plot_scaling(table: list[dict], records: list[dict], path_stem: Path) -> list[Path]:
    """Log-log lines per library, for each synthetic size sweep: median epoch time vs edge count,
    and next to it the child's peak memory vs edge count (after loading where every row has it:
    cells.memory_key)."""
    plt = _plt()
    sw = sweeps(records)
    edges = edge_counts(records)
    panels = []
    for fam, names in sw.items():
        rows = [r for r in table if r["dataset"] in names and r["median_ms"] and r["dataset"] in edges]
        for model, device in dict.fromkeys((_label(r), r["device"]) for r in rows):
            sel = [r for r in rows if (_label(r), r["device"]) == (model, device)]
            panels.append((fam, model, device, sel, "time"))
            mk = memory_key(sel)
            if any(r.get(mk) for r in sel):
                panels.append((fam, model, device, [r for r in sel if r.get(mk)], mk))
    if not panels:
        return []
    colors = _colors(r["library"] for p in panels for r in p[3])
    fig, axes = _panels(len(panels), plt, w=6.0, h=4.4)
    for ax, (fam, model, device, rows, metric) in zip(axes, panels):
        value = (lambda r: r["median_ms"]) if metric == "time" else (lambda r, k=metric: r[k])
        for lib in sorted({r["library"] for r in rows}):
            pts = sorted((edges[r["dataset"]], value(r), r["p25_ms"], r["p75_ms"]) for r in rows if r["library"] == lib)
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            if metric == "time":
                err = [[max(p[1] - (p[2] or p[1]), 0) for p in pts], [max((p[3] or p[1]) - p[1], 0) for p in pts]]
                ax.errorbar(xs, ys, yerr=err, marker="o", color=colors[lib], label=lib, capsize=2)
            else:
                ax.plot(xs, ys, marker="o", color=colors[lib], label=lib)
        ax.set_xscale("log")
        ax.set_yscale("log")
        # a guide line proportional to the edge count through the smallest point
        x0 = min(edges[r["dataset"]] for r in rows)
        y0 = min(value(r) for r in rows if edges[r["dataset"]] == x0)
        x1 = max(edges[r["dataset"]] for r in rows)
        if x1 > x0:
            ax.plot([x0, x1], [y0, y0 * x1 / x0], ls="--", color="#999999", lw=1, label="∝ edges")
        ax.set_xlabel("edges")
        ax.set_ylabel({"time": "median epoch time (ms)", "peak_rss_mb": "peak RSS of the run (MB)",
                       "peak_rss_after_load_mb": "peak RSS after loading the dataset (MB)"}[metric])
        ax.set_title(f"{model} on {device}, {'time' if metric == 'time' else 'memory'}: "
                     f"{short_dataset(fam).replace('synthetic', 'synthetic graphs')}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("Scaling: epoch time and peak memory vs graph size (log–log; whiskers p25–p75)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path_stem, plt)


def write_report_plots(records: list[dict], out_dir: str | Path, stem: str) -> list[tuple[str, Path, Path]]:
    """Write every report figure that has data; returns (caption, png, svg) per figure."""
    from .report import rows

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = rows(records)
    in_sweep = {n for names in sweeps(records).values() for n in names}
    plain = [r for r in table if r["dataset"] not in in_sweep]
    figures = []
    for caption, paths in (
        ("Median epoch time per library (whiskers p25–p75)", plot_epoch_times(plain, out_dir / f"{stem}-epoch-time")),
        ("Test accuracy vs median epoch time", plot_accuracy_vs_time(plain, out_dir / f"{stem}-accuracy-vs-time")),
        ("Epoch time and peak memory vs edge count (synthetic size sweep, log–log)",
         plot_scaling(table, records, out_dir / f"{stem}-scaling")),
    ):
        if paths:
            figures.append((caption, paths[0], paths[1]))
    return figures


def markdown_links(figures: list[tuple[str, Path, Path]], md_dir: str | Path) -> str:
    """A '## Figures' section linking each PNG (and its SVG) relative to the markdown's folder."""
    import os

    if not figures:
        return ""
    out = ["## Figures", ""]
    for caption, png, svg in figures:
        rp = Path(os.path.relpath(png, md_dir)).as_posix()
        rs = Path(os.path.relpath(svg, md_dir)).as_posix()
        out += [f"![{caption}]({rp})", "", f"*{caption}* ([SVG]({rs}))", ""]
    return "\n".join(out)


def plot_history(series: dict[str, list[dict]], path_stem: Path) -> list[Path]:
    """One line per cell: median epoch time (whiskers p25–p75) over measurement time.

    ``series``: cell name -> points with 'when' (datetime), 'median_ms', 'p25_ms', 'p75_ms'.
    One panel per (dataset, device).
    """
    plt = _plt()
    import matplotlib.dates as mdates

    groups: dict[tuple, list[str]] = {}
    for name in series:
        base = name.partition(" [")[0]
        parts = base.split("/")
        dataset, device = (parts[2], parts[3]) if len(parts) == 4 else ("", "")
        groups.setdefault((dataset, device), []).append(name)
    if not groups:
        return []
    colors = _colors(series)
    fig, axes = _panels(len(groups), plt, w=6.4, h=4.0)
    for ax, ((dataset, device), names) in zip(axes, groups.items()):
        values = []
        for name in names:
            pts = [p for p in series[name] if p["median_ms"] is not None]
            if not pts:
                continue
            xs = [p["when"] for p in pts]
            ys = [p["median_ms"] for p in pts]
            values += ys
            err = [[max(p["median_ms"] - (p["p25_ms"] or p["median_ms"]), 0) for p in pts],
                   [max((p["p75_ms"] or p["median_ms"]) - p["median_ms"], 0) for p in pts]]
            base, _, var = name.partition(" [")
            label = "/".join(base.split("/")[:2]) + (f" [{var}" if var else "")
            ax.errorbar(xs, ys, yerr=err, marker="o", color=colors[name], label=label, capsize=2)
            if len(pts) <= 12:   # which revision each point measured
                for p in pts:
                    if p.get("git"):
                        ax.annotate(p["git"], (p["when"], p["median_ms"]), textcoords="offset points",
                                    xytext=(4, -10), fontsize=6, color=colors[name])
        if _use_log(values):
            ax.set_yscale("log")
        elif values:
            ax.set_ylim(0, max(values) * 1.3)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
        ax.set_ylabel("median epoch time (ms)")
        ax.set_title(f"{short_dataset(dataset)} on {device}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("History: median epoch time per results file (whiskers p25–p75)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path_stem, plt)
