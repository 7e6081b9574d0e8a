"""Canonical initial parameters, generated from the seed, shared by every adapter.

Layout (names ``layers.<i>.<param>``, matrices are ``in x out``):

- gcn:  ``weight`` [in, out], ``bias`` [out]
- gat:  ``weight`` [in, heads*out], ``att_src`` [heads, out], ``att_dst`` [heads, out],
        ``bias`` [heads*out] for concatenating layers, [out] for the last (head mean)
- sage: ``weight_neigh`` [in, out] (applied to the neighbour mean),
        ``weight_root`` [in, out] (applied to the node itself), ``bias`` [out]

- gin:  per layer ``weight1`` [in, hidden], then ``bn_weight`` (ones) and ``bn_bias`` (zeros)
        with batch norm, ``bias1`` without (a bias before batch norm is cancelled by it), ``weight2`` [hidden, hidden], ``bias2``; the
        classifier ``head.weight1`` [hidden, hidden], ``head.bias1``, ``head.weight2``
        [hidden, classes], ``head.bias2``

Weights are Glorot-uniform, biases zero, float32.
"""
from __future__ import annotations

import numpy as np


def glorot(rng: np.random.Generator, fan_in: int, fan_out: int, shape) -> np.ndarray:
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape).astype(np.float32)


def layer_dims(spec, in_dim: int, num_classes: int) -> list[tuple[int, int]]:
    """(in, out) per layer; for GAT ``out`` is per head."""
    dims = []
    d = in_dim
    for i in range(spec.layers):
        last = i == spec.layers - 1
        out = num_classes if last else spec.hidden
        dims.append((d, out))
        if spec.name == "gat" and not last:
            d = out * spec.heads
        else:
            d = out
    return dims


def gat_heads(spec, layer: int) -> int:
    return spec.out_heads if layer == spec.layers - 1 else spec.heads


def init_weights(spec, in_dim: int, num_classes: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6E6E62]))
    w: dict[str, np.ndarray] = {}
    if spec.name == "gin":
        return _gin_weights(spec, in_dim, num_classes, rng)
    for i, (din, dout) in enumerate(layer_dims(spec, in_dim, num_classes)):
        p = f"layers.{i}."
        if spec.name == "gcn":
            w[p + "weight"] = glorot(rng, din, dout, (din, dout))
            w[p + "bias"] = np.zeros(dout, np.float32)
        elif spec.name == "gat":
            h = gat_heads(spec, i)
            last = i == spec.layers - 1
            w[p + "weight"] = glorot(rng, din, h * dout, (din, h * dout))
            w[p + "att_src"] = glorot(rng, h, dout, (h, dout))
            w[p + "att_dst"] = glorot(rng, h, dout, (h, dout))
            w[p + "bias"] = np.zeros(dout if last else h * dout, np.float32)
        elif spec.name in ("sage", "sage-sampled"):
            w[p + "weight_neigh"] = glorot(rng, din, dout, (din, dout))
            w[p + "weight_root"] = glorot(rng, din, dout, (din, dout))
            w[p + "bias"] = np.zeros(dout, np.float32)
        else:
            raise ValueError(f"no canonical weights for model '{spec.name}'")
    return w


def _gin_weights(spec, in_dim: int, num_classes: int, rng) -> dict[str, np.ndarray]:
    w: dict[str, np.ndarray] = {}
    h = spec.hidden
    d = in_dim
    for i in range(spec.layers):
        p = f"layers.{i}."
        w[p + "weight1"] = glorot(rng, d, h, (d, h))
        if not spec.batch_norm:   # a bias before batch norm has no effect (and a zero gradient)
            w[p + "bias1"] = np.zeros(h, np.float32)
        else:
            w[p + "bn_weight"] = np.ones(h, np.float32)
            w[p + "bn_bias"] = np.zeros(h, np.float32)
        w[p + "weight2"] = glorot(rng, h, h, (h, h))
        w[p + "bias2"] = np.zeros(h, np.float32)
        d = h
    w["head.weight1"] = glorot(rng, h, h, (h, h))
    w["head.bias1"] = np.zeros(h, np.float32)
    w["head.weight2"] = glorot(rng, h, num_classes, (h, num_classes))
    w["head.bias2"] = np.zeros(num_classes, np.float32)
    return w


def num_layers(weights: dict) -> int:
    return 1 + max(int(k.split(".")[1]) for k in weights if k.startswith("layers."))
