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


# --- one record factory for the reading side's tests (report, compare, history, plots) -------------

def make_record(library="a", model="gcn", seed=0, epoch_ms=(10.0,), test_acc=0.81, *, status="ok", dataset="cora",
                device="cpu", spec=None, drop=(), **overrides):
    """A result record as gnnbench writes it (schema gnnbench.record.SCHEMA_VERSION), small: the cell,
    its spec (the model's default on the dataset unless given), ``epoch_ms`` and ``test_acc``, and
    what the readers use beside them. ``drop`` names top-level parts the run did not produce (e.g.
    ``("times", "accuracy")`` for a run killed by the parent); ``overrides`` set fields, a nested
    one by ``part__field`` (``memory__peak_rss_mb=5.0``); a top-level one replaces the part."""
    import dataclasses

    from gnnbench.record import SCHEMA_VERSION
    from gnnbench.specs import get_spec, spec_hash
    spec = dataclasses.asdict(get_spec(model, dataset)) if spec is None else spec
    r = {"schema": SCHEMA_VERSION, "key": f"{library}/{model}/{dataset}/{device}/{spec_hash(spec)}/seed{seed}",
         "cell": {"library": library, "model": model, "dataset": dataset, "device": device, "seed": seed},
         "spec": spec, "status": status, "error": "" if status == "ok" else "boom\nmore",
         "times": {"epoch_ms": list(epoch_ms), "first_epoch_ms": 50.0, "setup_s": 0.1, "infer_median_ms": 1.0},
         "accuracy": {"test": test_acc}, "memory": {"peak_rss_mb": 100.0}, "dataset": {"fingerprint": "sha256:x"},
         "env": {"cpu_model": "cpu", "cores": 2, "threads": 2}, "timestamp": "2026-11-30T00:00:00+00:00",
         "run_id": "r"}
    for part in drop:
        r.pop(part)
    return vary([r], **overrides)[0] if overrides else r


def vary(records, **changes):
    """Copies of ``records`` with ``changes`` applied: ``part__field=value`` (nested; a callable gets the
    old value), ``field=value`` at the top. A change to the cell (another library, dataset, seed, ...)
    re-keys the run, keeping its spec hash: another run, not a second copy of the same one."""
    import copy

    out = []
    for r in records:
        r = copy.deepcopy(r)
        for path, value in changes.items():
            obj = r
            *parents, last = path.split("__")
            for k in parents:
                obj = obj[k]
            obj[last] = value(obj[last]) if callable(value) else value
        if any(k.startswith("cell__") or k == "cell" for k in changes):
            c, rest = r["cell"], r["key"].split("/")[4:-1]
            r["key"] = "/".join([c["library"], c["model"], c["dataset"], c["device"], *rest, f"seed{c['seed']}"])
        out.append(r)
    return out
