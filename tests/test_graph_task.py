"""The graph task end to end: GIN verify per library, identical batches across libraries,
a short run through the runner with collation timed, and task/dataset matching."""
import numpy as np
import pytest

from conftest import run_cli
from gnnbench import batching
from gnnbench.config import Suite, expand
from gnnbench.errors import UsageError
from gnnbench.results import read_records

LIBS = ["pyg", "dgl", "native", "spektral", "graphnets"]
# the libraries checked inside this process; TensorFlow never enters it (torch does): Spektral's and
# Graph Nets' GIN verify and batch checks run in child processes, in tests/test_spektral_adapter.py and
# tests/test_graphnets_adapter.py
IN_PROCESS = ["pyg", "dgl", "native"]


@pytest.fixture(scope="module")
def mutag(data_dir):
    from gnnbench.datasets import load_graph
    return load_graph("mutag", data_dir)


def _adapter(lib, monkeypatch):
    from gnnbench.adapters import adapter_class
    if lib == "dgl":
        monkeypatch.setenv("DGLBACKEND", "pytorch")
    a = adapter_class(lib).for_task("graph")()     # the library's graph-task class
    assert a.available().ok
    a.set_threads(1)     # as `gnnbench verify` runs graph-task cells (see its footnote)
    return a


@pytest.mark.parametrize("lib", IN_PROCESS)
def test_gin_verify(lib, mutag, monkeypatch):
    from gnnbench.specs import get_spec
    from gnnbench.verify import check
    res = check(_adapter(lib, monkeypatch), get_spec("gin", "mutag"), mutag)
    assert res["passed"], res
    assert res["batch_matches"] and res["logits_max_abs_diff"] < 1e-4 and res["params_max_abs_diff"] < 1e-4


@pytest.mark.parametrize("lib", IN_PROCESS)
def test_every_library_batches_the_same_graphs(lib, mutag, monkeypatch):
    from gnnbench.specs import get_spec
    from gnnbench.weights import init_weights
    spec = get_spec("gin", "mutag", {"batch_size": 32})
    a = _adapter(lib, monkeypatch)
    a.prepare(mutag, spec, "cpu", 0, init_weights(spec, mutag.num_features, mutag.num_classes, 0))
    for epoch in (0, 1):
        for ids in batching.epoch_batches(mutag.train_idx, 32, 0, epoch):
            want = batching.fingerprint(batching.collate(mutag, ids))
            assert batching.fingerprint(a.batch_arrays(a.collate(ids))) == want


@pytest.mark.heavy
def test_short_graph_run_records_collation(tmp_path, data_dir):
    out = tmp_path / "g.jsonl"
    p = run_cli("run", "--libs", ",".join(LIBS), "--models", "gin", "--datasets", "mutag",
                "--epochs", "3", "--warmup", "1", "--threads", "1", "--data-dir", data_dir, "--out", out)
    assert p.returncode == 0, p.stderr
    recs = {r["cell"]["library"]: r for r in read_records(out)}
    for lib in LIBS:
        r = recs[lib]
        assert r["status"] in ("ok", "accuracy_mismatch"), r.get("error")
        t = r["times"]
        assert t["batches_per_epoch"] == 2 and len(t["collate_ms"]) == 3
        assert all(0 < c < e for c, e in zip(t["collate_ms"], t["epoch_ms"]))
        assert r["dataset"]["graphs"] == 188 and r["dataset"]["test"] == 19
        assert r["spec"]["task"] == "graph" and set(r["accuracy"]) == {"train", "test"}
    assert len({recs[lib]["dataset"]["fingerprint"] for lib in LIBS}) == 1
    assert "(collate " in (tmp_path / "g.md").read_text()


def test_models_only_meet_datasets_of_their_task():
    cells = expand(Suite("s", ["pyg"], ["gcn", "gin"], ["cora", "mutag"], ["cpu"]))
    assert {(c.model, c.dataset) for c in cells} == {("gcn", "cora"), ("gin", "mutag")}
    with pytest.raises(UsageError, match="model 'gin' is for graph classification"):
        expand(Suite("s", ["pyg"], ["gin"], ["cora"], ["cpu"]))
    with pytest.raises(UsageError, match="model 'gat' is for node classification"):
        expand(Suite("s", ["pyg"], ["gat"], ["proteins"], ["cpu"]))
    with pytest.raises(UsageError, match="readout"):
        expand(Suite("s", ["pyg"], ["gin"], ["mutag"], ["cpu"], overrides={"gin": {"readout": "max"}}))
