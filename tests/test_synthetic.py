import numpy as np
import pytest

from gnnbench.datasets import canonical_dataset_name, load_graph
from gnnbench.errors import UsageError


def test_same_parameters_same_arrays():
    a = load_graph("synthetic:nodes=3000,avg_degree=8,features=16,classes=4,seed=7")
    b = load_graph("synthetic:seed=7,classes=4,features=16,avg_degree=8,nodes=3000")
    assert a.fingerprint() == b.fingerprint()
    for k in ("x", "y", "edge_index", "train_mask"):
        assert np.array_equal(getattr(a, k), getattr(b, k))
    c = load_graph("synthetic:nodes=3000,avg_degree=8,features=16,classes=4,seed=8")
    assert c.fingerprint() != a.fingerprint()


def test_shape_and_label_correlation():
    g = load_graph("synthetic:nodes=5000,avg_degree=10,features=32,classes=5")
    assert g.num_nodes == 5000 and g.num_features == 32 and g.num_classes == 5
    assert 0.8 * 5000 * 10 < g.num_edges <= 5000 * 10
    src, dst = g.edge_index
    assert not (src == dst).any()
    same = (g.y[src] == g.y[dst]).mean()
    assert same > 0.6, "edges should mostly join nodes of one class"
    centroid_gap = np.linalg.norm(g.x[g.y == 0].mean(0) - g.x[g.y == 1].mean(0))
    assert centroid_gap > 1.0, "features should carry the label"
    assert g.train_mask.sum() == 100 and g.val_mask.sum() == 500 and g.test_mask.sum() == 1000


@pytest.mark.parametrize("bad,msg", [
    ("synthetic:nodes=abc", "bad value"),
    ("synthetic:colour=3", "unknown synthetic parameter 'colour'"),
    ("synthetic:nodes", "expected key=value"),
    ("synthetic:nodes=1", "nodes>=2"),
])
def test_bad_parameters(bad, msg):
    with pytest.raises(UsageError, match=msg):
        canonical_dataset_name(bad)


def test_train_nodes_per_class_parameter():
    from gnnbench.datasets import canonical_dataset_name, load_graph
    base = "synthetic:nodes=2000,avg_degree=6,features=8,classes=4"
    assert "train" not in canonical_dataset_name(base), "the default keeps the old names"
    assert canonical_dataset_name(base + ",train=20") == canonical_dataset_name(base)
    assert canonical_dataset_name(base + ",train=100").endswith(",train=100")
    a, b = load_graph(base), load_graph(base + ",train=100")
    assert a.train_mask.sum() == 80 and b.train_mask.sum() == 400
    assert (a.x == b.x).all() and (a.edge_index == b.edge_index).all(), "only the split changes"
    assert not (b.train_mask & (b.val_mask | b.test_mask)).any()
