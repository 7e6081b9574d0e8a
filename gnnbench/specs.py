"""Model specs: the one description of each model that every adapter implements.

A spec is a plain dataclass. Hyperparameters can be overridden from a suite or
the CLI (``override``); the spec written into each result record is the one
actually used (``asdict``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import UsageError


@dataclass
class ModelSpec:
    name: str = ""
    task: str = "node"              # node | graph | sampled
    hidden: int = 16
    layers: int = 2
    dropout: float = 0.5            # dropout on layer inputs
    lr: float = 0.01
    weight_decay: float = 5e-4
    optimizer: str = "adam"         # adam | sgd
    normalize_features: bool = True  # row-normalise input features (Kipf & Welling)
    self_loops: bool = True
    # 'cached': every library precomputes the normalised adjacency once in prepare();
    # 'recompute': the library's own per-forward normalisation is kept (cost shown in reports)
    norm_policy: str = "cached"
    # input feature layout every library is handed: 'dense' (the default, in every library, native
    # included) or 'sparse' (CSR/COO features, only where the library's public API trains on them;
    # elsewhere the cell is skipped with the reason)
    features: str = "dense"
    # torch.compile the model's forward (torch adapters, full-batch node models; compiled in prepare,
    # so the compile time is in setup_s, never in an epoch); elsewhere the cell is skipped with the reason
    compile: bool = False

    def with_overrides(self, overrides: dict | None) -> "ModelSpec":
        return override(self, overrides or {})


@dataclass
class GCNSpec(ModelSpec):
    name: str = "gcn"


@dataclass
class GATSpec(ModelSpec):
    name: str = "gat"
    hidden: int = 8                  # per head
    heads: int = 8
    out_heads: int = 1
    dropout: float = 0.6
    attn_dropout: float = 0.6
    negative_slope: float = 0.2
    lr: float = 0.005


@dataclass
class SAGESpec(ModelSpec):
    name: str = "sage"
    aggregator: str = "mean"
    root_weight: bool = True
    normalize_features: bool = True


@dataclass
class GINSpec(ModelSpec):
    """GIN-0 (Xu et al., ICLR 2019) for graph classification, as PyG's examples/gin.py writes it:
    per layer h' = ReLU(MLP((1 + eps) h + sum of neighbours)), MLP = Linear (no bias) -> BatchNorm
    -> ReLU -> Linear; sum (or mean) readout of the last layer; classifier Linear -> ReLU -> dropout ->
    Linear. Mini-batches of ``batch_size`` graphs, reshuffled every epoch from the seed."""
    name: str = "gin"
    task: str = "graph"
    hidden: int = 32
    layers: int = 3
    dropout: float = 0.5             # before the classifier's last linear layer
    lr: float = 0.01
    weight_decay: float = 0.0
    normalize_features: bool = False
    self_loops: bool = False
    eps: float = 0.0
    batch_norm: bool = True
    readout: str = "sum"             # sum | mean
    batch_size: int = 128
    node_attributes: bool = False    # append the TU node attributes to the one-hot node labels
    fold: int = 0                    # test fold of the stratified split
    num_folds: int = 10


@dataclass
class SampledSAGESpec(SAGESpec):
    """GraphSAGE trained on neighbour-sampled mini-batches (Hamilton et al., 2017): each batch of
    ``batch_size`` training nodes (the order drawn by the harness from the seed) gets a sampled
    computation graph, ``fanouts`` neighbours per node and layer, input layer first (DGL's
    order: "10,25" samples 25 neighbours of each seed, then 10 of each of those). Evaluation
    and ``infer`` use every neighbour (full-graph inference), so they are comparable across
    libraries whatever each one sampled."""
    name: str = "sage-sampled"
    task: str = "sampled"
    hidden: int = 64
    fanouts: str = "10,25"
    batch_size: int = 1024
    normalize_features: bool = False


MODELS: dict[str, type[ModelSpec]] = {"gcn": GCNSpec, "gat": GATSpec, "sage": SAGESpec, "gin": GINSpec,
                                      "sage-sampled": SampledSAGESpec}
CHOICES = {"readout": ("sum", "mean"), "norm_policy": ("cached", "recompute"), "optimizer": ("adam", "sgd"),
           "features": ("dense", "sparse")}

# Spec keys added after records were first written, with the value that reproduces what those
# records ran: left out of the spec hash at that value, so older run keys still match.
HASH_NEUTRAL = {"features": "dense", "compile": False}


def spec_hash(spec: dict | None) -> str:
    """10 hex digits identifying a spec (run keys, --resume, compare, history)."""
    import hashlib
    import json
    d = {k: v for k, v in (spec or {}).items() if not (k in HASH_NEUTRAL and v == HASH_NEUTRAL[k])}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

# Dataset-specific defaults from the original papers (GAT on PubMed: 8 output
# heads, lr 0.01, weight decay 1e-3; GIN on ENZYMES: node attributes, as its reference, lr 0.001).
DATASET_DEFAULTS: dict[tuple[str, str], dict] = {
    ("gat", "pubmed"): {"out_heads": 8, "lr": 0.01, "weight_decay": 1e-3},
    # the ENZYMES reference (Errica et al. 2020) uses the 18 continuous node attributes too.
    # lr 0.001, not 0.01: with 0.01 and sum readout the classifier's hidden ReLUs die on ENZYMES
    # (measured: 88 % of them never fire after 25 epochs, seed 2 collapses to one class); with
    # 0.001 at most 6 % die. See README, "Graph classification".
    ("gin", "enzymes"): {"node_attributes": True, "lr": 0.001},
}


def model_names() -> list[str]:
    return sorted(MODELS)


def get_spec(model: str, dataset: str = "", overrides: dict | None = None) -> ModelSpec:
    """The spec for ``model`` on ``dataset``: class defaults, then the paper's
    dataset defaults, then user overrides."""
    key = model.lower()
    if key not in MODELS:
        raise UsageError(f"unknown model '{model}'; valid models: {', '.join(model_names())}")
    spec = MODELS[key]()
    base = dataset.split(":", 1)[0].lower()
    spec = override(spec, DATASET_DEFAULTS.get((key, base), {}))
    return override(spec, overrides or {})


def override(spec: ModelSpec, overrides: dict) -> ModelSpec:
    values = {k: check_value(spec, k, v) for k, v in overrides.items()}
    out = dataclasses.replace(spec, **values)
    if hasattr(out, "fanouts"):
        try:
            fan = fanouts(out)
        except ValueError:
            raise UsageError(f"bad fanouts {out.fanouts!r}: expected comma-separated positive integers") from None
        if len(fan) != out.layers or min(fan) < 1:
            raise UsageError(f"{out.name}: fanouts {out.fanouts!r} must give one positive count per layer "
                             f"(layers={out.layers})")
    if hasattr(out, "fold") and not out.fold < out.num_folds:
        raise UsageError(f"{out.name}: fold {out.fold} must be less than num_folds {out.num_folds} (folds count from 0)")
    return out


def check_value(spec: ModelSpec, k: str, v):
    """One hyperparameter of ``spec``: known, of its field's type, in its domain; returns it coerced."""
    from .validate import hyperparameter
    fields = {f.name for f in dataclasses.fields(spec)}
    if k not in fields or k == "name":
        valid = ", ".join(sorted(n for n in fields if n != "name"))
        raise UsageError(f"unknown hyperparameter '{k}' for model '{spec.name}'; valid: {valid}")
    if k == "task":
        raise UsageError(f"{spec.name}.task is fixed by the model ({spec.task})")
    value = _coerce(spec.name, k, getattr(spec, k), v)
    if k in CHOICES and value not in CHOICES[k]:
        raise UsageError(f"bad value {v!r} for {spec.name}.{k}; valid: {', '.join(CHOICES[k])}")
    hyperparameter(spec.name, k, value)
    return value


def fanouts(spec) -> list[int]:
    """Neighbours sampled per layer, input layer first."""
    return [int(v) for v in str(spec.fanouts).split(",") if v.strip()]


def _coerce(model: str, key: str, current, value):
    try:
        if isinstance(current, bool):
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(value, bool):          # YAML's true/false are not numbers
            raise ValueError(value)
        if isinstance(current, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(current, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"bad value {value!r} for {model}.{key} (expected {type(current).__name__})") from None


def spec_from_dict(d: dict) -> ModelSpec:
    """Rebuild a spec from a record's ``spec`` field."""
    d = dict(d)
    name = d.pop("name")
    d.pop("task", None)
    return override(MODELS[name](), d)


def parse_overrides(items) -> dict:
    """``["hidden=32", "lr=0.02"]`` or ``"hidden=32,lr=0.02"`` -> dict of strings."""
    if isinstance(items, str):
        items = [p for p in items.split(",") if p.strip()]
    out = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"bad override '{item}': expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out
