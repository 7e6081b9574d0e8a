"""`gnnbench verify`: prove every adapter computes the reference model.

For one cell (library, model, dataset, device), in the child process:
load the canonical weights, run one eval-mode forward pass and compare the
logits with the NumPy reference; then, with dropout off, run one training step
and compare the loss and the parameters after the optimiser step with the
float64 reference step.
"""
from __future__ import annotations

import dataclasses

import numpy as np

# float32 libraries against a float64 reference
LOGITS_ATOL = 1e-4
LOSS_RTOL = 1e-5
PARAMS_ATOL = 1e-4


def verify_spec(spec):
    """The spec with every source of randomness switched off. Graph classification is checked
    after a plain SGD step: GIN's sum readout gives PROTEINS logits in the thousands, a few of its
    gradients sit at float32 rounding level, and Adam's first step (lr * sign(g) for |g| >> eps)
    turns that rounding into +-lr."""
    changes = {"dropout": 0.0}
    if spec.task == "graph":
        changes["optimizer"] = "sgd"
    if hasattr(spec, "attn_dropout"):
        changes["attn_dropout"] = 0.0
    return dataclasses.replace(spec, **changes)


def check(adapter, spec, graph, device: str = "cpu", seed: int = 0) -> dict:
    """Run the checks on an adapter instance (in this process); returns a result dict."""
    from . import reference
    from .weights import init_weights

    spec = verify_spec(spec)
    if spec.task == "graph":
        return check_graphs(adapter, spec, graph, device, seed)
    weights = init_weights(spec, graph.num_features, graph.num_classes, seed)
    ref_logits = reference.forward(spec, weights, graph.x, graph.edge_index)
    if spec.task == "sampled":
        # each library samples with its own generator, so only the full-graph model is compared
        adapter.prepare(graph, spec, device, seed, weights)
        diff = float(np.abs(np.asarray(adapter.logits(), np.float64) - ref_logits).max())
        return {"logits_max_abs_diff": diff, "loss_rel_diff": None, "params_max_abs_diff": None,
                "passed": diff <= LOGITS_ATOL, "note": "sampled: full-graph logits only (samples differ by library)"}
    ref_loss, ref_params = reference.train_step(spec, weights, graph, spec.optimizer)

    adapter.prepare(graph, spec, device, seed, weights)
    logits = np.asarray(adapter.logits(), dtype=np.float64)
    if logits.shape != ref_logits.shape:
        raise AssertionError(f"logits shape {logits.shape} != reference {ref_logits.shape}")
    logits_diff = float(np.abs(logits - ref_logits).max())
    adapter.train_step()
    return _result(logits_diff, float(adapter.last_loss()), ref_loss, adapter.parameters(), ref_params)


def check_graphs(adapter, spec, gs, device: str = "cpu", seed: int = 0) -> dict:
    """The graph task: eval logits of every graph (one batch of all graphs), then one training
    step on the first batch of epoch 0, which must also hold exactly the graphs the harness chose."""
    from . import batching, reference
    from .weights import init_weights

    weights = init_weights(spec, gs.num_features, gs.num_classes, seed)
    full = batching.collate(gs, np.arange(gs.num_graphs))
    ref_logits = reference.gin_forward(spec, weights, full["x"], full["edge_index"], full["batch"], gs.num_graphs)
    ids = batching.epoch_batches(gs.train_idx, spec.batch_size, seed, 0)[0]
    arrays = batching.collate(gs, ids)
    ref_loss, ref_params = reference.gin_train_step(spec, weights, arrays, spec.optimizer)

    adapter.prepare(gs, spec, device, seed, weights)
    logits = np.asarray(adapter.logits(), dtype=np.float64)
    if logits.shape != ref_logits.shape:
        raise AssertionError(f"logits shape {logits.shape} != reference {ref_logits.shape}")
    batch = adapter.collate(ids)
    same_batch = batching.fingerprint(adapter.batch_arrays(batch)) == batching.fingerprint(arrays)
    adapter.train_batch(batch)
    # sum readout: logits grow with graph size (PROTEINS: ~4000 at initialisation), so float32 agreement is
    # judged relative to the largest reference logit (the absolute diff is reported as is)
    scale = max(1.0, float(np.abs(ref_logits).max()))
    res = _result(float(np.abs(logits - ref_logits).max()), float(adapter.last_loss()), ref_loss,
                  adapter.parameters(), ref_params, logits_scale=scale)
    res["batch_matches"] = bool(same_batch)
    res["passed"] = res["passed"] and same_batch
    return res


def _result(logits_diff: float, loss: float, ref_loss: float, params: dict, ref_params: dict,
            logits_scale: float = 1.0) -> dict:
    loss_rel = abs(loss - ref_loss) / max(abs(ref_loss), 1e-12)
    missing = sorted(set(ref_params) ^ set(params))
    if missing:
        raise AssertionError(f"parameter names differ from the canonical layout: {missing}")
    params_diff = max(float(np.abs(np.asarray(params[k], np.float64) - ref_params[k]).max()) for k in ref_params)
    ok = logits_diff <= LOGITS_ATOL * logits_scale and loss_rel <= LOSS_RTOL and params_diff <= PARAMS_ATOL
    return {
        "logits_max_abs_diff": logits_diff,
        "logits_scale": logits_scale,
        "loss": loss,
        "ref_loss": ref_loss,
        "loss_rel_diff": loss_rel,
        "params_max_abs_diff": params_diff,
        "passed": bool(ok),
    }
