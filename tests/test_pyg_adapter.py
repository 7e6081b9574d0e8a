"""The PyG adapter's verify hooks (injected dropout masks, gradients, its own dropout op, its own
trainable count) and its sparse-feature layout. The end-to-end checks against the reference are
``gnnbench verify`` (test_reference.py and the verify tests below)."""
import numpy as np
import pytest

from gnnbench.adapters import _torch
from gnnbench.adapters.pyg import PyGAdapter
from gnnbench.specs import get_spec
from gnnbench.weights import init_weights


def _prepared(graph, model, seed=0, **overrides):
    spec = get_spec(model, "cora", overrides)
    a = PyGAdapter()
    a.prepare(graph, spec, "cpu", seed, init_weights(spec, graph.num_features, graph.num_classes, 0))
    return a, spec


def draw_masks(sites, spec, seed=1):
    rng = np.random.default_rng(seed)
    return {s: (rng.random(shape) >= (spec.attn_dropout if s.startswith("attn") else spec.dropout)).astype(np.float32)
            for s, shape in sites.items()}


def _step(a, masks):
    a.set_dropout_masks(masks)
    a.train_step()
    return a.last_loss(), a.gradients()


def test_sites_and_trainable_count(cora):
    a, spec = _prepared(cora, "gat")
    e = cora.num_edges + cora.num_nodes
    assert a.dropout_sites() == {"input.0": (cora.num_nodes, cora.num_features), "input.1": (cora.num_nodes, 64),
                                 "attn.0": (e, 8), "attn.1": (e, 1)}
    w = init_weights(spec, cora.num_features, cora.num_classes, 0)
    assert a.num_parameters() == sum(v.size for v in w.values())
    import torch
    a.model.extra = torch.nn.Parameter(torch.zeros(3))          # one trainable scalar too many is counted
    assert a.num_parameters() == sum(v.size for v in w.values()) + 3


def test_masks_replace_the_library_dropout_and_are_removed_again(cora):
    import torch.nn.functional as F
    a, spec = _prepared(cora, "gat", norm_policy="recompute")
    own = list(a.drops)
    assert all(op is F.dropout for op in own)
    a.set_dropout_masks(draw_masks(a.dropout_sites(), spec))
    assert all(op is not F.dropout for op in a.drops)
    assert [c.dropout for c in a.convs] == [0.0, 0.0]
    assert all("edge_update" in c.__dict__ for c in a.convs)      # the masking wrapper on each conv
    a.set_dropout_masks(None)                                     # the timed configuration again
    assert all(op is F.dropout for op in a.drops)
    assert [c.dropout for c in a.convs] == [spec.attn_dropout] * 2
    assert not any("edge_update" in c.__dict__ for c in a.convs)  # GATConv.edge_update again


@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
def test_masked_step_uses_the_masks_not_the_rng(cora, model):
    """Same masks, different torch seeds: the same loss and gradients; other masks: another loss."""
    a, spec = _prepared(cora, model, seed=0)
    b, _ = _prepared(cora, model, seed=7)
    masks = draw_masks(a.dropout_sites(), spec)
    la, ga = _step(a, masks)
    lb, gb = _step(b, masks)
    assert la == lb
    for k in ga:
        np.testing.assert_array_equal(ga[k], gb[k], err_msg=k)
    c, _ = _prepared(cora, model, seed=0)
    lc, _ = _step(c, draw_masks(c.dropout_sites(), spec, seed=2))
    assert abs(lc - la) > 1e-4


def test_gradients_are_the_cross_entropy_gradient_without_weight_decay(cora):
    import torch
    a, spec = _prepared(cora, "gcn", weight_decay=0.5)
    masks = draw_masks(a.dropout_sites(), spec)
    before = {k: v.copy() for k, v in a.parameters().items()}
    _, g = _step(a, masks)
    # autograd of the same masked loss on a fresh copy (no optimiser involved)
    b, _ = _prepared(cora, "gcn", weight_decay=0.5)
    b.set_dropout_masks(masks)
    b.model.train()
    out = b.model(*b.inputs)
    loss = torch.nn.functional.cross_entropy(out[b.train_idx], b.train_y)
    conv = b.convs[0]
    gw, gb = torch.autograd.grad(loss, [conv.lin.weight, conv.bias])
    np.testing.assert_allclose(g["layers.0.weight"], gw.numpy().T, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g["layers.0.bias"], gb.numpy(), rtol=1e-6, atol=1e-9)
    assert not np.array_equal(a.parameters()["layers.0.weight"], before["layers.0.weight"])   # the step ran


@pytest.mark.parametrize("site", ["input.0", "attn.0"])
def test_dropout_sample_is_the_library_op_at_its_own_rate(cora, site):
    a, spec = _prepared(cora, "gat", dropout=0.3, attn_dropout=0.7)
    p = 0.3 if site == "input.0" else 0.7
    x = a.dropout_sample(site, (200, 500))
    zeros = float((x == 0).mean())
    assert abs(zeros - p) < 4 * np.sqrt(p * (1 - p) / x.size), zeros
    np.testing.assert_allclose(x[x != 0], 1 / (1 - p), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown dropout site"):
        a.dropout_sample("attn.5", (2, 2))


def test_bad_masks_are_refused(cora):
    a, spec = _prepared(cora, "gcn")
    with pytest.raises(ValueError, match="unknown dropout site.*attn.0"):
        a.set_dropout_masks({"attn.0": np.ones((3, 1), np.float32)})
    good = draw_masks(a.dropout_sites(), spec)
    with pytest.raises(ValueError, match="input.1.*shape"):
        a.set_dropout_masks(dict(good, **{"input.1": np.ones((3, 16), np.float32)}))
    with pytest.raises(ValueError, match="no dropout mask for site.*input.0"):
        a.set_dropout_masks({"input.1": good["input.1"]})
    a.set_dropout_masks(good)                                 # the full set is taken


@pytest.mark.parametrize("policy", ["cached", "recompute"])
def test_attention_mask_reaches_the_edge_it_names(cora, policy):
    """Zeroing canonical edge e (s -> t) in attn.0 changes the first GATConv's output in row t only."""
    import torch
    a, spec = _prepared(cora, "gat", norm_policy=policy)
    sites = a.dropout_sites()
    ones = {s: np.ones(shape, np.float32) for s, shape in sites.items()}
    e = 1234
    s_, t_ = cora.edge_index[:, e]
    cut = dict(ones, **{"attn.0": ones["attn.0"].copy()})
    cut["attn.0"][e] = 0.0
    x, ei = a.inputs[0], a.inputs[1]
    outs = []
    for m in (ones, cut):
        a.set_dropout_masks(m)
        a.model.train()
        with torch.no_grad():
            outs.append(a.convs[0](x, ei).numpy())
    rows = np.flatnonzero(np.abs(outs[0] - outs[1]).max(1) > 0)
    assert rows.tolist() == [t_] and s_ != t_


def test_edge_permutation_maps_a_shuffled_edge_list():
    rng = np.random.default_rng(0)
    n = 7
    ei = np.array([[0, 1, 1, 2, 3, 5], [1, 0, 2, 1, 5, 3]])
    csrc, cdst = _torch.canonical_attention_edges(ei, n)
    order = rng.permutation(csrc.size)                       # the library's own edge order
    perm = _torch.edge_permutation(csrc[order], cdst[order], csrc, cdst, n)
    np.testing.assert_array_equal(perm, order)
    mask = np.arange(csrc.size)
    np.testing.assert_array_equal(mask[perm], order)
    with pytest.raises(ValueError, match="not the"):
        _torch.edge_permutation(csrc[:-1], cdst[:-1], csrc, cdst, n)
    with pytest.raises(ValueError, match="duplicate"):
        _torch.edge_permutation(csrc, cdst, np.r_[csrc[:-1], 0], np.r_[cdst[:-1], 1], n)


def test_sparse_features_gcn_matches_dense_and_keeps_zeros(cora):
    a, spec = _prepared(cora, "gcn", features="sparse")
    assert a.inputs[0].is_sparse and a.unsupported_spec(spec) is None
    assert any("features=sparse" in n for n in a.notes())
    d, _ = _prepared(cora, "gcn")
    masks = draw_masks(a.dropout_sites(), spec)
    (ls, gs), (ld, gd) = _step(a, masks), _step(d, masks)
    assert abs(ls - ld) < 1e-6
    for k in gd:
        np.testing.assert_allclose(gs[k], gd[k], rtol=1e-5, atol=1e-7, err_msg=k)
    a.set_dropout_masks(None)                                 # the library's own sparse dropout
    x = a.drops[0](a.inputs[0], p=0.5, training=True)
    assert x.is_sparse and x._nnz() == a.inputs[0]._nnz()      # only stored values dropped; zeros stay zero
    v = x.values().numpy()
    assert 0.45 < (v == 0).mean() < 0.55
    for model in ("gat", "sage", "gin", "sage-sampled"):
        why = PyGAdapter().unsupported_spec(get_spec(model, "cora", {"features": "sparse"}))
        assert why and "GCNConv" in why, model


# ---- gnnbench verify (dropout on, injected masks) on PyG -------------------------------------------------
def _load(data_dir, model, dataset):
    from gnnbench.datasets import load_graph
    spec = get_spec(model, dataset)
    if spec.task == "graph":
        return spec, load_graph(dataset, data_dir, node_attributes=spec.node_attributes, fold=spec.fold,
                                num_folds=spec.num_folds)
    return spec, load_graph(dataset, data_dir, normalize_features=spec.normalize_features)


@pytest.mark.heavy
@pytest.mark.parametrize("model,dataset", [("gin", "mutag"), ("sage-sampled", "cora")])
def test_verify_passes_with_dropout_on(data_dir, model, dataset):
    import torch
    from gnnbench.verify import check
    spec, graph = _load(data_dir, model, dataset)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # as `gnnbench verify` runs GIN (batch norm's backward amplifies rounding)
    try:
        r = check(PyGAdapter.for_task(spec.task)(), spec, graph)
    finally:
        torch.set_num_threads(threads)
    assert r["passed"], r


def test_verify_passes_on_sparse_features(cora):
    from gnnbench.verify import check
    r = check(PyGAdapter(), get_spec("gcn", "cora", {"features": "sparse"}), cora)
    assert r["passed"], r
    assert r["grads_max_rel"] < 1e-4 and set(r["dropout"]) == {"input.0", "input.1"}


@pytest.mark.heavy
@pytest.mark.parametrize("wrong", ["attention mask ignored", "attention mask on the wrong edges",
                                   "attention dropout kept"])
def test_verify_fails_when_the_attention_mask_path_is_wrong(cora, monkeypatch, wrong):
    import torch
    from gnnbench.verify import check
    from gnnbench.adapters import pyg
    real = PyGAdapter.set_attn_masks
    if wrong == "attention mask ignored":
        def bad(self, masks):
            return real(self, masks and {k: torch.ones_like(m) for k, m in masks.items()})
    elif wrong == "attention mask on the wrong edges":
        monkeypatch.setattr(pyg, "edge_permutation", lambda *a: _torch.edge_permutation(*a)[::-1].copy())
        bad = real
    else:                              # the mask on top of GATConv's own dropout, not instead of it
        def bad(self, masks):
            real(self, masks)
            for conv, p in zip(self.convs, self._attn_state()["p"]):
                conv.dropout = p
    monkeypatch.setattr(PyGAdapter, "set_attn_masks", bad)
    r = check(PyGAdapter(), get_spec("gat", "cora"), cora)
    assert not r["passed"]
    assert "loss differs" in r["error"] and "gradient of" in r["error"], r["error"]


def test_one_class_per_task_each_with_its_contract():
    """PyG and DGL answer for_task with one class per task, each a subclass of the registered class that
    has its task's protocol (gnnbench.protocol), and None for a task they do not have."""
    from gnnbench.adapters.dgl import DGLAdapter
    from gnnbench.protocol import GraphTask, NodeTask, SampledTask
    for lib in (PyGAdapter, DGLAdapter):
        node, graph, sampled = (lib.for_task(t) for t in ("node", "graph", "sampled"))
        assert node is lib and issubclass(graph, lib) and issubclass(sampled, lib)
        assert isinstance(node(), NodeTask) and isinstance(graph(), GraphTask) and isinstance(sampled(), SampledTask)
        assert graph().batched_task == "graph" and sampled().batched_task == "sampled" and node().batched_task is None
        assert lib.for_task("no-such-task") is None
