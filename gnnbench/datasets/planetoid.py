"""Reader for the raw Planetoid files (``ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}``).

Reads them with numpy/scipy only, following the original loader of Kipf &
Welling (and PyG's ``read_planetoid_data``) so that no library decides what
another receives: public split (20 labelled nodes per class, 500 validation,
1000 test), CiteSeer's isolated test nodes padded with zero rows.

Nothing in these files is executed: each file is checked against its known sha256 before it is
parsed (``checksums.read_checked``), and the pickles are loaded by an unpickler that admits only
the types the format uses (numpy arrays and dtypes, scipy CSR/CSC matrices, ``defaultdict`` and
builtin containers), so even a file that got past the hash check cannot run code.
"""
from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError
from .checksums import read_checked
from .graph import Graph, canonical_edges

FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def raw_paths(root: Path, name: str) -> dict[str, Path]:
    folder = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}[name]
    return {f: root / folder / "raw" / f"ind.{name}.{f}" for f in FILES}


_CONTAINERS = {"list", "dict", "tuple", "set", "frozenset"}
# (module, name) pairs as the 2016 pickles spell them (Python 2's __builtin__, numpy.core, the
# deprecated scipy.sparse.csr alias) and as newer numpy/scipy write them
_ALLOWED = {
    "numpy": {"ndarray", "dtype"},
    "numpy.core.multiarray": {"_reconstruct"}, "numpy._core.multiarray": {"_reconstruct"},
    "scipy.sparse": {"csr_matrix", "csc_matrix"},
    "scipy.sparse.csr": {"csr_matrix"}, "scipy.sparse._csr": {"csr_matrix"},
    "scipy.sparse.csc": {"csc_matrix"}, "scipy.sparse._csc": {"csc_matrix"},
    "collections": {"defaultdict"},
    "__builtin__": _CONTAINERS, "builtins": _CONTAINERS,
}


class _PlanetoidUnpickler(pickle.Unpickler):
    """Refuses every global outside ``_ALLOWED``: a pickle can call only what find_class returns."""

    def find_class(self, module, name):
        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only the numpy/scipy types "
                                     f"of the Planetoid format are allowed")


def unpickle(data: bytes, path: Path):
    """Load one Planetoid pickle (already read and hash-checked) with the restricted unpickler."""
    try:
        with warnings.catch_warnings():
            # the 2016 pickles name scipy.sparse.csr.csr_matrix, a deprecated alias
            warnings.simplefilter("ignore", DeprecationWarning)
            return _PlanetoidUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # corrupt, truncated or refused
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None


def _dense(m) -> np.ndarray:
    return np.asarray(m.todense() if hasattr(m, "todense") else m, dtype=np.float32)


def read_planetoid(root: Path, name: str) -> Graph:
    paths = raw_paths(root, name)
    raw = {f: read_checked(p) for f, p in paths.items()}     # every file checked before any is parsed
    objs = {f: unpickle(raw[f], paths[f]) for f in FILES if f != "test.index"}
    try:
        test_index = np.loadtxt(io.StringIO(raw["test.index"].decode("latin-1")), dtype=np.int64).reshape(-1)
    except Exception as exc:
        raise DataError(f"cannot read {paths['test.index']}: {exc}") from None
    x, tx, allx = _dense(objs["x"]), _dense(objs["tx"]), _dense(objs["allx"])
    y, ty, ally = (np.asarray(objs[k]) for k in ("y", "ty", "ally"))
    sorted_test = np.sort(test_index)
    if name == "citeseer":
        # Isolated test nodes have no row in tx/ty: pad with zeros, as the original loader.
        full = sorted_test[-1] - sorted_test[0] + 1
        tx_ext = np.zeros((full, tx.shape[1]), np.float32)
        tx_ext[sorted_test - sorted_test[0]] = tx
        ty_ext = np.zeros((full, ty.shape[1]), ty.dtype)
        ty_ext[sorted_test - sorted_test[0]] = ty
        tx, ty = tx_ext, ty_ext
    features = np.concatenate([allx, tx]).astype(np.float32)
    labels = np.concatenate([ally, ty]).argmax(axis=1).astype(np.int64)
    features[test_index] = features[sorted_test]
    labels[test_index] = labels[sorted_test]
    n = features.shape[0]

    graph = objs["graph"]
    src, dst = [], []
    for k, nbrs in graph.items():
        src.extend([k] * len(nbrs))
        dst.extend(nbrs)
    src_a, dst_a = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    # a few entries of the graph dicts point past the feature matrix; the original loaders drop them
    ok = (src_a < n) & (dst_a < n)
    edge_index = canonical_edges(src_a[ok], dst_a[ok], n)

    train = np.zeros(n, bool)
    train[: y.shape[0]] = True
    val = np.zeros(n, bool)
    val[y.shape[0]: y.shape[0] + 500] = True
    test = np.zeros(n, bool)
    test[sorted_test] = True
    return Graph(name, features, labels, edge_index, train, val, test, int(ally.shape[1]),
                 meta={"source": f"Planetoid raw files ({root})"})
