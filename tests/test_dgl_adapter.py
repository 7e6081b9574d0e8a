"""The DGL adapter: the GraphBolt import workaround, availability, prepare,
verify against the reference (both norm policies), a short training run."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gnnbench import reference
from gnnbench.adapters.dgl import DGLAdapter, _import
from gnnbench.metrics import accuracy
from gnnbench.specs import get_spec
from gnnbench.verify import check
from gnnbench.weights import init_weights

IMPORT_PROBE = r"""
import json, os, sys
from gnnbench.adapters.dgl import _import
force_fallback = sys.argv[1] == "fallback"
predicted = _import.graphbolt_problem()
if force_fallback:   # pretend GraphBolt looks loadable: the real import fails, then the stub is used
    _import.graphbolt_problem = lambda: None
dgl, stubbed = _import.import_dgl()
gb = sys.modules.get("dgl.graphbolt")
try:
    gb.ItemSet
    attr_error = ""
except AttributeError as exc:
    attr_error = str(exc)
import torch
g = dgl.add_self_loop(dgl.graph((torch.tensor([0, 1]), torch.tensor([1, 0])), num_nodes=3))
from dgl.nn.pytorch import GraphConv
out = GraphConv(4, 2)(g, torch.ones(3, 4))
again = _import.import_dgl()
print(json.dumps({"version": dgl.__version__, "stubbed": stubbed, "predicted": predicted,
                  "reason": _import.stub_reason(), "is_stub": isinstance(gb, _import.GraphBoltStub),
                  "attr_error": attr_error, "backend": os.environ.get("DGLBACKEND"),
                  "out_shape": list(out.shape), "again_same": again[0] is dgl and again[1] == stubbed}))
"""


def _probe(mode):
    env = {k: v for k, v in os.environ.items() if k != "DGLBACKEND"}
    p = subprocess.run([sys.executable, "-c", IMPORT_PROBE, mode], capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def plain_import():
    return _probe("plain")


@pytest.mark.heavy
def test_import_dgl_stubs_graphbolt_when_it_cannot_load(plain_import):
    r = plain_import
    assert r["version"].startswith("2.")
    assert r["backend"] == "pytorch"           # set before importing DGL
    assert r["out_shape"] == [3, 2]            # DGL works after the import
    assert r["again_same"]
    # stubbed exactly when GraphBolt could not load (torch 2.13 has no GraphBolt build in DGL 2.1.0)
    assert r["stubbed"] == (r["predicted"] is not None)
    if r["stubbed"]:
        assert r["is_stub"] and r["reason"] == r["predicted"]
        assert "GraphBolt is unavailable" in r["attr_error"]


@pytest.mark.heavy
def test_import_dgl_falls_back_to_the_stub_when_the_real_import_fails(plain_import):
    if not plain_import["stubbed"]:
        pytest.skip("GraphBolt loads here; the fallback path cannot be exercised")
    r = _probe("fallback")
    assert r["stubbed"] and r["is_stub"] and r["out_shape"] == [3, 2]
    assert r["reason"]  # the real import's error is recorded


def test_adapter_module_imports_no_library():
    code = ("import sys, gnnbench.adapters.dgl, gnnbench.adapters.dgl._import; "
            "print(sorted(m for m in ('dgl', 'torch') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_registered_and_child_env():
    from gnnbench.adapters import adapter_class
    assert adapter_class("dgl") is DGLAdapter
    assert DGLAdapter.child_env(2)["DGLBACKEND"] == "pytorch"


def test_available_versions_and_notes():
    a = DGLAdapter()
    av = a.available()
    assert av.ok, av.reason
    assert av.version.startswith("2.")
    v = a.versions()
    assert v["dgl"] == av.version and "torch" in v
    _, stubbed = _import.import_dgl()
    assert any(n.startswith(_import.STUB_NOTE) for n in a.notes()) == stubbed
    if stubbed:
        assert "GraphBolt unavailable (stubbed)" in " ".join(a.notes())


def test_not_installed(monkeypatch):
    def missing():
        raise ImportError("No module named 'dgl'")
    monkeypatch.setattr(_import, "import_dgl", missing)
    av = DGLAdapter().available()
    assert not av.ok
    assert av.install_hint == "pip install 'gnnbench[dgl]'"
    assert "ImportError" in av.reason and "dgl" in av.reason


@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
def test_prepare_loads_canonical_weights(cora, model):
    spec = get_spec(model, "cora")
    w = init_weights(spec, cora.num_features, cora.num_classes, 3)
    a = DGLAdapter()
    a.prepare(cora, spec, "cpu", 3, w)
    p = a.parameters()
    assert sorted(p) == sorted(w)
    for k in w:
        assert p[k].shape == w[k].shape, k
        np.testing.assert_array_equal(p[k], w[k], err_msg=k)
    g = a.inputs[0]
    loops = model in ("gcn", "gat")
    assert g.num_nodes() == cora.num_nodes
    assert g.num_edges() == cora.num_edges + (cora.num_nodes if loops else 0)
    assert a.num_parameters() == sum(v.size for v in w.values())


def test_cached_gcn_edge_weights_are_the_reference_normalisation(cora):
    a = DGLAdapter()
    spec = get_spec("gcn", "cora")
    a.prepare(cora, spec, "cpu", 0, init_weights(spec, cora.num_features, cora.num_classes, 0))
    g, _, ew = a.inputs
    src, dst = (t.numpy() for t in g.edges())
    rsrc, rdst, rw = reference.gcn_norm(cora.edge_index, cora.num_nodes)
    np.testing.assert_array_equal(src, rsrc)
    np.testing.assert_array_equal(dst, rdst)
    np.testing.assert_allclose(ew.numpy(), rw, rtol=1e-6)


@pytest.mark.heavy
@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
def test_verify_passes_on_cora(cora, model):
    r = check(DGLAdapter(), get_spec(model, "cora"), cora)
    assert r["passed"], r
    assert r["logits_max_abs_diff"] < 1e-6


@pytest.mark.parametrize("model", ["gcn", "gat"])
def test_cached_and_recompute_give_the_same_model(cora, model):
    out = {}
    for policy in ("cached", "recompute"):
        spec = get_spec(model, "cora", {"norm_policy": policy, "dropout": 0.0})
        a = DGLAdapter()
        a.prepare(cora, spec, "cpu", 0, init_weights(spec, cora.num_features, cora.num_classes, 0))
        logits = a.logits()
        a.train_step()
        out[policy] = (logits, a.last_loss(), a.parameters())
    (lc, loss_c, pc), (lr, loss_r, pr) = out["cached"], out["recompute"]
    np.testing.assert_allclose(lc, lr, atol=1e-5)
    assert abs(loss_c - loss_r) < 1e-6
    for k in pc:
        np.testing.assert_allclose(pc[k], pr[k], atol=1e-5, err_msg=k)


@pytest.mark.parametrize("model", ["gcn", "gat"])
def test_cached_train_step_does_no_degree_work(cora, model, monkeypatch):
    """'cached' computes everything graph-only in prepare; 'recompute' uses DGL's per-forward code."""
    dgl, _ = _import.import_dgl()
    calls = {}
    for method in ("in_degrees", "out_degrees"):
        orig = getattr(dgl.DGLGraph, method)

        def counted(self, *args, _orig=orig, _m=method, **kw):
            calls[_m] = calls.get(_m, 0) + 1
            return _orig(self, *args, **kw)
        monkeypatch.setattr(dgl.DGLGraph, method, counted)
    for policy in ("cached", "recompute"):
        spec = get_spec(model, "cora", {"norm_policy": policy})
        a = DGLAdapter()
        a.prepare(cora, spec, "cpu", 0, init_weights(spec, cora.num_features, cora.num_classes, 0))
        calls.clear()
        a.train_step()
        if policy == "cached":
            assert calls == {}, calls
        else:
            assert sum(calls.values()) > 0


def test_bad_norm_policy(cora):
    spec = dataclasses.replace(get_spec("gcn", "cora"), norm_policy="sometimes")
    with pytest.raises(ValueError, match="norm_policy"):
        DGLAdapter().prepare(cora, spec, "cpu", 0, init_weights(spec, cora.num_features, cora.num_classes, 0))


@pytest.mark.heavy
def test_training_is_seeded_and_learns_cora(cora):
    spec = get_spec("gcn", "cora")
    w = init_weights(spec, cora.num_features, cora.num_classes, 0)
    runs = []
    for epochs in (30, 3):
        a = DGLAdapter()
        a.prepare(cora, spec, "cpu", 0, w)
        losses = []
        for _ in range(epochs):
            a.train_step()
            losses.append(a.last_loss())
        runs.append((losses, a))
    (losses, trained), (again, _) = runs
    assert again == losses[:3]                # dropout is seeded from prepare's seed
    assert losses[-1] < losses[0]
    acc = accuracy(trained.logits(), cora)        # scored by the harness, as in a run
    assert set(acc) == {"train", "val", "test"}
    assert acc["test"] > 0.5, acc             # chance is ~0.14


# ---- verify hooks (injected dropout masks, gradients, DGL's own dropout, trainable count) ------------------
def _prepared(graph, model, seed=0, lib=DGLAdapter, **overrides):
    spec = get_spec(model, "cora", overrides)
    a = lib()
    a.prepare(graph, spec, "cpu", seed, init_weights(spec, graph.num_features, graph.num_classes, 0))
    return a, spec


def _masks(spec, graph):
    from gnnbench.verify import draw_masks, dropout_sites
    return draw_masks(spec, dropout_sites(spec, graph), 0)


def test_masks_swap_dgl_dropout_modules_and_restore_them(cora):
    import torch.nn.functional as F
    a, spec = _prepared(cora, "gat")
    own = [c.attn_drop for c in a.convs]
    assert all(type(m).__name__ == "Dropout" and m.p == spec.attn_dropout for m in own)
    a.set_dropout_masks(_masks(spec, cora))
    assert all(c.attn_drop is not m for c, m in zip(a.convs, own)) and F.dropout not in a.drops
    a.train_step()
    a.set_dropout_masks(None)
    assert [c.attn_drop for c in a.convs] == own and all(op is F.dropout for op in a.drops)
    assert a.num_parameters() == sum(p.numel() for p in a.model.parameters())


def test_same_masks_same_step_in_pyg_and_dgl(cora):
    """Two libraries, the same injected masks (attention included): the same loss and gradients."""
    from gnnbench.adapters.pyg import PyGAdapter
    out = []
    for lib in (PyGAdapter, DGLAdapter):
        a, spec = _prepared(cora, "gat", lib=lib, norm_policy="recompute", seed=3 if lib is DGLAdapter else 0)
        a.set_dropout_masks(_masks(spec, cora))
        a.train_step()
        out.append((a.last_loss(), a.gradients()))
    (lp, gp), (ld, gd) = out
    assert abs(lp - ld) < 1e-6
    for k in gp:
        np.testing.assert_allclose(gd[k], gp[k], rtol=1e-4, atol=1e-7, err_msg=k)


def test_attention_mask_reaches_the_dgl_edge_it_names(cora):
    import torch
    a, spec = _prepared(cora, "gat")
    ones = {s: np.ones(m.shape, np.float32) for s, m in _masks(spec, cora).items()}
    e = 4321
    s_, t_ = cora.edge_index[:, e]
    cut = dict(ones, **{"attn.0": ones["attn.0"].copy()})
    cut["attn.0"][e] = 0.0
    g, x, _ = a.inputs
    outs = []
    for m in (ones, cut):
        a.set_dropout_masks(m)
        a.model.train()
        with torch.no_grad():
            outs.append(a.convs[0](g, x).numpy())
    assert np.flatnonzero(np.abs(outs[0] - outs[1]).reshape(cora.num_nodes, -1).max(1) > 0).tolist() == [t_]
    assert s_ != t_


@pytest.mark.parametrize("model,dataset", [("gin", "mutag"), ("sage-sampled", "cora")])
def test_verify_passes_with_dropout_on_gin_and_sampled(data_dir, model, dataset):
    from gnnbench.datasets import load_graph
    spec = get_spec(model, dataset)
    if model == "gin":
        graph = load_graph(dataset, data_dir, node_attributes=spec.node_attributes, fold=spec.fold,
                           num_folds=spec.num_folds)
    else:
        graph = load_graph(dataset, data_dir, normalize_features=spec.normalize_features)
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # as `gnnbench verify` runs GIN (batch norm's backward amplifies rounding)
    try:
        r = check(DGLAdapter.for_task(spec.task)(), spec, graph)
    finally:
        torch.set_num_threads(threads)
    assert r["passed"], r
    if model == "gin":
        assert r["grads_max_rel"] < 1e-3 and r["dropout"]["head"]["p"] == spec.dropout
        assert r["num_parameters"] == r["canonical_parameters"]


@pytest.mark.parametrize("wrong", ["ignore input mask", "ignore attention mask", "attention at p/2"])
def test_verify_fails_when_the_mask_path_is_wrong(cora, monkeypatch, wrong):
    """A mask path that ignores the harness's mask (or scales it by another rate) must fail verify."""
    import torch.nn.functional as F
    from gnnbench.adapters import _torch
    import gnnbench.adapters.dgl as dgl_adapter
    if wrong == "ignore input mask":
        monkeypatch.setattr(_torch, "masked_dropout", lambda mask, site: F.dropout)
    elif wrong == "ignore attention mask":
        monkeypatch.setattr(dgl_adapter, "masked_dropout_module",
                            lambda mask, p, site: _torch.masked_dropout_module(mask * 0 + 1, p, site))
    else:
        monkeypatch.setattr(dgl_adapter, "masked_dropout_module",
                            lambda mask, p, site: _torch.masked_dropout_module(mask, p / 2, site))
    r = check(DGLAdapter(), get_spec("gat", "cora"), cora)
    assert not r["passed"]
    assert "loss differs" in r["error"] and "gradient of" in r["error"], r["error"]
