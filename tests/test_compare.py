"""gnnbench compare: statistics, verdicts and the CLI, on real runs of the test-ok adapter.

The fake adapter sleeps GNNBENCH_TEST_SLEEP_MS per step; with one thread its own
work is ~0.3 ms, so 10 ms vs 12 ms is a ~20% slowdown of the measured step.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
from conftest import run_cli, vary

from gnnbench import stats
from gnnbench.compare import cells_of, compare, to_markdown
from gnnbench.errors import UsageError
from gnnbench.results import read_records

TEST_ENV = {"GNNBENCH_TEST_ADAPTERS": "1"}


def _run(out, data_dir, sleep_ms, *extra):
    p = run_cli("run", "--libs", "test-ok", "--models", "gcn", "--datasets", "cora", "--epochs", "30",
                "--warmup", "5", "--threads", "1", "--data-dir", data_dir, "--out", out, "--no-report", *extra,
                env={**TEST_ENV, "GNNBENCH_TEST_SLEEP_MS": str(sleep_ms)}, timeout=180)
    assert p.returncode == 0, p.stderr
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp("runs")
    return {
        "base": _run(d / "base.jsonl", data_dir, 10),
        "same": _run(d / "same.jsonl", data_dir, 10),
        "slow": _run(d / "slow.jsonl", data_dir, 12),
        # a step of 3 s against a 1 s timeout: the same cell, status timeout
        "timeout": _run(d / "timeout.jsonl", data_dir, 3000, "--timeout", "1"),
    }


def _compare(*args):
    return run_cli("compare", *args, timeout=120)


# --- statistics -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_mann_whitney_matches_scipy(seed, alternative):
    rng = np.random.default_rng(seed)
    n1, n2 = rng.integers(5, 80, 2)
    x = np.round(rng.lognormal(0, 0.3, n1), 1)          # rounding makes ties
    y = np.round(rng.lognormal(0.1 * seed, 0.3, n2), 1)
    u, p = stats.mann_whitney_u(x, y, alternative=alternative)
    ref = scipy.stats.mannwhitneyu(x, y, alternative=alternative, method="asymptotic", use_continuity=True)
    assert u == pytest.approx(ref.statistic, rel=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_mann_whitney_without_continuity_and_degenerate_cases():
    x, y = [1.0, 2.0, 3.0, 4.0], [3.0, 5.0, 6.0, 7.0, 8.0]
    ref = scipy.stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=False)
    assert stats.mann_whitney_u(x, y, continuity=False)[1] == pytest.approx(ref.pvalue, rel=1e-12)
    assert stats.mann_whitney_u([5.0] * 10, [5.0] * 7) == (35.0, 1.0)   # all tied: no evidence
    with pytest.raises(ValueError):
        stats.mann_whitney_u([], [1.0])
    with pytest.raises(ValueError):
        stats.mann_whitney_u([1.0, float("nan")], [1.0])


def test_bootstrap_ratio_ci_is_seeded_and_brackets_the_ratio():
    rng = np.random.default_rng(1)
    base = rng.lognormal(0, 0.2, 60)
    cur = 1.2 * rng.lognormal(0, 0.2, 60)
    r1 = stats.bootstrap_ratio_ci(base, cur, resamples=2000, seed=7)
    r2 = stats.bootstrap_ratio_ci(base, cur, resamples=2000, seed=7)
    assert r1 == r2
    ratio, lo, hi = r1
    assert ratio == pytest.approx(np.median(cur) / np.median(base))
    assert lo < ratio < hi
    assert 1.0 < lo and hi < 1.5           # a 20% shift with 60 samples each is resolved
    assert stats.bootstrap_ratio_ci([], [1.0]) == (None, None, None)
    # exactly scaled samples: the point estimate is the scale
    assert stats.bootstrap_ratio_ci(base, 1.5 * base)[0] == pytest.approx(1.5)


def test_bootstrap_ci_coverage_under_the_null():
    rng = np.random.default_rng(2)
    hits = 0
    trials = 150
    for t in range(trials):
        a, b = rng.lognormal(0, 0.25, 50), rng.lognormal(0, 0.25, 50)
        _, lo, hi = stats.bootstrap_ratio_ci(a, b, resamples=400, seed=t)
        hits += lo <= 1.0 <= hi
    assert hits / trials > 0.85            # nominal 95%; the percentile bootstrap of a median is a bit loose


# --- verdicts on real runs ----------------------------------------------------------------------


@pytest.mark.heavy
def test_same_tree_twice_is_unchanged(runs):
    p = _compare(runs["base"], runs["same"], "--format", "json")
    assert p.returncode == 0, p.stdout + p.stderr
    cell = json.loads(p.stdout)["cells"][0]
    assert cell["verdict"] == "unchanged", cell
    assert 0.9 < cell["ratio"] < 1.1


@pytest.mark.heavy
def test_twenty_percent_slowdown_is_regressed(runs):
    p = _compare(runs["base"], runs["slow"], "--format", "json")
    assert p.returncode == 1, p.stdout + p.stderr
    cell = json.loads(p.stdout)["cells"][0]
    assert cell["verdict"] == "regressed", cell
    assert 1.12 < cell["ratio"] < 1.3
    assert cell["p_value"] < 0.01
    assert cell["ci_low"] <= cell["ratio"] <= cell["ci_high"]
    # the other way round it is an improvement, and that exits 0
    p = _compare(runs["slow"], runs["base"], "--format", "json")
    assert p.returncode == 0
    assert json.loads(p.stdout)["cells"][0]["verdict"] == "improved"
    # a 25% threshold does not flag a 20% slowdown
    p = _compare(runs["base"], runs["slow"], "--threshold", "0.25")
    assert p.returncode == 0, p.stdout


@pytest.mark.heavy
def test_markdown_table_for_a_pull_request(runs, tmp_path):
    out = tmp_path / "cmp.md"
    p = _compare(runs["base"], runs["slow"], "--out", out)
    assert p.returncode == 1
    text = out.read_text()
    assert text.startswith("### gnnbench compare: regression")
    assert "| **regressed** | test-ok | gcn | cora | cpu |" in text
    assert "| verdict | library | model | dataset | device |" in text
    assert "1 regressed" in p.stderr


def test_timeout_in_current_after_ok_in_base_is_regressed(runs):
    assert read_records(runs["timeout"])[0]["status"] == "timeout"
    p = _compare(runs["base"], runs["timeout"], "--format", "json")
    assert p.returncode == 1
    cell = json.loads(p.stdout)["cells"][0]
    assert cell["verdict"] == "regressed"
    assert any("→ timeout" in r for r in cell["reasons"])
    # failed in both: nothing new broke
    p = _compare(runs["timeout"], runs["timeout"], "--format", "json")
    assert p.returncode == 0
    assert json.loads(p.stdout)["cells"][0]["verdict"] == "unchanged"


def test_accuracy_drop_beyond_threshold_is_a_regression(runs):
    base = read_records(runs["base"])
    small = vary(base, accuracy__test=lambda a: a - 0.01)
    large = vary(base, accuracy__test=lambda a: a - 0.03)
    assert compare(base, small)["cells"][0]["verdict"] == "unchanged"
    res = compare(base, large)
    assert res["regressed"] and res["cells"][0]["verdict"] == "regressed"
    assert res["cells"][0]["acc_delta_pt"] == pytest.approx(-3.0)
    assert not compare(base, large, acc_threshold=5.0)["regressed"]


def test_cells_in_one_file_only_are_listed(runs):
    base = read_records(runs["base"])
    other = vary(base, cell__dataset="citeseer")
    res = compare(base, other)
    verdicts = sorted((c["verdict"], c["dataset"]) for c in res["cells"])
    assert verdicts == [("missing", "cora"), ("new", "citeseer")]
    assert not res["regressed"]
    # a different model spec is a different cell, and the table says why
    spec = vary(base, spec__hidden=64)
    res = compare(base, spec)
    assert sorted(c["verdict"] for c in res["cells"]) == ["missing", "new"]
    assert any("hidden=16→64" in n for c in res["cells"] for n in c["notes"])
    assert "| new | test-ok | gcn (hidden=64) | cora |" in to_markdown(res)


def _two_libs(records, ref_scale, lib_scale):
    """A file with the real test-ok cell (times x lib_scale) and a reference library (x ref_scale)."""
    lib = vary(records, times__epoch_ms=lambda t: [x * lib_scale for x in t])
    ref = vary(records, cell__library="ref", times__epoch_ms=lambda t: [x * 0.5 * ref_scale for x in t])
    return lib + ref


def test_normalize_by_removes_a_machine_difference(runs):
    base_recs = read_records(runs["base"])
    base = _two_libs(base_recs, 1.0, 1.0)
    machine = _two_libs(base_recs, 2.0, 2.0)               # everything 2x slower: another machine
    raw = compare(base, machine)
    assert raw["summary"]["regressed"] == 2
    norm = compare(base, machine, normalize_by="ref")
    assert not norm["regressed"], norm
    cell = next(c for c in norm["cells"] if c["library"] == "test-ok")
    assert cell["normalized"] and cell["ratio"] == pytest.approx(1.0)
    assert cell["raw_ratio"] == pytest.approx(2.0)
    ref = next(c for c in norm["cells"] if c["library"] == "ref")
    assert ref["ratio"] is None and any("reference" in n for n in ref["notes"])
    # the library itself 30% slower relative to the reference: still found
    worse = _two_libs(base_recs, 2.0, 2.6)
    norm = compare(base, worse, normalize_by="ref")
    cell = next(c for c in norm["cells"] if c["library"] == "test-ok")
    assert cell["verdict"] == "regressed" and cell["ratio"] == pytest.approx(1.3)
    assert "normalised by **ref**" in to_markdown(norm)


def test_normalize_by_needs_the_reference(runs):
    base_recs = read_records(runs["base"])
    with pytest.raises(UsageError, match="no such library"):
        compare(base_recs, base_recs, normalize_by="pyg")
    base = _two_libs(base_recs, 1.0, 1.0)
    res = compare(base, base_recs, normalize_by="ref")     # current lacks the reference
    cell = next(c for c in res["cells"] if c["library"] == "test-ok")
    assert cell["verdict"] == "incomparable"
    assert next(c for c in res["cells"] if c["library"] == "ref")["verdict"] == "missing"


def test_seeds_are_pooled_per_cell(runs):
    base = read_records(runs["base"])
    seed1 = vary(base, cell__seed=1)
    cells = cells_of(base + seed1)
    (cell,) = cells.values()
    assert cell.seeds == 2 and len(cell.samples) == 60


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.heavy
def test_bad_input_exits_2_with_one_line(runs, tmp_path):
    p = _compare(tmp_path / "nope.jsonl", runs["base"])
    assert p.returncode == 2 and "results file not found" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text(open(runs["base"]).read() + "{not json\n")
    p = _compare(runs["base"], corrupt)
    assert p.returncode == 2 and "corrupt.jsonl:2: corrupt results line" in p.stderr
    schema = tmp_path / "schema.jsonl"
    rec = json.loads(open(runs["base"]).readline())
    rec["schema"] = 99
    schema.write_text(json.dumps(rec) + "\n")
    p = _compare(schema, runs["base"])
    assert p.returncode == 2 and "schema version 99" in p.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    p = _compare(runs["base"], empty)
    assert p.returncode == 2 and "no records" in p.stderr
    p = _compare(runs["base"], runs["same"], "--normalize-by", "dgl")
    assert p.returncode == 2 and "--normalize-by dgl" in p.stderr
    p = _compare(runs["base"], runs["same"], "--threshold", "1.5")
    assert p.returncode == 2 and "--threshold" in p.stderr
