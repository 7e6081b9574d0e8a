import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from gnnbench.datasets import canonical_dataset_name, data_dirs, load_graph
from gnnbench.datasets.graph import canonical_edges, row_normalize
from gnnbench.errors import DataError, UsageError


@pytest.mark.parametrize("name,nodes,edges,features,classes,split", [
    ("cora", 2708, 10556, 1433, 7, (140, 500, 1000)),
    ("citeseer", 3327, 9104, 3703, 6, (120, 500, 1000)),
    ("pubmed", 19717, 88648, 500, 3, (60, 500, 1000)),
])
def test_planetoid_counts(data_dir, name, nodes, edges, features, classes, split):
    g = load_graph(name, data_dir)
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (nodes, edges, features, classes)
    assert (g.train_mask.sum(), g.val_mask.sum(), g.test_mask.sum()) == split
    assert not (g.train_mask & g.val_mask).any() and not (g.val_mask & g.test_mask).any()
    assert g.x.dtype == np.float32 and g.y.dtype == np.int64 and g.edge_index.dtype == np.int64
    src, dst = g.edge_index
    assert not (src == dst).any(), "self-loops must not be in the canonical edge list"
    pairs = set(zip(src.tolist(), dst.tolist()))
    assert len(pairs) == g.num_edges, "duplicates"
    assert all((d, s) in pairs for s, d in pairs), "not symmetric"
    assert g.y.min() == 0 and g.y.max() == classes - 1


def test_citeseer_isolated_test_nodes_are_padded(data_dir):
    g = load_graph("citeseer", data_dir)
    zero_rows = np.flatnonzero(g.x.sum(1) == 0)
    assert len(zero_rows) >= 15            # the 15 isolated test nodes of the original loader
    assert g.test_mask.sum() == 1000


def test_row_normalisation_and_fingerprint(data_dir):
    raw = load_graph("cora", data_dir)
    norm = load_graph("cora", data_dir, normalize_features=True)
    sums = norm.x.sum(1)
    assert np.allclose(sums[raw.x.sum(1) > 0], 1.0, atol=1e-5)
    assert raw.fingerprint() != norm.fingerprint()
    assert norm.fingerprint() == load_graph("cora", data_dir, normalize_features=True).fingerprint()
    assert row_normalize(np.zeros((2, 3), np.float32)).sum() == 0


def test_canonical_edges():
    ei = canonical_edges(np.array([0, 1, 2, 2, 3]), np.array([1, 0, 2, 3, 1]), 4)
    assert ei.tolist() == [[0, 1, 1, 2, 3, 3], [1, 0, 3, 3, 1, 2]]


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UsageError, match="unknown dataset 'coraa'.*cora, citeseer, pubmed"):
        canonical_dataset_name("coraa")


def _readonly_tree(root: Path):
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_missing_dataset_downloads_into_cache_only(tmp_path, monkeypatch):
    empty = tmp_path / "data"
    empty.mkdir()
    cache = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    assert data_dirs(str(empty)) == [empty, cache / "gnnbench"]
    from gnnbench.datasets import download

    def offline(url, timeout=30.0):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(download, "_fetch", offline)
    with pytest.raises(DataError, match="offline"):
        load_graph("cora", str(empty))
    assert list(empty.iterdir()) == [], "never write into a data directory that is not the cache"


def test_download_is_checked_and_written_to_cache(tmp_path, monkeypatch, data_dir):
    """A fake 'network' serving the real files: they land in the cache and load."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    from gnnbench.datasets import download
    served = []

    def fetch(url, timeout=30.0):
        served.append(url)
        name = url.rsplit("/", 1)[1]
        return Path(data_dir, "Cora", "raw", name).read_bytes()
    monkeypatch.setattr(download, "_fetch", fetch)
    (tmp_path / "nothing-here").mkdir()
    g = load_graph("cora", str(tmp_path / "nothing-here"))
    assert g.num_nodes == 2708 and len(served) == 8
    assert (tmp_path / "xdg" / "gnnbench" / "Cora" / "raw" / "ind.cora.x").exists()

    # a corrupted download is refused and not saved
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg2"))
    monkeypatch.setattr(download, "_fetch", lambda url, timeout=30.0: b"garbage")
    with pytest.raises(DataError, match="sha256"):
        load_graph("cora", str(tmp_path / "nothing-here"))
    assert not (tmp_path / "xdg2" / "gnnbench" / "Cora" / "raw" / "ind.cora.x").exists()


def test_corrupt_raw_file_is_a_clear_error(tmp_path, data_dir):
    raw = tmp_path / "Cora" / "raw"
    raw.mkdir(parents=True)
    for f in Path(data_dir, "Cora", "raw").iterdir():
        (raw / f.name).write_bytes(f.read_bytes())
    (raw / "ind.cora.allx").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"ind.cora.allx has sha256 [0-9a-f]{64}, expected 9419ba2f"):
        load_graph("cora", str(tmp_path), download=False)
    from gnnbench.datasets.planetoid import unpickle   # past the hash check, the parser still says why
    with pytest.raises(DataError, match="cannot read .*ind.cora.allx"):
        unpickle(b"not a pickle", raw / "ind.cora.allx")


def test_a_data_folder_that_does_not_exist_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("GNNBENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(DataError, match=re.escape(f"data folder {tmp_path / 'gone'} (from --data-dir) does not exist")):
        load_graph("cora", str(tmp_path / "gone"))
    monkeypatch.setenv("GNNBENCH_DATA", str(tmp_path / "gone"))
    with pytest.raises(DataError, match="from GNNBENCH_DATA"):
        load_graph("cora")
    assert load_graph("synthetic:nodes=50,avg_degree=2,features=4,classes=2").num_nodes == 50, \
        "a generated graph reads no folder"


# Graph.fingerprint() of each dataset as the plain-unpickler loader built it before the sha256 check
# and the restricted unpickler came in (measured at commit 60c09ae): neither may change a byte
FINGERPRINTS = [
    ("cora", {}, "sha256:878b4885f7e75058"),
    ("cora", {"normalize_features": True}, "sha256:87ef409019e5d475"),
    ("citeseer", {}, "sha256:4c7fcb43bdb213c9"),
    ("pubmed", {}, "sha256:0b4e9b0ac53df283"),
    ("mutag", {}, "sha256:60d0c32f82e48a7c"),
    ("proteins", {}, "sha256:a9071b3af355821b"),
    ("proteins", {"node_attributes": True}, "sha256:f750533f1089c5bb"),
    ("enzymes", {}, "sha256:6950cd81936c61cb"),
    ("enzymes", {"node_attributes": True}, "sha256:6d43e229f37894ab"),
]


@pytest.mark.parametrize("name,kwargs,fingerprint", FINGERPRINTS)
def test_checked_loading_keeps_every_fingerprint(data_dir, name, kwargs, fingerprint):
    assert load_graph(name, data_dir, **kwargs).fingerprint() == fingerprint
