"""Command-line interface. Imports no ML library: `gnnbench --help` is instant."""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from .errors import UsageError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(msg: str, code: int) -> None:
    click.echo(f"gnnbench: error: {msg}", err=True)
    sys.exit(code)


def _click_usage(exc: click.ClickException) -> None:
    """click's usage errors (a bad option value, an unknown option) as one line, exit 2."""
    msg = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    _fail(msg + (f" (see '{ctx.command_path} --help')" if ctx is not None else ""), 2)


class _Group(click.Group):
    """Turns every expected error into one line on stderr and a non-zero exit."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.exceptions.Exit:
            raise
        except click.ClickException as exc:
            _click_usage(exc)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            _fail(str(exc), exc.exit_code)
        except click.exceptions.Exit:
            raise
        except click.ClickException as exc:
            _click_usage(exc)
        except KeyboardInterrupt:
            _fail("interrupted; every finished run is already in the results file (use --resume)", 130)
        except BrokenPipeError:
            sys.exit(1)
        except Exception as exc:  # an unexpected bug: one line, traceback only on request
            if os.environ.get("GNNBENCH_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (set GNNBENCH_DEBUG=1 for the traceback)", 1)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(package_name="gnnbench")
def main():
    """gnnbench: which graph-learning library trains your GNN fastest, measured honestly.

    Every cell (library x model x dataset x device) runs in a fresh process with the
    same inputs, the same initial weights and the same clock.
    """


def _csv(value):
    """Split a comma-separated option; ``synthetic:nodes=10,avg_degree=4`` stays one item
    (a ``key=value`` part without ':' belongs to the dataset before it)."""
    if value is None:
        return None
    items: list[str] = []
    for part in (v.strip() for v in value.split(",")):
        if not part:
            continue
        if items and "=" in part and ":" not in part and ":" in items[-1]:
            items[-1] += "," + part
        else:
            items.append(part)
    return items


def _default_out(suite: str) -> Path:
    from datetime import datetime
    return Path("gnnbench-out") / f"{Path(suite).stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.jsonl"


@main.command(context_settings=CONTEXT)
@click.option("--suite", default="quick", show_default=True, help="Suite name in configs/ or a YAML file.")
@click.option("--libs", help="Comma-separated libraries (overrides the suite).")
@click.option("--models", help="Comma-separated models.")
@click.option("--datasets", help="Comma-separated datasets, e.g. cora,synthetic:nodes=100000.")
@click.option("--devices", help="Comma-separated devices: cpu, cuda.")
@click.option("--epochs", metavar="N", help="Timed epochs per run (>= 1); with --until, the most epochs.")
@click.option("--warmup", metavar="N", help="Warm-up epochs, not timed as epochs (>= 0).")
@click.option("--repeats", metavar="N", help="Seeds per cell (0..N-1).")
@click.option("--threads", metavar="N", help="Threads for every library, 1..cores [default: all cores].")
@click.option("--oversubscribe", is_flag=True, help="Allow --threads above the cores gnnbench may use.")
@click.option("--timeout", metavar="SECONDS", help="Seconds per child run (> 0).")
@click.option("--memory-limit", "memory_limit", metavar="GIB", help="GiB of address space per child (RLIMIT_AS).")
@click.option("--rss-limit", "rss_limit", metavar="GIB",
              help="GiB of resident memory per child; past it the child is killed and recorded as oom.")
@click.option("--until", metavar="val_acc=X|ref",
              help="Time to accuracy: train until the validation accuracy first reaches X (a fraction; ref or "
                   "no value: the published reference minus its band), at most --epochs epochs, no warm-up.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Model hyperparameter override, e.g. --set hidden=32 (repeatable).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Raw dataset folder [env GNNBENCH_DATA].")
@click.option("--out", type=click.Path(dir_okay=False), help="Results file (JSONL, appended to; not .md).")
@click.option("--resume", is_flag=True, help="Run only the runs missing from --out.")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write (beside --out, as .md) and print the markdown report.")
@click.option("--executor", type=click.Choice(["local", "ray"]),
              help="local: one run after another here [default]; ray: one Ray task per run on a cluster (docs/ray.md).")
@click.option("--ray-address", "ray_address", metavar="HOST:PORT",
              help="Ray cluster to run on [env RAY_ADDRESS; default: a local Ray instance gnnbench starts and stops].")
@click.option("--retries", type=click.IntRange(0, 5),
              help="With --executor ray: run a run whose node was lost again this many times [default: 0].")
def run(suite, libs, models, datasets, devices, epochs, warmup, repeats, threads, oversubscribe, timeout,
        memory_limit, rss_limit, until, overrides, data_dir, out, resume, report, executor, ray_address, retries):
    """Run a benchmark suite; append one record per run to a JSONL file."""
    from . import validate
    from .config import expand, load_suite
    from .datasets import preflight
    from .envinfo import cpu_count
    from .report import to_markdown
    from .results import check_results_path, read_records, write_output
    from .runner import new_run_id, pending, run_cells
    from .specs import parse_overrides

    s = load_suite(suite)
    for attr, value in (("libraries", libs), ("models", models), ("datasets", datasets), ("devices", devices)):
        if value is not None:
            setattr(s, attr, _csv(value))
            s.where[attr] = f"--{attr}"
    for attr, value in (("epochs", epochs), ("warmup", warmup), ("threads", threads), ("timeout", timeout),
                        ("memory_limit_gb", memory_limit), ("rss_limit_gb", rss_limit), ("repeats", repeats)):
        if value is not None:   # the same checks as a suite file's, named by the option
            opt = "--" + attr.removesuffix("_gb").replace("_", "-")
            with validate.at(opt):
                setattr(s if attr == "repeats" else s.run, attr, validate.run_value(attr, value))
            s.where[attr] = opt
    if until is not None:
        with validate.at("--until"):
            s.until = validate.until(until)
        s.where["until"] = "--until"
    if s.until is not None:     # every epoch from the initial weights counts: no warm-up
        if warmup is not None and s.run.warmup > 0:
            raise UsageError(f"--warmup: {s.run.warmup} warm-up epochs, but a time-to-accuracy run (--until) has "
                             f"none: every epoch from the initial weights counts; leave --warmup out or give 0")
        s.run.warmup = 0
    with validate.at(s.where.get("threads", "threads")):
        validate.threads(s.run.threads, cpu_count(), oversubscribe or s.oversubscribe)
    for attr, value in (("kind", executor), ("ray_address", ray_address), ("retries", retries)):
        if value is not None:
            setattr(s.executor, attr, value)
    if s.executor.kind != "ray" and (ray_address or retries):
        raise UsageError(f"--{'ray-address' if ray_address else 'retries'} needs --executor ray")
    if s.executor.kind == "ray":
        from .ray_executor import import_ray
        import_ray()     # not installed: one line with the fix, before anything runs
    cells = expand(s, parse_overrides(list(overrides)))
    preflight([c.dataset for c in cells], data_dir)   # data folder, datasets and their sha256, before any run
    if resume and not out:
        raise UsageError("--resume needs --out FILE (the results file to complete)")
    out_path = Path(out) if out else _default_out(s.name)
    md = out_path.with_suffix(".md")
    if out_path.exists() and not resume:
        read_records(out_path)  # refuse to append to a corrupt or foreign file
    check_results_path(out_path, [md] if report else [])
    if s.executor.kind == "ray":
        from .ray_executor import run_cells_ray
        todo, done = pending(cells, out_path, resume)
        run_cells_ray(todo, done, s.run, out_path, s.executor, run_id=new_run_id(), data_dir=data_dir,
                      progress=sys.stderr.isatty())
    else:
        run_cells(cells, s.run, out_path, resume=resume, data_dir=data_dir)
    records = [r for r in read_records(out_path)]
    click.echo(f"results: {out_path} ({len(records)} records)", err=True)
    if report:
        text = to_markdown(records, title=f"gnnbench: suite {s.name}")
        write_output(md, text)
        click.echo(text)
        click.echo(f"report: {md}", err=True)


@main.command(context_settings=CONTEXT)
@click.argument("results", type=click.Path(dir_okay=False))
def repair(results):
    """Move every bad line of a results file to RESULTS.rejected; keep the good records.

    The file is rewritten atomically (temp file, fsync, rename) with the good lines only.
    """
    from .results import rejected_path, repair as repair_file

    good, bad = repair_file(results)
    where = f", {bad} bad line(s) moved to {rejected_path(Path(results))}" if bad else ", nothing to repair"
    click.echo(f"repair: {results}: {good} good record(s) kept{where}", err=True)


@main.command(name="list", context_settings=CONTEXT)
@click.option("--no-check", is_flag=True, help="Do not import libraries to check availability.")
def list_(no_check):
    """Adapters (installed version or why not), models, datasets, suites."""
    from gnnbench.adapters import adapter_names, plugin

    from .config import suite_names
    from .datasets import dataset_names
    from .specs import model_names

    names = adapter_names()
    if no_check:
        status = {n: "(not checked)" for n in names}
    else:  # each check imports a library in its own process: run them side by side
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            status = dict(zip(names, pool.map(_availability, names)))
    click.echo("libraries:")
    for name in names:
        p = plugin(name)
        click.echo(f"  {name:10s} {status[name]}" + (f"  [plug-in: {p.describe()}]" if p else ""))
    click.echo("models:   " + ", ".join(model_names()))
    click.echo("datasets: " + ", ".join(dataset_names()))
    click.echo("suites:   " + ", ".join(suite_names()))


def _availability(name: str) -> str:
    """Check a library in a child process (its import must not pollute this one)."""
    import json
    import subprocess

    code = ("import json,sys; from gnnbench.adapters import adapter_class; a=adapter_class(sys.argv[1])();"
            " v=a.available(); print(json.dumps(dict(ok=v.ok, version=v.version, reason=v.reason, hint=v.install_hint)))")
    from gnnbench.adapters import PluginError

    from .runner import child_env
    from .config import Cell
    try:
        env = child_env(Cell(name, "", "", "cpu", {}), 1)
    except PluginError as exc:
        return f"unavailable: {exc}"
    try:
        p = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, timeout=300, env=env)
        v = json.loads(p.stdout.strip().splitlines()[-1])
    except Exception as exc:
        return f"unavailable: could not check ({type(exc).__name__})"
    if v["ok"]:
        return f"{v['version']}"
    return f"unavailable: {v['reason']}" + (f" (install: {v['hint']})" if v["hint"] else "")


@main.command(context_settings=CONTEXT)
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "json"]), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--title", default="gnnbench report", show_default=True)
@click.option("--plots", is_flag=True,
              help="Also write PNG+SVG figures next to the report (the --out folder, else beside the first "
                   "results file, where the markdown is then written too) and link them in the markdown.")
def report(results, fmt, out, title, plots):
    """Render results file(s) as a markdown, CSV or JSON table."""
    from .report import render
    from .results import check_outputs, read_records, write_output

    records = [r for path in results for r in read_records(path)]
    if not records:
        raise UsageError("no records in " + ", ".join(results))
    text = render(records, fmt, title)
    echo_too = False
    if plots:
        from .plots import markdown_links, write_report_plots

        first = Path(results[0])
        if out is None and fmt == "md":   # the figures' links are relative: the markdown goes beside them
            out = str(first.with_suffix(".md") if first.suffix != ".md" else first.with_suffix(".report.md"))
            echo_too = True
        fig_dir = Path(out).parent if out else first.parent
        stem = Path(out).stem if out else first.stem
        check_outputs([out] + [fig_dir / f"{stem}-{kind}.{ext}" for kind in ("epoch-time", "accuracy-vs-time",
                                                                            "scaling") for ext in ("png", "svg")],
                      results)
        figures = write_report_plots(records, fig_dir, stem)
        for _, png, svg in figures:
            click.echo(f"figure: {png} (+ {svg.name})", err=True)
        if not figures:
            click.echo("figures: nothing to plot (no run has timings)", err=True)
        if fmt == "md" and figures:
            text = text + "\n" + markdown_links(figures, fig_dir)
    if out:
        check_outputs([out], results)
        write_output(out, text)
        click.echo(f"report: {out}", err=True)
    if echo_too or not out:
        click.echo(text, nl=False)


@main.command(context_settings=CONTEXT)
def env():
    """The environment results would be recorded with."""
    import json

    from .envinfo import environment
    click.echo(json.dumps(environment(), indent=2))


@main.command(context_settings=CONTEXT)
@click.option("--libs", help="Comma-separated libraries [default: all].")
@click.option("--models", default="gcn,gat,sage", show_default=True)
@click.option("--datasets", default="cora,citeseer,pubmed", show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(1))
@click.option("--timeout", type=click.FloatRange(1), default=900, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Hyperparameter override for every cell, e.g. --set compile=true (repeatable).")
def verify(libs, models, datasets, device, threads, timeout, data_dir, overrides):
    """Prove each library computes the reference model, dropout included: logits, trainable count,
    loss and gradients with injected dropout masks, one SGD and one Adam step, its own dropout.

    Exits 1 if any cell fails, 0 if all pass or are skipped.
    """
    from gnnbench.adapters import adapter_names, plugin

    from . import verify as V
    from .config import Suite, expand
    from .datasets import preflight
    from .envinfo import cpu_count
    from .runner import child_env, spawn
    from .specs import parse_overrides
    from .validate import at, threads as check_threads

    s = Suite("verify", _csv(libs) if libs else adapter_names(), _csv(models), _csv(datasets), [device])
    cells = expand(s, parse_overrides(list(overrides)))
    with at("--threads"):
        check_threads(threads, cpu_count(), False, hint=False)
    preflight([c.dataset for c in cells], data_dir)
    n_threads = threads or cpu_count()
    click.echo("| library | model | dataset | device | logits | loss | grads max rel | params SGD | params Adam "
               "| dropout | count | result |")
    click.echo("|---|---|---|---|---|---|---|---|---|---|---|---|")
    failed = 0
    graph_task = sampled = False
    for cell in cells:
        # graph task on one thread: see the footnote printed below
        th = 1 if cell.spec.get("task") == "graph" else n_threads
        job = {"mode": "verify", "cell": cell.to_dict(), "config": {"threads": th}, "data_dir": data_dir}
        rc, res, tail, _, _ = spawn(job, child_env(cell, th), th, timeout)
        if res is None:
            res = {"status": "failed", "error": "timeout" if rc is None else (tail.splitlines() or ["crashed"])[-1]}
        cols = _verify_columns(res)
        result = res["status"] if res["status"] == "passed" else f"{res['status']} {res.get('error', '').strip().splitlines()[-1] if res.get('error') else ''}".strip()
        graph_task = graph_task or cell.spec.get("task") == "graph"
        sampled = sampled or cell.spec.get("task") == "sampled"
        failed += res["status"] == "failed"
        label = cell.model + "".join(f" ({k}={v})" for k, v in parse_overrides(list(overrides)).items())
        click.echo(f"| {cell.library} | {label} | {cell.dataset} | {cell.device} | {' | '.join(cols)} | {result} |")
    click.echo(f"\nTolerances (float32 libraries against the float64 NumPy reference, timed configuration: dropout "
               f"as the spec says, the harness's seeded masks injected): eval logits |diff| <= {V.LOGITS_ATOL:g}; "
               f"loss with the masks rel <= {V.LOSS_RTOL:g}; gradients per tensor max |g - g_ref| / max(max |g_ref|, "
               f"{V.GRAD_FLOOR:g} x the largest |g_ref| of any tensor) <= {V.GRAD_RTOL:g} (gin: {V.GRAPH_GRAD_RTOL:g}; the worst tensor shown); parameters "
               f"after one SGD step and, from a fresh prepare, one Adam step |diff| <= {V.PARAMS_ATOL:g} (Adam: "
               f"elements whose reference gradient is under the gradient tolerance x their tensor's largest left "
               f"out, the sign there is rounding); "
               f"the library's own dropout at each site with p > 0, on >= {V.DROPOUT_SAMPLE_MIN:,} elements: share of "
               f"zeros within {V.DROPOUT_SIGMAS:g} binomial sigma of p (worst site shown in sigma), survivors "
               f"1/(1-p) (rel {V.DROPOUT_SCALE_RTOL:g}); trainable parameters = the canonical count.")
    for p in filter(None, map(plugin, dict.fromkeys(c.library for c in cells))):
        click.echo(f"\n{p.name}: plug-in adapter from the package {p.describe()} ({p.value}), not built into gnnbench.")
    if sampled:
        click.echo("\nsage-sampled: full-graph eval logits only (each library samples neighbours with its own "
                   "generator, so training steps are not comparable).")
    if graph_task:
        click.echo(f"\nGraph classification (gin): logits of all graphs in one batch, compared relative to the largest "
                   f"reference logit (shown as 'of N'; sum readout makes them grow with graph size): |diff| <= "
                   f"{V.LOGITS_ATOL:g} x N; the training checks run on the first batch of epoch 0, whose graphs must be "
                   f"the ones the harness chose. These cells run on one thread: batch norm's training-mode "
                   f"backward divides by the batch standard deviation, which amplifies float32 rounding, and "
                   f"torch's 2-thread GEMMs round differently: measured on MUTAG, 1 thread 2.0e-06, 2 threads "
                   f"1.75e-04 max parameter diff (0.07 % of that parameter's update), the same in PyG, DGL and native.")
    click.echo(f"\n{len(cells) - failed} of {len(cells)} cells passed or skipped; {failed} failed")
    sys.exit(1 if failed else 0)


def _verify_columns(res: dict) -> tuple[str, ...]:
    """logits, loss, grads max rel, params SGD, params Adam, dropout, count for one verify result."""
    def num(key):
        v = res.get(key)
        return "–" if v is None else f"{v:.2e}"
    if "logits_max_abs_diff" not in res:
        return ("–",) * 7
    scale = res.get("logits_scale") or 1.0
    logits = num("logits_max_abs_diff") + (f" (of {scale:.0f})" if scale > 1 else "")
    grads = "–" if res.get("grads_max_rel") is None else f"{res['grads_max_rel']:.2e} ({res.get('grads_worst')})"
    drop = res.get("dropout") or {}
    if drop:
        sig = max(d["dev_sigma"] for d in drop.values())
        dropout = f"{sig:.1f}σ, {len(drop)} site{'s' if len(drop) > 1 else ''}"
    else:
        dropout = "–"
    got, want = res.get("num_parameters"), res.get("canonical_parameters")
    count = "–" if got is None else (f"{got:,}" if got == want else f"{got:,} ≠ {want:,}")
    return logits, num("loss_rel_diff"), grads, num("params_max_abs_diff"), num("params_adam_max_abs_diff"), \
        dropout, count


@main.command(context_settings=CONTEXT)
@click.argument("base", type=click.Path(dir_okay=False))
@click.argument("current", type=click.Path(dir_okay=False))
@click.option("--threshold", type=float, default=0.10, show_default=True,
              help="Relative change of the median epoch time that counts (0.10 = 10%).")
@click.option("--alpha", type=float, default=0.01, show_default=True,
              help="Significance level of the Mann-Whitney U test on per-epoch times.")
@click.option("--acc-threshold", type=float, default=2.0, show_default=True,
              help="Drop of mean test accuracy (percentage points) that is a regression.")
@click.option("--normalize-by", metavar="LIB",
              help="Divide each cell's times by LIB's median on the same model/dataset/device in the same file "
                   "(compares files from different machines).")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--resamples", type=click.IntRange(100), default=2000, show_default=True,
              help="Bootstrap resamples for the 95% CI of the ratio.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
def compare(base, current, threshold, alpha, acc_threshold, normalize_by, fmt, out, resamples, seed):
    """Compare two results files cell by cell: what regressed, improved, or stayed.

    Exits 1 when any cell regressed, 0 otherwise, 2 on bad input.
    """
    from .compare import compare as compare_records
    from .compare import to_json, to_markdown
    from .results import check_outputs, read_records, write_output

    check_outputs([out], [base, current])
    base_records, current_records = read_records(base), read_records(current)
    for path, recs in ((base, base_records), (current, current_records)):
        if not recs:
            raise UsageError(f"no records in {path}")
    result = compare_records(base_records, current_records, threshold=threshold, alpha=alpha,
                             acc_threshold=acc_threshold, normalize_by=normalize_by, resamples=resamples, seed=seed)
    if fmt == "md":
        text = to_markdown(result, base, current, base_records, current_records)
    else:
        text = to_json(result)
    if out:
        write_output(out, text, "comparison")
        click.echo(f"comparison: {out}", err=True)
    else:
        click.echo(text, nl=False)
    s = result["summary"]
    click.echo(f"{s['regressed']} regressed, {s['improved']} improved, {s['unchanged']} unchanged"
               + "".join(f", {s[k]} {k}" for k in ("incomparable", "missing", "new") if s[k]), err=True)
    sys.exit(1 if result["regressed"] else 0)


@main.command(context_settings=CONTEXT)
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--cell", "cells", multiple=True, metavar="LIB/MODEL/DATASET/DEVICE",
              help="Only this cell (shell globs allowed, e.g. 'pyg/gcn/*/cpu'; repeatable) [default: all cells].")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the table here instead of stdout.")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="PNG to write (an SVG beside it) [default: beside --out, as <out stem>.png].")
@click.option("--no-plot", is_flag=True, help="Write no figure.")
def history(results, cells, fmt, out, plot, no_plot):
    """One cell's median epoch time across several results files, in time order: table and plot."""
    from .history import points, select, to_json, to_markdown
    from .results import check_outputs, read_records, write_output

    stem = None if no_plot or not (plot or out) else (Path(plot) if plot else Path(out)).with_suffix("")
    check_outputs([out] + ([stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")] if stem else []),
                  results)
    files = [(path, read_records(path)) for path in results]
    if not any(recs for _, recs in files):
        raise UsageError("no records in " + ", ".join(results))
    series = select(points(files), cells)
    png = None
    if stem is not None:
        from .plots import plot_history

        stem.parent.mkdir(parents=True, exist_ok=True)
        drawable = {n: [p for p in pts if p["when"] is not None] for n, pts in series.items()}
        paths = plot_history({n: p for n, p in drawable.items() if p}, stem)
        if paths:
            png = paths[0]
            click.echo(f"figure: {paths[0]} (+ {paths[1].name})", err=True)
    if fmt == "md":
        import os
        link = None
        if png is not None:
            link = Path(os.path.relpath(png, Path(out).parent if out else Path.cwd())).as_posix()
        text = to_markdown(series, link)
    else:
        text = to_json(series)
    if out:
        write_output(out, text, "history")
        click.echo(f"history: {out}", err=True)
    else:
        click.echo(text, nl=False)


@main.command(context_settings=CONTEXT)
@click.option("--datasets", help="Comma-separated graphs [default: citation graphs and synthetic 10^4..10^6 nodes].")
@click.option("--widths", default="16,64", show_default=True, help="Feature widths.")
@click.option("--repeats", type=click.IntRange(1), default=10, show_default=True)
@click.option("--threads", type=click.IntRange(1))
@click.option("--device", default="cpu", show_default=True)
@click.option("--ops", default="spmm,sddmm", show_default=True)
@click.option("--impls", default="native,pyg,dgl,torch.sparse", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False))
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the rows as JSON.")
def kernels(datasets, widths, repeats, threads, device, ops, impls, data_dir, json_out):
    """Micro-benchmarks of SpMM and SDDMM: native, PyG's and DGL's ops, torch.sparse.

    Reports time and achieved bandwidth next to the machine's measured copy bandwidth.
    """
    from gnnbench.adapters.native import kernels_bench as kb
    from .datasets import canonical_dataset_name
    from .envinfo import cpu_count
    from .validate import at, threads as check_threads

    ops_l, impls_l = _csv(ops), _csv(impls)
    for o in ops_l:
        if o not in kb.OPS:
            raise UsageError(f"unknown op '{o}'; valid ops: {', '.join(kb.OPS)}")
    for i in impls_l:
        if i not in kb.IMPLS:
            raise UsageError(f"unknown implementation '{i}'; valid: {', '.join(kb.IMPLS)}")
    try:
        widths_l = [int(w) for w in _csv(widths)]
    except ValueError:
        raise UsageError(f"--widths must be integers, got '{widths}'") from None
    with at("--threads"):
        check_threads(threads, cpu_count(), False, hint=False)
    names = _csv(datasets) if datasets else kb.DEFAULT_DATASETS
    for name in names:
        canonical_dataset_name(name)
    rows = kb.run_kernels(names, widths_l, data_dir, repeats, threads=threads, device=device,
                          ops=ops_l, impls=impls_l)
    click.echo(kb.format_table(rows))
    if json_out:
        import json

        from .results import write_output
        write_output(json_out, json.dumps(rows, indent=1), "kernel table")


if __name__ == "__main__":
    main()
