"""One validation layer for the CLI and suite files alike: types and ranges of run keys and
hyperparameters, and a YAML loader that rejects duplicate keys and keeps each key's line.

Every check raises ``UsageError`` with one line; the caller says where (``file:line`` or the option).
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import yaml

from .errors import UsageError

# run key -> (type, lower bound, bound included)
RUN_KEYS = {"epochs": (int, 1, True), "warmup": (int, 0, True), "repeats": (int, 1, True),
            "infer_reps": (int, 1, True), "threads": (int, 1, True), "timeout": (float, 0, False),
            "memory_limit_gb": (float, 0, False), "rss_limit_gb": (float, 0, False)}

# hyperparameter -> (lower bound, bound included, upper bound (excluded) or None); ints and floats
# are told apart by the spec's own field type; every float must be finite
HYPER_RANGES = {"hidden": (1, True, None), "layers": (1, True, None), "heads": (1, True, None),
                "out_heads": (1, True, None), "batch_size": (1, True, None), "num_folds": (2, True, None),
                "fold": (0, True, None), "dropout": (0, True, 1), "attn_dropout": (0, True, 1),
                "lr": (0, False, None), "weight_decay": (0, True, None), "negative_slope": (0, True, None),
                "eps": (None, True, None)}


def _range_text(lo, inclusive, hi=None) -> str:
    parts = [] if lo is None else [f"{'>=' if inclusive else '>'} {lo:g}"]
    if hi is not None:
        parts.append(f"< {hi:g}")
    return " and ".join(parts)


def number(value, kind, lo=None, inclusive=True, hi=None, what="value"):
    """``value`` (from YAML, or a string from the CLI) as a finite ``kind`` in range, else UsageError."""
    name = "an integer" if kind is int else "a finite number"
    bad = f"{what} must be {name}" + (f" {_range_text(lo, inclusive, hi)}" if lo is not None or hi else "")
    if isinstance(value, bool):          # YAML's true/false are not numbers
        raise UsageError(f"{bad}, got {str(value).lower()}")
    try:
        if isinstance(value, str):
            v = float(value) if kind is float else int(value)
        elif kind is int and not isinstance(value, int):
            raise ValueError
        else:
            v = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{bad}, got {value!r}") from None
    if not math.isfinite(v) or (lo is not None and (v < lo if inclusive else v <= lo)) or (hi is not None and v >= hi):
        raise UsageError(f"{bad}, got {value!r}")
    return v


def run_value(key: str, value):
    kind, lo, inclusive = RUN_KEYS[key]
    return number(value, kind, lo, inclusive, what=f"'{key}'")


UNTIL_METRICS = ("val_acc",)
UNTIL_FORM = "val_acc=X (X a fraction in (0, 1], e.g. 0.75), val_acc=ref or val_acc (the published reference minus its band)"


def until(value) -> dict:
    """The time-to-accuracy target (``--until``, suite key ``until``), one string form for both:
    ``val_acc=X``, ``val_acc=ref`` or ``val_acc``. Returns {"metric": "val_acc", "target": X}, target
    None for the reference (resolved per model and dataset by ``config.expand``)."""
    if not isinstance(value, str):
        shown = dict(value) if isinstance(value, dict) else value
        raise UsageError(f"'until' must be written {UNTIL_FORM}, got {shown!r}")
    metric, eq, target = (part.strip() for part in value.partition("="))
    if metric not in UNTIL_METRICS:
        raise UsageError(f"'until' names the metric {metric!r}; valid: {', '.join(UNTIL_METRICS)} "
                         f"(written {UNTIL_FORM})")
    if not eq or target == "ref":
        return {"metric": metric, "target": None}
    bad = UsageError(f"'until' {metric} must be a fraction in (0, 1] (0.75 = 75 %) or ref, got {target!r}")
    try:
        v = number(target, float, 0, False)
    except UsageError:
        raise bad from None
    if v > 1:
        raise bad
    return {"metric": metric, "target": v}


def threads(n: int | None, cores: int, oversubscribe: bool, hint: bool = True) -> None:
    """At most one thread per core this process may use, unless asked (``hint``: the command has
    --oversubscribe)."""
    if n is not None and n > cores and not oversubscribe:
        raise UsageError(f"'threads' is {n}, but this machine gives gnnbench {cores} core(s)"
                         + ("; use --oversubscribe (suite key oversubscribe: true) to run more threads than cores"
                            if hint else ""))


def hyperparameter(model: str, key: str, value):
    """The domain of one (already coerced) hyperparameter."""
    if key in HYPER_RANGES:
        lo, inclusive, hi = HYPER_RANGES[key]
        number(value, type(value), lo, inclusive, hi, what=f"{model}.{key}")


@contextmanager
def at(where: str):
    """Prefix any UsageError raised inside with ``where: `` (once: an inner ``at`` wins)."""
    try:
        yield
    except UsageError as exc:
        if getattr(exc, "located", False):
            raise
        located = UsageError(f"{where}: {exc}")
        located.exit_code, located.located = exc.exit_code, True
        raise located from None


class Mapping(dict):
    """A YAML mapping that remembers the line (1-based) of each of its keys."""
    lines: dict


class StrictLoader(yaml.SafeLoader):
    """SafeLoader (no tags executed) that rejects duplicate keys and keeps each key's line."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        out = Mapping(super().construct_mapping(node, deep=deep))
        out.lines = {k: line + 1 for k, line in seen.items()}
        return out


StrictLoader.add_constructor("tag:yaml.org,2002:map", lambda loader, node: loader.construct_mapping(node, deep=True))
