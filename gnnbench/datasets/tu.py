"""TU graph-classification sets (MUTAG, PROTEINS, ENZYMES) read from their raw text files.

``<root>/<NAME>/raw/<NAME>_A.txt`` (1-based ``src, dst`` node pairs), ``_graph_indicator``
(graph id per node, 1-based), ``_graph_labels``, ``_node_labels`` and, where present,
``_node_attributes``. Features: the node attributes (only when asked) followed by the one-hot
node labels, as PyG's ``TUDataset(use_node_attr=...)`` builds them. Each file is checked
against its known sha256 (CRLF read as LF) before it is parsed (``checksums.read_checked``).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import DataError
from .checksums import read_checked
from .graph import GraphSet, canonical_edges

TU = {"mutag": "MUTAG", "proteins": "PROTEINS", "enzymes": "ENZYMES"}
REQUIRED = ("A", "graph_indicator", "graph_labels", "node_labels")
SPLIT_SEED = 0   # the split is a property of the dataset, not of the training seed


def raw_paths(root: Path, name: str) -> dict[str, Path]:
    upper = TU[name]
    return {part: Path(root) / upper / "raw" / f"{upper}_{part}.txt" for part in REQUIRED}


def attributes_path(root: Path, name: str) -> Path:
    """The optional node-attribute file (MUTAG has none)."""
    upper = TU[name]
    return Path(root) / upper / "raw" / f"{upper}_node_attributes.txt"


def _read(path: Path, dtype) -> np.ndarray:
    text = read_checked(path).decode("latin-1")
    try:
        a = np.loadtxt(io.StringIO(text), delimiter=",", dtype=dtype, ndmin=1)
    except ValueError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return a


def stratified_folds(labels: np.ndarray, k: int, seed: int = SPLIT_SEED) -> np.ndarray:
    """Fold id (0..k-1) per graph: each class is shuffled with the seed and dealt round-robin,
    so every fold holds each class in proportion."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7475]))
    folds = np.empty(labels.size, np.int64)
    start = 0
    for c in np.unique(labels):
        ids = rng.permutation(np.flatnonzero(labels == c))
        folds[ids] = (start + np.arange(ids.size)) % k
        start += ids.size      # the next class continues the deal where this one stopped
    return folds


def read_tu(root: Path, name: str, node_attributes: bool = False, fold: int = 0, num_folds: int = 10) -> GraphSet:
    if not 0 <= fold < num_folds:
        raise DataError(f"fold {fold} out of range for a {num_folds}-fold split")
    paths = raw_paths(root, name)
    upper = TU[name]
    indicator = _read(paths["graph_indicator"], np.int64) - 1
    if indicator.size == 0 or np.any(np.diff(indicator) < 0) or indicator[0] != 0:
        raise DataError(f"{paths['graph_indicator']}: graph ids must start at 1 and be non-decreasing")
    n = indicator.size
    g = int(indicator[-1]) + 1
    a = _read(paths["A"], np.int64).reshape(-1, 2) - 1
    if a.size and (a.min() < 0 or a.max() >= n):
        raise DataError(f"{paths['A']}: node ids outside 1..{n}")
    if np.any(indicator[a[:, 0]] != indicator[a[:, 1]]):
        raise DataError(f"{paths['A']}: an edge joins two different graphs")
    edge_index = canonical_edges(a[:, 0], a[:, 1], n)

    raw_y = _read(paths["graph_labels"], np.int64)
    if raw_y.size != g:
        raise DataError(f"{paths['graph_labels']}: {raw_y.size} labels for {g} graphs")
    classes, y = np.unique(raw_y, return_inverse=True)
    node_labels = _read(paths["node_labels"], np.int64)
    if node_labels.size != n:
        raise DataError(f"{paths['node_labels']}: {node_labels.size} labels for {n} nodes")
    cats, codes = np.unique(node_labels, return_inverse=True)
    parts = []
    attr_path = attributes_path(root, name)
    if node_attributes:
        if not attr_path.exists():
            raise DataError(f"{upper} has no node attributes ({attr_path} missing)")
        attrs = _read(attr_path, np.float32).reshape(n, -1)
        parts.append(attrs)
    parts.append(np.eye(cats.size, dtype=np.float32)[codes])
    x = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)

    node_ptr = np.zeros(g + 1, np.int64)
    np.cumsum(np.bincount(indicator, minlength=g), out=node_ptr[1:])
    edge_ptr = np.searchsorted(edge_index[0], node_ptr).astype(np.int64)
    meta = {"source": "TU raw text files", "node_attributes": bool(node_attributes),
            "num_folds": num_folds, "split_seed": SPLIT_SEED, "graph_label_values": classes.tolist()}
    return GraphSet(name, x, y.astype(np.int64), edge_index, node_ptr, edge_ptr,
                    stratified_folds(y, num_folds), fold, int(classes.size), meta)
