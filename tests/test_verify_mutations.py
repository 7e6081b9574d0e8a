"""`gnnbench verify` can fail for the right reasons: a correct NumPy adapter (test-ref, on the
float64 reference) passes, and each deliberately wrong variant of it (adapters/testing.py) fails
the real CLI with exit 1 and a message naming the quantity that differs."""
import pytest

from conftest import run_cli

pytestmark = pytest.mark.heavy   # real training or tools in child processes: `pytest -m 'not heavy'` leaves it out

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
    ("test-mut-lr", "gcn", "cora", ["parameters after one SGD step differ"]),
    ("test-mut-batch", "gin", "mutag", ["the library's batch holds other graphs (or another order)"]),
]
# what each of these must not be blamed for (the quantity it gets right)
NOT_BLAMED = {"test-mut-lr": ["gradient of", "loss differs", "logits differ"],
              "test-mut-extra": ["gradient of", "loss differs", "logits differ", "dropout at"],
              "test-mut-grad": ["loss differs", "logits differ", "dropout at"]}


@pytest.mark.parametrize("lib,model,dataset,expect", MUTATIONS, ids=[f"{m[0]}-{m[1]}" for m in MUTATIONS])
def test_each_mutation_fails_verify_naming_what_differs(data_dir, lib, model, dataset, expect):
    p, rows = _verify(data_dir, lib, model, dataset)
    assert p.returncode == 1, p.stdout + p.stderr
    row = rows[(model, dataset)]
    assert "| failed " in row, row
    for text in expect:
        assert text in row, f"{text!r} not in {row}"
    for text in NOT_BLAMED.get(lib, []):
        assert text not in row, f"{text!r} in {row}"
    assert "Traceback" not in p.stdout + p.stderr


# ---- how small a fault the checks see (in-process, on Cora) ----------------------------------------------
@pytest.mark.parametrize("factor,fails", [(1.01, True), (1 + 1e-6, False)])
def test_a_one_percent_gradient_error_fails(cora, factor, fails):
    from gnnbench.adapters.testing import RefAdapter
    from gnnbench.specs import get_spec
    from gnnbench.verify import check

    class Scaled(RefAdapter):
        def gradients(self):
            g = super().gradients()
            return dict(g, **{"layers.1.weight": g["layers.1.weight"] * factor})
    res = check(Scaled(), get_spec("gcn", "cora"), cora)
    assert res["passed"] is not fails, res.get("error")
    if fails:
        assert res["error"].startswith("gradient of layers.1.weight differs (max rel 0.01 > 0.001)")


@pytest.mark.parametrize("fault,expect", [("rate", "dropout at input.0: 51.0% zeros, expected 50% ±"),
                                          ("scale", "dropout at input.0: survivors scaled 2.002, expected 1/(1-p) = 2")])
def test_a_slightly_wrong_dropout_op_fails(cora, fault, expect):
    """p 0.51 instead of 0.5, or survivors 0.1 % too large, in the library's own op alone."""
    import numpy as np
    from gnnbench.adapters.testing import RefAdapter
    from gnnbench.specs import get_spec
    from gnnbench.verify import check

    class Off(RefAdapter):
        def dropout_sample(self, site, shape):
            if site != "input.0":
                return super().dropout_sample(site, shape)
            p = 0.51 if fault == "rate" else 0.5
            keep = self.rng.random(shape) >= p
            return (keep * (1 / (1 - p)) * (1.001 if fault == "scale" else 1.0)).astype(np.float32)
    res = check(Off(), get_spec("gcn", "cora"), cora)
    assert not res["passed"] and res["failures"] == [f for f in res["failures"] if f.startswith("dropout at input.0")]
    assert any(f.startswith(expect) for f in res["failures"]), res["failures"]
