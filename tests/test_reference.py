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


@pytest.mark.heavy
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


# ---- the NumPy gradients against torch autograd (float64), the only place torch is the reference ----
def _torch_node_loss(spec, weights, graph, masks):
    """The node models in float64 torch, differentiated by autograd: (loss, {name: grad})."""
    import torch
    import torch.nn.functional as F
    from gnnbench.weights import gat_heads

    n = graph.num_nodes
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}
    ei = torch.from_numpy(graph.edge_index)
    tm = {k: torch.tensor(v, dtype=torch.float64) for k, v in (masks or {}).items()}

    def drop(x, site, p):
        return x * tm[site] / (1 - p) if site in tm else x

    h = torch.tensor(graph.x, dtype=torch.float64)
    for i in range(spec.layers):
        last = i == spec.layers - 1
        p = f"layers.{i}."
        h = drop(h, f"input.{i}", spec.dropout)
        if spec.name == "gcn":
            src, dst, nw = (torch.from_numpy(a) for a in reference.gcn_norm(graph.edge_index, n))
            hw = h @ params[p + "weight"]
            h = torch.zeros(n, hw.shape[1], dtype=torch.float64).index_add(0, dst, hw[src] * nw[:, None])
            h = h + params[p + "bias"]
            h = h if last else torch.relu(h)
        elif spec.name == "sage":
            src, dst = ei
            deg = torch.bincount(dst, minlength=n).double().clamp(min=1)
            agg = torch.zeros(n, h.shape[1], dtype=torch.float64).index_add(0, dst, h[src]) / deg[:, None]
            h = agg @ params[p + "weight_neigh"] + h @ params[p + "weight_root"] + params[p + "bias"]
            h = h if last else torch.relu(h)
        else:
            heads = gat_heads(spec, i)
            src, dst = (torch.from_numpy(a) for a in reference._with_self_loops(graph.edge_index, n))
            hw = (h @ params[p + "weight"]).reshape(n, heads, -1)
            a_src = (hw * params[p + "att_src"]).sum(-1)
            a_dst = (hw * params[p + "att_dst"]).sum(-1)
            e = F.leaky_relu(a_src[src] + a_dst[dst], spec.negative_slope)
            emax = torch.full((n, heads), -torch.inf, dtype=torch.float64).scatter_reduce(
                0, dst[:, None].expand(-1, heads), e, "amax")
            ex = torch.exp(e - emax[dst])
            alpha = ex / torch.zeros(n, heads, dtype=torch.float64).index_add(0, dst, ex)[dst]
            alpha = drop(alpha, f"attn.{i}", spec.attn_dropout)
            out = torch.zeros(n, heads, hw.shape[2], dtype=torch.float64).index_add(
                0, dst, hw[src] * alpha[:, :, None])
            h = (out.mean(1) if last else out.reshape(n, -1)) + params[p + "bias"]
            h = h if last else F.elu(h)
    mask = torch.from_numpy(graph.train_mask)
    loss = F.cross_entropy(h[mask], torch.from_numpy(graph.y)[mask])
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in params.items()}, params


def _torch_gin_loss(spec, weights, arrays, masks):
    import torch
    import torch.nn.functional as F

    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}
    h = torch.tensor(arrays["x"], dtype=torch.float64)
    src, dst = (torch.from_numpy(np.ascontiguousarray(a)) for a in arrays["edge_index"])
    batch = torch.from_numpy(arrays["batch"])
    g = int(arrays["y"].shape[0])
    for i in range(spec.layers):
        p = f"layers.{i}."
        z = (1.0 + spec.eps) * h + torch.zeros_like(h).index_add(0, dst, h[src])
        u = z @ params[p + "weight1"]
        if spec.batch_norm:
            u = F.batch_norm(u, None, None, params[p + "bn_weight"], params[p + "bn_bias"], True, 0.1,
                             reference.BN_EPS)
        else:
            u = u + params[p + "bias1"]
        h = torch.relu(torch.relu(u) @ params[p + "weight2"] + params[p + "bias2"])
    r = torch.zeros(g, h.shape[1], dtype=torch.float64).index_add(0, batch, h)
    if spec.readout == "mean":
        r = r / torch.bincount(batch, minlength=g).clamp(min=1)[:, None].double()
    t = torch.relu(r @ params["head.weight1"] + params["head.bias1"])
    if masks and "head" in masks:
        t = t * torch.tensor(masks["head"], dtype=torch.float64) / (1 - spec.dropout)
    logits = t @ params["head.weight2"] + params["head.bias2"]
    loss = F.cross_entropy(logits, torch.from_numpy(arrays["y"]))
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in params.items()}, params


def _assert_grads_close(got, want, rtol=1e-9):
    """Per tensor, relative to its largest entry; a tensor whose gradient is zero in exact arithmetic
    (GAT's last att_dst when every LeakyReLU of a softmax group has one slope: the softmax is
    shift-invariant) is judged against 1e-6 of the largest gradient of any tensor instead."""
    assert set(got) == set(want)
    top = max(np.abs(v).max() for v in want.values())
    for k in want:
        scale = max(np.abs(want[k]).max(), 1e-6 * top)
        err = np.abs(got[k] - want[k]).max() / scale
        assert err <= rtol, f"{k}: max rel {err:.3g}"


@pytest.fixture(scope="module")
def mutag(data_dir):
    return load_graph("mutag", data_dir)


@pytest.fixture(scope="module")
def tiny():
    return load_graph("synthetic:nodes=30,avg_degree=3,features=4,classes=3,seed=7", normalize_features=False)


def _node_graph(name, request):
    return request.getfixturevalue(name)


@pytest.mark.heavy
@pytest.mark.parametrize("masked", [False, True], ids=["nodrop", "masks"])
@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
@pytest.mark.parametrize("gname", ["cora", "tiny"])
def test_node_gradients_equal_torch_autograd(gname, model, masked, request):
    from gnnbench.verify import draw_masks, dropout_sites
    g = request.getfixturevalue(gname)
    spec = get_spec(model, "cora")
    w = init_weights(spec, g.num_features, g.num_classes, 1)
    masks = draw_masks(spec, dropout_sites(spec, g), 5) if masked else None
    loss, grads = reference.node_loss_and_grads(spec, w, g, masks)
    tloss, tgrads, _ = _torch_node_loss(spec, w, g, masks)
    assert abs(loss - tloss) <= 1e-12 * abs(tloss)
    _assert_grads_close(grads, tgrads)
    if masked:   # the masks matter: without them the gradient is another one
        k = "layers.0.weight_root" if model == "sage" else "layers.0.weight"
        plain = reference.node_loss_and_grads(spec, w, g)[1][k]
        assert np.abs(plain - grads[k]).max() > 0.1 * np.abs(plain).max()


@pytest.mark.parametrize("masked", [False, True], ids=["nodrop", "masks"])
@pytest.mark.parametrize("overrides", [{}, {"readout": "mean"}, {"batch_norm": False}],
                         ids=["sum-bn", "mean", "no-bn"])
def test_gin_gradients_equal_torch_autograd(mutag, overrides, masked):
    from gnnbench import batching
    from gnnbench.verify import draw_masks, dropout_sites
    spec = get_spec("gin", "mutag", overrides)
    w = init_weights(spec, mutag.num_features, mutag.num_classes, 2)
    arrays = batching.collate(mutag, batching.epoch_batches(mutag.train_idx, spec.batch_size, 0, 0)[0])
    masks = draw_masks(spec, dropout_sites(spec, arrays), 3) if masked else None
    loss, grads = reference.gin_loss_and_grads(spec, w, arrays, masks)
    tloss, tgrads, _ = _torch_gin_loss(spec, w, arrays, masks)
    assert abs(loss - tloss) <= 1e-12 * abs(tloss)
    _assert_grads_close(grads, tgrads)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_numpy_optimisers_equal_torch_optim(tiny, opt):
    """NumPy SGD / Adam (first and second step) against torch.optim in float64."""
    import torch
    spec = get_spec("gcn", "cora", {"weight_decay": 5e-3})
    w = init_weights(spec, tiny.num_features, tiny.num_classes, 4)
    _, grads = reference.node_loss_and_grads(spec, w, tiny)
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in w.items()}
    cls = torch.optim.Adam if opt == "adam" else torch.optim.SGD
    o = cls(list(params.values()), lr=spec.lr, weight_decay=spec.weight_decay)
    ours = {k: v.astype(np.float64) for k, v in w.items()}
    state = None
    for step in range(2):
        g2 = {k: grads[k] * (1 + step) for k in grads}      # a different gradient on the second step
        for k, p in params.items():
            p.grad = torch.tensor(g2[k])
        o.step()
        if opt == "adam":
            ours, state = reference.adam_step(ours, g2, spec.lr, spec.weight_decay, state)
        else:
            ours = reference.sgd_step(ours, g2, spec.lr, spec.weight_decay)
        for k, p in params.items():
            np.testing.assert_allclose(ours[k], p.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert not np.allclose(ours["layers.0.weight"], w["layers.0.weight"])


def _fd_check(loss_fn, w, grads, rng, per_tensor=4, h=1e-6):
    for k in sorted(w):
        flat = w[k].reshape(-1)
        for j in rng.choice(flat.size, min(per_tensor, flat.size), replace=False):
            wp = {n: v.astype(np.float64).copy() for n, v in w.items()}
            wm = {n: v.astype(np.float64).copy() for n, v in w.items()}
            wp[k].reshape(-1)[j] += h
            wm[k].reshape(-1)[j] -= h
            fd = (loss_fn(wp) - loss_fn(wm)) / (2 * h)
            an = grads[k].reshape(-1)[j]
            assert abs(fd - an) <= 1e-6 * max(1.0, abs(an)) + 1e-8, (k, j, fd, an)


@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
def test_node_gradients_equal_finite_differences(tiny, model):
    from gnnbench.verify import draw_masks, dropout_sites
    spec = get_spec(model, "cora")
    w = init_weights(spec, tiny.num_features, tiny.num_classes, 6)
    masks = draw_masks(spec, dropout_sites(spec, tiny), 1)
    _, grads = reference.node_loss_and_grads(spec, w, tiny, masks)
    _fd_check(lambda ww: reference.node_loss_and_grads(spec, ww, tiny, masks)[0], w, grads, np.random.default_rng(0))


def test_gin_gradients_equal_finite_differences(mutag):
    from gnnbench import batching
    from gnnbench.verify import draw_masks, dropout_sites
    spec = get_spec("gin", "mutag", {"hidden": 8})
    w = init_weights(spec, mutag.num_features, mutag.num_classes, 6)
    arrays = batching.collate(mutag, np.arange(6))
    masks = draw_masks(spec, dropout_sites(spec, arrays), 1)
    _, grads = reference.gin_loss_and_grads(spec, w, arrays, masks)
    _fd_check(lambda ww: reference.gin_loss_and_grads(spec, ww, arrays, masks)[0], w, grads,
              np.random.default_rng(0))


def test_a_wrong_gradient_fails_the_cross_checks(tiny):
    """The comparisons above can fail: a gradient off by 1e-6 relative is caught by both."""
    spec = get_spec("gcn", "cora")
    w = init_weights(spec, tiny.num_features, tiny.num_classes, 1)
    _, grads = reference.node_loss_and_grads(spec, w, tiny)
    _, tgrads, _ = _torch_node_loss(spec, w, tiny, None)
    bad = dict(grads, **{"layers.1.bias": grads["layers.1.bias"] * (1 + 1e-6)})
    with pytest.raises(AssertionError, match="layers.1.bias"):
        _assert_grads_close(bad, tgrads)
    bad = dict(grads, **{"layers.0.weight": grads["layers.0.weight"] * 1.01})
    with pytest.raises(AssertionError):
        _fd_check(lambda ww: reference.node_loss_and_grads(spec, ww, tiny)[0], w, bad,
                  np.random.default_rng(0), per_tensor=50)


def test_masks_follow_the_rate_and_the_seed(cora):
    from gnnbench.verify import draw_masks, dropout_sites
    spec = get_spec("gat", "cora", {"attn_dropout": 0.0})
    sites = dropout_sites(spec, cora)
    assert sites == {"input.0": (2708, 1433), "attn.0": (cora.num_edges + 2708, 8),
                     "input.1": (2708, 64), "attn.1": (cora.num_edges + 2708, 1)}
    m = draw_masks(spec, sites, 0)
    assert m["input.0"].dtype == np.float32 and abs(1 - m["input.0"].mean() - 0.6) < 0.003
    assert m["attn.0"].min() == 1.0          # p = 0: all ones
    again = draw_masks(spec, {"input.1": sites["input.1"]}, 0)["input.1"]
    assert np.array_equal(again, m["input.1"]) and not np.array_equal(draw_masks(spec, sites, 1)["input.1"], again)


@pytest.fixture(scope="module")
def isolated():
    """7 nodes, nodes 5 and 6 without neighbours (SAGE: no message; GCN/GAT: the self-loop only)."""
    from gnnbench.datasets.graph import Graph
    rng = np.random.default_rng(3)
    e = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [1, 4], [0, 2]]).T
    ei = np.concatenate([e, e[::-1]], 1)
    ei = ei[:, np.lexsort((ei[1], ei[0]))]
    train = np.array([1, 1, 0, 1, 0, 1, 1], bool)
    return Graph("isolated", rng.normal(size=(7, 5)).astype(np.float32), rng.integers(0, 3, 7), ei, train,
                 ~train, ~train, 3)


@pytest.mark.parametrize("model,overrides", [("gat", {"heads": 3, "hidden": 5, "layers": 3}),
                                             ("gat", {"out_heads": 4}), ("gcn", {"layers": 1}),
                                             ("sage", {"layers": 3, "hidden": 6}), ("sage", {"layers": 1})])
@pytest.mark.parametrize("gname", ["tiny", "isolated"])
def test_other_shapes_and_isolated_nodes_equal_torch_autograd(gname, model, overrides, request):
    from gnnbench.verify import draw_masks, dropout_sites
    g = request.getfixturevalue(gname)
    spec = get_spec(model, "cora", overrides)
    w = init_weights(spec, g.num_features, g.num_classes, 2)
    masks = draw_masks(spec, dropout_sites(spec, g), 4)
    loss, grads = reference.node_loss_and_grads(spec, w, g, masks)
    tloss, tgrads, _ = _torch_node_loss(spec, w, g, masks)
    assert abs(loss - tloss) <= 1e-12 * abs(tloss)
    _assert_grads_close(grads, tgrads)
    np.testing.assert_allclose(reference.forward(spec, w, g.x, g.edge_index, masks)[np.flatnonzero(g.train_mask)].shape,
                               (g.train_mask.sum(), g.num_classes))
