"""The reference itself, checked against independent dense formulations, and PyG against it."""
import numpy as np
import pytest

from gnnbench import reference
from gnnbench.datasets import load_graph
from gnnbench.specs import get_spec
from gnnbench.verify import check
from gnnbench.weights import init_weights


@pytest.fixture(scope="module")
def small():
    return load_graph("synthetic:nodes=60,avg_degree=4,features=5,classes=3,seed=1", normalize_features=False)


def _dense_adj(g):
    a = np.zeros((g.num_nodes, g.num_nodes))
    a[g.edge_index[1], g.edge_index[0]] = 1.0
    return a


def test_gcn_reference_equals_dense_formula(small):
    spec = get_spec("gcn")
    w = init_weights(spec, small.num_features, small.num_classes, 3)
    a = _dense_adj(small) + np.eye(small.num_nodes)
    d = np.diag(1 / np.sqrt(a.sum(1)))
    ahat = d @ a @ d
    h = np.maximum(ahat @ small.x @ w["layers.0.weight"] + w["layers.0.bias"], 0)
    expected = ahat @ h @ w["layers.1.weight"] + w["layers.1.bias"]
    assert np.allclose(reference.forward(spec, w, small.x, small.edge_index), expected, atol=1e-10)


def test_sage_reference_equals_dense_formula(small):
    spec = get_spec("sage")
    w = init_weights(spec, small.num_features, small.num_classes, 3)
    a = _dense_adj(small)
    mean = a / np.maximum(a.sum(1, keepdims=True), 1)
    layer = lambda h, p: mean @ h @ w[p + "weight_neigh"] + h @ w[p + "weight_root"] + w[p + "bias"]
    expected = layer(np.maximum(layer(small.x.astype(float), "layers.0."), 0), "layers.1.")
    assert np.allclose(reference.forward(spec, w, small.x, small.edge_index), expected, atol=1e-10)


def test_gat_reference_equals_dense_formula(small):
    spec = get_spec("gat")
    w = init_weights(spec, small.num_features, small.num_classes, 3)
    a = _dense_adj(small) + np.eye(small.num_nodes)

    def layer(h, p, heads, last):
        hw = (h @ w[p + "weight"]).reshape(len(h), heads, -1)
        outs = []
        for k in range(heads):
            s = hw[:, k] @ w[p + "att_src"][k]
            t = hw[:, k] @ w[p + "att_dst"][k]
            e = t[:, None] + s[None, :]                 # e[i, j]: j -> i
            e = np.where(e > 0, e, 0.2 * e)
            e = np.where(a > 0, e, -np.inf)
            att = np.exp(e - e.max(1, keepdims=True))
            att /= att.sum(1, keepdims=True)
            outs.append(att @ hw[:, k])
        out = np.mean(outs, 0) if last else np.concatenate(outs, 1)
        return out + w[p + "bias"]
    h = layer(small.x.astype(float), "layers.0.", 8, False)
    h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))
    expected = layer(h, "layers.1.", 1, True)
    assert np.allclose(reference.forward(spec, w, small.x, small.edge_index), expected, atol=1e-10)


def test_weights_are_seeded_and_glorot():
    spec = get_spec("gat", "pubmed")
    a, b = init_weights(spec, 500, 3, 0), init_weights(spec, 500, 3, 0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["layers.1.weight"].shape == (64, 24) and a["layers.1.att_src"].shape == (8, 3)
    assert a["layers.1.bias"].shape == (3,) and a["layers.0.bias"].shape == (64,)
    assert np.abs(a["layers.0.weight"]).max() <= np.sqrt(6 / (500 + 64))
    assert not np.array_equal(init_weights(spec, 500, 3, 1)["layers.0.weight"], a["layers.0.weight"])


@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
def test_pyg_matches_reference_on_cora(cora, model):
    from gnnbench.adapters.pyg import PyGAdapter
    res = check(PyGAdapter(), get_spec(model, "cora"), cora)
    assert res["passed"], res


def test_verify_catches_a_wrong_model(cora):
    """A deliberately wrong adapter (no self-loops in GCN's normalisation) must fail verify."""
    from gnnbench.adapters.pyg import PyGAdapter
    import torch

    class Wrong(PyGAdapter):
        def build(self, graph, spec, device):
            model, (x, ei, ew) = super().build(graph, spec, device)
            keep = ei[0] != ei[1]
            return model, (x, ei[:, keep], ew[keep])
    res = check(Wrong(), get_spec("gcn", "cora"), cora)
    assert not res["passed"] and res["logits_max_abs_diff"] > 1e-3
