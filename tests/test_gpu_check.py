"""`make gpu-check` cannot run here (no GPU), but its pipeline can: the same script on the CPU, small."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT
from gnnbench.results import read_records

pytestmark = pytest.mark.heavy   # real training or tools in child processes: `pytest -m 'not heavy'` leaves it out


def test_gpu_check_pipeline_runs_on_cpu(tmp_path, data_dir):
    p = subprocess.run([sys.executable, "scripts/gpu_check.py", "--device", "cpu", "--quick", "--out", str(tmp_path),
                        "--data-dir", data_dir], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "steps passed" in p.stdout
    recs = read_records(tmp_path / "gpu.jsonl")
    assert {r["cell"]["library"] for r in recs} == {"native", "pyg"}
    assert all(r["status"] in ("ok", "accuracy_mismatch") for r in recs), [r.get("error") for r in recs]
    kern = json.loads((tmp_path / "kernels.json").read_text())
    assert {r["impl"] for r in kern} >= {"native", "pyg"}
    assert "passed" in (tmp_path / "verify.txt").read_text()
