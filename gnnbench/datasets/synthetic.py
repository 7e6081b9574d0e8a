"""Seeded stochastic block model with label-correlated features.

``synthetic:nodes=100000,avg_degree=10,features=128,classes=8,seed=0`` (also ``homophily``, and
``train``: training nodes per class, default 20).
The same parameters give identical arrays on every run and machine.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..errors import UsageError
from .graph import Graph, canonical_edges

DEFAULTS = {"nodes": 10000, "avg_degree": 10, "features": 128, "classes": 8, "seed": 0,
            "homophily": 0.8, "train": 20}
INT_PARAMS = {"nodes", "avg_degree", "features", "classes", "seed", "train"}
MAX_NODES = 2**31 - 1
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
            f = float(v)
        except ValueError:
            f = math.nan
        if not math.isfinite(f) or (k in INT_PARAMS and not f.is_integer()):
            raise UsageError(f"bad value for synthetic parameter {k}: '{v}' (expected a finite "
                             f"{'integer' if k in INT_PARAMS else 'number'})")
        params[k] = int(f) if k in INT_PARAMS else f
    if params["nodes"] < 2 or params["classes"] < 2 or params["features"] < 1 or params["avg_degree"] < 1:
        raise UsageError("synthetic graph needs nodes>=2, classes>=2, features>=1, avg_degree>=1")
    if params["nodes"] > MAX_NODES or params["seed"] < 0:
        raise UsageError(f"synthetic graph needs nodes<={MAX_NODES} (edge keys are int64 node pairs) and seed>=0")
    if params["train"] < 1:
        raise UsageError("synthetic train (training nodes per class) must be at least 1")
    if not 0.0 <= params["homophily"] <= 1.0:
        raise UsageError("synthetic homophily must lie in [0, 1]")
    return params


def canonical_name(params: dict) -> str:
    return "synthetic:" + ",".join(f"{k}={params[k]:g}" if isinstance(params[k], float) else f"{k}={params[k]}"
                                   for k in DEFAULTS if k not in OPTIONAL or params[k] != DEFAULTS[k])


SMALL = 4_000_000     # nodes x (features + avg_degree) up to which check_buildable builds the graph


@lru_cache(maxsize=64)
def check_buildable(name: str) -> None:
    """A synthetic graph must have edges, every class present and a validation and test set. Small
    graphs are built to check exactly; on larger ones the bounds make a miss all but impossible
    (a class is empty with probability below classes * exp(-100))."""
    if not name.startswith("synthetic"):
        return
    p = parse_params(name.partition(":")[2])
    n, c = p["nodes"], p["classes"]
    if n * (p["features"] + p["avg_degree"]) > SMALL:
        if n < 100 * c or n < c * p["train"] + 3:
            raise UsageError(f"synthetic graph {name} is too small for its classes: needs nodes >= "
                             f"{max(100 * c, c * p['train'] + 3)} (every class present, 3 nodes left for validation and test)")
        return
    g = make_synthetic(p)
    counts = np.bincount(g.y, minlength=c)
    why = (f"class {int(np.argmin(counts))} has no node" if counts.min() == 0 else
           "it has no edge" if g.num_edges == 0 else
           "no node is left for validation or test" if not (g.val_mask.any() and g.test_mask.any()) else None)
    if why:
        raise UsageError(f"synthetic graph {name} cannot be used: {why} (use more nodes, a higher avg_degree "
                         f"or fewer classes)")


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
