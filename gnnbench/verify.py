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
    """The spec with every source of randomness switched off."""
    changes = {"dropout": 0.0}
    if hasattr(spec, "attn_dropout"):
        changes["attn_dropout"] = 0.0
    return dataclasses.replace(spec, **changes)


def check(adapter, spec, graph, device: str = "cpu", seed: int = 0) -> dict:
    """Run the checks on an adapter instance (in this process); returns a result dict."""
    from . import reference
    from .weights import init_weights

    spec = verify_spec(spec)
    weights = init_weights(spec, graph.num_features, graph.num_classes, seed)
    ref_logits = reference.forward(spec, weights, graph.x, graph.edge_index)
    ref_loss, ref_params = reference.train_step(spec, weights, graph, spec.optimizer)

    adapter.prepare(graph, spec, device, seed, weights)
    logits = np.asarray(adapter.logits(), dtype=np.float64)
    if logits.shape != ref_logits.shape:
        raise AssertionError(f"logits shape {logits.shape} != reference {ref_logits.shape}")
    logits_diff = float(np.abs(logits - ref_logits).max())
    adapter.train_step()
    loss = float(adapter.last_loss())
    loss_rel = abs(loss - ref_loss) / max(abs(ref_loss), 1e-12)
    params = adapter.parameters()
    missing = sorted(set(ref_params) ^ set(params))
    if missing:
        raise AssertionError(f"parameter names differ from the canonical layout: {missing}")
    params_diff = max(float(np.abs(np.asarray(params[k], np.float64) - ref_params[k]).max()) for k in ref_params)
    ok = logits_diff <= LOGITS_ATOL and loss_rel <= LOSS_RTOL and params_diff <= PARAMS_ATOL
    return {
        "logits_max_abs_diff": logits_diff,
        "loss": loss,
        "ref_loss": ref_loss,
        "loss_rel_diff": loss_rel,
        "params_max_abs_diff": params_diff,
        "passed": bool(ok),
    }
