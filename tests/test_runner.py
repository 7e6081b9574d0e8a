"""Integration: real child processes, real records."""
import json
import os

import pytest

from conftest import run_cli
from gnnbench.results import read_records

pytestmark = pytest.mark.heavy   # real training or tools in child processes: `pytest -m 'not heavy'` leaves it out

TEST_ENV = {"GNNBENCH_TEST_ADAPTERS": "1"}


def test_crash_hang_raise_missing_are_recorded_and_the_suite_goes_on(tmp_path, data_dir):
    out = tmp_path / "r.jsonl"
    p = run_cli("run", "--libs", "test-crash,test-hang,test-raise,test-missing,test-ok", "--models", "gcn",
                "--datasets", "cora", "--epochs", "5", "--warmup", "1", "--timeout", "20",
                "--data-dir", data_dir, "--out", out, env=TEST_ENV)
    assert p.returncode == 0, p.stderr
    recs = {r["cell"]["library"]: r for r in read_records(out)}
    assert recs["test-crash"]["status"] == "failed" and "SIGABRT" in recs["test-crash"]["error"]
    assert recs["test-hang"]["status"] == "timeout" and recs["test-hang"]["wall_s"] < 60
    assert recs["test-raise"]["status"] == "failed" and "deliberate failure" in recs["test-raise"]["error"]
    assert recs["test-missing"]["status"] == "skipped"
    assert "pip install some-missing-library" in recs["test-missing"]["error"]
    ok = recs["test-ok"]
    assert ok["status"] in ("ok", "accuracy_mismatch") and len(ok["times"]["epoch_ms"]) == 5
    assert "| test-crash | gcn |" in p.stdout and "failed" in p.stdout


def test_resume_runs_only_missing(tmp_path, data_dir):
    out = tmp_path / "r.jsonl"
    args = ["run", "--libs", "test-ok", "--models", "gcn,sage", "--datasets", "cora", "--epochs", "3",
            "--warmup", "0", "--data-dir", data_dir, "--out", out]
    assert run_cli(*args, "--repeats", "1", env=TEST_ENV).returncode == 0
    first = read_records(out)
    assert len(first) == 2
    p = run_cli(*args, "--repeats", "2", "--resume", env=TEST_ENV)
    assert p.returncode == 0, p.stderr
    recs = read_records(out)
    assert len(recs) == 4, "only the two seed-1 runs are new"
    assert recs[:2] == first, "earlier records untouched"
    assert sorted(r["cell"]["seed"] for r in recs[2:]) == [1, 1]
    assert run_cli(*args, "--repeats", "2", "--resume", env=TEST_ENV).returncode == 0
    assert len(read_records(out)) == 4


def test_memory_limit_records_oom(tmp_path, data_dir):
    out = tmp_path / "r.jsonl"
    p = run_cli("run", "--libs", "test-memhog,test-ok", "--models", "gcn", "--datasets", "cora", "--epochs", "2",
                "--warmup", "0", "--memory-limit", "2", "--data-dir", data_dir, "--out", out, env=TEST_ENV)
    assert p.returncode == 0, p.stderr
    recs = {r["cell"]["library"]: r for r in read_records(out)}
    assert recs["test-memhog"]["status"] == "oom" and "during training" in recs["test-memhog"]["error"], recs["test-memhog"]
    assert recs["test-ok"]["status"] in ("ok", "accuracy_mismatch")


def test_rss_limit_kills_at_the_resident_limit_and_records_oom(tmp_path, data_dir):
    """The parent's RSS watchdog: the hog (8 GiB, touched) dies near 1 GiB; the next cell still runs."""
    out = tmp_path / "r.jsonl"
    p = run_cli("run", "--libs", "test-memhog,test-ok", "--models", "gcn", "--datasets", "cora", "--epochs", "2",
                "--warmup", "0", "--rss-limit", "1", "--data-dir", data_dir, "--out", out, env=TEST_ENV)
    assert p.returncode == 0, p.stderr
    recs = {r["cell"]["library"]: r for r in read_records(out)}
    hog = recs["test-memhog"]
    assert hog["status"] == "oom" and "--rss-limit, during training" in hog["error"], hog
    assert 1024 < hog["memory"]["peak_rss_mb"] < 8 * 1024, hog["memory"]
    assert hog["config"]["rss_limit_gb"] == 1
    assert recs["test-ok"]["status"] in ("ok", "accuracy_mismatch")
    assert recs["test-ok"]["memory"]["peak_rss_mb"] < 1024


def test_rss_limit_keeps_the_timeout(tmp_path, data_dir):
    out = tmp_path / "r.jsonl"
    p = run_cli("run", "--libs", "test-hang", "--models", "gcn", "--datasets", "cora", "--epochs", "2",
                "--warmup", "0", "--rss-limit", "4", "--timeout", "5", "--data-dir", data_dir, "--out", out,
                env=TEST_ENV)
    assert p.returncode == 0, p.stderr
    (rec,) = read_records(out)
    assert rec["status"] == "timeout" and 5 <= rec["wall_s"] < 30, rec
    assert "during training" in rec["error"]


def test_torn_last_line_moves_to_rejected_and_new_records_still_append(tmp_path):
    from gnnbench.results import append_record
    p = tmp_path / "r.jsonl"
    p.write_text('{"schema": 1, "cell": {}, "key": "a"}\n{"schema": 1, "ce')
    append_record(p, {"schema": 1, "cell": {}, "key": "b"})
    assert [json.loads(ln)["key"] for ln in p.read_text().splitlines()] == ["a", "b"]
    assert (tmp_path / "r.jsonl.rejected").read_text() == '# r.jsonl:2: torn last line (an interrupted write)\n{"schema": 1, "ce\n'
    # a whole record that only lacks its newline is kept
    p.write_text(p.read_text() + '{"schema": 1, "cell": {}, "key": "c"}')
    append_record(p, {"schema": 1, "cell": {}, "key": "d"})
    assert [json.loads(ln)["key"] for ln in p.read_text().splitlines()] == ["a", "b", "c", "d"]


def test_pyg_run_on_cora_writes_records_and_report(tmp_path, data_dir):
    out = tmp_path / "pyg.jsonl"
    p = run_cli("run", "--libs", "pyg", "--models", "gcn", "--datasets", "cora", "--epochs", "100",
                "--warmup", "3", "--repeats", "2", "--threads", "1", "--data-dir", data_dir, "--out", out)
    assert p.returncode == 0, p.stderr
    recs = read_records(out)
    assert len(recs) == 2 and {r["cell"]["seed"] for r in recs} == {0, 1}
    for r in recs:
        assert r["status"] == "ok", r.get("error")
        assert len(r["times"]["epoch_ms"]) == 100 and r["times"]["median_ms"] > 0
        assert r["times"]["p25_ms"] <= r["times"]["median_ms"] <= r["times"]["p75_ms"]
        assert r["config"]["threads"] == 1 and r["env"]["threads"] == 1
        assert r["dataset"]["fingerprint"].startswith("sha256:") and r["dataset"]["nodes"] == 2708
        assert r["spec"]["name"] == "gcn" and r["spec"]["hidden"] == 16
        assert r["params"] == 1433 * 16 + 16 + 16 * 7 + 7
        assert r["env"]["library_versions"]["torch_geometric"]
        assert 0.75 < r["accuracy"]["test"] < 0.85
        assert r["memory"]["peak_rss_mb"] > 50
    md = out.with_suffix(".md").read_text()
    assert "## cora on cpu" in md and "| pyg | gcn |" in md and "(n=2)" in md
    csv = run_cli("report", out, "--format", "csv").stdout.splitlines()
    assert csv[0].startswith("dataset,device,library,model") and len(csv) == 2
    assert json.loads(run_cli("report", out, "--format", "json").stdout)[0]["seeds"] == 2


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_interrupting_a_suite_kills_its_child_and_keeps_finished_records(tmp_path, data_dir, sig):
    """The child runs in its own session, so neither Ctrl-C nor a SIGTERM to gnnbench reaches it:
    the runner must take it down, say so in one line and keep what was already appended."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT
    out, pidfile = tmp_path / "r.jsonl", tmp_path / "child.pid"
    env = {**os.environ, **TEST_ENV, "GNNBENCH_TEST_PIDFILE": str(pidfile)}
    parent = subprocess.Popen([sys.executable, "-m", "gnnbench", "run", "--libs", "test-ok,test-hang", "--models",
                               "gcn", "--datasets", "cora", "--epochs", "2", "--warmup", "0", "--timeout", "300",
                               "--data-dir", data_dir, "--out", str(out)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              # a shell that starts pytest in the background (nohup, `&`) leaves SIGINT
                              # ignored, and an ignored signal stays ignored across exec: as a user's
                              # terminal would, give gnnbench the default disposition
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    child = int(pidfile.read_text())
    parent.send_signal(getattr(signal, sig))
    _, err = parent.communicate(timeout=60)
    assert parent.returncode == 130 and err.strip().splitlines()[-1].startswith("gnnbench: error: interrupted"), err
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert [r["cell"]["library"] for r in read_records(out)] == ["test-ok"]


def test_library_allocation_failures_count_as_oom():
    import torch

    from gnnbench.child import is_oom
    with pytest.raises(RuntimeError) as info:
        torch.empty(2**50, dtype=torch.uint8)          # what PyG's full-graph SAGE hit at 8M nodes
    assert is_oom(info.value), str(info.value)
    assert is_oom(MemoryError()) and not is_oom(RuntimeError("shape mismatch")) and not is_oom(ValueError("x"))
    ResourceExhaustedError = type("ResourceExhaustedError", (Exception,), {})
    assert is_oom(ResourceExhaustedError("OOM when allocating tensor with shape[80000000,128]"))


def test_memory_record_keeps_the_load_transient_apart(tmp_path, data_dir):
    """Building a row-normalised synthetic graph needs temporaries the library never sees: the
    record keeps that load peak apart, and the after-load peak (VmHWM reset) excludes it."""
    out = tmp_path / "r.jsonl"
    p = run_cli("run", "--libs", "test-ok", "--models", "gcn", "--datasets",
                "synthetic:nodes=300000,avg_degree=4,features=128,classes=4", "--epochs", "2", "--warmup", "0",
                "--data-dir", data_dir, "--out", out, env=TEST_ENV)
    assert p.returncode == 0, p.stderr
    (rec,) = read_records(out)
    m = rec["memory"]
    assert m["load_peak_rss_mb"] <= m["peak_rss_mb"] and m["peak_rss_after_load_mb"] <= m["peak_rss_mb"], m
    # the fake adapter allocates almost nothing: after loading, only the resident dataset remains
    assert m["peak_rss_after_load_mb"] < m["load_peak_rss_mb"] - 50, m


def test_the_record_builder_turns_fixed_measurements_into_the_exact_record():
    """child.build_record is pure: these measurements give exactly this dict (and so the same JSON
    for the same measurements, whichever task's runner took them)."""
    from gnnbench.child import Measurements, build_record
    out = {"status": "failed", "error": "", "notes": ["n"], "available_s": 0.5, "library_version": "1",
           "versions": {"lib": "1"}, "load_s": 0.25, "dataset": {"fingerprint": "f"}, "params": 10}
    m = Measurements(epochs=[1_500_000, 2_000_000, 3_250_000], warm=[], batching=[500_000, 250_000, 750_000],
                     batching_name="sample", batches_per_epoch=4,
                     batch_stats=[{"seed_nodes": 2, "edges": 5}, {"seed_nodes": 4, "edges": 6}],
                     setup_ns=1_250_000_000, infer=[123_456_789, 500_000])
    memory = {"peak_rss_mb": 2.0, "device_peak_mb": None, "load_peak_rss_mb": 1.0, "peak_rss_after_load_mb": 1.5}
    acc = {"train": 1.0, "val": 0.5, "test": 0.25}
    rec = build_record(out, m, acc, {"low": 0.7, "high": 0.8}, False, memory, {"pid": 1})
    assert rec == {
        "status": "accuracy_mismatch", "error": "", "notes": ["n"], "available_s": 0.5, "library_version": "1",
        "versions": {"lib": "1"}, "load_s": 0.25, "dataset": {"fingerprint": "f"}, "params": 10,
        "times": {"epoch_ms": [1.5, 2.0, 3.25], "median_ms": 2.0, "p25_ms": 1.75, "p75_ms": 2.625, "mean_ms": 2.25,
                  "std_ms": 0.9013878188659973, "min_ms": 1.5, "max_ms": 3.25,
                  "first_epoch_ms": 1.5, "warmup_ms": [1.5], "setup_s": 1.25,
                  "infer_ms": [123.4568, 0.5], "infer_median_ms": 61.9783945,
                  "sample_ms": [0.5, 0.25, 0.75], "sample_median_ms": 0.5, "batches_per_epoch": 4},
        "sampled": {"edges_per_batch_mean": 5.5, "seed_nodes_per_batch_mean": 3.0, "batches": 2},
        "accuracy": acc, "accuracy_check": {"low": 0.7, "high": 0.8, "in_band": False},
        "memory": memory, "isolation": {"pid": 1}}
    assert list(rec) == ["status", "error", "notes", "available_s", "library_version", "versions", "load_s",
                         "dataset", "params", "times", "sampled", "accuracy", "accuracy_check", "memory", "isolation"]
    assert list(rec["times"])[-3:] == ["sample_ms", "sample_median_ms", "batches_per_epoch"]
    assert out["status"] == "failed"          # the input is not changed
    # a full-batch run: no batching, no sampled sizes; time to accuracy makes the status ok; diverged logits
    tta = {"reached": True}
    rec = build_record(out, Measurements(epochs=[2_000_000], warm=[], tta=tta, setup_ns=0, infer=[1_000_000]),
                       {"train": None, "val": None, "test": None}, None, None, memory, {})
    assert rec["times"]["warmup_ms"] == [2.0] and "sample_ms" not in rec["times"] and "sampled" not in rec
    assert rec["accuracy_check"] is None and rec["time_to_accuracy"] is tta
    assert rec["status"] == "accuracy_mismatch" and rec["error"].startswith("the model's logits are not finite")
