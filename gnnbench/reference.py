"""Reference implementations of each model: plain, readable, slow by design.

``forward`` is NumPy (float64, eval mode, no dropout): the model's math as the
papers write it. ``train_step`` repeats the same math in float64 torch, only
to get gradients for one optimiser step without dropout; ``gnnbench verify``
compares every adapter against both.

Conventions (shared with every adapter):
- ``edge_index[0]`` is the source j, ``edge_index[1]`` the target i; messages
  flow j -> i. The canonical edge list is symmetric and has no self-loops.
- GCN: H' = D^-1/2 (A + I) D^-1/2 H W + b, ReLU between layers.
- GAT: e_ij = LeakyReLU(a_src . W h_j + a_dst . W h_i) over j in N(i) + {i},
  softmax over j, heads concatenated (hidden) or averaged (last), + b, ELU between layers.
- SAGE: H' = mean_{j in N(i)} h_j W_neigh + h_i W_root + b (mean of nothing = 0), ReLU between layers.
- Loss: mean cross-entropy over the training nodes. Weight decay (L2, added to
  the gradient as in torch.optim.Adam) on all parameters.
"""
from __future__ import annotations

import numpy as np

from .weights import gat_heads


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
    out = np.zeros((n,) + values.shape[1:], values.dtype)
    np.add.at(out, index, values)
    return out


def forward(spec, weights: dict, x: np.ndarray, edge_index: np.ndarray) -> np.ndarray:
    """Eval-mode logits, float64 [N, C]."""
    h = x.astype(np.float64)
    n = h.shape[0]
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    for i in range(spec.layers):
        last = i == spec.layers - 1
        p = f"layers.{i}."
        if spec.name == "gcn":
            src, dst, nw = gcn_norm(edge_index, n)
            hw = h @ w[p + "weight"]
            h = _scatter_sum(hw[src] * nw[:, None], dst, n) + w[p + "bias"]
            if not last:
                h = np.maximum(h, 0)
        elif spec.name in ("sage", "sage-sampled"):
            src, dst = edge_index
            deg = np.bincount(dst, minlength=n).astype(np.float64)
            agg = _scatter_sum(h[src], dst, n) / np.maximum(deg, 1)[:, None]
            h = agg @ w[p + "weight_neigh"] + h @ w[p + "weight_root"] + w[p + "bias"]
            if not last:
                h = np.maximum(h, 0)
        elif spec.name == "gat":
            heads = gat_heads(spec, i)
            src, dst = _with_self_loops(edge_index, n)
            hw = (h @ w[p + "weight"]).reshape(n, heads, -1)
            a_src = (hw * w[p + "att_src"]).sum(-1)          # [N, H]
            a_dst = (hw * w[p + "att_dst"]).sum(-1)
            e = a_src[src] + a_dst[dst]                       # [E, H]
            e = np.where(e > 0, e, spec.negative_slope * e)
            emax = np.full((n, heads), -np.inf)
            np.maximum.at(emax, dst, e)
            ex = np.exp(e - emax[dst])
            alpha = ex / _scatter_sum(ex, dst, n)[dst]
            out = _scatter_sum(hw[src] * alpha[:, :, None], dst, n)   # [N, H, F]
            h = out.mean(axis=1) if last else out.reshape(n, -1)
            h = h + w[p + "bias"]
            if not last:
                h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))    # ELU
        else:
            raise ValueError(f"no reference for model '{spec.name}'")
    return h


def cross_entropy(logits: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    z = logits[mask]
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(z)), y[mask]].mean())


def train_step(spec, weights: dict, graph, optimizer: str = "adam") -> tuple[float, dict]:
    """One training step without dropout, in float64 torch.

    Returns (loss before the step, parameters after the step) in the canonical layout.
    """
    import torch

    n = graph.num_nodes
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}
    x = torch.tensor(graph.x, dtype=torch.float64)
    ei = torch.from_numpy(graph.edge_index)
    h = x
    for i in range(spec.layers):
        last = i == spec.layers - 1
        p = f"layers.{i}."
        if spec.name == "gcn":
            src, dst, nw = (torch.from_numpy(a) for a in gcn_norm(graph.edge_index, n))
            hw = h @ params[p + "weight"]
            h = torch.zeros(n, hw.shape[1], dtype=torch.float64).index_add(0, dst, hw[src] * nw[:, None])
            h = h + params[p + "bias"]
            if not last:
                h = torch.relu(h)
        elif spec.name in ("sage", "sage-sampled"):
            src, dst = ei
            deg = torch.bincount(dst, minlength=n).double().clamp(min=1)
            agg = torch.zeros(n, h.shape[1], dtype=torch.float64).index_add(0, dst, h[src]) / deg[:, None]
            h = agg @ params[p + "weight_neigh"] + h @ params[p + "weight_root"] + params[p + "bias"]
            if not last:
                h = torch.relu(h)
        elif spec.name == "gat":
            heads = gat_heads(spec, i)
            src, dst = (torch.from_numpy(a) for a in _with_self_loops(graph.edge_index, n))
            hw = (h @ params[p + "weight"]).reshape(n, heads, -1)
            a_src = (hw * params[p + "att_src"]).sum(-1)
            a_dst = (hw * params[p + "att_dst"]).sum(-1)
            e = torch.nn.functional.leaky_relu(a_src[src] + a_dst[dst], spec.negative_slope)
            emax = torch.full((n, heads), -torch.inf, dtype=torch.float64).scatter_reduce(
                0, dst[:, None].expand(-1, heads), e, "amax")
            ex = torch.exp(e - emax[dst])
            denom = torch.zeros(n, heads, dtype=torch.float64).index_add(0, dst, ex)
            alpha = ex / denom[dst]
            out = torch.zeros(n, heads, hw.shape[2], dtype=torch.float64).index_add(
                0, dst, hw[src] * alpha[:, :, None])
            h = out.mean(1) if last else out.reshape(n, -1)
            h = h + params[p + "bias"]
            if not last:
                h = torch.nn.functional.elu(h)
        else:
            raise ValueError(f"no reference for model '{spec.name}'")
    mask = torch.from_numpy(graph.train_mask)
    loss = torch.nn.functional.cross_entropy(h[mask], torch.from_numpy(graph.y)[mask])
    return _step(spec, params, loss, optimizer)


# ---- graph classification (GIN) ---------------------------------------------------------------
# h' = ReLU(ReLU(BN(z W1)) W2 + b2), z = (1 + eps) h + sum_{j in N(i)} h_j, per layer (BN: batch
# statistics in training, running statistics in eval; at initialisation mean 0, variance 1;
# without batch norm z W1 + b1 instead),
# readout r_g = sum (or mean) of h over graph g's nodes, logits = ReLU(r W_a + b_a) W_b + b_b.
BN_EPS = 1e-5


def gin_forward(spec, weights: dict, x: np.ndarray, edge_index: np.ndarray, batch: np.ndarray,
                num_graphs: int) -> np.ndarray:
    """Eval-mode GIN logits per graph, float64 [G, C], with freshly initialised BN statistics."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    h = x.astype(np.float64)
    n = h.shape[0]
    src, dst = edge_index
    for i in range(spec.layers):
        p = f"layers.{i}."
        z = (1.0 + spec.eps) * h + _scatter_sum(h[src], dst, n)
        u = z @ w[p + "weight1"]
        if spec.batch_norm:    # running mean 0, running variance 1
            u = u / np.sqrt(1.0 + BN_EPS) * w[p + "bn_weight"] + w[p + "bn_bias"]
        else:
            u = u + w[p + "bias1"]
        u = np.maximum(u, 0)
        h = np.maximum(u @ w[p + "weight2"] + w[p + "bias2"], 0)
    r = _scatter_sum(h, batch, num_graphs)
    if spec.readout == "mean":
        r = r / np.maximum(np.bincount(batch, minlength=num_graphs), 1)[:, None]
    a = np.maximum(r @ w["head.weight1"] + w["head.bias1"], 0)
    return a @ w["head.weight2"] + w["head.bias2"]


def gin_train_step(spec, weights: dict, arrays: dict, optimizer: str = "adam") -> tuple[float, dict]:
    """One training step on one collated batch (``batching.collate``), no dropout, float64 torch,
    batch norm with batch statistics. Returns (loss before the step, parameters after it)."""
    import torch
    import torch.nn.functional as F

    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}
    h = torch.tensor(arrays["x"], dtype=torch.float64)
    src, dst = (torch.from_numpy(np.ascontiguousarray(a)) for a in arrays["edge_index"])
    batch = torch.from_numpy(arrays["batch"])
    n, g = h.shape[0], int(arrays["y"].shape[0])
    for i in range(spec.layers):
        p = f"layers.{i}."
        z = (1.0 + spec.eps) * h + torch.zeros_like(h).index_add(0, dst, h[src])
        u = z @ params[p + "weight1"]
        if spec.batch_norm:
            mean, var = u.mean(0), u.var(0, unbiased=False)
            u = (u - mean) / torch.sqrt(var + BN_EPS) * params[p + "bn_weight"] + params[p + "bn_bias"]
        else:
            u = u + params[p + "bias1"]
        h = torch.relu(torch.relu(u) @ params[p + "weight2"] + params[p + "bias2"])
    r = torch.zeros(g, h.shape[1], dtype=torch.float64).index_add(0, batch, h)
    if spec.readout == "mean":
        r = r / torch.bincount(batch, minlength=g).clamp(min=1)[:, None].double()
    logits = torch.relu(r @ params["head.weight1"] + params["head.bias1"]) @ params["head.weight2"] \
        + params["head.bias2"]
    loss = F.cross_entropy(logits, torch.from_numpy(arrays["y"]))
    return _step(spec, params, loss, optimizer)


def _step(spec, params: dict, loss, optimizer: str) -> tuple[float, dict]:
    """One optimiser step on the float64 reference parameters: (loss before it, parameters after)."""
    import torch
    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_cls(list(params.values()), lr=spec.lr, weight_decay=spec.weight_decay)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach()), {k: v.detach().numpy() for k, v in params.items()}
