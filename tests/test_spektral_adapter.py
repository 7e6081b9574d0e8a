"""The Spektral adapter: availability, one class per task, verify against the reference with
dropout on and the harness's masks injected (GCN, GAT, SAGE on Cora, GCN/GAT on sparse features,
GIN on MUTAG, whose batches must be the harness's), two deliberately wrong mask paths that verify
must reject, a short training run, same seed -> same result, and the not-installed path.

TensorFlow never enters the pytest process (torch lives here): every TF check
runs in a child Python with TF_USE_LEGACY_KERAS=1, as the harness runs it.
"""
import json
import os
import subprocess
import sys

import pytest

from gnnbench.adapters import adapter_class
from gnnbench.adapters.spektral import SpektralAdapter

pytestmark = pytest.mark.heavy   # real training or tools in child processes: `pytest -m 'not heavy'` leaves it out

PROBE = r"""
import json, sys
from gnnbench.adapters.spektral import SpektralAdapter
from gnnbench.datasets import load_graph
from gnnbench.metrics import accuracy
from gnnbench.specs import get_spec
from gnnbench.verify import check
from gnnbench.weights import init_weights

data_dir, mode = sys.argv[1], sys.argv[2]
out = {}
a = SpektralAdapter()
av = a.available()
out["available"] = [av.ok, av.version, av.reason]
a.set_threads(2)
import tensorflow as tf
out["threads"] = [tf.config.threading.get_intra_op_parallelism_threads(),
                  tf.config.threading.get_inter_op_parallelism_threads()]
out["keras"] = tf.keras.layers.Layer.__module__
out["versions"] = a.versions()
graphs = {}
def graph(model):
    spec = get_spec(model, "cora")
    key = spec.normalize_features
    if key not in graphs:
        graphs[key] = load_graph("cora", data_dir, normalize_features=key)
    return spec, graphs[key]

def gin_batches(gs):
    # Spektral's own collation of two epochs of batches (batch_size 32) against the harness's: one
    # bool per batch, True when the fingerprints match
    from gnnbench import batching
    spec = get_spec("gin", "mutag", {"batch_size": 32})
    a = SpektralAdapter.for_task(spec.task)()
    a.prepare(gs, spec, "cpu", 0, init_weights(spec, gs.num_features, gs.num_classes, 0))
    return [batching.fingerprint(a.batch_arrays(a.collate(ids))) == batching.fingerprint(batching.collate(gs, ids))
            for epoch in (0, 1) for ids in batching.epoch_batches(gs.train_idx, 32, 0, epoch)]

if mode == "full":
    import dataclasses
    import numpy as np
    import gnnbench.adapters.spektral as S
    out["verify"] = {}
    for model in ("gcn", "gat", "sage"):
        spec, g = graph(model)
        out["verify"][model] = check(SpektralAdapter(), spec, g)
    for model in ("gcn", "gat"):          # features: sparse (a tf.SparseTensor X)
        spec, g = graph(model)
        ad = SpektralAdapter()
        out["verify"][model + "-sparse"] = check(ad, dataclasses.replace(spec, features="sparse"), g)
        out["verify"][model + "-sparse"]["notes"] = ad.notes()
        out["verify"][model + "-sparse"]["x_is_sparse"] = isinstance(ad.x, tf.SparseTensor)
    gspec = get_spec("gin", "mutag")
    gs = load_graph("mutag", data_dir, node_attributes=gspec.node_attributes, fold=gspec.fold,
                    num_folds=gspec.num_folds)
    out["verify"]["gin"] = check(SpektralAdapter.for_task(gspec.task)(), gspec, gs)
    out["gin_batches"] = gin_batches(gs)

    # deliberately wrong mask paths: verify must fail them
    own = S._masked_dropout_class
    def ignoring(tf_):
        class IgnoresMask(own(tf_)):
            def __init__(self, mask, rate):
                super().__init__(np.ones_like(mask), rate)      # scales by 1/(1-p), drops nothing
        return IgnoresMask
    S._masked_dropout_class = ignoring
    spec, g = graph("gcn")
    out["mut_ignore_mask"] = check(SpektralAdapter(), spec, g)
    out["mut_ignore_mask_gin"] = check(SpektralAdapter.for_task(gspec.task)(), gspec, gs)
    S._masked_dropout_class = own
    own_perm = S.edge_permutation
    S.edge_permutation = lambda cs, cd, ls, ld, n: np.arange(len(ls))   # canonical order taken as Spektral's
    spec, g = graph("gat")
    out["mut_unpermuted"] = check(SpektralAdapter(), spec, g)
    S.edge_permutation = own_perm

def train(model, epochs, seed):
    spec, g = graph(model)
    ad = SpektralAdapter()
    ad.prepare(g, spec, "cpu", seed, init_weights(spec, g.num_features, g.num_classes, seed))
    losses = []
    for _ in range(epochs):
        ad.train_step()
        losses.append(ad.last_loss())
    logits = ad.logits()
    f = tf.function(lambda: ad._forward(training=True))
    t1, t2 = f().numpy(), f().numpy()
    timed_bare = not hasattr(ad._step, "sink")     # the timed step records nothing
    traces = ad._step.experimental_get_tracing_count() if timed_bare else -1
    ad.set_dropout_masks(None)
    return {"acc": accuracy(ad.logits(), g), "losses": losses, "traces": traces,
            "timed_bare": timed_bare, "verify_records": hasattr(ad._step, "sink"),
            "nparams": ad.num_parameters(), "logits_sum": float(logits.sum()), "notes": ad.notes(),
            "dropout_differs": float(abs(t1 - t2).max()), "eval_repeat": float(abs(logits - ad.logits()).max())}

out["gcn"] = train("gcn", 40, 0)
out["gat"] = train("gat", 10, 3)     # input dropout and GATConv's attention dropout both on
print("RESULT " + json.dumps(out))
"""


def _run(data_dir, mode):
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    p = subprocess.run([sys.executable, "-c", PROBE, data_dir, mode], capture_output=True, text=True,
                       timeout=900, env=env)
    assert p.returncode == 0, p.stderr[-4000:]
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def first(data_dir):
    return _run(data_dir, "full")


@pytest.fixture(scope="module")
def second(data_dir):
    return _run(data_dir, "train")


def test_registered_and_child_env():
    assert adapter_class("spektral") is SpektralAdapter
    assert SpektralAdapter.child_env(2)["TF_USE_LEGACY_KERAS"] == "1"
    # importing the adapter module imports no ML library (checked in a fresh interpreter: this one
    # has torch from other tests)
    import subprocess
    code = ("import sys, gnnbench.adapters.spektral, gnnbench.adapters.graphnets; "
            "assert not {'tensorflow', 'spektral', 'graph_nets', 'torch'} & set(sys.modules), sorted(sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_available_and_versions(first):
    ok, version, reason = first["available"]
    assert ok, reason
    assert version == first["versions"]["spektral"]
    assert set(first["versions"]) == {"spektral", "tensorflow", "tf_keras"}
    assert first["keras"].startswith("tf_keras.")   # tf_keras, not Keras 3
    assert first["threads"] == [2, 2]


def test_one_class_per_task():
    """The registered class is the node task and holds the library; the graph task is its own class
    (sharing the library's parts); there is no sampled task (no neighbour sampler)."""
    from gnnbench.adapters.spektral import SpektralGraphAdapter
    assert SpektralAdapter.for_task("node") is SpektralAdapter
    assert SpektralAdapter.for_task("graph") is SpektralGraphAdapter
    assert SpektralAdapter.for_task("sampled") is None
    assert SpektralGraphAdapter.for_task("graph") is SpektralGraphAdapter
    assert set(SpektralAdapter.models) == {"gcn", "gat", "sage", "gin"}
    assert SpektralGraphAdapter.models == ("gin",)
    assert SpektralGraphAdapter.name == "spektral" and issubclass(SpektralGraphAdapter, SpektralAdapter)


@pytest.mark.parametrize("model", ["gcn", "gat", "sage", "gin"])
def test_verify_with_dropout(first, model):
    """Dropout on, the harness's masks injected: loss, gradients, SGD/Adam steps, own dropout, count."""
    r = first["verify"][model]
    assert r["passed"], r.get("error")
    assert r["grads_max_rel"] is not None and r["params_adam_max_abs_diff"] is not None, r
    assert r["num_parameters"] == r["canonical_parameters"], r
    assert r["dropout"] and all(d["p"] > 0 for d in r["dropout"].values()), r["dropout"]
    if model != "gin":
        assert r["logits_max_abs_diff"] < 1e-6 and r["loss_rel_diff"] < 1e-6, r
    if model == "gat":    # attention dropout is a site of its own, in both layers
        assert {"attn.0", "attn.1"} <= set(r["dropout"]), r["dropout"]
    if model == "gin":
        assert r["batch_matches"] and r["logits_max_abs_diff"] < 1e-4 and r["params_max_abs_diff"] < 1e-4, r


def test_gin_batches_are_the_harness_batches(first):
    """Spektral's collation (to_disjoint) of every training batch is the harness's batch, two epochs."""
    assert len(first["gin_batches"]) == 12 and all(first["gin_batches"]), first["gin_batches"]   # 169 / 32: 6 a epoch


@pytest.mark.parametrize("model", ["gcn", "gat"])
def test_verify_sparse_features(first, model):
    r = first["verify"][model + "-sparse"]
    assert r["passed"], r.get("error")
    assert r["x_is_sparse"]
    assert any(n.startswith("features=sparse") for n in r["notes"]), r["notes"]


def test_verify_rejects_a_mask_path_that_ignores_the_mask(first):
    for key in ("mut_ignore_mask", "mut_ignore_mask_gin"):
        r = first[key]
        assert not r["passed"], r
        assert "loss differs" in r["error"] and "gradient of" in r["error"], r["error"]


def test_verify_rejects_attention_masks_in_the_wrong_edge_order(first):
    """Spektral's sparse adjacency is reordered (row-major, self-loops among the edges): masks taken in
    the canonical order without the permutation drop the wrong coefficients, and verify sees it."""
    r = first["mut_unpermuted"]
    assert not r["passed"], r
    assert "gradient of" in r["error"], r["error"]


def test_sparse_features_offered_for_gcn_and_gat_only():
    from gnnbench.specs import get_spec
    a = SpektralAdapter()
    assert "sparse" in a.feature_layouts
    for model in ("gcn", "gat"):
        assert a.unsupported_spec(get_spec(model, "cora", {"features": "sparse"})) is None
        assert a.unsupported_spec(get_spec(model, "cora")) is None
    for model in ("sage", "gin"):
        why = a.unsupported_spec(get_spec(model, "cora", {"features": "sparse"}))
        assert why and "tf.gather" in why and model in why, why
        assert a.unsupported_spec(get_spec(model, "cora")) is None


def test_short_training_learns(first):
    r = first["gcn"]
    assert r["losses"][-1] < 0.85 * r["losses"][0], r["losses"]
    assert r["acc"]["test"] > 0.5, r["acc"]
    assert r["traces"] == 1        # compiled once (on the first step), never retraced
    assert r["timed_bare"] and r["verify_records"]   # only the verify step records gradients
    assert r["nparams"] == 1433 * 16 + 16 + 16 * 7 + 7
    assert any("adaptive_epsilon" in n for n in r["notes"])
    assert any(n.startswith("features=dense") for n in r["notes"]), r["notes"]


def test_same_seed_same_result(first, second):
    for model in ("gcn", "gat"):
        a, b = first[model], second[model]
        assert a["losses"] == b["losses"], model
        assert a["acc"] == b["acc"], model
        assert a["logits_sum"] == b["logits_sum"], model
    # and dropout really is on in training mode (two training forwards differ), off in eval mode
    for model in ("gcn", "gat"):
        assert first[model]["dropout_differs"] > 1e-3, model
        assert first[model]["eval_repeat"] == 0.0, model


def test_not_installed(monkeypatch):
    """available() reports the failed import and the install hint (TF is never imported here)."""
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")          # restored afterwards
    monkeypatch.setitem(sys.modules, "tensorflow", None)    # `import tensorflow` raises ImportError
    av = SpektralAdapter().available()
    assert not av.ok
    assert "tensorflow" in av.reason and "ModuleNotFoundError" in av.reason
    assert av.install_hint == "pip install 'gnnbench[spektral]'"


def test_spektral_missing_with_tensorflow_present(monkeypatch):
    import types
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    fake_tf = types.ModuleType("tensorflow")
    monkeypatch.setitem(sys.modules, "tensorflow", fake_tf)
    monkeypatch.setitem(sys.modules, "spektral", None)
    av = SpektralAdapter().available()
    assert not av.ok and "spektral" in av.reason
    assert av.install_hint == SpektralAdapter.install_hint


def test_keras3_is_refused(monkeypatch):
    """TensorFlow imported with Keras 3 (TF_USE_LEGACY_KERAS set too late) is reported, not run."""
    import types
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    fake_tf = types.ModuleType("tensorflow")
    layer = type("Layer", (), {"__module__": "keras.src.layers.layer"})
    fake_tf.keras = types.SimpleNamespace(layers=types.SimpleNamespace(Layer=layer))
    fake_spektral = types.ModuleType("spektral")
    fake_spektral.__version__ = "1.3.1"
    monkeypatch.setitem(sys.modules, "tensorflow", fake_tf)
    monkeypatch.setitem(sys.modules, "spektral", fake_spektral)
    av = SpektralAdapter().available()
    assert not av.ok and "TF_USE_LEGACY_KERAS" in av.reason


def test_edge_permutation_and_mask_checks():
    """The helpers both TF adapters' hooks use (NumPy only): a canonical-order attention mask lands on
    the same (source, target) edge in the library's order, and bad inputs are refused by name."""
    import numpy as np
    from gnnbench.adapters._tf import canonical_attention_edges, check_masks, edge_permutation
    ei = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])
    cs, cd = canonical_attention_edges(ei, 3)
    assert cs.tolist() == [0, 1, 1, 2, 0, 1, 2] and cd.tolist() == [1, 0, 2, 1, 0, 1, 2]
    order = np.lexsort((cd, cs))                  # row-major, as tf.sparse.reorder sorts (source, target)
    ls, ld = cs[order], cd[order]
    perm = edge_permutation(cs, cd, ls, ld, 3)
    mask = np.arange(7, dtype=np.float32)[:, None]
    assert np.array_equal(cs[perm], ls) and np.array_equal(cd[perm], ld)
    assert mask[perm][:, 0].tolist() == order.tolist()
    assert not np.array_equal(perm, np.arange(7))   # the orders really differ here
    with pytest.raises(ValueError, match="missing"):
        edge_permutation(cs, cd, np.r_[ls[:-1], 2], np.r_[ld[:-1], 0], 3)
    with pytest.raises(ValueError, match="attention edges"):
        edge_permutation(cs, cd, ls[:-1], ld[:-1], 3)
    with pytest.raises(ValueError, match="duplicate"):
        edge_permutation(np.r_[cs, 0], np.r_[cd, 1], np.r_[ls, 0], np.r_[ld, 1], 3)
    with pytest.raises(ValueError, match="repeats"):
        edge_permutation(cs, cd, np.r_[ls[:-1], ls[0]], np.r_[ld[:-1], ld[0]], 3)
    ok = check_masks({"input.0": np.ones((3, 2))}, {"input.0": (3, 2)})
    assert ok["input.0"].dtype == np.float32
    with pytest.raises(ValueError, match="input.0.*shape"):
        check_masks({"input.0": np.ones((3, 3))}, {"input.0": (3, 2)})
    with pytest.raises(ValueError, match="unknown dropout site 'attn.0'"):
        check_masks({"attn.0": np.ones((7, 1))}, {"input.0": (3, 2)})


def test_weight_table_round_trip_and_shape_mismatch():
    """The one loader/reader pair both TF adapters map the canonical weights with (NumPy only: a
    stand-in for tf.Variable): rows of a stacked kernel, a transposed matrix split into more axes
    (GATConv's attention kernels), and a shape mismatch refused by the canonical weight's name,
    never reshaped silently."""
    import numpy as np
    from gnnbench.adapters._tf import Slot, load_weights, read_weights

    class Var:
        def __init__(self, name, shape):
            self.name, self.value = name, np.zeros(shape, np.float32)

        @property
        def shape(self):
            return self.value.shape

        def numpy(self):
            return self.value

        def assign(self, a):
            assert a.shape == self.value.shape
            self.value = np.array(a, np.float32)

    rng = np.random.default_rng(0)
    w = {"root": rng.random((3, 2)), "neigh": rng.random((3, 2)), "att": rng.random((4, 5)),
         "kernel": rng.random((3, 8))}
    kernel, att, gat = Var("kernel", (6, 2)), Var("att", (5, 4, 1)), Var("gat", (3, 4, 2))
    table = [Slot("root", kernel, rows=slice(0, 3)), Slot("neigh", kernel, rows=slice(3, 6)),
             Slot("att", att, transpose=True, split=True), Slot("kernel", gat, split=True)]
    load_weights(table, w)
    assert np.allclose(kernel.value, np.concatenate([w["root"], w["neigh"]]))
    assert np.allclose(att.value[:, :, 0], w["att"].T)
    assert np.allclose(gat.value.reshape(3, -1), w["kernel"])
    back = read_weights(table, lambda v: v.numpy())
    assert set(back) == set(w) and all(np.allclose(back[k], w[k]) for k in w)
    with pytest.raises(ValueError, match=r"canonical weight 'kernel' \(3, 8\) does not fit gat \(3, 4, 2\)"):
        load_weights([Slot("kernel", gat)], w)            # no split: a reshape is never implied
    with pytest.raises(ValueError, match="canonical weight 'root' .* does not fit rows 0:2 of kernel"):
        load_weights([Slot("root", kernel, rows=slice(0, 2))], w)
