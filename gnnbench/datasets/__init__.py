"""Datasets in one canonical form (see ``graph.Graph``).

Names: ``cora``, ``citeseer``, ``pubmed`` (raw Planetoid files; node
classification), ``mutag``, ``proteins``, ``enzymes`` (TU raw text files; graph
classification, a ``GraphSet``) and ``synthetic[:key=value,...]`` (generated, no files).

Data directory: ``--data-dir``, else ``$GNNBENCH_DATA``, else the user cache
(``$XDG_CACHE_HOME/gnnbench`` or ``~/.cache/gnnbench``). Missing raw files are
downloaded into the cache only; a data directory that is not the cache is never
written to, and one that does not exist is an error (not a silent fall-back to the cache).

Every raw file is checked against its known sha256 before it is parsed (``checksums``), and
``preflight`` does that for a whole suite before its first run starts.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError, UsageError
from .graph import Graph, GraphSet, row_normalize

PLANETOID = ("cora", "citeseer", "pubmed")
TU_NAMES = ("mutag", "proteins", "enzymes")


def dataset_names() -> list[str]:
    return [*PLANETOID, *TU_NAMES, "synthetic:nodes=..,avg_degree=..,features=..,classes=..,seed=.."]


def dataset_task(name: str) -> str:
    """'graph' for graph-classification sets, 'node' for the others."""
    return "graph" if name.split(":", 1)[0].strip().lower() in TU_NAMES else "node"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gnnbench"


def data_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    """Where to look, in order. The last entry is the cache, the only place downloads go."""
    chosen = data_dir or os.environ.get("GNNBENCH_DATA")
    dirs = [Path(chosen)] if chosen else []
    cache = cache_dir()
    if not dirs or dirs[0].resolve() != cache.resolve():
        dirs.append(cache)
    return dirs


def canonical_dataset_name(name: str) -> str:
    """Validate a dataset name and return its canonical spelling."""
    base, _, params = name.partition(":")
    base = base.strip().lower()
    if base in PLANETOID or base in TU_NAMES:
        if params:
            raise UsageError(f"dataset '{base}' takes no parameters")
        return base
    if base == "synthetic":
        from .synthetic import canonical_name, parse_params
        return canonical_name(parse_params(params))
    raise UsageError(f"unknown dataset '{name}'; valid datasets: {', '.join(dataset_names())}")


def load_graph(name: str, data_dir=None, normalize_features: bool = False, download: bool = True,
               node_attributes: bool = False, fold: int = 0, num_folds: int = 10) -> Graph | GraphSet:
    """Load ``name`` in canonical form; row-normalise features when asked. TU sets come back as
    a ``GraphSet`` whose test set is fold ``fold`` of a seeded stratified ``num_folds``-fold split."""
    canon = canonical_dataset_name(name)
    if canon in TU_NAMES:
        from .tu import read_tu
        return read_tu(locate(canon, data_dir, download), canon, node_attributes, fold, num_folds)
    if canon.startswith("synthetic"):
        from .synthetic import make_synthetic, parse_params
        graph = make_synthetic(parse_params(canon.partition(":")[2]))
    else:
        from .planetoid import read_planetoid
        graph = read_planetoid(locate(canon, data_dir, download), canon)
    if normalize_features:
        graph.x = row_normalize(graph.x)
        graph.meta["features"] = "row-normalised"
    return graph


def locate(name: str, data_dir=None, download: bool = True) -> Path:
    """The root folder holding ``name``'s raw files; downloads into the cache if needed. A chosen
    data folder (``data_dir`` or ``$GNNBENCH_DATA``) that does not exist is a DataError naming it."""
    from .download import download_planetoid, download_tu
    if name in TU_NAMES:
        from .tu import raw_paths
    else:
        from .planetoid import raw_paths
    dirs = data_dirs(data_dir)
    if len(dirs) > 1 and not dirs[0].is_dir():   # a chosen folder that is not the cache
        origin = "--data-dir" if data_dir else "GNNBENCH_DATA"
        raise DataError(f"data folder {dirs[0]} (from {origin}) does not exist or is not a folder")
    for d in dirs:
        if all(p.exists() for p in raw_paths(d, name).values()):
            return d
    where = ", ".join(map(str, dirs))
    if not download:
        raise DataError(f"dataset '{name}' not found in {where}")
    try:
        (download_tu if name in TU_NAMES else download_planetoid)(name, dirs[-1])
    except DataError as exc:
        raise DataError(f"dataset '{name}' is not in {where}, and {exc}") from None
    return dirs[-1]


def preflight(names, data_dir=None) -> None:
    """Before any run starts: find each distinct non-synthetic dataset of ``names`` (downloading
    into the cache if needed) and check every raw file it may read against its known sha256, so
    that a missing data folder, a missing dataset or a damaged file is one DataError up front."""
    from .checksums import read_checked
    from .tu import attributes_path
    for name in dict.fromkeys(canonical_dataset_name(n) for n in names):
        if name.startswith("synthetic"):
            continue
        root = locate(name, data_dir)
        if name in TU_NAMES:
            from .tu import raw_paths
            extra = [p for p in [attributes_path(root, name)] if p.exists()]
        else:
            from .planetoid import raw_paths
            extra = []
        for path in [*raw_paths(root, name).values(), *extra]:
            read_checked(path)
