"""Fault tests, results files: nothing measured is lost, with the real CLI and real child processes.

Unwritable and full filesystems are real: small tmpfs mounts made and unmounted by each test (the
tests run as root; where mounting is impossible they fail, they do not skip)."""
import json
import math
import os
import subprocess
from contextlib import contextmanager

import pytest

from conftest import run_cli

TEST_ENV = {"GNNBENCH_TEST_ADAPTERS": "1"}
PAGE = 4096


def _args(data_dir, out, *extra):
    return ["run", "--libs", "test-ok", "--models", "gcn", "--datasets", "cora", "--epochs", "2", "--warmup", "0",
            "--data-dir", data_dir, "--out", out, "--no-report", *extra]


def _lines(text):
    return [ln for ln in text.splitlines() if ln.strip()]


def _one_line_error(p, *parts):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = _lines(p.stderr)
    assert len(lines) == 1 and lines[0].startswith("gnnbench: error: "), p.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _records(path):
    return [json.loads(ln) for ln in _lines(path.read_text())]


@contextmanager
def tmpfs(path, size, ro=False):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}" + (",ro" if ro else ""), "tmpfs", str(path)],
                   check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.mark.heavy
def test_out_md_is_refused_and_reports_never_overwrite_their_inputs(tmp_path, data_dir):
    md = tmp_path / "x.md"
    _one_line_error(run_cli(*_args(data_dir, md)[:-1], env=TEST_ENV), f"--out {md} is a report path")
    assert not md.exists()
    out = tmp_path / "r.jsonl"
    assert run_cli(*_args(data_dir, out), env=TEST_ENV).returncode == 0
    before = out.read_bytes()
    for args in (["report", out, "--out", out], ["history", out, "--out", out, "--no-plot"],
                 ["compare", out, out, "--out", tmp_path / "." / "r.jsonl"]):
        _one_line_error(run_cli(*args), f"{out}", "is the same file as")
        assert out.read_bytes() == before


def test_read_only_output_fails_before_any_run(tmp_path, data_dir):
    side = tmp_path / "tmp"
    side.mkdir()
    ro = tmp_path / "ro"
    with tmpfs(ro, "64k"):
        (ro / "old.jsonl").write_bytes(b"")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        for out in (ro / "sub" / "r.jsonl", ro / "old.jsonl"):
            p = run_cli(*_args(data_dir, out), env={**TEST_ENV, "TMPDIR": str(side)})
            _one_line_error(p, str(out), "Read-only file system")
            assert "results:" not in p.stderr
    assert not list(side.rglob("*.unsaved-*")), "no run happened, so no record had to be kept aside"


@pytest.mark.heavy
def test_full_filesystem_mid_run_keeps_every_record_and_resume_completes(tmp_path, data_dir):
    probe = tmp_path / "probe.jsonl"
    assert run_cli(*_args(data_dir, probe), env=TEST_ENV).returncode == 0
    pages = math.ceil(probe.stat().st_size / PAGE)      # room for one record, not for three
    side = tmp_path / "tmp"
    side.mkdir()
    with tmpfs(tmp_path / "small", "128k") as fs:
        filler = fs / "filler"
        free = os.statvfs(fs).f_bavail
        filler.write_bytes(b"\0" * (free - pages) * PAGE)
        out = fs / "r.jsonl"
        p = run_cli(*_args(data_dir, out, "--repeats", "3"), env={**TEST_ENV, "TMPDIR": str(side)})
        line = _one_line_error(p, f"cannot write results file {out}", "No space left on device", "saved in")
        kept = _records(out)                  # whole records only: the partial line was taken back
        (side_file,) = side.glob("r.jsonl.unsaved-*.jsonl")
        assert str(side_file) in line
        (aside,) = _records(side_file)
        assert aside["status"] in ("ok", "accuracy_mismatch") and aside["key"] not in {r["key"] for r in kept}
        assert 1 <= len(kept) < 3
        filler.unlink()                       # space freed: --resume completes the suite
        p = run_cli(*_args(data_dir, out, "--repeats", "3", "--resume"), env=TEST_ENV)
        assert p.returncode == 0, p.stderr
        final = _records(out)
        assert final[:len(kept)] == kept and len(final) == 3
        assert aside["key"] in {r["key"] for r in final}


def test_record_is_printed_when_no_side_file_can_be_written(tmp_path, monkeypatch, capsys):
    import tempfile

    from gnnbench.results import WriteError, append_record
    with tmpfs(tmp_path / "ro", "64k", ro=True) as ro:
        monkeypatch.setattr(tempfile, "tempdir", str(ro))          # the temp folder is read-only too
        record = {"schema": 1, "cell": {}, "key": "k", "loss": float("nan")}
        with pytest.raises(WriteError, match=f"cannot write results file {ro}/r.jsonl: Read-only.*printed above"):
            append_record(ro / "r.jsonl", record)
    printed = json.loads(capsys.readouterr().err)
    assert printed["key"] == "k" and printed["loss"] is None and "loss" in printed["notes"][0]


@pytest.mark.heavy
def test_torn_last_line_is_tolerated_moved_aside_and_resume_completes(tmp_path, data_dir):
    out = tmp_path / "r.jsonl"
    assert run_cli(*_args(data_dir, out), env=TEST_ENV).returncode == 0
    good = out.read_bytes()
    torn = good[:150]                         # a writer killed mid-line
    out.write_bytes(good + torn)
    p = run_cli("report", out)
    assert p.returncode == 0, p.stderr
    (warning,) = _lines(p.stderr)
    assert warning.startswith("gnnbench: warning: ") and f"{out}:2: torn last line" in warning
    p = run_cli(*_args(data_dir, out, "--repeats", "2", "--resume"), env=TEST_ENV)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes().startswith(good) and [r["cell"]["seed"] for r in _records(out)] == [0, 1]
    rejected = (tmp_path / "r.jsonl.rejected").read_bytes()
    assert b"r.jsonl:2:" in rejected and torn in rejected


@pytest.mark.heavy
def test_corruption_in_the_middle_names_repair_and_repair_fixes_it(tmp_path, data_dir):
    out = tmp_path / "r.jsonl"
    assert run_cli(*_args(data_dir, out, "--repeats", "2"), env=TEST_ENV).returncode == 0
    first, second = out.read_bytes().splitlines(keepends=True)
    nokey = json.dumps({"schema": 1, "cell": {}}).encode() + b"\n"
    out.write_bytes(first + b'{"schema": 1, "cell": {"libr\n' + second + nokey + b"\xff\xfe garbage\n" + first)
    for cmd in (["report", out], _args(data_dir, out)):
        _one_line_error(run_cli(*cmd, env=TEST_ENV), f"{out}:2: corrupt results line", f"gnnbench repair {out}")
    p = run_cli("repair", out)
    assert p.returncode == 0, p.stderr
    assert "3 good record(s) kept, 3 bad line(s) moved to" in p.stderr
    assert out.read_bytes() == first + second + first
    rejected = (tmp_path / "r.jsonl.rejected").read_bytes()
    for n, raw in ((2, b'{"schema": 1, "cell": {"libr'), (4, nokey.strip()), (5, b"\xff\xfe garbage")):
        assert f"r.jsonl:{n}:".encode() in rejected and raw in rejected
    assert run_cli("report", out).returncode == 0
    p = run_cli("repair", out)
    assert p.returncode == 0 and "nothing to repair" in p.stderr


def test_a_line_without_key_is_a_one_line_error(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps({"schema": 1, "cell": {"library": "x"}, "status": "ok"}) + "\n")
    _one_line_error(run_cli("report", out), f"{out}:1: not a gnnbench record", "gnnbench repair")


@pytest.mark.heavy
def test_nan_from_a_child_is_written_as_null_with_a_note(tmp_path, data_dir):
    out = tmp_path / "r.jsonl"
    p = run_cli("run", "--libs", "test-nan,test-ok", "--models", "gcn", "--datasets", "cora", "--epochs", "2",
                "--warmup", "0", "--data-dir", data_dir, "--out", out, env=TEST_ENV)
    assert p.returncode == 0, p.stderr
    nan, ok = _records(out)
    # NaN logits: no accuracy, and the run is not `ok` (argmax of NaNs would "predict" class 0)
    assert nan["accuracy"] == {"train": None, "val": None, "test": None}
    assert nan["status"] == "accuracy_mismatch" and "not finite" in nan["error"]
    # a NaN the library reported (its device peak memory): null in the file, named in the notes
    assert nan["memory"]["device_peak_mb"] is None
    assert any("not finite, written as null" in n and "memory.device_peak_mb" in n for n in nan["notes"])
    assert ok["cell"]["library"] == "test-ok" and ok["accuracy"]["test"] is not None
    assert "NaN" not in out.read_text()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_set_lr_not_finite_is_rejected(tmp_path, data_dir, value):
    out = tmp_path / "r.jsonl"
    _one_line_error(run_cli(*_args(data_dir, out, "--set", f"lr={value}"), env=TEST_ENV), f"--set lr={value}",
                    "gcn.lr must be a finite number > 0")
    assert not out.exists()
