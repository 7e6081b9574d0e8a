"""The Graph Nets adapter: one class per task, verify against the reference with dropout on and the
harness's masks injected (GCN, GAT, SAGE on Cora, GIN on MUTAG, whose batches must be the harness's),
a deliberately wrong mask path that verify must reject, no sparse-feature layout (with the reason),
train, reproduce, fail cleanly.

TensorFlow never runs in the pytest process (it must not sit next to torch
there): every TF check runs in a child process started with the adapter's
``child_env`` (TF_USE_LEGACY_KERAS=1), which prints one JSON line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from gnnbench.adapters.graphnets import GraphNetsAdapter

from conftest import DATA_DIR, ROOT

pytestmark = pytest.mark.heavy   # real training or tools in child processes: `pytest -m 'not heavy'` leaves it out

CHILD = textwrap.dedent(r"""
    import json, sys
    from gnnbench.adapters.graphnets import GraphNetsAdapter
    from gnnbench.datasets import load_graph
    from gnnbench.metrics import accuracy
    from gnnbench.specs import get_spec
    from gnnbench.weights import init_weights

    job = json.loads(sys.argv[1])
    out = {}
    a = GraphNetsAdapter()
    a.set_threads(2)
    av = a.available()
    out["available"] = [av.ok, av.version, av.reason]
    out["versions"] = a.versions()
    import tensorflow as tf
    out["threads"] = [tf.config.threading.get_intra_op_parallelism_threads(),
                      tf.config.threading.get_inter_op_parallelism_threads()]
    out["thread_notes"] = a.notes()
    graphs = {}

    def graph(spec):
        key = spec.normalize_features
        if key not in graphs:
            graphs[key] = load_graph("cora", job["data"], normalize_features=key)
        return graphs[key]

    if job.get("verify"):
        import numpy as np
        import gnnbench.adapters.graphnets as G
        from gnnbench import verify
        out["verify"] = {}
        for m in ("gcn", "gat", "sage"):
            spec = get_spec(m, "cora")
            out["verify"][m] = verify.check(GraphNetsAdapter(), spec, graph(spec))
        # a deliberately wrong mask path (scales by 1/(1-p) but drops nothing): verify must fail it
        own_init = G._MaskedDropout.__init__
        G._MaskedDropout.__init__ = lambda self, mask, rate: own_init(self, np.ones_like(mask), rate)
        spec = get_spec("gat", "cora")
        out["mut_ignore_mask"] = verify.check(GraphNetsAdapter(), spec, graph(spec))
        G._MaskedDropout.__init__ = own_init

    out["train"] = []
    for model, epochs, seed in job["train"]:
        spec = get_spec(model, "cora")
        t = GraphNetsAdapter()
        g = graph(spec)
        t.prepare(g, spec, "cpu", seed, init_weights(spec, g.num_features, g.num_classes, seed))
        losses = []
        for _ in range(epochs):
            t.train_step()
            t.sync()
            losses.append(t.last_loss())
        t.infer()
        timed_bare = not hasattr(t._step, "sink")      # the timed step records nothing
        t.set_dropout_masks(None)
        out["train"].append({"model": model, "seed": seed, "losses": losses, "acc": accuracy(t.logits(), g),
                             "notes": t.notes(), "nparams": t.num_parameters(), "timed_bare": timed_bare,
                             "verify_records": hasattr(t._step, "sink")})

    if job.get("verify"):
        # GIN last: the graph task turns on tf.config.experimental.enable_op_determinism() for the rest of
        # the process, which changes float rounding in the node models trained above (compared with a
        # second process that never ran GIN); every harness run is a process of its own
        gspec = get_spec("gin", "mutag")
        gs = load_graph("mutag", job["data"], node_attributes=gspec.node_attributes, fold=gspec.fold,
                        num_folds=gspec.num_folds)
        out["verify"]["gin"] = verify.check(GraphNetsAdapter.for_task(gspec.task)(), gspec, gs)
        G._MaskedDropout.__init__ = lambda self, mask, rate: own_init(self, np.ones_like(mask), rate)
        out["mut_ignore_mask_gin"] = verify.check(GraphNetsAdapter.for_task(gspec.task)(), gspec, gs)
        G._MaskedDropout.__init__ = own_init
        # Graph Nets' own batching (data_dicts_to_graphs_tuple) of two epochs (batch_size 32) against the
        # harness's batches: one bool per batch
        from gnnbench import batching
        bspec = get_spec("gin", "mutag", {"batch_size": 32})
        b = GraphNetsAdapter.for_task(bspec.task)()
        b.prepare(gs, bspec, "cpu", 0, init_weights(bspec, gs.num_features, gs.num_classes, 0))
        out["gin_batches"] = [
            batching.fingerprint(b.batch_arrays(b.collate(ids))) == batching.fingerprint(batching.collate(gs, ids))
            for epoch in (0, 1) for ids in batching.epoch_batches(gs.train_idx, 32, 0, epoch)]
    print("RESULT " + json.dumps(out))
""")


def start_child(job: dict) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(GraphNetsAdapter.child_env(2))
    job = {"data": DATA_DIR, **job}
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def result(proc: subprocess.Popen, timeout: int = 900) -> dict:
    stdout, stderr = proc.communicate(timeout=timeout)
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"child failed (rc {proc.returncode}):\n{stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def children(data_dir):
    """Two TF processes, run side by side: the first verifies every model and trains;
    the second repeats the seeded training runs, to compare across processes."""
    first = start_child({"verify": True,
                         "train": [["gcn", 40, 0], ["gcn", 5, 0], ["gcn", 3, 1], ["gat", 5, 0], ["sage", 5, 0]]})
    second = start_child({"train": [["gcn", 40, 0], ["gat", 5, 0], ["sage", 5, 0]]})
    try:
        return result(first), result(second)
    finally:
        for p in (first, second):
            if p.poll() is None:
                p.kill()


@pytest.fixture(scope="module")
def first(children):
    return children[0]


@pytest.fixture(scope="module")
def second(children):
    return children[1]


def test_available_and_versions(first):
    ok, version, reason = first["available"]
    assert ok, reason
    assert version == "1.1.0"
    assert first["versions"]["graph_nets"] == "1.1.0"
    assert first["versions"]["sonnet"].startswith("2.")
    assert first["versions"]["tensorflow"].startswith("2.")


def test_threads_applied(first):
    assert first["threads"] == [2, 2]
    assert not first["thread_notes"]


@pytest.mark.parametrize("model", ["gcn", "gat", "sage", "gin"])
def test_verify_with_dropout(first, model):
    """Dropout on, the harness's masks injected: loss, gradients, SGD/Adam steps, own dropout, count."""
    r = first["verify"][model]
    assert r["passed"], r.get("error")
    assert r["grads_max_rel"] is not None and r["params_adam_max_abs_diff"] is not None, r
    assert r["num_parameters"] == r["canonical_parameters"], r
    assert r["dropout"] and all(d["p"] > 0 for d in r["dropout"].values()), r["dropout"]
    if model != "gin":
        assert r["logits_max_abs_diff"] < 1e-6
        assert r["loss_rel_diff"] < 1e-6
    if model == "gat":
        assert {"attn.0", "attn.1"} <= set(r["dropout"]), r["dropout"]
    if model == "gin":
        assert r["batch_matches"] and r["logits_max_abs_diff"] < 1e-4 and r["params_max_abs_diff"] < 1e-4, r


def test_gin_batches_are_the_harness_batches(first):
    """Graph Nets' batching of every training batch is the harness's batch, two epochs."""
    assert len(first["gin_batches"]) == 12 and all(first["gin_batches"]), first["gin_batches"]   # 169 / 32: 6 a epoch


def test_one_class_per_task():
    """The registered class is the node task and holds the library; the graph task is its own class
    (sharing the library's parts); there is no sampled task (no neighbour sampler)."""
    from gnnbench.adapters.graphnets import GraphNetsGraphAdapter
    assert GraphNetsAdapter.for_task("node") is GraphNetsAdapter
    assert GraphNetsAdapter.for_task("graph") is GraphNetsGraphAdapter
    assert GraphNetsAdapter.for_task("sampled") is None
    assert set(GraphNetsAdapter.models) == {"gcn", "gat", "sage", "gin"}
    assert GraphNetsGraphAdapter.models == ("gin",)
    assert GraphNetsGraphAdapter.child_env(2) == GraphNetsAdapter.child_env(2)


def test_verify_rejects_a_mask_path_that_ignores_the_mask(first):
    for key in ("mut_ignore_mask", "mut_ignore_mask_gin"):
        r = first[key]
        assert not r["passed"], r
        assert "loss differs" in r["error"] and "gradient of" in r["error"], r["error"]


def test_no_sparse_feature_layout():
    from gnnbench.specs import get_spec
    a = GraphNetsAdapter()
    assert a.feature_layouts == ("dense",)
    for model in ("gcn", "gat", "sage", "gin"):
        assert a.unsupported_spec(get_spec(model, "cora")) is None
        why = a.unsupported_spec(get_spec(model, "cora", {"features": "sparse"}))
        assert why and "GraphsTuple" in why and "tf.SparseTensor" in why, why


def test_gcn_trains(first):
    run = first["train"][0]
    assert run["model"] == "gcn"
    losses = run["losses"]
    assert all(l == l for l in losses)  # no NaN
    assert losses[-1] < losses[0] - 0.3, losses
    assert run["acc"]["test"] > 0.5, run["acc"]
    assert run["acc"]["train"] > 0.8, run["acc"]
    # parameter count of a 2-layer GCN on Cora: 1433*16 + 16 + 16*7 + 7
    assert run["nparams"] == 1433 * 16 + 16 + 16 * 7 + 7
    assert any("gcn:" in n for n in run["notes"])
    assert any(n.startswith("features=dense") for n in run["notes"]), run["notes"]
    assert all(r["timed_bare"] and r["verify_records"] for r in first["train"])


def test_same_seed_same_result_in_process(first):
    a, b, c = first["train"][:3]
    # a new adapter with the same seed repeats the same dropout masks and updates
    assert b["losses"] == a["losses"][:len(b["losses"])]
    # a different seed changes the weights and the dropout masks
    assert c["losses"][0] != a["losses"][0]


def test_same_seed_same_result_across_processes(first, second):
    by_key = {}
    for r in first["train"]:
        by_key.setdefault((r["model"], r["seed"]), r)
    for run in second["train"]:
        ref = by_key[(run["model"], run["seed"])]
        assert run["losses"] == ref["losses"], run["model"]
        assert run["acc"] == ref["acc"], run["model"]


def test_dropout_is_active_in_training(first):
    # with dropout the training loss differs from the deterministic verify loss
    gat = next(r for r in first["train"] if r["model"] == "gat")
    assert abs(gat["losses"][0] - first["verify"]["gat"]["loss"]) > 1e-4


def test_not_installed(monkeypatch):
    # simulate a missing TensorFlow / Graph Nets without importing either here
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")      # restored afterwards (_import sets it)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "graph_nets", None)
    av = GraphNetsAdapter().available()
    assert not av.ok
    assert "ImportError" in av.reason or "ModuleNotFoundError" in av.reason
    assert av.install_hint == "pip install 'gnnbench[graphnets]'"


def test_module_import_is_free_of_tensorflow():
    code = ("import sys, gnnbench.adapters.graphnets as g; "
            "assert 'tensorflow' not in sys.modules and 'graph_nets' not in sys.modules; "
            "from gnnbench.adapters import adapter_class; "
            "assert adapter_class('graphnets') is g.GraphNetsAdapter; "
            "print(g.GraphNetsAdapter.child_env(2))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "'TF_USE_LEGACY_KERAS': '1'" in proc.stdout
