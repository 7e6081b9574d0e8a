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
    """Ratio of medians current/base with a percentile-bootstrap confidence interval
    (``scipy.stats.bootstrap``, method="percentile").

    Each sample is resampled with replacement independently (``resamples`` times, from a generator
    seeded with ``seed``, so the interval is reproducible). A sample of one value resamples to
    itself, so it is held fixed (scipy needs two or more values to resample). Returns
    (ratio, low, high); (None, None, None) when either sample is empty; a bound that is not finite
    (a base median of 0 in the resamples) is None.
    """
    from scipy.stats import bootstrap

    b, c = np.asarray(list(base), np.float64), np.asarray(list(current), np.float64)
    ratio = median_ratio(b, c)
    if ratio is None:
        return None, None, None
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie in (0, 1)")
    mb, mc = float(np.median(b)), float(np.median(c))
    if b.size == 1 and c.size == 1:
        return ratio, ratio, ratio
    if c.size == 1:
        data, stat = (b,), lambda x, axis: mc / np.median(x, axis=axis)
    elif b.size == 1:
        data, stat = (c,), lambda x, axis: np.median(x, axis=axis) / mb
    else:
        data, stat = (b, c), lambda x, y, axis: np.median(y, axis=axis) / np.median(x, axis=axis)
    batch = max(1, int(4_000_000 // max(b.size, c.size, 1)))     # bounds memory for long sample lists
    with np.errstate(divide="ignore", invalid="ignore"):
        res = bootstrap(data, stat, n_resamples=resamples, batch=batch, vectorized=True, paired=False,
                        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return ratio, (lo if math.isfinite(lo) else None), (hi if math.isfinite(hi) else None)


def mann_whitney_u(x, y, alternative: str = "two-sided", continuity: bool = True) -> tuple[float, float]:
    """Mann-Whitney U test, normal approximation with tie correction:
    ``scipy.stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=continuity)``.

    Returns (U1, p) where U1 counts the pairs (xi, yj) with xi > yj (ties count 1/2).
    ``alternative``: "two-sided", "greater" (x tends to be larger) or "less".
    When every value is tied the test has no information and p = 1 (scipy says nan there
    without the continuity correction).
    """
    from scipy.stats import mannwhitneyu

    xa, ya = np.asarray(list(x), np.float64), np.asarray(list(y), np.float64)
    if xa.size == 0 or ya.size == 0:
        raise ValueError("both samples must be non-empty")
    if np.isnan(xa).any() or np.isnan(ya).any():
        raise ValueError("samples must not contain NaN")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"unknown alternative {alternative!r}")
    res = mannwhitneyu(xa, ya, alternative=alternative, method="asymptotic", use_continuity=continuity)
    u1 = float(res.statistic)
    if np.all(xa == xa[0]) and np.all(ya == xa[0]):
        return u1, 1.0
    return u1, min(max(float(res.pvalue), 0.0), 1.0)
