"""The canonical graph every adapter receives: plain numpy arrays."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Graph:
    """A node-classification graph.

    ``edge_index`` is int64 [2, E]: row 0 the source, row 1 the target. It is
    symmetric (every edge appears in both directions), de-duplicated, without
    self-loops, sorted by (source, target). Models add self-loops themselves.
    """

    name: str
    x: np.ndarray            # float32 [N, F]
    y: np.ndarray            # int64 [N]
    edge_index: np.ndarray   # int64 [2, E]
    train_mask: np.ndarray   # bool [N]
    val_mask: np.ndarray
    test_mask: np.ndarray
    num_classes: int
    meta: dict = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    def fingerprint(self) -> str:
        """sha256 over every array an adapter receives (dtype, shape and bytes)."""
        return _fingerprint(self, ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"))

    def summary(self) -> dict:
        return {
            "name": self.name,
            "nodes": self.num_nodes,
            "edges": self.num_edges,
            "features": self.num_features,
            "classes": self.num_classes,
            "train": int(self.train_mask.sum()),
            "val": int(self.val_mask.sum()),
            "test": int(self.test_mask.sum()),
        }


def _fingerprint(obj, names, extra: str = "") -> str:
    """sha256 over the named arrays of ``obj`` (dtype, shape and bytes), plus ``extra``."""
    h = hashlib.sha256()
    for name in names:
        a = np.ascontiguousarray(getattr(obj, name))
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(memoryview(a).cast("B"))      # the bytes in place: no copy of a 6 GB feature matrix
    h.update(extra.encode())
    return "sha256:" + h.hexdigest()[:16]


def canonical_edges(src: np.ndarray, dst: np.ndarray, num_nodes: int) -> np.ndarray:
    """Symmetrise, drop self-loops and duplicates, sort by (source, target).

    Written to keep few temporaries alive: on 1.2*10^8 directed edges each int64 copy is ~1 GB."""
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    key = np.concatenate([src * num_nodes + dst, dst * num_nodes + src])
    del src, dst, keep
    key = np.unique(key)
    out = np.empty((2, key.size), np.int64)
    np.floor_divide(key, num_nodes, out=out[0])
    np.remainder(key, num_nodes, out=out[1])
    return out


def row_normalize(x: np.ndarray) -> np.ndarray:
    """Rows divided by their sum (computed in float64), in blocks of rows: the float64 quotient of
    the whole matrix would be twice its float32 size again (12 GB at 12M nodes x 128 features)."""
    s = x.sum(axis=1, keepdims=True, dtype=np.float64)
    s[s == 0] = 1.0
    out = np.empty(x.shape, np.float32)
    step = 1 << 16
    for lo in range(0, x.shape[0], step):
        out[lo:lo + step] = x[lo:lo + step] / s[lo:lo + step]
    return out


@dataclass
class GraphSet:
    """A graph-classification dataset: many small graphs, concatenated.

    Graph ``g`` owns nodes ``node_ptr[g]:node_ptr[g+1]`` and edges
    ``edge_ptr[g]:edge_ptr[g+1]``; ``edge_index`` holds global node ids and
    follows ``Graph``'s rules (symmetric, de-duplicated, no self-loops, sorted).
    ``folds[g]`` is graph g's fold in a seeded stratified k-fold split; fold
    ``fold`` is the test set, the others the training set.
    """

    name: str
    x: np.ndarray            # float32 [N, F]
    y: np.ndarray            # int64 [G] graph labels 0..C-1
    edge_index: np.ndarray   # int64 [2, E]
    node_ptr: np.ndarray     # int64 [G + 1]
    edge_ptr: np.ndarray     # int64 [G + 1]
    folds: np.ndarray        # int64 [G]
    fold: int
    num_classes: int
    meta: dict = field(default_factory=dict)

    @property
    def num_graphs(self) -> int:
        return int(self.y.shape[0])

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def train_idx(self) -> np.ndarray:
        return np.flatnonzero(self.folds != self.fold)

    @property
    def test_idx(self) -> np.ndarray:
        return np.flatnonzero(self.folds == self.fold)

    def fingerprint(self) -> str:
        return _fingerprint(self, ("x", "y", "edge_index", "node_ptr", "folds"), f"fold:{self.fold}")

    def summary(self) -> dict:
        return {
            "name": self.name,
            "graphs": self.num_graphs,
            "nodes": self.num_nodes,
            "edges": self.num_edges,
            "features": self.num_features,
            "classes": self.num_classes,
            "train": int(self.train_idx.size),
            "test": int(self.test_idx.size),
            "fold": f"{self.fold}/{self.meta.get('num_folds')}",
            "split_seed": self.meta.get("split_seed"),
        }
