"""Accuracy, computed by the harness from each library's logits (adapters never report it).

Every adapter returns eval-mode logits for all nodes (node tasks; full-graph inference for the
sampled task) or all graphs (graph classification) through ``adapter.logits()``; the harness takes
the argmax and scores it with its own masks, so no library can grade itself.
"""
from __future__ import annotations

import numpy as np

from .errors import UsageError


def splits(data) -> dict[str, np.ndarray]:
    """The evaluation splits of a ``Graph`` (train/val/test nodes) or ``GraphSet`` (train/test graphs)."""
    if hasattr(data, "train_mask"):
        return {k: np.flatnonzero(getattr(data, f"{k}_mask")) for k in ("train", "val", "test")}
    return {"train": np.asarray(data.train_idx), "test": np.asarray(data.test_idx)}


def accuracy(logits, data) -> dict[str, float | None]:
    """Share of correct argmax predictions per split; None for an empty split, and for every split
    when a logit is not finite (a diverged model predicts nothing: an argmax over NaN would give it
    class 0's share). ``logits`` must have one row per node (graph) and one column per class, else
    the adapter is wrong."""
    z = np.asarray(logits)
    rows = int(data.y.shape[0])
    if z.ndim != 2 or z.shape != (rows, data.num_classes):
        raise UsageError(f"the adapter's logits have shape {z.shape}, expected ({rows}, {data.num_classes})")
    if not np.isfinite(z).all():
        return {k: None for k in splits(data)}
    pred = z.argmax(axis=1)
    return {k: (float((pred[i] == data.y[i]).mean()) if i.size else None) for k, i in splits(data).items()}
