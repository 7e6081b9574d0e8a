"""Fault injection on the data side (issue 13, part A), with the real CLI and real child processes:
a malicious and a tampered raw file, a missing or empty data folder, a parent killed by SIGKILL.
Every file the tests change is a copy under tmp_path."""
import hashlib
import os
import pickle
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from gnnbench.errors import DataError

TEST_ENV = {"GNNBENCH_TEST_ADAPTERS": "1"}
# downloads fail at once (a proxy on a closed port) instead of reaching the network
OFFLINE = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}
RUN = ("run", "--libs", "test-ok", "--models", "gcn", "--datasets", "cora", "--epochs", "1", "--warmup", "0")


class _Payload:
    """Unpickling this runs ``touch MARKER``: what a hostile ``ind.cora.x`` would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


@pytest.fixture
def cora_copy(tmp_path, data_dir):
    shutil.copytree(Path(data_dir, "Cora", "raw"), tmp_path / "data" / "Cora" / "raw")
    return tmp_path / "data"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _one_error_line(p, *needles):
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gnnbench: error: "), p.stderr
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    assert p.stdout == "", "the error must come before any work"


def test_malicious_pickle_never_runs_and_nothing_is_recorded(tmp_path, cora_copy, data_dir):
    marker, out = tmp_path / "pwned", tmp_path / "r.jsonl"
    bad = cora_copy / "Cora" / "raw" / "ind.cora.x"
    bad.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    p = run_cli(*RUN, "--data-dir", cora_copy, "--out", out, env={**TEST_ENV, **OFFLINE})
    _one_error_line(p, bad, _sha(bad), _sha(Path(data_dir, "Cora", "raw", "ind.cora.x")))
    assert not marker.exists(), "the pickle's payload ran"
    assert not out.exists(), "no record may be written"


def test_the_child_checks_the_files_again(tmp_path, cora_copy, monkeypatch):
    """The child loads through the same loader: started without the parent's preflight, it records
    the hash mismatch as its error and runs nothing from the file."""
    import dataclasses
    import json

    from gnnbench.config import RunConfig, Suite, expand
    marker = tmp_path / "pwned"
    bad = cora_copy / "Cora" / "raw" / "ind.cora.x"
    bad.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    monkeypatch.setenv("GNNBENCH_TEST_ADAPTERS", "1")
    (cell,) = expand(Suite("t", ["test-ok"], ["gcn"], ["cora"]))
    job = {"cell": cell.to_dict(), "config": {**dataclasses.asdict(RunConfig(epochs=1, warmup=0)), "threads": 1},
           "data_dir": str(cora_copy)}
    (tmp_path / "job.json").write_text(json.dumps(job))
    env = {**os.environ, **TEST_ENV, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "gnnbench.child", str(tmp_path / "job.json"), str(tmp_path / "out.json")],
                   cwd=ROOT, env=env, check=True, timeout=300, capture_output=True)
    rec = json.loads((tmp_path / "out.json").read_text())
    assert rec["status"] == "failed" and f"{bad} has sha256 {_sha(bad)}, expected" in rec["error"], rec
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_restricted_unpickler_alone_refuses_the_payload(tmp_path, protocol):
    """With the hash check bypassed, the unpickler itself refuses every global outside the format."""
    from gnnbench.datasets.planetoid import unpickle
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Payload(marker), protocol=protocol)
    with pytest.raises(DataError, match=r"ind\.cora\.x: UnpicklingError: refused to load (posix|os)\.system") as info:
        unpickle(data, tmp_path / "ind.cora.x")
    assert "\n" not in str(info.value)
    assert not marker.exists()
    pickle.loads(data)                 # the payload is live: the plain unpickler runs it
    assert marker.exists()


@pytest.mark.parametrize("command", ["run", "verify", "kernels"])
def test_one_flipped_byte_is_refused_by_every_entry_point(tmp_path, cora_copy, data_dir, command):
    bad = cora_copy / "Cora" / "raw" / "ind.cora.allx"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0x01       # a feature byte: the old loader read it silently
    bad.write_bytes(bytes(data))
    args = {"run": [*RUN, "--out", tmp_path / "r.jsonl"],
            "verify": ["verify", "--libs", "test-ok", "--models", "gcn", "--datasets", "cora"],
            "kernels": ["kernels", "--datasets", "cora", "--impls", "torch.sparse", "--ops", "spmm",
                        "--widths", "16", "--repeats", "1"]}[command]
    p = run_cli(*args, "--data-dir", cora_copy, env={**TEST_ENV, **OFFLINE})
    _one_error_line(p, bad, _sha(bad), _sha(Path(data_dir, "Cora", "raw", "ind.cora.allx")))
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("command", ["run", "verify"])
@pytest.mark.parametrize("how", ["--data-dir", "GNNBENCH_DATA"])
def test_missing_data_folder_is_named_before_any_run(tmp_path, command, how):
    missing, out = tmp_path / "no-such-folder", tmp_path / "r.jsonl"
    args = [*RUN, "--out", out] if command == "run" else ["verify", "--libs", "test-ok", "--models", "gcn",
                                                         "--datasets", "cora"]
    env = {**TEST_ENV, **OFFLINE, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    if how == "--data-dir":
        args += ["--data-dir", missing]
    else:
        env["GNNBENCH_DATA"] = str(missing)
    p = run_cli(*args, env=env)
    _one_error_line(p, f"data folder {missing} (from {how}) does not exist")
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_empty_data_folder_while_offline_is_named_before_any_run(tmp_path):
    empty, out = tmp_path / "empty", tmp_path / "r.jsonl"
    empty.mkdir()
    p = run_cli(*RUN, "--data-dir", empty, "--out", out,
                env={**TEST_ENV, **OFFLINE, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    _one_error_line(p, f"dataset 'cora' is not in {empty}, ", "offline")
    assert not out.exists() and list(empty.iterdir()) == []


def _alive(pid: int) -> bool:
    """Running (a zombie whose parent has not reaped it yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _start_time(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[19]


@pytest.mark.heavy
def test_sigkill_of_the_parent_leaves_no_child_and_its_temp_folder_goes_next_run(tmp_path, data_dir):
    tmp, pidfile = tmp_path / "tmp", tmp_path / "child.pid"
    tmp.mkdir()
    env = {**os.environ, **TEST_ENV, "GNNBENCH_TEST_PIDFILE": str(pidfile), "TMPDIR": str(tmp)}
    parent = subprocess.Popen([sys.executable, "-m", "gnnbench", "run", "--libs", "test-hang", "--models", "gcn",
                               "--datasets", "cora", "--epochs", "1", "--warmup", "0", "--timeout", "300",
                               "--data-dir", data_dir, "--out", str(tmp_path / "r.jsonl")],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    child = None
    try:
        deadline = time.monotonic() + 120
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            assert parent.poll() is None, "gnnbench ended before its child started training"
            time.sleep(0.2)
        child = int(pidfile.read_text())
        (left,) = [p for p in tmp.iterdir() if p.name.startswith("gnnbench-")]
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), f"child {child} outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
    assert left.is_dir(), "a SIGKILL leaves the parent no time to remove its temp folder"

    # folders the next run must keep: one without gnnbench's marker, one of a live owner (this process)
    foreign, live, reused = tmp / "gnnbench-foreign", tmp / "gnnbench-live", tmp / "gnnbench-reused"
    for d in (foreign, live, reused):
        d.mkdir()
    (live / "owner").write_text(f"{os.getpid()} {_start_time(os.getpid())}")
    (reused / "owner").write_text(f"{os.getpid()} 1")        # this pid, but another process's start time
    p = run_cli(*RUN, "--data-dir", data_dir, "--out", tmp_path / "r2.jsonl", env={**TEST_ENV, "TMPDIR": str(tmp)})
    assert p.returncode == 0, p.stderr
    assert not left.exists() and not reused.exists(), "stale temp folders stay"
    assert foreign.is_dir() and live.is_dir(), "a folder gnnbench does not own, or whose owner lives, was removed"
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith("gnnbench-")) == ["gnnbench-foreign",
                                                                                        "gnnbench-live"]


def test_tu_files_with_crlf_line_ends_load_the_same_and_a_changed_value_does_not(tmp_path, data_dir):
    """TU archives come with LF or CRLF line ends: the hash is taken with CRLF read as LF."""
    from gnnbench.datasets import load_graph, preflight
    raw = tmp_path / "MUTAG" / "raw"
    shutil.copytree(Path(data_dir, "MUTAG", "raw"), raw)
    for f in raw.glob("MUTAG_*.txt"):
        f.write_bytes(f.read_bytes().replace(b"\n", b"\r\n"))
    preflight(["mutag"], tmp_path)
    assert load_graph("mutag", tmp_path).fingerprint() == load_graph("mutag", data_dir).fingerprint()
    labels = raw / "MUTAG_graph_labels.txt"
    labels.write_bytes(labels.read_bytes().replace(b"-1\r\n", b"1\r\n", 1))   # one graph relabelled
    with pytest.raises(DataError, match=r"MUTAG_graph_labels.txt has sha256 [0-9a-f]{64}, expected a1518ea3"):
        preflight(["mutag"], tmp_path)


def test_a_tu_download_is_hash_checked_before_it_is_saved(tmp_path, data_dir, monkeypatch):
    """A fake 'network' serving MUTAG as a zip (CRLF line ends, as some archives have): saved into
    the cache and loaded; the same zip with one value changed is refused and nothing is saved."""
    import io
    import zipfile

    from gnnbench.datasets import download, load_graph

    def archive(change=False):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for f in sorted(Path(data_dir, "MUTAG", "raw").glob("MUTAG_*.txt")):
                data = f.read_bytes().replace(b"\n", b"\r\n")
                if change and f.name == "MUTAG_A.txt":
                    data = data.replace(b"2, 1", b"2, 3", 1)
                zf.writestr(f"MUTAG/{f.name}", data)
        return buf.getvalue()
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(download, "_fetch", lambda url, timeout=30.0: archive())
    assert load_graph("mutag", tmp_path / "empty").fingerprint() == load_graph("mutag", data_dir).fingerprint()
    assert (tmp_path / "xdg" / "gnnbench" / "MUTAG" / "raw" / "MUTAG_A.txt").exists()

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg2"))
    monkeypatch.setattr(download, "_fetch", lambda url, timeout=30.0: archive(change=True))
    with pytest.raises(DataError, match=r"downloaded https://\S+MUTAG.zip: .*MUTAG_A.txt has sha256 [0-9a-f]{64}, "
                                        r"expected d9656ca7.*not saved"):
        load_graph("mutag", tmp_path / "empty")
    assert not (tmp_path / "xdg2" / "gnnbench" / "MUTAG").exists()


def test_spawn_still_runs_where_prctl_is_unavailable(tmp_path, data_dir, monkeypatch):
    """Off Linux there is no prctl: the parent-death signal is then skipped, and the run goes on."""
    import dataclasses

    from gnnbench import runner
    from gnnbench.config import RunConfig, Suite, expand
    monkeypatch.setenv("GNNBENCH_TEST_ADAPTERS", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(runner.tempfile, "tempdir", None)      # re-read TMPDIR
    monkeypatch.setattr(runner, "_prctl", lambda: None)
    (cell,) = expand(Suite("t", ["test-ok"], ["gcn"], ["cora"]))
    job = {"cell": cell.to_dict(), "config": {**dataclasses.asdict(RunConfig(epochs=1, warmup=0)), "threads": 1},
           "data_dir": data_dir}
    rc, child, tail, _, _ = runner.spawn(job, runner.child_env(cell, 1), 1, 300)
    assert rc == 0 and child["status"] in ("ok", "accuracy_mismatch"), (rc, child, tail)
    assert [p for p in tmp_path.iterdir() if p.name.startswith("gnnbench-")] == [], "temp folder removed"
