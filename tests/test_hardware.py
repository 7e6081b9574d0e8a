"""Rows measured on different hardware are never ranked against or divided by each other.

A real record of the test-ok adapter, and a copy of it posing as a second library ("pyg", epochs 2x
slower); copies of those get another CPU model (as a record from another Ray node or machine carries
in its env).
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli

from gnnbench.compare import compare
from gnnbench.errors import UsageError
from gnnbench.hardware import hardware_of
from gnnbench.history import points
from gnnbench.report import rows, to_markdown
from gnnbench.results import read_records

OTHER = "Other CPU 9000"


@pytest.fixture(scope="module")
def files(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp("hw")
    here = d / "here.jsonl"
    p = run_cli("run", "--libs", "test-ok", "--models", "gcn", "--datasets", "cora", "--epochs", "12",
                "--warmup", "1", "--threads", "1", "--data-dir", data_dir, "--out", here, "--no-report",
                env={"GNNBENCH_TEST_ADAPTERS": "1", "GNNBENCH_TEST_SLEEP_MS": "2"}, timeout=240)
    assert p.returncode == 0, p.stderr
    (ok,) = read_records(here)
    # the fake adapter's logistic regression is no GCN: give it the published accuracy, so that its rows
    # are `ok` and ranked (rows out of the accuracy band never count as fastest)
    from gnnbench.published import reference
    ok["accuracy"]["test"] = reference("gcn", "cora")["test"] / 100
    ok["status"] = "ok"
    here.write_text(json.dumps(ok) + "\n")
    second = copy.deepcopy(ok)
    second["cell"]["library"] = "pyg"
    second["key"] = ok["key"].replace("test-ok/", "pyg/", 1)
    second["times"]["epoch_ms"] = [2 * t for t in ok["times"]["epoch_ms"]]
    with open(here, "a") as fh:
        fh.write(json.dumps(second) + "\n")
    recs = read_records(here)

    def elsewhere(r, factor):
        r = copy.deepcopy(r)
        r["env"]["cpu_model"] = OTHER
        r["times"]["epoch_ms"] = [factor * t for t in r["times"]["epoch_ms"]]
        return r

    there = d / "there.jsonl"
    there.write_text("".join(json.dumps(elsewhere(r, 3.0)) + "\n" for r in recs))
    # one file holding both: test-ok measured here, pyg on the other machine (and 10x slower)
    mixed = d / "mixed.jsonl"
    mixed.write_text("".join(json.dumps(r if r["cell"]["library"] == "test-ok" else elsewhere(r, 10.0)) + "\n"
                             for r in recs))
    return {"here": here, "there": there, "mixed": mixed, "records": recs}


@pytest.mark.heavy
def test_report_splits_tables_by_hardware_and_ranks_within_each(files):
    recs = read_records(files["mixed"])
    rs = rows(recs)
    assert {r["hardware"] for r in rs} == {hardware_of(files["records"][0]), f"{OTHER}, {recs[0]['env']['cores']} cores"}
    # each row is alone on its hardware: each is the fastest of its own table, 1.00x
    assert [r["relative"] for r in rs] == [1.0, 1.0]
    md = to_markdown(recs)
    heads = [line for line in md.splitlines() if line.startswith("## cora on cpu")]
    assert len(heads) == 2 and any(OTHER in h for h in heads), heads
    assert "Hardware (2; each has its own tables" in md
    assert {r["status"] for r in rs} == {"ok"}
    # the same records on one hardware: one table, ranked together (the slower one is > 1x)
    same = rows(files["records"])
    assert len({r["hardware"] for r in same}) == 1
    assert sorted(r["relative"] for r in same) == [1.0, pytest.approx(2.0, rel=1e-9)]


@pytest.mark.heavy
def test_compare_across_hardware_is_an_error_unless_normalized(files):
    p = run_cli("compare", files["here"], files["there"], timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "measured on different hardware" in lines[0] and "--normalize-by" in lines[0], p.stderr
    # normalised by test-ok on each side's own hardware: 3x slower everywhere is no change
    p = run_cli("compare", files["here"], files["there"], "--normalize-by", "test-ok", "--format", "json", timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    (other,) = [c for c in res["cells"] if c["library"] == "pyg"]
    assert other["verdict"] == "unchanged" and other["normalized"] and other["ratio"] == pytest.approx(1.0, abs=0.02)
    assert other["raw_ratio"] == pytest.approx(3.0, rel=1e-6)
    assert other["hardware"]["current"].startswith(OTHER)


def test_normalization_never_divides_by_a_library_on_other_hardware(files):
    base, mixed = files["records"], read_records(files["mixed"])
    assert hardware_of(mixed[0]) != hardware_of(mixed[1])
    with pytest.raises(UsageError, match="different hardware"):
        compare(base, mixed)
    res = compare(base, mixed, normalize_by="test-ok")
    (other,) = [c for c in res["cells"] if c["library"] == "pyg"]
    # pyg is the only library on its hardware in `mixed`: there is no reference to divide by
    assert other["verdict"] == "incomparable" and other["ratio"] is None


def test_history_keeps_one_series_per_hardware(files):
    series = points([(str(files["here"]), read_records(files["here"])),
                     (str(files["there"]), read_records(files["there"]))])
    names = sorted(series)
    assert len(names) == 4 and all(" @ " in n for n in names), names
    assert all(len(pts) == 1 for pts in series.values()), "no point follows one from other hardware"


def test_native_ratios_table_per_hardware(files):
    recs = [json.loads(line) for line in files["mixed"].read_text().splitlines()]
    for r in recs:       # pose as native vs a library: test-ok is 'native' here
        if r["cell"]["library"] == "test-ok":
            r["cell"]["library"] = "native"
    path = files["mixed"].with_name("native.jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    p = subprocess.run([sys.executable, "benchmarks/native_ratios.py", str(path)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("### ") == 2 and OTHER in p.stdout
    # native and the library are on different hardware: no ratio row in either table
    assert "| cora | cpu | gcn |" not in p.stdout, p.stdout
