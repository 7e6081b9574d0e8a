"""TU graph-classification sets: exact counts, canonical edges, stratified folds, batching."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from gnnbench import batching
from gnnbench.datasets import load_graph
from gnnbench.errors import DataError

# graphs, nodes, directed edges, features (labels only / with attributes), classes, label counts
COUNTS = {
    "mutag": (188, 3371, 7442, 7, None, 2, [63, 125]),
    "proteins": (1113, 43471, 162088, 3, 4, 2, [663, 450]),
    "enzymes": (600, 19580, 74564, 3, 21, 6, [100] * 6),
}


@pytest.fixture(scope="module", params=sorted(COUNTS))
def tu(request, data_dir):
    return request.param, load_graph(request.param, data_dir)


def test_exact_counts(tu, data_dir):
    name, gs = tu
    g, n, e, f, fa, c, labels = COUNTS[name]
    assert (gs.num_graphs, gs.num_nodes, gs.num_edges, gs.num_features, gs.num_classes) == (g, n, e, f, c)
    assert np.bincount(gs.y).tolist() == labels
    assert gs.x.dtype == np.float32 and gs.y.dtype == np.int64
    assert np.all(gs.x.sum(1) == 1), "one-hot node labels"
    if fa is None:
        with pytest.raises(DataError, match="no node attributes"):
            load_graph(name, data_dir, node_attributes=True)
    else:
        assert load_graph(name, data_dir, node_attributes=True).num_features == fa


def test_edges_are_canonical_and_stay_inside_their_graph(tu):
    _, gs = tu
    src, dst = gs.edge_index
    key = src * gs.num_nodes + dst
    assert np.all(np.diff(key) > 0), "sorted, no duplicates"
    assert not np.any(src == dst)
    assert set(key.tolist()) == set((dst * gs.num_nodes + src).tolist()), "symmetric"
    graph_of = np.repeat(np.arange(gs.num_graphs), np.diff(gs.node_ptr))
    assert np.array_equal(graph_of[src], graph_of[dst])
    edge_graph = np.repeat(np.arange(gs.num_graphs), np.diff(gs.edge_ptr))
    assert np.array_equal(edge_graph, graph_of[src]), "edge_ptr slices each graph's edges"


def test_folds_are_stratified_deterministic_and_partition(tu, data_dir):
    name, gs = tu
    again = load_graph(name, data_dir)
    assert np.array_equal(gs.folds, again.folds) and gs.fingerprint() == again.fingerprint()
    assert sorted(set(gs.folds.tolist())) == list(range(10))
    for c in range(gs.num_classes):
        per_fold = np.bincount(gs.folds[gs.y == c], minlength=10)
        assert per_fold.max() - per_fold.min() <= 1, f"class {c} spread unevenly: {per_fold}"
    other = load_graph(name, data_dir, fold=3)
    assert not np.array_equal(other.test_idx, gs.test_idx)
    assert other.fingerprint() != gs.fingerprint(), "the fold is part of the fingerprint"
    assert np.array_equal(np.sort(np.concatenate([gs.train_idx, gs.test_idx])), np.arange(gs.num_graphs))


def test_bad_fold_and_corrupt_files(tmp_path, data_dir, monkeypatch):
    with pytest.raises(DataError, match="fold 10 out of range"):
        load_graph("mutag", data_dir, fold=10)
    raw = tmp_path / "MUTAG" / "raw"
    shutil.copytree(f"{data_dir}/MUTAG/raw", raw)
    with open(raw / "MUTAG_A.txt", "a") as fh:
        fh.write("1, 3371\n")           # joins graph 1 and graph 188
    with pytest.raises(DataError, match=r"MUTAG_A.txt has sha256 [0-9a-f]{64}, expected d9656ca7"):
        load_graph("mutag", tmp_path)
    # the parser's own checks, should a file get past the hash check
    from gnnbench.datasets import tu
    monkeypatch.setattr(tu, "read_checked", lambda path: Path(path).read_bytes())
    with pytest.raises(DataError, match="joins two different graphs"):
        load_graph("mutag", tmp_path)
    shutil.copy(f"{data_dir}/MUTAG/raw/MUTAG_A.txt", raw / "MUTAG_A.txt")
    (raw / "MUTAG_graph_labels.txt").write_text("1\n-1\n")
    with pytest.raises(DataError, match="2 labels for 188 graphs"):
        load_graph("mutag", tmp_path)


def _naive_collate(gs, ids):
    xs, eis, batch, off = [], [], [], 0
    for k, g in enumerate(ids):
        n0, n1 = gs.node_ptr[g], gs.node_ptr[g + 1]
        xs.append(gs.x[n0:n1])
        e = gs.edge_index[:, gs.edge_ptr[g]:gs.edge_ptr[g + 1]]
        eis.append(e - n0 + off)
        batch += [k] * int(n1 - n0)
        off += int(n1 - n0)
    return np.concatenate(xs), np.concatenate(eis, axis=1), np.array(batch)


def test_collate_matches_a_per_graph_loop(tu):
    _, gs = tu
    ids = np.array([5, 0, 17, 3, gs.num_graphs - 1])
    got = batching.collate(gs, ids)
    x, ei, b = _naive_collate(gs, ids)
    assert np.array_equal(got["x"], x) and np.array_equal(got["edge_index"], ei) and np.array_equal(got["batch"], b)
    assert np.array_equal(got["y"], gs.y[ids]) and got["ptr"][-1] == x.shape[0]
    assert batching.fingerprint(got) == batching.fingerprint({"x": x, "edge_index": ei[:, ::-1], "batch": b})
    assert batching.fingerprint(got) != batching.fingerprint(batching.collate(gs, ids[::-1]))


def test_epoch_batches_are_seeded_and_cover_the_training_set():
    train = np.arange(0, 1000, 3)
    a = batching.epoch_batches(train, 128, seed=1, epoch=0)
    assert [len(b) for b in a] == [128, 128, 78]
    assert np.array_equal(np.sort(np.concatenate(a)), train)
    assert all(np.array_equal(x, y) for x, y in zip(a, batching.epoch_batches(train, 128, 1, 0)))
    assert not np.array_equal(a[0], batching.epoch_batches(train, 128, 1, 1)[0]), "reshuffled every epoch"
    assert not np.array_equal(a[0], batching.epoch_batches(train, 128, 2, 0)[0]), "seeded"


def test_gin_reference_is_per_graph(data_dir):
    """Eval-mode logits of a graph do not depend on which graphs share its batch."""
    from gnnbench.reference import gin_forward
    from gnnbench.specs import get_spec
    from gnnbench.weights import init_weights
    gs = load_graph("mutag", data_dir)
    spec = get_spec("gin", "mutag")
    w = init_weights(spec, gs.num_features, gs.num_classes, 0)
    big = batching.collate(gs, np.arange(20))
    one = batching.collate(gs, [7])
    lb = gin_forward(spec, w, big["x"], big["edge_index"], big["batch"], 20)
    lo = gin_forward(spec, w, one["x"], one["edge_index"], one["batch"], 1)
    assert np.allclose(lb[7], lo[0], rtol=1e-12, atol=1e-12)
    assert not np.allclose(lb[7], lb[8])
