"""Mini-batches of graphs for the ``graph`` task: which graphs, in which order, and a plain
NumPy collation that is the reference for every library's own batching.

The harness draws each epoch's batch order from the seed, so every library sees the same
graphs in the same batches in the same order; each library then collates them its own way
(PyG ``Batch``, ``dgl.batch``, native), and that collation is timed inside the epoch.
"""
from __future__ import annotations

import hashlib

import numpy as np


def epoch_batches(train_idx: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The training graphs of one epoch, shuffled from (seed, epoch), cut into batches."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch, 0x6261]))
    perm = rng.permutation(np.asarray(train_idx, np.int64))
    return [perm[i:i + batch_size] for i in range(0, perm.size, batch_size)]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + l) for each (s, l)."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(lengths)
    return np.arange(total, dtype=np.int64) - np.repeat(ends - lengths, lengths) + np.repeat(starts, lengths)


def collate(gs, ids) -> dict[str, np.ndarray]:
    """Graphs ``ids`` of a GraphSet as one disjoint graph: x [n, F], edge_index [2, e] (renumbered
    from 0), batch [n] (position of each node's graph in ``ids``), ptr [len(ids)+1], y [len(ids)]."""
    ids = np.asarray(ids, np.int64)
    n0, n1 = gs.node_ptr[ids], gs.node_ptr[ids + 1]
    e0, e1 = gs.edge_ptr[ids], gs.edge_ptr[ids + 1]
    ns, es = n1 - n0, e1 - e0
    ptr = np.zeros(ids.size + 1, np.int64)
    np.cumsum(ns, out=ptr[1:])
    nodes = _ranges(n0, ns)
    edges = _ranges(e0, es)
    shift = np.repeat(ptr[:-1] - n0, es)
    return {"x": gs.x[nodes], "edge_index": gs.edge_index[:, edges] + shift,
            "batch": np.repeat(np.arange(ids.size, dtype=np.int64), ns), "ptr": ptr, "y": gs.y[ids]}


def fingerprint(arrays: dict) -> str:
    """sha256 over a collated batch's x, edge_index (as a sorted edge set) and node->graph map."""
    h = hashlib.sha256()
    x = np.ascontiguousarray(arrays["x"], np.float32)
    ei = np.asarray(arrays["edge_index"], np.int64)
    order = np.lexsort((ei[1], ei[0]))
    for name, a in (("x", x), ("edge_index", np.ascontiguousarray(ei[:, order])),
                    ("batch", np.ascontiguousarray(arrays["batch"], np.int64))):
        h.update(f"{name}:{a.shape};".encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()[:16]
