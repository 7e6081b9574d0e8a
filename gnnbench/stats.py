"""Summary statistics of timing samples (no ML imports)."""
from __future__ import annotations

import math

import numpy as np


def summarize(samples) -> dict:
    """median, p25, p75, mean, std (ddof=1), min, max, n of a list of numbers."""
    a = np.asarray(list(samples), dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "median": None, "p25": None, "p75": None, "mean": None, "std": None,
                "min": None, "max": None}
    return {
        "n": int(a.size),
        "median": float(np.median(a)),
        "p25": float(np.percentile(a, 25)),
        "p75": float(np.percentile(a, 75)),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
    }


def mean_std(values) -> tuple[float | None, float | None]:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return None, None
    a = np.asarray(v, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0
