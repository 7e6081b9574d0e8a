"""Cells: how records are grouped, judged and named, for every reader (report, compare, history,
plots, benchmarks/native_ratios.py, benchmarks/contenders.py).

A cell is (library, model, dataset, device, model spec, hardware) and, for a time-to-accuracy run,
its target. This module owns, once each:

* the status order (worst first) and the statuses of a run that ran (``RAN``);
* the accuracy-band check on the mean test accuracy over seeds (``band_status``) and the
  cross-library agreement check where no published reference exists (``cross_check``);
* ``variant`` (how a record's spec differs from its model's default), ``spec_key`` (the spec hash,
  ``gnnbench.specs.spec_hash``), hardware (``gnnbench.hardware``);
* synthetic size sweeps (``sweeps``, ``edge_counts``, ``family``) and ``memory_key``;
* ``latest_per_key`` and ``until_of`` (which records count, and which are time-to-accuracy runs);
* ``cells_of``: records -> CellData (seeds pooled), what compare and history judge.

Pure functions of record lists; no ML imports.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .errors import UsageError
from .hardware import hardware_of, hardware_set
from .published import AGREEMENT_MARGIN, disagreeing, in_band
from .record import Record
from .specs import spec_hash
from .stats import mean_std, summarize

__all__ = ["STATUS_ORDER", "ROW_STATUS_ORDER", "RAN", "cell_status", "row_status", "band_status", "cross_check",
           "variant", "spec_key", "hardware_of", "hardware_set", "by_hardware", "SWEEP_KEYS", "family", "edge_counts", "sweeps",
           "MEMORY_MEASURES", "memory_key", "latest_per_key", "until_of", "CellData", "cells_of", "median_of"]

# The one status order, worst first: a cell's status is the worst among its seeds. A run that did
# not run (skipped) is worse than one that ran, even with its accuracy off the band.
STATUS_ORDER = ("failed", "oom", "timeout", "skipped", "accuracy_mismatch", "ok")
# Named exception, for report rows only (``row_status``): a report row shows the measurements of
# the seeds that ran, so a seed that ran (ok / accuracy_mismatch, re-judged on the mean over seeds
# by ``band_status``) outranks a skipped seed beside it; compare and history keep STATUS_ORDER (a
# cell with a skipped seed did not fully run, and is not compared on time).
ROW_STATUS_ORDER = ("failed", "oom", "timeout", "accuracy_mismatch", "skipped", "ok")
# statuses of a run that ran (has times and an accuracy)
RAN = ("ok", "accuracy_mismatch")


def cell_status(statuses) -> str:
    """The worst of ``statuses`` by STATUS_ORDER; one gnnbench does not know counts as failed; 'ok'
    when there are none."""
    seen = {s if s in STATUS_ORDER else "failed" for s in statuses}
    return next(st for st in STATUS_ORDER if st in seen or st == "ok")


def row_status(statuses) -> str:
    """A report row's status: the worst of ``statuses`` by ROW_STATUS_ORDER (the named exception
    above); statuses gnnbench does not know are ignored."""
    seen = set(statuses)
    return next(st for st in ROW_STATUS_ORDER if st in seen or st == "ok")


def band_status(model: str, dataset: str, acc_mean: float | None) -> str:
    """For a cell that ran: 'accuracy_mismatch' when the mean test accuracy over its seeds lies
    outside the published band, else 'ok' (also when there is no reference to check against)."""
    return "accuracy_mismatch" if in_band(model, dataset, acc_mean) is False else "ok"


def median_of(values):
    """Median of the values that are not None; None when there are none."""
    v = [x for x in values if x is not None]
    return summarize(v)["median"] if v else None


def cross_check(rows: list[dict]) -> None:
    """Report rows with no published reference: each library's mean test accuracy against the
    median of the libraries measured on the same model, dataset, device, spec variant and hardware.
    Sets ``agreement_median`` and, for a library off by more than AGREEMENT_MARGIN points, status
    ``accuracy_mismatch`` and its error."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["reference_acc"] is None and r["test_acc_mean"] is not None and r["status"] in RAN:
            groups.setdefault((r["dataset"], r["device"], r["model"], r["variant"], r["hardware"]), []).append(r)
    for table in groups.values():
        off = disagreeing({r["library"]: r["test_acc_mean"] for r in table})
        for r in table:
            r["agreement_median"] = median_of([t["test_acc_mean"] for t in table]) if len(table) > 1 else None
            if r["library"] in off:
                r["status"] = "accuracy_mismatch"
                r["error"] = (f"test accuracy {100 * r['test_acc_mean']:.1f} % is more than {AGREEMENT_MARGIN:g} points "
                              f"from the median {100 * off[r['library']]:.1f} % of the {len(table)} libraries")


def variant(record: dict) -> str:
    """How the record's spec differs from the model's default spec on its dataset ('' when it does not)."""
    from .specs import get_spec
    try:
        default = vars(get_spec(record["cell"]["model"], record["cell"]["dataset"]))
    except Exception:
        return ""
    diff = [f"{k}={v}" for k, v in sorted((record.get("spec") or {}).items()) if default.get(k, v) != v]
    return ",".join(diff)


def by_hardware(rows: list[dict]) -> "OrderedDict[str, list[dict]]":
    """Report rows grouped by their ``hardware``, in first-seen order: one table per hardware, and
    no time is ever divided by one measured on other hardware."""
    out: "OrderedDict[str, list[dict]]" = OrderedDict()
    for r in rows:
        out.setdefault(r["hardware"], []).append(r)
    return out


def spec_key(spec: dict | None) -> str:
    """The spec's hash (gnnbench.specs.spec_hash): cells of different specs are never pooled."""
    return spec_hash(spec)


# --- synthetic size sweeps ----------------------------------------------------------------------

SWEEP_KEYS = ("nodes", "avg_degree")   # what may vary within one synthetic size sweep


def family(name: str) -> str | None:
    """The sweep family of a synthetic dataset: its name without the size parameters."""
    if not name.startswith("synthetic:"):
        return None
    items = [i for i in name.partition(":")[2].split(",") if i.partition("=")[0] not in SWEEP_KEYS]
    return "synthetic:" + ",".join(items)


def edge_counts(records: list[dict]) -> dict[str, int]:
    """dataset name -> edge count, from the records that loaded it (record['dataset']['edges'])."""
    out = {}
    for r in records:
        d = r.get("dataset")
        if isinstance(d, dict) and d.get("edges") is not None:
            out[r["cell"]["dataset"]] = int(d["edges"])
    return out


def sweeps(records: list[dict]) -> dict[str, list[str]]:
    """Synthetic families measured at two or more sizes: family -> dataset names by edge count."""
    edges = edge_counts(records)
    fam: dict[str, set] = {}
    for r in records:
        name = r["cell"]["dataset"]
        f = family(name)
        if f is not None:
            fam.setdefault(f, set()).add(name)
    return {f: sorted(names, key=lambda n: edges.get(n, 0)) for f, names in fam.items() if len(names) >= 2}


MEMORY_MEASURES = {
    "peak_rss_after_load_mb": "peak RSS after the dataset is loaded (the loaded arrays included, gnnbench's build "
                              "transient not)",
    "peak_rss_mb": "peak RSS of the whole child process (gnnbench's dataset build included)",
}


def memory_key(table_rows: list[dict]) -> str:
    """Which memory figure a set of rows is compared on: the after-load peak when every row has it
    (that is the library's cost with its input resident), else the whole-process peak. Never a mix:
    one slope or one plotted panel holds one measure."""
    with_mem = [r for r in table_rows if r.get("peak_rss_mb")]
    if with_mem and all(r.get("peak_rss_after_load_mb") for r in with_mem):
        return "peak_rss_after_load_mb"
    return "peak_rss_mb"


# --- which records count ------------------------------------------------------------------------

def until_of(record: dict) -> dict | None:
    """The time-to-accuracy target a record ran under (``config.until``), None for a run of fixed
    length. Such records have tables of their own: never pooled with fixed-length runs of the cell."""
    return (record.get("config") or {}).get("until") or None


def latest_per_key(records: list[dict]) -> list[dict]:
    """The last record of each run key, in first-seen order."""
    latest: dict[str, dict] = {}
    for r in records:
        latest[r["key"]] = r
    return list(latest.values())


# --- cells as compare and history judge them ----------------------------------------------------

@dataclass
class CellData:
    library: str
    model: str
    dataset: str
    device: str
    spec: dict
    status: str = "ok"
    samples: list = field(default_factory=list)      # pooled timed epochs (ms) of every seed that ran
    acc: float | None = None                         # mean test accuracy over seeds (fraction)
    seeds: int = 0
    error: str = ""
    config: dict = field(default_factory=dict)
    variant: str = ""                                # how the spec differs from the model's default
    hardware: str = ""                               # gnnbench.hardware.hardware_of its records
    # time to accuracy (config.until); then ``samples`` are the seconds to target of the seeds that
    # reached it, and these hold the rest
    until: dict | None = None
    epoch_samples: list = field(default_factory=list)   # pooled epoch times (ms) of the seeds that ran
    tta_epochs: list = field(default_factory=list)      # epochs to target of the seeds that reached it
    ran_seeds: int = 0

    @property
    def reached_seeds(self) -> int:
        return len(self.samples) if self.until else 0

    @property
    def mode(self) -> str:
        """'' for fixed-length runs, 'until-val_acc=0.79' for time to accuracy (as in the run key)."""
        return f"until-{self.until['metric']}={self.until['target']:g}" if self.until else ""

    @property
    def group(self) -> tuple:
        """What normalisation matches on: the same model, dataset, device, spec (and target) and hardware."""
        key = spec_key(self.spec) + (f"/{self.mode}" if self.until else "")
        return (self.model, self.dataset, self.device, key, self.hardware)

    @property
    def ident(self) -> tuple:
        return (self.library,) + self.group

    @property
    def name(self) -> str:
        return f"{self.library}/{self.model}/{self.dataset}/{self.device}"

    @property
    def ran(self) -> bool:
        return self.status in RAN and bool(self.epoch_samples if self.until else self.samples)

    @property
    def median(self) -> float | None:
        import numpy as np
        return float(np.median(self.samples)) if self.samples else None


def cells_of(records: list[dict]) -> "OrderedDict[tuple, CellData]":
    """Group the latest record of every run key into cells (seeds pooled)."""
    cells: "OrderedDict[tuple, CellData]" = OrderedDict()
    accs: dict[tuple, list] = {}
    statuses: dict[tuple, list] = {}
    for r in latest_per_key(records):
        rec = Record.from_dict(r)
        c = rec.cell
        for part in ("library", "model", "dataset", "device"):
            if c is None or part in c._absent:
                raise UsageError(f"record {rec.key or '?'} has no cell.{part}")
        cd = CellData(c.library, c.model, c.dataset, c.device, rec.spec or {},
                      hardware=hardware_of(r), until=until_of(r))
        if cd.ident not in cells:
            cd.variant = variant(r)
        cd = cells.setdefault(cd.ident, cd)
        cd.seeds += 1
        status = rec.status if "status" not in rec._absent else "failed"
        statuses.setdefault(cd.ident, []).append(status)
        ran = rec.ran           # ok or accuracy_mismatch, with epoch times
        epoch_ms = rec.times.epoch_ms if ran else None
        if ran and cd.until:
            tta = rec.time_to_accuracy
            cd.epoch_samples.extend(float(t) for t in epoch_ms)
            cd.ran_seeds += 1
            if tta and tta.reached:
                cd.samples.append(float(tta.train_s))
                cd.tta_epochs.append(int(tta.epochs))
        elif ran:
            cd.samples.extend(float(t) for t in epoch_ms)
        if ran and rec.accuracy and rec.accuracy.test is not None:
            accs.setdefault(cd.ident, []).append(rec.accuracy.test)
        if rec.error and status not in RAN:
            cd.error = rec.error.strip().splitlines()[0] if rec.error.strip() else ""
        if not cd.config:
            cd.config = {k: getattr(rec.config, k) if rec.config else None for k in ("epochs", "warmup", "threads")}
    for ident, cd in cells.items():
        cd.status = cell_status(statuses[ident])
    for ident, values in accs.items():
        cells[ident].acc = mean_std(values)[0]
    # as in the report: when every seed ran, the accuracy band is checked on the mean over seeds
    for cd in cells.values():
        if cd.status in RAN and not cd.until:   # a time-to-accuracy run stops at its target by design
            cd.status = band_status(cd.model, cd.dataset, cd.acc)
    return cells
