"""gnnbench history: a cell's median across results files, in record-timestamp order."""
from __future__ import annotations

import json

import pytest
from conftest import run_cli, vary

from gnnbench.history import points, select
from gnnbench.errors import UsageError
from gnnbench.results import read_records


@pytest.fixture(scope="module")
def files(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp("history")
    now = d / "now.jsonl"
    p = run_cli("run", "--libs", "test-ok", "--models", "gcn", "--datasets", "cora,citeseer", "--epochs", "10",
                "--warmup", "2", "--threads", "1", "--data-dir", data_dir, "--out", now, "--no-report",
                env={"GNNBENCH_TEST_ADAPTERS": "1", "GNNBENCH_TEST_SLEEP_MS": "2"}, timeout=180)
    assert p.returncode == 0, p.stderr
    records = read_records(now)
    assert len(records) == 2

    def shifted(name, timestamp, factor, rev):
        out = vary(records, timestamp=timestamp, env__git_revision=rev,
                   times__epoch_ms=lambda ts: [factor * t for t in ts])
        path = d / name
        path.write_text("".join(json.dumps(r) + "\n" for r in out))
        return path

    # measured earlier (half the time) and later (twice the time) than the real run
    old = shifted("old.jsonl", "2020-01-01T00:00:00+00:00", 0.5, "aaaaaaa")
    new = shifted("new.jsonl", "2099-01-01T00:00:00+00:00", 2.0, "bbbbbbb")
    return {"now": now, "old": old, "new": new, "dir": d}


@pytest.mark.heavy
def test_points_are_in_timestamp_order_not_argument_order(files):
    args = [files["new"], files["now"], files["old"]]
    series = points([(str(f), read_records(f)) for f in args])
    assert sorted(series) == ["test-ok/gcn/citeseer/cpu", "test-ok/gcn/cora/cpu"]
    pts = series["test-ok/gcn/cora/cpu"]
    assert [p["git"] for p in pts] == ["aaaaaaa", pts[1]["git"], "bbbbbbb"]
    assert pts[1]["file"].endswith("now.jsonl")
    m = [p["median_ms"] for p in pts]
    assert m[1] / m[0] == pytest.approx(2.0) and m[2] / m[1] == pytest.approx(2.0)


@pytest.mark.heavy
def test_cli_table_filter_and_plot(files, tmp_path):
    out = tmp_path / "h" / "history.md"
    p = run_cli("history", files["new"], files["now"], files["old"], "--cell", "test-ok/gcn/cora/*", "--out", out,
                timeout=120)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert "## test-ok/gcn/cora/cpu" in text and "citeseer" not in text
    assert "](history.png)" in text
    assert (out.parent / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert (out.parent / "history.svg").exists()
    lines = [ln for ln in text.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert [ln.split("|")[3].strip() for ln in lines][0::2] == ["aaaaaaa", "bbbbbbb"]
    assert "2.000×" in lines[1] and "2.000×" in lines[2] and "4.000×" in lines[2]


def test_cli_all_cells_json_and_no_plot(files, tmp_path):
    p = run_cli("history", files["old"], files["now"], "--format", "json", "--no-plot", cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert set(data) == {"test-ok/gcn/cora/cpu", "test-ok/gcn/citeseer/cpu"}
    assert all(len(v) == 2 for v in data.values())
    assert not list(tmp_path.glob("*.png"))


def test_bad_cell_filters(files):
    series = points([(str(files["now"]), read_records(files["now"]))])
    with pytest.raises(UsageError, match="no cell matches"):
        select(series, ["pyg/gcn/cora/cpu"])
    with pytest.raises(UsageError, match="expected library/model/dataset/device"):
        select(series, ["pyg/gcn"])
    p = run_cli("history", files["now"], "--cell", "dgl/*/*/*", timeout=120)
    assert p.returncode == 2 and "cells present: test-ok/gcn/citeseer/cpu" in p.stderr
    p = run_cli("history", files["dir"] / "missing.jsonl", timeout=120)
    assert p.returncode == 2 and "results file not found" in p.stderr


def test_a_non_default_spec_is_its_own_line(files):
    recs = read_records(files["now"])
    ablation = vary(recs, spec__dropout=0.0, key=lambda k: k.replace("/seed", "-d0/seed"))
    series = points([(str(files["now"]), recs + ablation)])
    assert "test-ok/gcn/cora/cpu [dropout=0.0]" in series and "test-ok/gcn/cora/cpu" in series
    assert set(select(series, ["test-ok/gcn/cora/cpu"])) == {"test-ok/gcn/cora/cpu",
                                                            "test-ok/gcn/cora/cpu [dropout=0.0]"}
