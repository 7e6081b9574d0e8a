"""Seeded stochastic block model with label-correlated features.

``synthetic:nodes=100000,avg_degree=10,features=128,classes=8,seed=0`` (also ``homophily``, and
``train``: training nodes per class, default 20).
The same parameters give identical arrays on every run and machine.
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .graph import Graph, canonical_edges

DEFAULTS = {"nodes": 10000, "avg_degree": 10, "features": 128, "classes": 8, "seed": 0,
            "homophily": 0.8, "train": 20}
INT_PARAMS = {"nodes", "avg_degree", "features", "classes", "seed", "train"}
OPTIONAL = {"train"}    # left out of the canonical name at its default (names stay as they were)


def parse_params(text: str) -> dict:
    params = dict(DEFAULTS)
    for item in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in item:
            raise UsageError(f"bad synthetic parameter '{item}': expected key=value "
                             f"(keys: {', '.join(DEFAULTS)})")
        k, v = (s.strip() for s in item.split("=", 1))
        if k not in DEFAULTS:
            raise UsageError(f"unknown synthetic parameter '{k}'; valid: {', '.join(DEFAULTS)}")
        try:
            params[k] = int(float(v)) if k in INT_PARAMS else float(v)
        except ValueError:
            raise UsageError(f"bad value for synthetic parameter {k}: '{v}'") from None
    if params["nodes"] < 2 or params["classes"] < 1 or params["features"] < 1 or params["avg_degree"] < 0:
        raise UsageError("synthetic graph needs nodes>=2, classes>=1, features>=1, avg_degree>=0")
    if params["train"] < 1:
        raise UsageError("synthetic train (training nodes per class) must be at least 1")
    if not 0.0 <= params["homophily"] <= 1.0:
        raise UsageError("synthetic homophily must lie in [0, 1]")
    return params


def canonical_name(params: dict) -> str:
    return "synthetic:" + ",".join(f"{k}={params[k]:g}" if isinstance(params[k], float) else f"{k}={params[k]}"
                                   for k in DEFAULTS if k not in OPTIONAL or params[k] != DEFAULTS[k])


def make_synthetic(params: dict) -> Graph:
    n, c, f = params["nodes"], params["classes"], params["features"]
    rng = np.random.default_rng(np.random.SeedSequence([params["seed"], 0x5B]))
    y = rng.integers(0, c, size=n, dtype=np.int64)
    # edges: each undirected edge picks a source uniformly; its target comes from the
    # source's block with probability `homophily`, else from the whole graph.
    m = int(round(n * params["avg_degree"] / 2))
    src = rng.integers(0, n, size=m, dtype=np.int64)
    order = np.argsort(y, kind="stable")
    counts = np.bincount(y, minlength=c)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    same = rng.random(m) < params["homophily"]
    cls = y[src]
    within = starts[cls] + (rng.random(m) * np.maximum(counts[cls], 1)).astype(np.int64)
    dst = np.where(same, order[np.minimum(within, n - 1)], rng.integers(0, n, size=m, dtype=np.int64))
    del same, within                  # the largest graphs need every GB: drop temporaries early
    edge_index = canonical_edges(src, dst, n)
    del src, dst, cls
    # features: a class centroid plus unit noise
    centroids = rng.standard_normal((c, f), dtype=np.float32)
    x = rng.standard_normal((n, f), dtype=np.float32)
    for lo in range(0, n, 1 << 20):   # in chunks: no second n x f temporary on the largest graphs
        x[lo:lo + (1 << 20)] += centroids[y[lo:lo + (1 << 20)]] * np.float32(0.5)
    # split: `train` per class to train (20, as Planetoid, by default), then 500 val, 1000 test (capped)
    perm = rng.permutation(n)
    train = np.zeros(n, bool)
    taken = np.zeros(n, bool)
    for k in range(c):
        idx = perm[y[perm] == k][:params["train"]]
        train[idx] = True
    taken |= train
    rest = perm[~taken[perm]]
    n_val = min(500, len(rest) // 3)
    n_test = min(1000, len(rest) - n_val)
    val = np.zeros(n, bool)
    val[rest[:n_val]] = True
    test = np.zeros(n, bool)
    test[rest[n_val:n_val + n_test]] = True
    return Graph(canonical_name(params), x, y, edge_index, train, val, test, c,
                 meta={"source": "synthetic SBM", "params": params})
