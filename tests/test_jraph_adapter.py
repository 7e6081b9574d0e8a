"""The jraph (JAX) adapter: verify against the reference with dropout on and the harness's masks
injected (GCN, GAT, SAGE on Cora, GCN with jraph's own per-forward normalisation, GIN on MUTAG), a
deliberately wrong GCN normalisation that verify must reject, a short seeded training run, the
thread pool PJRT_NPROC sizes, a harness run that gives an ok record in a process with neither
torch nor TensorFlow, and the not-installed path.

JAX never runs in the pytest process (torch lives here, and XLA reads its thread settings when
its CPU client starts): every JAX check runs in a child Python with the adapter's ``child_env``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from gnnbench.adapters.jraph import JraphAdapter, thread_env

from conftest import DATA_DIR, ROOT, run_cli

# find_spec, not importorskip: JAX is never imported into the pytest process
pytestmark = [pytest.mark.heavy, pytest.mark.skipif(importlib.util.find_spec("jraph") is None,
                                reason="jraph not installed: pip install 'gnnbench[jraph]'")]

CHILD = textwrap.dedent(r"""
    import json, sys, time
    from gnnbench.adapters.jraph import JraphAdapter, JraphGraphAdapter, xla_threads
    from gnnbench.datasets import load_graph
    from gnnbench.metrics import accuracy
    from gnnbench.specs import get_spec
    from gnnbench.verify import check
    from gnnbench.weights import init_weights

    job = json.loads(sys.argv[1])
    out = {}
    a = JraphAdapter()
    av = a.available()
    out["available"] = [av.ok, av.version, av.reason]
    a.set_threads(job["threads"])
    out["versions"] = a.versions()
    out["thread_notes"] = a.notes()
    graphs = {}

    def graph(spec):
        key = spec.normalize_features
        if key not in graphs:
            graphs[key] = load_graph("cora", job["data"], normalize_features=key)
        return graphs[key]

    class NoGCNNorm(JraphAdapter):
        # a deliberately wrong GCN: the cached D^-1/2 replaced by ones (sum over A + I, no normalisation)
        def prepare(self, graph, spec, device, seed, weights):
            super().prepare(graph, spec, device, seed, weights)
            import jax.numpy as jnp
            self.data = {**self.data, "dinv": jnp.ones_like(self.data["dinv"])}

    out["verify"], out["seconds"] = {}, {}
    for name, model, over in (("gcn", "gcn", {}), ("gat", "gat", {}), ("sage", "sage", {}),
                              ("gcn-recompute", "gcn", {"norm_policy": "recompute"})):
        spec = get_spec(model, "cora", over)
        t0 = time.perf_counter()
        out["verify"][name] = check(JraphAdapter(), spec, graph(spec))
        out["seconds"][name] = time.perf_counter() - t0
    spec = get_spec("gcn", "cora")
    out["mut_gcn_nonorm"] = check(NoGCNNorm(), spec, graph(spec))
    gspec = get_spec("gin", "mutag")
    gs = load_graph("mutag", job["data"], node_attributes=gspec.node_attributes, fold=gspec.fold,
                    num_folds=gspec.num_folds)
    t0 = time.perf_counter()
    out["task_classes"] = [JraphAdapter.for_task(t) is c for t, c in
                           (("node", JraphAdapter), ("graph", JraphGraphAdapter), ("sampled", None))]
    out["verify"]["gin"] = check(JraphGraphAdapter(), gspec, gs)
    out["seconds"]["gin"] = time.perf_counter() - t0

    out["train"] = []
    for model, epochs, seed in job["train"]:
        spec = get_spec(model, "cora")
        t = JraphAdapter()
        g = graph(spec)
        t.prepare(g, spec, "cpu", seed, init_weights(spec, g.num_features, g.num_classes, seed))
        losses = []
        for _ in range(epochs):
            t.train_step()
            t.sync()
            losses.append(t.last_loss())
        t.infer()
        t.sync()
        out["train"].append({"model": model, "seed": seed, "losses": losses, "acc": accuracy(t.logits(), g),
                             "notes": t.notes(), "nparams": t.num_parameters(), "timed_bare": t._masks is None})
    out["xla_threads"] = xla_threads()
    out["modules"] = sorted(m for m in ("torch", "tensorflow", "tf_keras", "keras") if m in sys.modules)
    print("RESULT " + json.dumps(out))
""")


def start_child(job: dict, threads: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(JraphAdapter.child_env(threads))
    job = {"data": DATA_DIR, "threads": threads, **job}
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def first(data_dir):
    proc = start_child({"train": [["gcn", 30, 0], ["gcn", 5, 0], ["gcn", 3, 1], ["gat", 5, 0], ["sage", 5, 0]]},
                       threads=1)   # 1 on a machine with more cores: the pool size shows PJRT_NPROC bounds it
    try:
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"child failed (rc {proc.returncode}):\n{stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_available_and_versions(first):
    ok, version, reason = first["available"]
    assert ok, reason
    assert version == "0.0.6.dev0"
    v = first["versions"]
    assert v["jraph"] == "0.0.6.dev0" and v["jax"] == v["jaxlib"] == "0.10.2" and v["optax"] == "0.2.8", v


@pytest.mark.parametrize("cell", ["gcn", "gat", "sage", "gcn-recompute", "gin"])
def test_verify_with_dropout(first, cell):
    """Dropout on, the harness's masks injected: logits, loss, gradients, SGD/Adam steps, own dropout, count."""
    r = first["verify"][cell]
    assert r["passed"], r.get("error")
    assert r["grads_max_rel"] is not None and r["params_adam_max_abs_diff"] is not None, r
    assert r["num_parameters"] == r["canonical_parameters"], r
    assert r["dropout"] and all(d["p"] > 0 for d in r["dropout"].values()), r["dropout"]
    if cell == "gat":
        assert {"attn.0", "attn.1"} <= set(r["dropout"]), r["dropout"]
    if cell == "gin":
        assert r["batch_matches"], r
    else:
        assert r["logits_max_abs_diff"] < 1e-5 and r["loss_rel_diff"] < 1e-5, r


def test_verify_rejects_a_wrong_gcn_normalisation(first):
    r = first["mut_gcn_nonorm"]
    assert not r["passed"], r
    assert "logits differ" in r["error"] and "loss differs" in r["error"] and "gradient of" in r["error"], r["error"]


def test_threads_bounded_by_pjrt_nproc(first):
    """XLA's intra-op pool has exactly the harness's thread count (counted in /proc/self/task), in a
    child whose CPU affinity was not narrowed (XLA would otherwise size it to every allowed core)."""
    assert len(os.sched_getaffinity(0)) > 1
    assert first["xla_threads"].get("XLAEigen") == 1, first["xla_threads"]
    assert any("PJRT_NPROC=1" in n and "1 XLAEigen" in n for n in first["thread_notes"]), first["thread_notes"]
    assert thread_env(3) == {"PJRT_NPROC": "3", "JAX_PLATFORMS": "cpu"}


def test_gcn_trains_and_repeats(first):
    a, b, c = first["train"][:3]
    losses = a["losses"]
    assert all(l == l for l in losses) and losses[-1] < losses[0] - 0.3, losses
    assert a["acc"]["train"] > 0.8 and a["acc"]["test"] > 0.5, a["acc"]
    assert a["nparams"] == 1433 * 16 + 16 + 16 * 7 + 7
    assert b["losses"] == a["losses"][:len(b["losses"])]      # same seed, same dropout keys and updates
    assert c["losses"][0] != a["losses"][0]                    # another seed: other weights and masks
    assert all(r["timed_bare"] for r in first["train"])
    assert any(n.startswith("gcn: jraph.GraphConvolution") for n in a["notes"]), a["notes"]


def test_dropout_is_active_in_training(first):
    gat = next(r for r in first["train"] if r["model"] == "gat")
    assert abs(gat["losses"][0] - first["verify"]["gat"]["loss"]) > 1e-4


def test_one_class_per_task(first):
    """The node class (registered) for gcn/gat/sage, its graph-task subclass for GIN, none for sampling."""
    assert first["task_classes"] == [True, True, True], first["task_classes"]


def test_no_torch_or_tensorflow_in_the_jax_process(first):
    assert first["modules"] == [], first["modules"]


def test_harness_run_gives_an_ok_record(tmp_path, data_dir):
    out = tmp_path / "r.jsonl"
    p = run_cli("run", "--libs", "jraph", "--models", "gcn", "--datasets", "cora", "--epochs", "5", "--warmup", "2",
                "--threads", "1", "--data-dir", data_dir, "--out", out, "--no-report")
    assert p.returncode == 0, p.stderr
    from gnnbench.results import read_records
    (rec,) = read_records(out)
    assert rec["status"] in ("ok", "accuracy_mismatch"), rec.get("error")
    iso = rec["isolation"]
    assert "jax" in iso["ml_modules"] and "jraph" in iso["ml_modules"], iso
    assert not {"torch", "tensorflow"} & set(iso["ml_modules"]), iso
    assert iso["xla_env"]["PJRT_NPROC"] == "1" and iso["xla_threads"].get("XLAEigen") == 1, iso
    assert rec["times"]["first_epoch_ms"] > rec["times"]["median_ms"], rec["times"]   # jit compile in warm-up
    assert any("1 XLAEigen" in n for n in rec["notes"]), rec["notes"]


def test_no_sparse_feature_layout():
    from gnnbench.specs import get_spec
    a = JraphAdapter()
    assert a.unsupported_spec(get_spec("gcn", "cora")) is None
    why = a.unsupported_spec(get_spec("gcn", "cora", {"features": "sparse"}))
    assert why and "GraphsTuple" in why, why
    assert "sampler" in a.unsupported("sage-sampled")
    from gnnbench.adapters.jraph import JraphGraphAdapter
    g = JraphGraphAdapter()
    assert "GraphsTuple" in g.unsupported_spec(get_spec("gin", "mutag", {"features": "sparse"}))
    assert g.unsupported("gin") is None and g.unsupported("gcn") is not None


def test_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)      # fails at once, without importing JAX here
    monkeypatch.setitem(sys.modules, "jraph", None)
    av = JraphAdapter().available()
    assert not av.ok and ("ImportError" in av.reason or "ModuleNotFoundError" in av.reason)
    assert av.install_hint == "pip install 'gnnbench[jraph]'"


def test_module_import_is_free_of_jax():
    code = ("import sys, gnnbench.adapters.jraph as j; "
            "assert 'jax' not in sys.modules and 'jraph' not in sys.modules; "
            "from gnnbench.adapters import adapter_class; "
            "assert adapter_class('jraph') is j.JraphAdapter; print(j.JraphAdapter.child_env(2))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "'PJRT_NPROC': '2'" in proc.stdout
