"""Published test accuracies and their bands (data in data/reference_accuracy.yaml); the NumPy
reference models that verify compares against are gnnbench.reference."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

PATH = Path(__file__).with_name("data") / "reference_accuracy.yaml"


@lru_cache(maxsize=1)
def _load() -> dict:
    with open(PATH) as fh:
        return yaml.safe_load(fh)


def reference(model: str, dataset: str) -> dict | None:
    """{'test': pct, 'band': pct, 'source': str} or None when no reference exists."""
    data = _load()
    entry = data["references"].get(model, {})
    if dataset not in entry:
        return None
    band = entry.get("band", {}).get(dataset, data["band"]) if isinstance(entry.get("band"), dict) else data["band"]
    return {"test": float(entry[dataset]), "band": float(band), "source": entry.get("source", "")}


def in_band(model: str, dataset: str, test_acc: float | None) -> bool | None:
    """True/False for a test accuracy in [0, 1]; None when there is nothing to check against."""
    ref = reference(model, dataset)
    if ref is None or test_acc is None:
        return None
    return abs(100.0 * test_acc - ref["test"]) <= ref["band"]


# Where no published reference exists (synthetic graphs, sage-sampled), libraries are checked against
# each other: a row whose mean test accuracy is more than this many percentage points from the median
# of the libraries' means for the same model, dataset, device and spec is `accuracy_mismatch`. The
# committed synthetic GCN sweeps spread by at most 3.5 points across the five libraries.
AGREEMENT_MARGIN = 5.0


def disagreeing(accs: dict[str, float]) -> dict[str, float]:
    """{library: median of all} for the libraries whose test accuracy (in [0, 1]) lies more than
    AGREEMENT_MARGIN points from the median of ``accs``; empty with fewer than two libraries."""
    import statistics
    if len(accs) < 2:
        return {}
    med = statistics.median(accs.values())
    return {lib: med for lib, a in accs.items() if abs(100.0 * (a - med)) > AGREEMENT_MARGIN}
