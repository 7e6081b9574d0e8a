import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = os.environ.get("GNNBENCH_DATA") or str(ROOT.parent / "shared" / "datasets")


@pytest.fixture(scope="session")
def data_dir():
    assert Path(DATA_DIR, "Cora", "raw", "ind.cora.x").exists(), f"datasets not found in {DATA_DIR}"
    return DATA_DIR


@pytest.fixture(scope="session")
def cora(data_dir):
    from gnnbench.datasets import load_graph
    return load_graph("cora", data_dir, normalize_features=True)


def run_cli(*args, env=None, timeout=600, cwd=None):
    """Run `python -m gnnbench ARGS` and return the CompletedProcess."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "gnnbench", *map(str, args)], capture_output=True, text=True,
                          env=e, timeout=timeout, cwd=cwd or ROOT)


@pytest.fixture
def cli():
    return run_cli
