"""The harness owns accuracy: it scores each library's logits with its own masks, and rows without a
published reference are checked against the other libraries."""
import dataclasses

import numpy as np
import pytest
from conftest import make_record

from gnnbench.errors import UsageError
from gnnbench.metrics import accuracy
from gnnbench.report import rows
from gnnbench.specs import get_spec


class _G:   # the fields of a Graph the metric reads
    def __init__(self, y, train, val, test, classes):
        self.y, self.num_classes = np.asarray(y), classes
        self.train_mask, self.val_mask, self.test_mask = (np.asarray(m, bool) for m in (train, val, test))


def test_accuracy_from_logits_with_the_harness_masks():
    g = _G([0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], 2)
    logits = np.array([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0], [1.0, 0.0]])
    assert accuracy(logits, g) == {"train": 1.0, "val": 0.0, "test": 1.0}
    with pytest.raises(UsageError, match="shape"):
        accuracy(logits[:3], g)             # a row per node, or the adapter is wrong
    with pytest.raises(UsageError, match="shape"):
        accuracy(logits[:, :1], g)


def test_child_scores_logits_and_ignores_a_self_report(monkeypatch, data_dir):
    """An adapter that claims 100 % in evaluate() but predicts one class gets the accuracy its
    logits earn."""
    import gnnbench.adapters as registry
    from gnnbench import child
    from gnnbench.adapters.testing import FakeAdapter

    class Liar(FakeAdapter):
        def evaluate(self):
            return {"train": 1.0, "val": 1.0, "test": 1.0}

        def logits(self):
            z = np.zeros((self.x.shape[0], self.w.shape[1]), np.float32)
            z[:, 3] = 1.0
            return z

    monkeypatch.setattr(registry, "adapter_class", lambda name: Liar)
    spec = dataclasses.asdict(get_spec("gcn", "cora"))
    job = {"cell": {"library": "test-ok", "model": "gcn", "dataset": "cora", "device": "cpu", "spec": spec, "seed": 0},
           "config": {"threads": 1, "epochs": 1, "warmup": 0, "infer_reps": 1}, "data_dir": data_dir}
    out = child.run(job)
    from gnnbench.datasets import load_graph
    g = load_graph("cora", data_dir)
    assert out["accuracy"]["test"] == pytest.approx(float((g.y[g.test_mask] == 3).mean()))
    assert out["accuracy"]["test"] < 0.5 and out["status"] == "accuracy_mismatch"


SYN = "synthetic:nodes=1000,avg_degree=10,features=16,classes=4,seed=0,homophily=0.8"


def test_cross_library_agreement_without_a_reference():
    base = [make_record("a", "gcn", 0, [1.0], 0.50, dataset=SYN), make_record("b", "gcn", 0, [1.0], 0.52, dataset=SYN)]
    r = {x["library"]: x for x in rows(base + [make_record("c", "gcn", 0, [1.0], 0.535, dataset=SYN)])}
    assert {x["status"] for x in r.values()} == {"ok"}          # within 5 points of the median 52 %
    r = {x["library"]: x for x in rows(base + [make_record("c", "gcn", 0, [0.5], 0.70, dataset=SYN)])}
    assert r["c"]["status"] == "accuracy_mismatch" and "median 52.0 %" in r["c"]["error"]
    assert r["a"]["status"] == r["b"]["status"] == "ok"
    assert r["a"]["relative"] == 1.0          # the faster mismatching row never counts as fastest
    # one library alone: nothing to agree with
    assert rows([make_record("c", "gcn", 0, [1.0], 0.9, dataset=SYN)])[0]["status"] == "ok"
