"""Every bad input: one line on stderr, non-zero exit, no traceback."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli


def _one_line_error(p, code=2, match=None):
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gnnbench: error:"), p.stderr
    assert "Traceback" not in p.stderr
    if match:
        assert match in lines[0], lines[0]


def test_help_imports_no_ml_library():
    code = ("import sys; from click.testing import CliRunner; from gnnbench.cli import main;"
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output;"
            "bad = [m for m in ('torch', 'tensorflow', 'dgl', 'torch_geometric', 'spektral', 'graph_nets', 'numpy')"
            " if m in sys.modules]; print(bad)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


@pytest.mark.parametrize("args,match", [
    (["run", "--libs", "pyt"], "unknown library 'pyt'; valid libraries:"),
    (["run", "--models", "gcm"], "unknown model 'gcm'; valid models: gat, gcn, gin, sage"),
    (["run", "--datasets", "coraa"], "unknown dataset 'coraa'"),
    (["run", "--suite", "nope"], "unknown suite 'nope'; valid suites:"),
    (["run", "--devices", "tpu"], "unknown device 'tpu'"),
    (["run", "--set", "hiden=3"], "unknown hyperparameter 'hiden'"),
    (["run", "--resume"], "--resume needs --out"),
    (["report", "/nonexistent/results.jsonl"], "results file not found"),
    (["verify", "--libs", "nope"], "unknown library 'nope'"),
    (["kernels", "--ops", "spmv"], "unknown op 'spmv'; valid ops: spmm, sddmm"),
    (["kernels", "--impls", "jax"], "unknown implementation 'jax'"),
    (["kernels", "--widths", "x"], "--widths must be integers"),
    (["kernels", "--datasets", "coraa"], "unknown dataset 'coraa'"),
])
def test_bad_names(args, match):
    _one_line_error(run_cli(*args), 2, match)


def test_malformed_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nlibraries: [pyg\nmodels: [gcn]\n")
    _one_line_error(run_cli("run", "--suite", p), 2, f"malformed YAML at {p}:")


def test_corrupt_results_file_names_the_line(tmp_path):
    p = tmp_path / "r.jsonl"
    good = {"schema": 1, "cell": {}, "key": "k"}
    p.write_text(json.dumps(good) + "\n" + '{"schema": 1, "cell": {"libr\n')
    _one_line_error(run_cli("report", p), 2, f"{p}:2: corrupt results line")
    # appending to a corrupt file is refused before anything runs, and the file is untouched
    before = p.read_bytes()
    _one_line_error(run_cli("run", "--libs", "pyg", "--out", p), 2, f"{p}:2:")
    assert p.read_bytes() == before


def test_schema_mismatch(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"schema": 99, "cell": {}, "key": "k"}) + "\n")
    _one_line_error(run_cli("report", p), 2, "schema version 99")


def test_list_and_env():
    p = run_cli("list", "--no-check")
    assert p.returncode == 0 and "pyg" in p.stdout and "cora" in p.stdout and "quick" in p.stdout
    p = run_cli("env")
    env = json.loads(p.stdout)
    assert env["cores"] >= 1 and env["python"].count(".") == 2


def test_dataset_option_keeps_synthetic_parameters_together():
    from gnnbench.cli import _csv
    assert _csv("cora, synthetic:nodes=300,avg_degree=4,pubmed") == ["cora", "synthetic:nodes=300,avg_degree=4", "pubmed"]
    assert _csv("synthetic:nodes=10,seed=1,synthetic:nodes=20") == ["synthetic:nodes=10,seed=1", "synthetic:nodes=20"]
