"""`gnnbench verify` can fail for the right reasons: a correct NumPy adapter (test-ref, on the
float64 reference) passes, and each deliberately wrong variant of it (adapters/testing.py) fails
the real CLI with exit 1 and a message naming the quantity that differs."""
import pytest

from conftest import run_cli

ENV = {"GNNBENCH_TEST_ADAPTERS": "1"}


def _verify(data_dir, lib, models, dataset):
    p = run_cli("verify", "--libs", lib, "--models", models, "--datasets", dataset, "--threads", "1",
                "--data-dir", data_dir, env=ENV, timeout=600)
    rows = {tuple(c.strip() for c in line.split("|")[2:4]): line for line in p.stdout.splitlines()
            if line.startswith(f"| {lib} |")}
    return p, rows


@pytest.mark.parametrize("models,dataset", [("gcn,gat,sage", "cora"), ("gin", "mutag")])
def test_the_correct_adapter_passes(data_dir, models, dataset):
    p, rows = _verify(data_dir, "test-ref", models, dataset)
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(rows) == len(models.split(",")) and all(r.rstrip(" |").endswith("passed") for r in rows.values()), p.stdout
    assert "grads max rel" in p.stdout and "binomial sigma" in p.stdout


MUTATIONS = [
    # (library, model, dataset, what the message must name)
    ("test-mut-grad", "gcn", "cora", ["gradient of layers.0.weight differs (max rel 0.5 > "]),
    ("test-mut-grad", "gin", "mutag", ["gradient of layers.0.weight1 differs (max rel 0.5 > ",
                                       "parameters after one SGD step differ (layers.0.weight1"]),
    ("test-mut-gcn-nonorm", "gcn", "cora", ["logits differ", "loss differs", "gradient of layers."]),
    ("test-mut-droprate", "gcn", "cora", ["dropout at input.0: 25.0% zeros, expected 50% ±",
                                          "survivors scaled 1.33333, expected 1/(1-p) = 2", "loss differs"]),
    ("test-mut-nodrop", "gat", "cora", ["dropout at input.1: 0.0% zeros, expected 60% ±", "loss differs"]),
    ("test-mut-extra", "sage", "cora", ["trainable parameters 46,104 != canonical 46,103"]),
    ("test-mut-sage-sum", "sage", "cora", ["logits differ", "loss differs", "gradient of layers."]),
    ("test-mut-nohook", "gcn", "cora", ["hook gradients() missing"]),
]


@pytest.mark.parametrize("lib,model,dataset,expect", MUTATIONS, ids=[f"{m[0]}-{m[1]}" for m in MUTATIONS])
def test_each_mutation_fails_verify_naming_what_differs(data_dir, lib, model, dataset, expect):
    p, rows = _verify(data_dir, lib, model, dataset)
    assert p.returncode == 1, p.stdout + p.stderr
    row = rows[(model, dataset)]
    assert "| failed " in row, row
    for text in expect:
        assert text in row, f"{text!r} not in {row}"
    assert "Traceback" not in p.stdout + p.stderr
