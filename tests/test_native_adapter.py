"""The native adapter end to end: verify against the reference on Cora, training
behaviour, determinism per seed, the dense-feature and recompute paths, and the
build-failure path (available() answers ok=False with a one-line reason)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gnnbench.adapters.native import NativeAdapter, build  # noqa: E402
from gnnbench.specs import get_spec  # noqa: E402
from gnnbench.verify import check  # noqa: E402
from gnnbench.weights import init_weights  # noqa: E402


@pytest.fixture(scope="module")
def built():
    build.load("cpu")          # compile once per session (cached across sessions)


def _adapter(graph, model, seed=0, overrides=None, threads=2):
    spec = get_spec(model, "cora", overrides)
    a = NativeAdapter()
    assert a.available().ok
    a.set_threads(threads)
    a.prepare(graph, spec, "cpu", seed, init_weights(spec, graph.num_features, graph.num_classes, seed))
    return a


def test_import_does_not_load_torch():
    code = "import sys, gnnbench.adapters.native as n; n.NativeAdapter(); assert 'torch' not in sys.modules"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
def test_verify_passes_on_cora(built, cora, model):
    a = NativeAdapter()
    assert a.available().ok
    a.set_threads(2)
    res = check(a, get_spec(model, "cora"), cora)
    assert res["passed"], res
    assert res["logits_max_abs_diff"] < 1e-6
    assert res["loss_rel_diff"] < 1e-6


@pytest.mark.parametrize("model,overrides", [("gcn", {"norm_policy": "recompute"}),
                                             ("sage", {"norm_policy": "recompute"}),
                                             ("gat", {"heads": 3, "hidden": 5, "layers": 3}),
                                             ("gat", {"out_heads": 8}),
                                             ("gcn", {"layers": 3, "hidden": 32}),
                                             ("sage", {"layers": 1}),
                                             ("gcn", {"layers": 1})])
def test_verify_other_paths(built, cora, model, overrides):
    a = NativeAdapter()
    res = check(a, get_spec(model, "cora", overrides), cora)
    assert res["passed"], res


@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
def test_verify_sparse_feature_path(built, cora, model):
    spec = get_spec(model, "cora", {"features": "sparse"})
    a = NativeAdapter()
    assert a.unsupported_spec(spec) is None
    res = check(a, spec, cora)
    assert a._sparse_x is not None and a.x is None and res["passed"], res
    for _ in range(3):                                              # and it trains with dropout on
        a.spec = spec
        a.train_step()
    assert np.isfinite(a.last_loss())


def test_dense_is_the_default_layout(built, cora):
    a = _adapter(cora, "gcn")
    assert a._sparse_x is None and a.x.dtype == torch.float32 and tuple(a.x.shape) == cora.x.shape
    np.testing.assert_array_equal(a.x.numpy(), cora.x)              # the very matrix every library gets
    assert any(n.startswith("features: dense") for n in a.notes())


def test_sparse_layout_only_for_node_models():
    from gnnbench.specs import get_spec as gs
    a = NativeAdapter()
    assert "sparse" in a.feature_layouts
    assert a.unsupported_spec(gs("gin", "mutag", {"features": "sparse"})) is not None


@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
def test_training_reduces_loss_and_is_deterministic(built, cora, model):
    a = _adapter(cora, model, seed=3)
    losses = []
    for _ in range(25):
        a.train_step()
        losses.append(a.last_loss())
    assert losses[-1] < losses[0] - 0.2, losses
    acc = a.evaluate()
    assert set(acc) == {"train", "val", "test"} and acc["train"] > 0.5
    b = _adapter(cora, model, seed=3, threads=1)
    for _ in range(25):
        b.train_step()
    pa, pb = a.parameters(), b.parameters()
    assert set(pa) == set(init_weights(a.spec, cora.num_features, cora.num_classes, 3))
    for k in pa:   # same seed -> same dropout masks (thread count only reorders float sums)
        np.testing.assert_allclose(pa[k], pb[k], rtol=1e-4, atol=1e-5)
    c = _adapter(cora, model, seed=4)
    c.train_step()
    d = _adapter(cora, model, seed=3)
    e = _adapter(cora, model, seed=3)
    for _ in range(10):
        d.train_step()
        e.train_step()
    assert d.last_loss() == e.last_loss()
    for k, v in d.parameters().items():     # same seed and thread count: bitwise the same run
        np.testing.assert_array_equal(v, e.parameters()[k])
    assert any(not np.array_equal(c.parameters()[k], d.parameters()[k]) for k in pa)   # another seed differs
    np.testing.assert_array_equal(a.logits(), a.logits())                                # eval is deterministic


def test_dropout_actually_applied(built, cora):
    """With dropout on, two steps from the same weights see different masks (loss differs from eval loss)."""
    a = _adapter(cora, "gcn")
    logits = torch.from_numpy(a.logits())
    eval_loss = torch.nn.functional.cross_entropy(logits[a.train_idx], a.train_y).item()
    a.train_step()
    assert abs(a.last_loss() - eval_loss) > 1e-4


def test_notes_and_versions(built, cora):
    a = _adapter(cora, "gcn")
    notes = a.notes()
    assert any("native cpu kernels" in n for n in notes)
    assert any(n.startswith("features: dense") for n in notes)
    assert any("optimiser: torch.optim.Adam(" in n for n in notes)
    assert any("hash RNG" in n for n in notes)
    sage = _adapter(cora, "sage", overrides={"norm_policy": "recompute"})
    assert any("SAGE 1/deg: recomputed" in n for n in sage.notes())
    assert any("SAGE 1/deg: precomputed" in n for n in _adapter(cora, "sage").notes())
    assert "torch" in a.versions()


# ---------------------------------------------------------------------------- build failures

def test_missing_compiler_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    monkeypatch.setenv("GNNBENCH_CACHE", str(tmp_path / "cache"))
    av = NativeAdapter().available()
    assert not av.ok
    assert "no-such-c++" in av.reason and "not found" in av.reason
    assert "\n" not in av.reason


def test_compile_error_is_unavailable_with_one_line(monkeypatch, tmp_path):
    src = tmp_path / "csrc"
    src.mkdir()
    for name in build.CPU_HEADERS:
        (src / name).write_text("#pragma once\n")
    for name in build.CPU_SOURCES:
        (src / name).write_text("int gnb_unused_symbol_%d = 0;\n" % len(name))
    (src / "native_cpu.cpp").write_text('#error "forced failure for the test"\n')
    monkeypatch.setattr(build, "CSRC", src)
    monkeypatch.setenv("GNNBENCH_CACHE", str(tmp_path / "cache"))
    av = NativeAdapter().available()
    assert not av.ok
    assert "forced failure for the test" in av.reason, av.reason
    assert "\n" not in av.reason and len(av.reason) < 400
    # the failure is remembered: the next process answers without compiling again
    assert list((tmp_path / "cache" / "native").glob("cpu-*/FAILED"))
    av2 = NativeAdapter().available()
    assert not av2.ok and "failed to build earlier" in av2.reason


def test_cache_lives_outside_the_repo(built):
    root = build.cache_root()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(build.__file__))))
    assert not str(root.resolve()).startswith(repo)
    assert any(root.glob("cpu-*/*.so"))
