"""A non-editable install works outside the source tree: suites and data files ship in the package.

Builds the project from a copy of its sources (so no build/ or *.egg-info is left in the checkout and
no stale build/lib can leak in), installs it with pip --target into a temp folder, and from a working
directory outside the repository imports gnnbench from there alone: `quick` must resolve, every
suite must load, and the package's data yaml must be read from the installed copy.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "gnnbench", "adapters", "configs")

CHECK = r"""
import sys
from pathlib import Path
target = Path(sys.argv[1]).resolve()
import gnnbench, gnnbench.config as config, gnnbench.published as published, gnnbench.adapters
for mod in (gnnbench, gnnbench.adapters):
    assert Path(mod.__file__).resolve().is_relative_to(target), f"{mod.__name__} from {mod.__file__}, not {target}"
path = config.resolve_suite_path("quick")
assert Path(path).resolve().is_relative_to(target), f"quick suite from {path}, not {target}"
suite = config.load_suite("quick")
assert suite.name == "quick" and "cora" in suite.datasets
names = config.suite_names()
assert {"quick", "citation", "ci"} <= set(names), names
for name in names:
    config.load_suite(name)
assert Path(published.PATH).resolve().is_relative_to(target), published.PATH
assert published.reference("gcn", "cora") is not None
print("ok", len(names), "suites")
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "build", "*.egg-info")
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=ignore)
        else:
            shutil.copy2(p, src / name)
    target = base / "site"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONWARNINGS": "ignore"}
    # The venv's own setuptools builds it (no download, ~2 s); a venv without one (Python >= 3.12
    # creates none) lets pip fetch the build backend as usual.
    try:
        import setuptools  # noqa: F401
        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *isolation,
                           "--no-cache-dir", "--target", str(target), str(src)],
                          cwd=base, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (target / "configs").exists(), "configs/ must ship inside the package, not at the top level"
    return target


@pytest.mark.heavy
def test_suites_and_data_resolve_from_a_non_editable_install(installed, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed)
    proc = subprocess.run([sys.executable, "-c", CHECK, str(installed)], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok ")
