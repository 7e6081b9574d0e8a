"""Plug-in adapters: an installed package registers one through the entry-point group
``gnnbench.adapters`` (docs/adapters.md) and gets list, verify, run and the reports."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from gnnbench.results import read_records
from test_cli import _one_line_error

pytestmark = pytest.mark.heavy   # real training or tools in child processes: `pytest -m 'not heavy'` leaves it out

EXAMPLE = ROOT / "examples" / "gnnbench-example-adapter"
DIST = "gnnbench-example-adapter 0.1.0"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    """The example package, installed by pip (offline) into a folder of its own, for PYTHONPATH."""
    if importlib.util.find_spec("setuptools") is None:    # the build backend; --no-build-isolation: never fetched
        pytest.fail("installing the example offline needs setuptools in this environment: pip install setuptools")
    tmp = tmp_path_factory.mktemp("plugin")
    src, site = tmp / "src", tmp / "site"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        "--no-build-isolation", "--disable-pip-version-check", "--target", str(site), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return str(site)


def fake_dist(site: Path, dist: str, entry: str, module: str, source: str) -> str:
    """A package as pip would leave it: metadata with one gnnbench.adapters entry point, and its module."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[gnnbench.adapters]\n{entry}\n")
    (site / f"{module}.py").write_text(source)
    return str(site)


def test_list_shows_the_plugin_with_its_version(example_site):
    p = run_cli("list", "--no-check", env={"PYTHONPATH": example_site})
    assert p.returncode == 0 and p.stderr == "", p.stderr
    line = next(ln for ln in p.stdout.splitlines() if ln.split()[:1] == ["dense-gcn"])
    assert f"[plug-in: {DIST}]" in line
    # what `gnnbench list` shows as its status: available() in a child process
    code = "from gnnbench.cli import _availability; print(_availability('dense-gcn'))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": example_site}, timeout=300)
    assert p.stdout.strip() == version("torch"), p.stdout + p.stderr


def test_verify_passes_for_the_example(example_site, data_dir):
    p = run_cli("verify", "--libs", "dense-gcn", "--models", "gcn", "--datasets", "cora", "--threads", "1",
                "--data-dir", data_dir, env={"PYTHONPATH": example_site})
    assert p.returncode == 0, p.stdout + p.stderr
    row = next(ln for ln in p.stdout.splitlines() if ln.startswith("| dense-gcn |"))
    assert row.endswith("| passed |"), row
    assert f"dense-gcn: plug-in adapter from the package {DIST}" in p.stdout


def test_run_records_the_plugin_and_the_harness_scores_it(example_site, data_dir, tmp_path):
    out = tmp_path / "r.jsonl"
    p = run_cli("run", "--libs", "dense-gcn", "--models", "gcn", "--datasets", "cora", "--epochs", "100",
                "--warmup", "2", "--threads", "1", "--data-dir", data_dir, "--out", out,
                env={"PYTHONPATH": example_site})
    assert p.returncode == 0, p.stderr
    (rec,) = read_records(out)
    assert rec["status"] == "ok", rec.get("error") or rec.get("accuracy")
    assert len(rec["times"]["epoch_ms"]) == 100 and rec["accuracy_check"]["in_band"]
    assert rec["plugin"] == {"distribution": "gnnbench-example-adapter", "version": "0.1.0",
                             "entry_point": "gnnbench_example_adapter:DenseGCNAdapter"}
    assert rec["notes"][0].startswith(f"plug-in adapter from the package {DIST}")
    assert rec["library_version"] == version("torch")
    assert rec["env"]["library_versions"]["gnnbench-example-adapter"] == "0.1.0"
    assert f"**dense-gcn**: plug-in adapter from the package {DIST}" in p.stdout    # the report says so


GOOD = "from gnnbench.adapters.testing import FakeAdapter\n\nclass Good(FakeAdapter):\n    name = 'good'\n"


def test_child_finds_a_plugin_the_parent_found_on_sys_path(tmp_path, data_dir):
    """Not on PYTHONPATH: put on sys.path at run time. The child gets the folder from the runner."""
    site = fake_dist(tmp_path / "site", "good-plugin", "good = good_mod:Good", "good_mod", GOOD)
    out = tmp_path / "r.jsonl"
    code = f"import sys; sys.path.insert(0, {site!r}); from gnnbench.cli import main; main()"
    p = subprocess.run([sys.executable, "-c", code, "run", "--libs", "good", "--models", "gcn", "--datasets", "cora",
                        "--epochs", "2", "--warmup", "0", "--data-dir", data_dir, "--out", str(out), "--no-report"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    (rec,) = read_records(out)
    assert rec["status"] in ("ok", "accuracy_mismatch"), rec["error"]
    assert rec["plugin"]["distribution"] == "good-plugin"


@pytest.mark.parametrize("source,why", [
    ("raise RuntimeError('boom at import')\n", "failed to load: RuntimeError: boom at import (fix or uninstall broken-plugin)"),
    ("import sys\nsys.exit(3)\n", "failed to load: SystemExit: 3"),
    ("import no_such_module_here\n", "failed to load: ModuleNotFoundError: No module named 'no_such_module_here'"),
    ("Broken = 42\n", "is not a subclass of gnnbench.protocol.Adapter"),
    ("", "failed to load: AttributeError"),
])
def test_a_broken_plugin_is_one_line_exit_2_before_any_run(tmp_path, data_dir, source, why):
    site = fake_dist(tmp_path / "site", "broken-plugin", "broken = broken_mod:Broken", "broken_mod", source)
    env = {"PYTHONPATH": site, "GNNBENCH_TEST_ADAPTERS": "1"}
    head = "plug-in adapter 'broken' from broken-plugin 0.1 (entry point broken_mod:Broken)"
    out = tmp_path / "r.jsonl"
    for cmd in ("run", "verify"):
        p = run_cli(cmd, "--libs", "test-ok,broken", "--models", "gcn", "--datasets", "cora", "--data-dir", data_dir,
                    *(["--epochs", "2", "--out", out] if cmd == "run" else []), env=env)
        _one_line_error(p, 2, f"{head} {why}")
        assert p.stdout == "" and not out.exists()      # test-ok did not run first


def test_a_broken_plugin_harms_nothing_else(tmp_path, data_dir):
    site = fake_dist(tmp_path / "site", "broken-plugin", "broken = broken_mod:Broken", "broken_mod",
                     "raise RuntimeError('boom at import')\n")
    env = {"PYTHONPATH": site, "GNNBENCH_TEST_ADAPTERS": "1"}
    for args in (["--help"], ["list", "--no-check"]):        # neither imports the plug-in
        p = run_cli(*args, env=env)
        assert p.returncode == 0 and p.stderr == "", p.stderr
    assert "broken " in run_cli("list", "--no-check", env=env).stdout
    p = run_cli("run", "--libs", "test-ok", "--models", "gcn", "--datasets", "cora", "--epochs", "2", "--warmup", "0",
                "--data-dir", data_dir, "--out", tmp_path / "r.jsonl", "--no-report", env=env)
    assert p.returncode == 0, p.stderr
    code = "from gnnbench.cli import _availability; print(_availability('broken'))"   # list's status column
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, **env})
    assert p.stdout.startswith("unavailable: plug-in adapter 'broken' from broken-plugin 0.1"), p.stdout + p.stderr
    assert "RuntimeError: boom at import" in p.stdout


def test_a_plugin_cannot_shadow_a_builtin(tmp_path):
    """The built-in wins; one warning line names the package. Its module would raise if imported."""
    site = fake_dist(tmp_path, "evil-plugin", "pyg = evil_mod:Evil", "evil_mod", "raise RuntimeError('imported')\n")
    p = run_cli("list", "--no-check", env={"PYTHONPATH": site})
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().splitlines() == [
        "gnnbench: warning: plug-in adapter 'pyg' from evil-plugin 0.1 ignored: 'pyg' is a built-in adapter's "
        "name (give the entry point another name)"]
    line = next(ln for ln in p.stdout.splitlines() if ln.split()[:1] == ["pyg"])
    assert "plug-in" not in line
    code = ("import json; from gnnbench.adapters import adapter_class, registry;"
            "print(json.dumps([registry()['pyg'], adapter_class('pyg').__module__]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, "PYTHONPATH": site})
    assert json.loads(p.stdout) == ["gnnbench.adapters.pyg:PyGAdapter", "gnnbench.adapters.pyg"], p.stderr
