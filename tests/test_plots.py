"""gnnbench report --plots: figures from real (test-ok) runs, incl. a tiny synthetic size sweep."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli, vary

from gnnbench import plots
from gnnbench.report import rows
from gnnbench.results import read_records

SYN = "synthetic:nodes={n},avg_degree=6,features=16,classes=4"


@pytest.fixture(scope="module")
def results(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp("plots")
    suite = d / "tiny.yaml"
    suite.write_text(
        "name: tiny\nlibraries: [test-ok]\nmodels: [gcn, sage]\n"
        f"datasets: [cora, '{SYN.format(n=300)}', '{SYN.format(n=1200)}']\n"
        "epochs: 8\nwarmup: 2\nthreads: 1\n")
    out = d / "tiny.jsonl"
    p = run_cli("run", "--suite", suite, "--data-dir", data_dir, "--out", out, "--no-report",
                env={"GNNBENCH_TEST_ADAPTERS": "1", "GNNBENCH_TEST_SLEEP_MS": "1"}, timeout=300)
    assert p.returncode == 0, p.stderr
    records = read_records(out)
    assert len(records) == 6 and all(r.get("times") for r in records)
    # a second library, 30x slower, so the bars need a log axis (derived from the real records)
    slow = vary(records, cell__library="test-slow", times__epoch_ms=lambda ts: [30 * t for t in ts])
    both = d / "both.jsonl"
    both.write_text("".join(json.dumps(r) + "\n" for r in records + slow))
    cora_only = d / "cora.jsonl"
    cora_only.write_text("".join(json.dumps(r) + "\n" for r in records + slow if r["cell"]["dataset"] == "cora"))
    return {"tiny": out, "both": both, "cora": cora_only, "dir": d}


def _is_png(path):
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.heavy
def test_report_plots_writes_png_svg_and_links_them(results, tmp_path):
    md = tmp_path / "out" / "report.md"
    md.parent.mkdir()
    p = run_cli("report", results["both"], "--plots", "--out", md, timeout=180)
    assert p.returncode == 0, p.stderr
    text = md.read_text()
    for name in ("epoch-time", "accuracy-vs-time", "scaling"):
        png, svg = md.parent / f"report-{name}.png", md.parent / f"report-{name}.svg"
        assert _is_png(png) and png.stat().st_size > 10_000, name
        assert svg.read_text().lstrip().startswith("<?xml")
        assert f"](report-{name}.png)" in text and f"(report-{name}.svg)" in text
    import matplotlib.image
    h, w = matplotlib.image.imread(md.parent / "report-epoch-time.png").shape[:2]
    assert w > 500 and h > 300
    assert text.index("## Figures") > text.index("| library | model |")


@pytest.mark.heavy
def test_plots_go_beside_the_results_file_without_out(results):
    p = run_cli("report", results["cora"], "--plots", timeout=180)
    assert p.returncode == 0, p.stderr
    d = results["dir"]
    assert (d / "cora.md").exists() and "| library | model |" in p.stdout
    assert _is_png(d / "cora-epoch-time.png") and _is_png(d / "cora-accuracy-vs-time.png")
    assert not (d / "cora-scaling.png").exists()          # no size sweep in this file
    assert "scaling" not in (d / "cora.md").read_text()


def test_sweep_detection_and_edge_counts(results):
    records = read_records(results["tiny"])
    edges = plots.edge_counts(records)
    small, large = SYN.format(n=300), SYN.format(n=1200)
    canon = {r["cell"]["dataset"] for r in records}
    small_c = next(c for c in canon if "nodes=300," in c)
    large_c = next(c for c in canon if "nodes=1200," in c)
    assert edges["cora"] == 10556
    assert edges[small_c] < edges[large_c]
    sw = plots.sweeps(records)
    assert list(sw.values()) == [[small_c, large_c]]
    assert plots.short_dataset(large_c) == "synthetic nodes=1200 avg_degree=6 features=16 classes=4"
    assert small and large


@pytest.mark.heavy
def test_log_scale_only_for_wide_ranges(results, monkeypatch):
    assert plots._use_log([1.0, 25.0]) and not plots._use_log([1.0, 19.0]) and not plots._use_log([])
    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, stem, plt: figs.append(fig) or [stem, stem])
    table = [r for r in rows(read_records(results["both"])) if r["dataset"] == "cora"]
    plots.plot_epoch_times(table, results["dir"] / "x")
    assert figs[-1].axes[0].get_yscale() == "log"               # test-slow is 30x test-ok
    plots.plot_epoch_times([r for r in table if r["library"] == "test-ok"], results["dir"] / "x")
    assert figs[-1].axes[0].get_yscale() == "linear"
    assert len(figs[-1].axes[0].patches) == 2                    # GCN and SAGE bars
    plots.plot_scaling(rows(read_records(results["tiny"])), read_records(results["tiny"]), results["dir"] / "y")
    ax = figs[-1].axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


@pytest.mark.heavy
def test_nothing_to_plot_is_not_an_error(results, tmp_path):
    rec = json.loads(open(results["tiny"]).readline())
    rec.pop("times")
    rec["status"] = "failed"
    f = tmp_path / "failed.jsonl"
    f.write_text(json.dumps(rec) + "\n")
    p = run_cli("report", f, "--plots", timeout=120)
    assert p.returncode == 0, p.stderr
    assert "nothing to plot" in p.stderr
    assert not list(tmp_path.glob("*.png"))


def test_cli_import_does_not_import_matplotlib():
    code = "import sys, gnnbench.cli, gnnbench.compare, gnnbench.history; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
