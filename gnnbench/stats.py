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


# --- comparing two sets of timing samples (used by gnnbench.compare) ---------------------------


def median_ratio(base, current) -> float | None:
    """median(current) / median(base); None when either is empty or the base median is 0."""
    b, c = np.asarray(list(base), np.float64), np.asarray(list(current), np.float64)
    if b.size == 0 or c.size == 0:
        return None
    mb = float(np.median(b))
    return float(np.median(c)) / mb if mb != 0 else None


def bootstrap_ratio_ci(base, current, *, resamples: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """Ratio of medians current/base with a percentile-bootstrap confidence interval.

    Each sample is resampled with replacement independently (``resamples`` times,
    from a generator seeded with ``seed``, so the interval is reproducible).
    Returns (ratio, low, high); (None, None, None) when either sample is empty.
    """
    b, c = np.asarray(list(base), np.float64), np.asarray(list(current), np.float64)
    ratio = median_ratio(b, c)
    if ratio is None:
        return None, None, None
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie in (0, 1)")
    rng = np.random.default_rng(seed)
    # resample in chunks to bound memory for long sample lists
    out = np.empty(resamples, np.float64)
    chunk = max(1, int(4_000_000 // max(b.size, c.size, 1)))
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        mb = np.median(b[rng.integers(0, b.size, (k, b.size))], axis=1)
        mc = np.median(c[rng.integers(0, c.size, (k, c.size))], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start:start + k] = mc / mb
    out = out[np.isfinite(out)]
    if out.size == 0:
        return ratio, None, None
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(out, [tail, 1 - tail])
    return ratio, float(lo), float(hi)


def mann_whitney_u(x, y, alternative: str = "two-sided", continuity: bool = True) -> tuple[float, float]:
    """Mann-Whitney U test, normal approximation with tie correction.

    Returns (U1, p) where U1 counts the pairs (xi, yj) with xi > yj (ties count 1/2),
    the statistic scipy.stats.mannwhitneyu(x, y, method="asymptotic") reports.
    ``alternative``: "two-sided", "greater" (x tends to be larger) or "less".
    When every value is tied the test has no information and p = 1.
    """
    from scipy.special import ndtr
    from scipy.stats import rankdata

    xa, ya = np.asarray(list(x), np.float64), np.asarray(list(y), np.float64)
    n1, n2 = xa.size, ya.size
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples must be non-empty")
    if np.isnan(xa).any() or np.isnan(ya).any():
        raise ValueError("samples must not contain NaN")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"unknown alternative {alternative!r}")
    xy = np.concatenate([xa, ya])
    ranks = rankdata(xy)                                  # average ranks for ties
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    u2 = n1 * n2 - u1
    n = n1 + n2
    _, counts = np.unique(xy, return_counts=True)
    tie_term = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return u1, 1.0
    if alternative == "greater":
        u, factor = u1, 1
    elif alternative == "less":
        u, factor = u2, 1
    else:
        u, factor = max(u1, u2), 2
    z = (u - n1 * n2 / 2 - (0.5 if continuity else 0.0)) / math.sqrt(var)
    p = factor * float(ndtr(-z))
    return u1, min(max(p, 0.0), 1.0)
