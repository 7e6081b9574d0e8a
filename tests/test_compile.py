"""``compile: true`` (torch.compile of the torch adapters' full-batch node models): hash-neutral when off,
offered where it runs and skipped with its reason elsewhere, compiled in ``prepare`` (so in setup_s) without
touching the canonical initial state, the compiled model checked by ``verify``, and a verify that fails when
the compiled graph does not see the harness's injected masks."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from gnnbench.adapters import adapter_class
from gnnbench.specs import get_spec, spec_hash
from gnnbench.weights import init_weights

from conftest import DATA_DIR, run_cli

pytestmark = pytest.mark.heavy   # real training or tools in child processes: `pytest -m 'not heavy'` leaves it out


def test_compile_off_leaves_the_spec_hash_of_older_records():
    spec = dataclasses.asdict(get_spec("gcn", "cora"))
    assert spec["compile"] is False
    older = {k: v for k, v in spec.items() if k != "compile"}
    assert spec_hash(spec) == spec_hash(older)
    assert spec_hash({**spec, "compile": True}) != spec_hash(older)


@pytest.mark.parametrize("lib,model,why", [
    ("native", "gcn", "fused C++ kernels"),
    ("jraph", "gat", "jax.jit"),
    ("spektral", "gcn", "torch adapters"),
    ("graphnets", "sage", "torch adapters"),
    ("pyg", "gin", "full-batch node models"),
    ("dgl", "sage-sampled", "full-batch node models"),
])
def test_compile_is_skipped_with_its_reason_where_not_offered(lib, model, why):
    spec = get_spec(model, "cora", {"compile": True})
    adapter = adapter_class(lib).for_task(spec.task)       # the class that runs the model's task
    reason = adapter().unsupported_spec(spec)
    assert reason and why in reason, reason
    assert adapter().unsupported_spec(get_spec(model, "cora")) is None


@pytest.mark.parametrize("lib", ["pyg", "dgl"])
def test_compile_is_offered_for_node_models(lib):
    for model in ("gcn", "gat", "sage"):
        assert adapter_class(lib)().unsupported_spec(get_spec(model, "cora", {"compile": True})) is None


def test_compiled_in_prepare_with_the_initial_state(cora):
    """prepare compiles (a forward + backward and an eval forward) but leaves weights, gradients and the
    optimiser as an eager prepare does; the compiled step then trains to the same loss as eager with the
    same injected masks."""
    import torch
    from gnnbench.adapters.pyg import PyGAdapter
    out = {}
    for flag in (False, True):
        spec = get_spec("gcn", "cora", {"compile": flag})
        a = PyGAdapter()
        a.prepare(cora, spec, "cpu", 0, init_weights(spec, cora.num_features, cora.num_classes, 0))
        assert (a.compiled is not None) == flag
        assert all(p.grad is None for p in a.model.parameters())
        assert not a.optimizer.state
        params = {k: v.copy() for k, v in a.parameters().items()}
        rng = np.random.default_rng(3)
        masks = {s: (rng.random(shape) >= spec.dropout).astype(np.float32) for s, shape in a.dropout_sites().items()}
        a.set_dropout_masks(masks)
        a.train_step()
        out[flag] = (params, a.last_loss(), a.parameters())
        torch._dynamo.reset()
    (p0, l0, s0), (p1, l1, s1) = out[False], out[True]
    assert all(np.array_equal(p0[k], p1[k]) for k in p0)
    assert abs(l0 - l1) <= 1e-6 * abs(l0)
    assert all(np.allclose(s0[k], s1[k], atol=1e-6) for k in s0)


def test_verify_fails_when_the_compiled_graph_drops_the_injected_attention_masks(cora):
    """PyG's generated edge_updater skips edge-update forward hooks under torch.compile: a GAT whose
    attention masks are injected by such a hook (the adapter's former mechanism) trains with its own
    attention dropout when compiled, and verify must say so."""
    from gnnbench.adapters._torch import _apply_mask
    from gnnbench.adapters.pyg import PyGAdapter
    from gnnbench.verify import check

    class HookMasks(PyGAdapter):
        def set_attn_masks(self, masks):
            st = self._attn_state()
            for h in st.setdefault("hooks", []):
                h.remove()
            st["hooks"] = []
            for conv, p in zip(self.convs, st["p"]):
                conv.dropout = p
            if not masks:
                return
            if st["perm"] is None:
                st["perm"] = self._attn_permutation()
            for k, m in masks.items():
                conv, p, mk = self.convs[k], st["p"][k], m[st["perm"]]
                conv.dropout = 0.0
                st["hooks"].append(conv.register_edge_update_forward_hook(
                    lambda mod, inp, out, mk=mk, p=p: _apply_mask(out, mk, p, "attn") if mod.training else None))

    import torch
    spec = get_spec("gat", "cora", {"compile": True})
    bad = check(HookMasks(), spec, cora)
    torch._dynamo.reset()
    assert not bad["passed"]
    assert "loss differs" in bad["error"] or "gradient" in bad["error"], bad["error"]
    good = check(PyGAdapter(), spec, cora)
    torch._dynamo.reset()
    assert good["passed"], good


def test_verify_and_a_short_run_with_compile(tmp_path):
    """`gnnbench verify --set compile=true` passes PyG's and DGL's compiled GCN; a short compiled run gives
    a PyG row labelled (compile=True) with the compile note, and native skipped with its reason."""
    r = run_cli("verify", "--libs", "pyg,dgl", "--models", "gcn", "--datasets", "cora", "--set", "compile=true",
                "--data-dir", DATA_DIR, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith(("| pyg", "| dgl"))]
    assert len(rows) == 2 and all("gcn (compile=true)" in ln and ln.endswith("| passed |") for ln in rows), rows
    out = tmp_path / "c.jsonl"
    r = run_cli("run", "--libs", "pyg,native", "--models", "gcn", "--datasets", "cora", "--epochs", "3",
                "--warmup", "1", "--repeats", "1", "--set", "compile=true", "--data-dir", DATA_DIR,
                "--out", out, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = {json.loads(ln)["cell"]["library"]: json.loads(ln) for ln in out.read_text().splitlines()}
    assert recs["pyg"]["status"] in ("ok", "accuracy_mismatch")      # 3 epochs: trained, not converged
    assert recs["pyg"]["spec"]["compile"] is True and recs["pyg"]["times"]["setup_s"] > 1   # the compile is in setup_s
    assert any(n.startswith("compile=true: torch.compile") for n in recs["pyg"]["notes"])
    assert recs["native"]["status"] == "skipped" and "compile=true" in recs["native"]["error"]
    assert "gcn (compile=True)" in r.stdout
