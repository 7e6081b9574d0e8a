"""Reference implementations of each model: plain, readable, slow by design, NumPy float64 only
(scipy.sparse for the scatter sums).

Independent of every library under test: forward passes in eval mode and in training mode with
given dropout masks, hand-derived backward passes (the gradient of the mean cross-entropy w.r.t.
every canonical parameter) and NumPy SGD / Adam steps with ``torch.optim``'s semantics.
``gnnbench verify`` compares every adapter against them; ``tests/test_reference.py`` cross-checks
the gradients with torch autograd (the only place torch appears) and with finite differences.

Conventions (shared with every adapter):
- ``edge_index[0]`` is the source j, ``edge_index[1]`` the target i; messages
  flow j -> i. The canonical edge list is symmetric and has no self-loops.
- GCN: H' = D^-1/2 (A + I) D^-1/2 H W + b, ReLU between layers.
- GAT: e_ij = LeakyReLU(a_src . W h_j + a_dst . W h_i) over j in N(i) + {i},
  softmax over j, heads concatenated (hidden) or averaged (last), + b, ELU between layers.
- SAGE: H' = mean_{j in N(i)} h_j W_neigh + h_i W_root + b (mean of nothing = 0), ReLU between layers.
- Loss: mean cross-entropy over the training nodes (GIN: over the batch's graphs). Weight decay (L2)
  is not part of the loss: it is added to the gradient by the optimiser step, as torch.optim does.

Dropout (training mode only): each site multiplies by a given 0/1 keep-mask and by 1/(1-p)
(``x * mask / (1 - p)``); ``p`` is ``spec.dropout`` for ``input.<i>`` (the input of node-model layer
i) and ``head`` (GIN, before the classifier's last linear layer), ``spec.attn_dropout`` for
``attn.<i>`` (GAT's attention coefficients after the softmax, edges in the canonical order: the
columns of ``edge_index``, then one self-loop per node in node order). A site absent from
``masks`` is not dropped (identity). ``masks=None`` is eval mode.
"""
from __future__ import annotations

import numpy as np

from .weights import gat_heads

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
BN_EPS = 1e-5


def _with_self_loops(edge_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    loops = np.arange(n, dtype=np.int64)
    return np.concatenate([edge_index[0], loops]), np.concatenate([edge_index[1], loops])


def gcn_norm(edge_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges with self-loops and their weights 1/sqrt(deg_i deg_j)."""
    src, dst = _with_self_loops(edge_index, n)
    deg = np.bincount(dst, minlength=n).astype(np.float64)
    w = 1.0 / np.sqrt(deg[src] * deg[dst])
    return src, dst, w


def _scatter_sum(values: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """out[i] = sum of values[e] over e with index[e] == i, as a float64 sparse 0/1 matrix product
    (scipy.sparse: exact sums, no library under test involved)."""
    from scipy.sparse import csr_matrix
    values = np.asarray(values)
    e = values.shape[0]
    s = csr_matrix((np.ones(e), (np.asarray(index, np.int64), np.arange(e))), shape=(n, e))
    return np.asarray(s @ values.reshape(e, -1)).reshape((n,) + values.shape[1:])


class Structure:
    """The graph structure the node models use, computed once: GCN's edges with self-loops and
    their normalisation, SAGE's edges and 1/deg (0 where deg is 0: no message), GAT's edges with
    self-loops. A subclass may change one of them (the mutation test adapters do)."""

    def __init__(self, edge_index: np.ndarray, n: int):
        self.n = n
        self.edge_index = np.asarray(edge_index, np.int64)
        self.loop_src, self.loop_dst = _with_self_loops(self.edge_index, n)
        self.gcn_weight = self.gcn_weights()
        self.sage_scale = self.sage_scales()

    def gcn_weights(self) -> np.ndarray:
        """Per edge (with self-loops) 1/sqrt(deg_i deg_j)."""
        deg = np.bincount(self.loop_dst, minlength=self.n).astype(np.float64)
        return 1.0 / np.sqrt(deg[self.loop_src] * deg[self.loop_dst])

    def sage_scales(self) -> np.ndarray:
        """Per node 1/deg, 0 for isolated nodes (their neighbour mean is 0)."""
        deg = np.bincount(self.edge_index[1], minlength=self.n).astype(np.float64)
        return np.where(deg > 0, 1.0 / np.maximum(deg, 1.0), 0.0)


def _rate(spec, site: str) -> float:
    return float(spec.attn_dropout if site.startswith("attn.") else spec.dropout)


def _keep_scale(p: float) -> float:
    return 0.0 if p >= 1.0 else 1.0 / (1.0 - p)


def _drop(spec, x: np.ndarray, masks, site: str):
    """(dropped x, factor) with factor = mask / (1 - p) (None: no dropout at this site)."""
    if masks is None or site not in masks:
        return x, None
    m = np.asarray(masks[site], np.float64)
    if m.shape != x.shape:
        raise ValueError(f"dropout mask {site}: shape {m.shape} != {x.shape}")
    f = m * _keep_scale(_rate(spec, site))
    return x * f, f


def _undrop(g: np.ndarray, f):
    return g if f is None else g * f


def _f64(weights: dict) -> dict:
    return {k: np.asarray(v, np.float64) for k, v in weights.items()}


def _elu(h):
    return np.where(h > 0, h, np.expm1(np.minimum(h, 0)))


# ---- node models: forward (with a cache for the backward pass) --------------------------------
def _node_forward(spec, w: dict, x: np.ndarray, st: Structure, masks):
    h = np.asarray(x, np.float64)
    n = st.n
    caches = []
    for i in range(spec.layers):
        last = i == spec.layers - 1
        p = f"layers.{i}."
        d, f = _drop(spec, h, masks, f"input.{i}")
        c = {"d": d, "f": f}
        if spec.name == "gcn":
            hw = d @ w[p + "weight"]
            pre = _scatter_sum(hw[st.loop_src] * st.gcn_weight[:, None], st.loop_dst, n) + w[p + "bias"]
            h = pre if last else np.maximum(pre, 0)
        elif spec.name in ("sage", "sage-sampled"):
            src, dst = st.edge_index
            agg = _scatter_sum(d[src], dst, n) * st.sage_scale[:, None]
            pre = agg @ w[p + "weight_neigh"] + d @ w[p + "weight_root"] + w[p + "bias"]
            c["agg"] = agg
            h = pre if last else np.maximum(pre, 0)
        elif spec.name == "gat":
            heads = gat_heads(spec, i)
            src, dst = st.loop_src, st.loop_dst
            hw = (d @ w[p + "weight"]).reshape(n, heads, -1)
            a_src = (hw * w[p + "att_src"]).sum(-1)          # [N, H]
            a_dst = (hw * w[p + "att_dst"]).sum(-1)
            e_raw = a_src[src] + a_dst[dst]                    # [E, H]
            e = np.where(e_raw > 0, e_raw, spec.negative_slope * e_raw)
            emax = np.full((n, heads), -np.inf)
            np.maximum.at(emax, dst, e)
            ex = np.exp(e - emax[dst])
            alpha = ex / _scatter_sum(ex, dst, n)[dst]
            alpha_d, fa = _drop(spec, alpha, masks, f"attn.{i}")
            out = _scatter_sum(hw[src] * alpha_d[:, :, None], dst, n)   # [N, H, F]
            pre = (out.mean(axis=1) if last else out.reshape(n, -1)) + w[p + "bias"]
            c.update(hw=hw, e_raw=e_raw, alpha=alpha, alpha_d=alpha_d, fa=fa, heads=heads)
            h = pre if last else _elu(pre)
        else:
            raise ValueError(f"no reference for model '{spec.name}'")
        c["pre"] = pre
        caches.append(c)
    return h, caches


def _node_backward(spec, w: dict, st: Structure, caches: list, g: np.ndarray) -> dict:
    """Gradients of every canonical parameter, given g = dL/dlogits."""
    n = st.n
    grads = {}
    for i in reversed(range(spec.layers)):
        last = i == spec.layers - 1
        p = f"layers.{i}."
        c = caches[i]
        pre, d = c["pre"], c["d"]
        if not last:   # the activation after this layer
            g = g * (pre > 0) if spec.name != "gat" else g * np.where(pre > 0, 1.0, np.exp(np.minimum(pre, 0)))
        grads[p + "bias"] = g.sum(0)
        if spec.name == "gcn":
            g_hw = _scatter_sum(g[st.loop_dst] * st.gcn_weight[:, None], st.loop_src, n)
            grads[p + "weight"] = d.T @ g_hw
            g_d = g_hw @ w[p + "weight"].T
        elif spec.name in ("sage", "sage-sampled"):
            src, dst = st.edge_index
            grads[p + "weight_neigh"] = c["agg"].T @ g
            grads[p + "weight_root"] = d.T @ g
            g_agg = (g @ w[p + "weight_neigh"].T) * st.sage_scale[:, None]
            g_d = g @ w[p + "weight_root"].T + _scatter_sum(g_agg[dst], src, n)
        else:  # gat
            heads, hw = c["heads"], c["hw"]
            src, dst = st.loop_src, st.loop_dst
            fdim = hw.shape[2]
            g_out = np.repeat(g[:, None, :] / heads, heads, axis=1) if last else g.reshape(n, heads, fdim)
            g_alpha_d = (g_out[dst] * hw[src]).sum(-1)                       # [E, H]
            g_hw = _scatter_sum(g_out[dst] * c["alpha_d"][:, :, None], src, n)
            g_alpha = _undrop(g_alpha_d, c["fa"])
            alpha = c["alpha"]
            s = _scatter_sum(alpha * g_alpha, dst, n)                         # [N, H]
            g_e = alpha * (g_alpha - s[dst])
            g_raw = np.where(c["e_raw"] > 0, g_e, spec.negative_slope * g_e)
            g_as = _scatter_sum(g_raw, src, n)
            g_ad = _scatter_sum(g_raw, dst, n)
            grads[p + "att_src"] = (g_as[:, :, None] * hw).sum(0)
            grads[p + "att_dst"] = (g_ad[:, :, None] * hw).sum(0)
            g_hw = g_hw + g_as[:, :, None] * w[p + "att_src"] + g_ad[:, :, None] * w[p + "att_dst"]
            g_hw = g_hw.reshape(n, -1)
            grads[p + "weight"] = d.T @ g_hw
            g_d = g_hw @ w[p + "weight"].T
        if i > 0:
            g = _undrop(g_d, c["f"])
    return grads


def forward(spec, weights: dict, x: np.ndarray, edge_index: np.ndarray, masks: dict | None = None,
            structure: Structure | None = None) -> np.ndarray:
    """Logits, float64 [N, C]: eval mode (``masks=None``), or training mode with these dropout masks."""
    st = structure or Structure(edge_index, np.asarray(x).shape[0])
    return _node_forward(spec, _f64(weights), x, st, masks)[0]


def _ce_and_grad(logits: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy over ``rows`` and its gradient w.r.t. all logits."""
    z = logits[rows]
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    k = len(rows)
    loss = float(-logp[np.arange(k), y[rows]].mean())
    gz = np.exp(logp)
    gz[np.arange(k), y[rows]] -= 1.0
    g = np.zeros_like(logits)
    g[rows] = gz / k
    return loss, g


def cross_entropy(logits: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    rows = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
    return _ce_and_grad(np.asarray(logits, np.float64), np.asarray(y), rows)[0]


def node_loss_and_grads(spec, weights: dict, graph, masks: dict | None = None,
                        structure: Structure | None = None) -> tuple[float, dict]:
    """(mean cross-entropy over the training nodes, its gradient per canonical parameter), in
    training mode with ``masks`` (None or {}: no dropout)."""
    w = _f64(weights)
    st = structure or Structure(graph.edge_index, graph.num_nodes)
    logits, caches = _node_forward(spec, w, graph.x, st, masks or {})
    loss, g = _ce_and_grad(logits, np.asarray(graph.y), np.flatnonzero(graph.train_mask))
    return loss, _node_backward(spec, w, st, caches, g)


# ---- graph classification (GIN) ---------------------------------------------------------------
# h' = ReLU(ReLU(BN(z W1)) W2 + b2), z = (1 + eps) h + sum_{j in N(i)} h_j, per layer (BN: batch
# statistics in training (biased variance), running statistics in eval; at initialisation mean 0,
# variance 1; without batch norm z W1 + b1 instead),
# readout r_g = sum (or mean) of h over graph g's nodes, logits = dropout(ReLU(r W_a + b_a)) W_b + b_b.
def _gin_forward(spec, w, x, edge_index, batch, num_graphs, training: bool, masks):
    h = np.asarray(x, np.float64)
    n = h.shape[0]
    src, dst = np.asarray(edge_index, np.int64)
    caches = []
    for i in range(spec.layers):
        p = f"layers.{i}."
        z = (1.0 + spec.eps) * h + _scatter_sum(h[src], dst, n)
        u = z @ w[p + "weight1"]
        c = {"z": z}
        if spec.batch_norm:
            if training:
                mean, var = u.mean(0), u.var(0)           # biased variance, as BN normalises with
                xhat = (u - mean) / np.sqrt(var + BN_EPS)
                c.update(xhat=xhat, std=np.sqrt(var + BN_EPS))
            else:                                          # running mean 0, running variance 1
                xhat = u / np.sqrt(1.0 + BN_EPS)
            y = xhat * w[p + "bn_weight"] + w[p + "bn_bias"]
        else:
            y = u + w[p + "bias1"]
        a = np.maximum(y, 0)
        v = a @ w[p + "weight2"] + w[p + "bias2"]
        c.update(y=y, a=a, v=v)
        h = np.maximum(v, 0)
        caches.append(c)
    r = _scatter_sum(h, batch, num_graphs)
    counts = np.maximum(np.bincount(batch, minlength=num_graphs), 1).astype(np.float64)
    if spec.readout == "mean":
        r = r / counts[:, None]
    q = r @ w["head.weight1"] + w["head.bias1"]
    t = np.maximum(q, 0)
    td, f = _drop(spec, t, masks if training else None, "head")
    logits = td @ w["head.weight2"] + w["head.bias2"]
    return logits, {"layers": caches, "h": h, "r": r, "q": q, "td": td, "f": f, "counts": counts}


def _gin_backward(spec, w, edge_index, batch, cache, g) -> dict:
    src, dst = np.asarray(edge_index, np.int64)
    grads = {"head.weight2": cache["td"].T @ g, "head.bias2": g.sum(0)}
    g_t = _undrop(g @ w["head.weight2"].T, cache["f"])
    g_q = g_t * (cache["q"] > 0)
    grads["head.weight1"] = cache["r"].T @ g_q
    grads["head.bias1"] = g_q.sum(0)
    g_r = g_q @ w["head.weight1"].T
    if spec.readout == "mean":
        g_r = g_r / cache["counts"][:, None]
    g_h = g_r[batch]
    n = g_h.shape[0]
    for i in reversed(range(spec.layers)):
        p = f"layers.{i}."
        c = cache["layers"][i]
        g_v = g_h * (c["v"] > 0)
        grads[p + "weight2"] = c["a"].T @ g_v
        grads[p + "bias2"] = g_v.sum(0)
        g_y = (g_v @ w[p + "weight2"].T) * (c["y"] > 0)
        if spec.batch_norm:
            xhat = c["xhat"]
            grads[p + "bn_weight"] = (g_y * xhat).sum(0)
            grads[p + "bn_bias"] = g_y.sum(0)
            g_x = g_y * w[p + "bn_weight"]
            m = g_x.shape[0]
            g_u = (m * g_x - g_x.sum(0) - xhat * (g_x * xhat).sum(0)) / (m * c["std"])
        else:
            grads[p + "bias1"] = g_y.sum(0)
            g_u = g_y
        grads[p + "weight1"] = c["z"].T @ g_u
        if i > 0:
            g_z = g_u @ w[p + "weight1"].T
            g_h = (1.0 + spec.eps) * g_z + _scatter_sum(g_z[dst], src, n)
    return grads


def gin_forward(spec, weights: dict, x: np.ndarray, edge_index: np.ndarray, batch: np.ndarray,
                num_graphs: int, training: bool = False, masks: dict | None = None) -> np.ndarray:
    """GIN logits per graph, float64 [G, C]: eval mode with freshly initialised BN statistics, or
    (``training=True``) batch statistics and the ``head`` dropout mask if given."""
    return _gin_forward(spec, _f64(weights), x, edge_index, np.asarray(batch, np.int64), num_graphs,
                        training, masks)[0]


def gin_loss_and_grads(spec, weights: dict, arrays: dict, masks: dict | None = None) -> tuple[float, dict]:
    """(mean cross-entropy over the batch's graphs, its gradient per canonical parameter) on one
    collated batch (``batching.collate``), in training mode with ``masks``."""
    w = _f64(weights)
    batch = np.asarray(arrays["batch"], np.int64)
    y = np.asarray(arrays["y"])
    logits, cache = _gin_forward(spec, w, arrays["x"], arrays["edge_index"], batch, int(y.shape[0]),
                                 True, masks or {})
    loss, g = _ce_and_grad(logits, y, np.arange(y.shape[0]))
    return loss, _gin_backward(spec, w, arrays["edge_index"], batch, cache, g)


# ---- optimisers (torch.optim semantics, float64) ---------------------------------------------
def sgd_step(params: dict, grads: dict, lr: float, weight_decay: float = 0.0) -> dict:
    """torch.optim.SGD (no momentum): g += wd * p; p -= lr * g."""
    out = {}
    for k, p in params.items():
        p = np.asarray(p, np.float64)
        g = np.asarray(grads[k], np.float64) + weight_decay * p if weight_decay else np.asarray(grads[k], np.float64)
        out[k] = p - lr * g
    return out


def adam_step(params: dict, grads: dict, lr: float, weight_decay: float = 0.0, state: dict | None = None,
              betas: tuple[float, float] = ADAM_BETAS, eps: float = ADAM_EPS) -> tuple[dict, dict]:
    """torch.optim.Adam (amsgrad off, L2 weight decay added to the gradient, bias correction):
    returns (parameters after the step, the optimiser state for the next one)."""
    b1, b2 = betas
    state = {k: dict(v) for k, v in (state or {}).items()}
    out = {}
    for k, p in params.items():
        p = np.asarray(p, np.float64)
        g = np.asarray(grads[k], np.float64)
        if weight_decay:
            g = g + weight_decay * p
        s = state.setdefault(k, {"step": 0, "m": np.zeros_like(p), "v": np.zeros_like(p)})
        s["step"] += 1
        s["m"] = s["m"] + (1 - b1) * (g - s["m"])
        s["v"] = s["v"] * b2 + (1 - b2) * g * g
        bc1, bc2 = 1 - b1 ** s["step"], 1 - b2 ** s["step"]
        denom = np.sqrt(s["v"]) / np.sqrt(bc2) + eps
        out[k] = p - (lr / bc1) * s["m"] / denom
    return out, state


def optimizer_step(spec, optimizer: str, params: dict, grads: dict) -> dict:
    """One first step of ``optimizer`` ('adam' | 'sgd') with the spec's lr and weight decay."""
    if optimizer == "adam":
        return adam_step(params, grads, spec.lr, spec.weight_decay)[0]
    if optimizer == "sgd":
        return sgd_step(params, grads, spec.lr, spec.weight_decay)
    raise ValueError(f"unknown optimizer '{optimizer}'")


def train_step(spec, weights: dict, graph, optimizer: str = "adam", masks: dict | None = None) -> tuple[float, dict]:
    """One node-model training step: (loss before the step, parameters after it), float64."""
    loss, grads = node_loss_and_grads(spec, weights, graph, masks)
    return loss, optimizer_step(spec, optimizer, _f64(weights), grads)


def gin_train_step(spec, weights: dict, arrays: dict, optimizer: str = "adam",
                   masks: dict | None = None) -> tuple[float, dict]:
    """One GIN training step on one collated batch: (loss before the step, parameters after it)."""
    loss, grads = gin_loss_and_grads(spec, weights, arrays, masks)
    return loss, optimizer_step(spec, optimizer, _f64(weights), grads)
