"""Datasets shipped to a Ray worker through the object store: what the driver packs and what a worker
whose node lacks the data folder writes and loads (no cluster needed: these are the two ends)."""
from __future__ import annotations

import pytest

from gnnbench.datasets import load_graph
from gnnbench.errors import DataError, UsageError
from gnnbench.ray_executor import data_payload, local_data_dir, materialize, raw_files


def test_shipped_files_load_on_a_node_without_the_data_folder(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))   # this "node" has no cached copy
    for name, files in (("cora", 8), ("proteins", 5)):
        root, rels = raw_files(name, data_dir)
        payload = data_payload(name, data_dir)
        assert sorted(payload) == sorted(rels) and len(rels) == files
        # bytes as on disk (the loader normalises TU line ends itself when it checks them)
        assert all(payload[r] == (root / r).read_bytes() for r in rels)
        missing = tmp_path / f"not-here-{name}"
        assert local_data_dir(str(missing), rels) is None, "the data folder is not on this node: ship"
        assert local_data_dir(data_dir, rels) == data_dir, "it is: use it"
        folder = materialize(payload, tmp_path / f"ship-{name}")
        assert local_data_dir(folder, rels) == folder
        shipped, original = load_graph(name, folder), load_graph(name, data_dir)
        assert shipped.fingerprint() == original.fingerprint()


def test_a_damaged_shipped_file_is_refused_by_its_checksum(tmp_path, data_dir):
    payload = data_payload("cora", data_dir)
    rel = next(r for r in payload if r.endswith("ind.cora.y"))
    payload[rel] = payload[rel][:-1] + bytes([payload[rel][-1] ^ 1])
    folder = materialize(payload, tmp_path / "ship")
    with pytest.raises(DataError, match="ind.cora.y"):
        load_graph("cora", folder)


@pytest.mark.parametrize("rel", ["../outside.txt", "/tmp/abs.txt", "Cora/../../x"])
def test_a_payload_never_writes_outside_its_folder(tmp_path, rel):
    with pytest.raises(UsageError, match="not a relative path inside"):
        materialize({rel: b"x"}, tmp_path / "ship")
    assert not (tmp_path / "outside.txt").exists()
