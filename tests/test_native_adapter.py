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
from gnnbench.metrics import accuracy  # noqa: E402
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


@pytest.mark.heavy
@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
def test_verify_passes_on_cora(built, cora, model):
    """The timed configuration (dropout on, the harness's masks injected): logits, loss, gradients,
    one SGD and one Adam step, the kernels' own dropout statistics, the trainable count."""
    a = NativeAdapter()
    assert a.available().ok
    a.set_threads(2)
    spec = get_spec(model, "cora")
    assert spec.dropout > 0 and getattr(spec, "attn_dropout", 0.5) > 0
    res = check(a, spec, cora)
    assert res["passed"], res
    assert res["logits_max_abs_diff"] < 1e-6
    assert res["loss_rel_diff"] < 1e-6
    assert res["grads_max_rel"] < 1e-4
    assert res["num_parameters"] == res["canonical_parameters"]
    assert set(res["dropout"]) == ({"input.0", "input.1"} | ({"attn.0", "attn.1"} if model == "gat" else set()))


def test_hooks_are_implemented_and_timed_build_untouched(built, cora):
    from gnnbench.protocol import Adapter
    for hook in ("set_dropout_masks", "gradients", "dropout_sample", "num_parameters"):
        assert getattr(NativeAdapter, hook) is not getattr(Adapter, hook), hook
    a = _adapter(cora, "gcn")
    assert a.lib.masked is False                       # timed runs use the hash-RNG build
    from gnnbench.verify import draw_masks, dropout_sites
    a.set_dropout_masks(draw_masks(a.spec, dropout_sites(a.spec, cora), 0))
    assert a.lib.masked is True and a.lib is not a._timed_lib
    a.set_dropout_masks(None)
    assert a.lib is a._timed_lib and a.lib.masked is False


def test_verify_gin_and_sampled(built, data_dir, cora):
    from gnnbench.datasets import load_graph
    from gnnbench.adapters.native.graph import NativeGraphAdapter
    from gnnbench.adapters.native.sampled import NativeSampledAdapter
    mutag = load_graph("mutag", data_dir)
    assert NativeAdapter.for_task("graph") is NativeGraphAdapter and NativeAdapter.for_task("node") is NativeAdapter
    a = NativeGraphAdapter()
    a.set_threads(1)                                    # as `gnnbench verify` runs graph-task cells
    res = check(a, get_spec("gin", "mutag"), mutag)
    assert res["passed"] and res["batch_matches"] and set(res["dropout"]) == {"head"}, res
    assert NativeAdapter.for_task("sampled") is NativeSampledAdapter
    res = check(NativeSampledAdapter(), get_spec("sage-sampled", "cora"), cora)
    assert res["passed"] and res["logits_max_abs_diff"] < 1e-5, res


def test_a_site_without_its_mask_is_an_error(built, cora):
    from gnnbench.verify import draw_masks, dropout_sites
    a = _adapter(cora, "gcn")
    masks = draw_masks(a.spec, dropout_sites(a.spec, cora), 0)
    del masks["input.1"]
    a.set_dropout_masks(masks)
    with pytest.raises(RuntimeError, match="no injected mask"):
        a.train_step()
    with pytest.raises(ValueError, match="shape"):
        a.set_dropout_masks({"input.0": np.ones((3, 3), np.float32)})
    with pytest.raises(ValueError, match="unknown dropout site"):
        a.set_dropout_masks({"bogus.0": np.ones((3, 3), np.float32)})


# ---- the checks can fail: deliberately wrong mask paths / dropout ----------------------------------

def _failures(res):
    assert not res["passed"], res
    return res["error"]


def test_mask_ignored_fails_verify(built, cora, monkeypatch):
    """A mask path that ignores the harness's mask at one site (keeps everything there)."""
    real = NativeAdapter.set_dropout_masks

    def ignore_input1(self, masks):
        if masks is not None:
            masks = dict(masks, **{"input.1": np.ones_like(masks["input.1"])})
        return real(self, masks)
    monkeypatch.setattr(NativeAdapter, "set_dropout_masks", ignore_input1)
    err = _failures(check(NativeAdapter(), get_spec("gcn", "cora"), cora))
    assert "loss differs" in err and "gradient" in err


def test_attention_mask_in_the_wrong_edge_order_fails_verify(built, cora, monkeypatch):
    """attn masks applied in canonical order without the permutation to our CSR order."""
    monkeypatch.setattr(NativeAdapter, "_csr_order", lambda self: np.arange(self._graph_ref.edge_index.shape[1]
                                                                           + self._graph_ref.num_nodes))
    err = _failures(check(NativeAdapter(), get_spec("gat", "cora"), cora))
    assert "loss differs" in err


def test_missing_dropout_in_the_timed_path_fails_verify(built, cora, monkeypatch):
    """A forward that drops the hidden layer's fused dropout (p = 0 into the SpMM epilogue): the
    masked build then has no active site to apply input.1's mask at, so verify sees it."""
    from gnnbench.adapters.native import ops
    real = ops.spmm
    monkeypatch.setattr(ops, "spmm", lambda X, g, lib, bias=None, act=0, p=0.0, seed=0, ctr=0:
                        real(X, g, lib, bias, act, 0.0, seed, ctr))
    err = _failures(check(NativeAdapter(), get_spec("gcn", "cora"), cora))
    assert "loss differs" in err and "gradient" in err


@pytest.mark.heavy
def test_dropout_at_the_wrong_rate_fails_verify(built, cora, monkeypatch):
    """dropout_sample must be the timed op at the timed rate: one at half the rate is caught."""
    import dataclasses
    real = NativeAdapter.dropout_sample

    def half_rate(self, site, shape):
        spec = self.spec
        self.spec = dataclasses.replace(spec, dropout=spec.dropout / 2)
        try:
            return real(self, site, shape)
        finally:
            self.spec = spec
    monkeypatch.setattr(NativeAdapter, "dropout_sample", half_rate)
    err = _failures(check(NativeAdapter(), get_spec("sage", "cora"), cora))
    assert "dropout at input.0" in err and "dropout at input.1" in err


@pytest.mark.heavy
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
    assert a.unsupported_spec(gs("gcn", "cora", {"features": "sparse"})) is None
    for model, data in (("gin", "mutag"), ("sage-sampled", "cora")):
        spec = gs(model, data, {"features": "sparse"})
        task_class = NativeAdapter.for_task(spec.task)
        assert task_class is not NativeAdapter and issubclass(task_class, NativeAdapter)
        assert "node models" in task_class().unsupported_spec(spec)


@pytest.mark.heavy
@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
def test_training_reduces_loss_and_is_deterministic(built, cora, model):
    a = _adapter(cora, model, seed=3)
    losses = []
    for _ in range(25):
        a.train_step()
        losses.append(a.last_loss())
    assert losses[-1] < losses[0] - 0.2, losses
    acc = accuracy(a.logits(), cora)              # scored by the harness, as in a run
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
    """With dropout on, the training forward differs from the eval forward (the loss alone at
    initialisation, logits near zero, moves by only ~1e-5 on Cora with dense features)."""
    a = _adapter(cora, "gcn")
    with torch.no_grad():
        train, ev = a._forward(training=True), a._forward(training=False)
    assert float((train - ev).abs().max()) > 1e-2 * float(ev.abs().max())
    b = _adapter(cora, "gcn", overrides={"dropout": 0.0})
    with torch.no_grad():
        torch.testing.assert_close(b._forward(training=True), b._forward(training=False))


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
