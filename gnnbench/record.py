"""The result record, typed: one dataclass per part of a record, each field with its description.

The writers (gnnbench.child, gnnbench.runner, the Ray executor) build plain dicts; readers get them
from ``gnnbench.results.read_records`` upgraded to the current schema, and ``Record.from_dict``
gives typed access (``rec.memory.peak_rss_mb`` instead of ``.get`` chains). ``to_dict`` gives the
dict back: a key the record did not have stays absent, a key gnnbench does not know is kept.

Schema history (``upgrade`` applies the steps in order, each named ``_upgrade_N_to_M``):

* 1 -> 2: fields that appeared while schema 1 was written are present, None where an older record
  did not measure them: ``memory.load_peak_rss_mb`` and ``memory.peak_rss_after_load_mb`` (2026-12-01),
  ``config.rss_limit_gb`` (the ``--rss-limit`` option), ``times.first_epoch_ms``.

``python -m gnnbench.record --markdown`` prints the schema table that docs/records.md holds.
"""
from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, field

SCHEMA_VERSION = 2


def _f(doc: str, default=None):
    """A record field: None when the record lacks it; ``doc`` is its description in docs/records.md."""
    return field(default=default, metadata={"doc": doc})


class _Part:
    """from_dict / to_dict for one part of a record (a dataclass)."""

    def __post_init__(self):
        if self._absent is None:
            self._absent = frozenset()
        if self.extra is None:
            self.extra = {}

    @classmethod
    def _fields(cls):
        return [f for f in dataclasses.fields(cls) if f.name not in ("extra", "_absent")]

    @classmethod
    def _layout(cls):
        """(field name, its part class or None) for each schema field; computed once per class."""
        cached = cls.__dict__.get("_layout_cache")
        if cached is None:
            hints = typing.get_type_hints(cls)
            cached = tuple((f.name, _part_type(hints[f.name])) for f in cls._fields())
            cls._layout_cache = cached
        return cached

    @classmethod
    def from_dict(cls, d: dict):
        layout = cls._layout()
        kwargs, absent = {}, set()
        for name, sub in layout:
            if name not in d:
                absent.add(name)
                continue
            v = d[name]
            kwargs[name] = sub.from_dict(v) if sub is not None and isinstance(v, dict) else v
        names = {name for name, _ in layout}
        return cls(**kwargs, extra={k: v for k, v in d.items() if k not in names}, _absent=frozenset(absent))

    def to_dict(self) -> dict:
        out = {}
        for f in self._fields():
            if f.name in self._absent and getattr(self, f.name) is None:
                continue
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, _Part) else v
        out.update(self.extra)
        return out


def _part_type(hint):
    """The _Part class in a hint like ``Times | None``, else None."""
    for t in typing.get_args(hint) or (hint,):
        if isinstance(t, type) and issubclass(t, _Part):
            return t
    return None


def _tail():
    """The two bookkeeping fields every part ends with (not part of the schema)."""
    return (field(default=None, repr=False, compare=False, metadata={"internal": True}),
            field(default=None, repr=False, compare=False, metadata={"internal": True}))


@dataclass
class Cell(_Part):
    library: str | None = _f("the adapter (pyg, dgl, spektral, graphnets, jraph, native, or a plug-in)")
    model: str | None = _f("the model (gcn, gat, sage, gin, ...)")
    dataset: str | None = _f("the dataset name, e.g. `cora` or `synthetic:nodes=1000,avg_degree=10,...`")
    device: str | None = _f("`cpu` or `cuda`")
    seed: int | None = _f("the seed: weights, dropout and batching of this run")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class Until(_Part):
    metric: str | None = _f("what is compared with the target: `val_acc`")
    target: float | None = _f("the target value (a fraction)")
    source: str | None = _f("`given` (--until METRIC=VALUE) or `ref` (published reference minus its band)")
    reference_pct: float | None = _f("`ref` only: the published test accuracy, %")
    band_pct: float | None = _f("`ref` only: its band, percentage points")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class Config(_Part):
    epochs: int | None = _f("timed epochs (with `until`: the most epochs it trains)")
    warmup: int | None = _f("warm-up epochs, not timed as epochs")
    threads: int | None = _f("threads given to the library")
    timeout: float | None = _f("seconds allowed to the child process")
    infer_reps: int | None = _f("forward passes timed for the inference time")
    memory_limit_gb: float | None = _f("address-space limit of the child (GiB), or null")
    rss_limit_gb: float | None = _f("resident-memory limit (GiB) past which the parent kills the run as `oom`, or "
                                    "null (schema 1: absent before the option existed)")
    until: Until | None = _f("time-to-accuracy runs only: the target ([usage.md](usage.md#time-to-accuracy))")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class Dataset(_Part):
    fingerprint: str | None = _f("sha256 of the arrays the adapter received")
    name: str | None = _f("the dataset's name")
    nodes: int | None = _f("node count (graph task: over all graphs)")
    edges: int | None = _f("edge count (directed, both directions of an undirected edge)")
    features: int | None = _f("node feature width")
    classes: int | None = _f("class count")
    train: int | None = _f("training nodes (graph task: graphs)")
    val: int | None = _f("validation nodes (absent for the graph task)")
    test: int | None = _f("test nodes (graph task: graphs)")
    graphs: int | None = _f("graph task: graph count")
    fold: str | None = _f("graph task: which fold of the stratified 10-fold split is the test set")
    split_seed: int | None = _f("graph task: seed of the split")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class Times(_Part):
    epoch_ms: list | None = _f("every timed epoch, ms (`train_step(); sync()` timed by the harness)")
    median_ms: float | None = _f("median of `epoch_ms`")
    p25_ms: float | None = _f("25th percentile of `epoch_ms`")
    p75_ms: float | None = _f("75th percentile of `epoch_ms`")
    mean_ms: float | None = _f("mean of `epoch_ms`")
    std_ms: float | None = _f("standard deviation (ddof=1) of `epoch_ms`")
    min_ms: float | None = _f("fastest epoch")
    max_ms: float | None = _f("slowest epoch")
    first_epoch_ms: float | None = _f("the first (warm-up) epoch, ms")
    warmup_ms: list | None = _f("every warm-up epoch, ms")
    setup_s: float | None = _f("the adapter's `prepare`, s")
    infer_ms: list | None = _f("every timed forward pass, ms")
    infer_median_ms: float | None = _f("median of `infer_ms`")
    collate_ms: list | None = _f("graph task: per epoch, the part spent batching (collation), ms")
    collate_median_ms: float | None = _f("graph task: median of `collate_ms`")
    sample_ms: list | None = _f("sampled task: per epoch, the part spent sampling, ms")
    sample_median_ms: float | None = _f("sampled task: median of `sample_ms`")
    batches_per_epoch: int | None = _f("mini-batch tasks: batches per epoch")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class Sampled(_Part):
    seed_nodes_per_batch_mean: float | None = _f("mean seed nodes per batch over the timed epochs")
    input_nodes_per_batch_mean: float | None = _f("mean input nodes (sampled neighbourhood) per batch")
    edges_per_batch_mean: float | None = _f("mean block edges per batch")
    batches: int | None = _f("batches the means are over")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class Accuracy(_Part):
    train: float | None = _f("training accuracy after training (a fraction; null when a logit is not finite)")
    val: float | None = _f("validation accuracy (absent for the graph task)")
    test: float | None = _f("test accuracy, computed by the harness from the adapter's eval logits with its own "
                            "masks (`gnnbench/metrics.py`)")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class AccuracyCheck(_Part):
    test: float | None = _f("the published test accuracy, %")
    band: float | None = _f("how far from it still counts as the same model, percentage points")
    source: str | None = _f("where the published value is from")
    in_band: bool | None = _f("whether this seed's test accuracy is inside the band")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class Memory(_Part):
    peak_rss_mb: float | None = _f("the child process's peak RSS (for a run killed by `--rss-limit`, the highest "
                                   "value the parent polled)")
    load_peak_rss_mb: float | None = _f("the process's peak up to the end of gnnbench's dataset build, the library "
                                        "already imported (schema 1: null before 2026-12-01)")
    peak_rss_after_load_mb: float | None = _f("the peak from `prepare` on, with the dataset resident but without the "
                                              "build's temporaries: the high-water mark is reset after loading "
                                              "(schema 1: null before 2026-12-01)")
    device_peak_mb: float | None = _f("CUDA: the device's peak allocation; null on CPU")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class TimeToAccuracy(_Part):
    metric: str | None = _f("the target's metric (as `config.until`)")
    target: float | None = _f("the target value")
    source: str | None = _f("`given` or `ref`")
    reference_pct: float | None = _f("`ref` only: the published test accuracy, %")
    band_pct: float | None = _f("`ref` only: its band")
    reached: bool | None = _f("whether the target was reached within `cap` epochs")
    cap: int | None = _f("the most epochs the run could train")
    epochs: int | None = _f("epochs to the target (null when not reached)")
    train_s: float | None = _f("training seconds to the target, training steps only (null when not reached)")
    epochs_run: int | None = _f("epochs run")
    train_s_run: float | None = _f("training seconds of all epochs run")
    eval_s: float | None = _f("every evaluation after an epoch, on its own clock, s")
    evals: int | None = _f("evaluations made")
    val_acc_per_epoch: list | None = _f("validation accuracy after each epoch")
    best_val_acc: float | None = _f("the best of `val_acc_per_epoch`")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class Plugin(_Part):
    distribution: str | None = _f("the package that registered the adapter")
    version: str | None = _f("its version")
    entry_point: str | None = _f("`module:Class`")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class Node(_Part):
    id: str | None = _f("the Ray node id")
    hostname: str | None = _f("its hostname")
    attempt: int | None = _f("0 for the first try, then one more per retry")
    cores: list | None = _f("the cores the run was given")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]


@dataclass
class Record(_Part):
    schema: int | None = _f("schema version (this gnnbench writes 2 and reads 1 and 2)")
    run_id: str | None = _f("id of the `gnnbench run` invocation")
    key: str | None = _f("`library/model/dataset/device/spec-hash/seedN` (time to accuracy: `.../until-METRIC=TARGET/seedN`)")
    timestamp: str | None = _f("when the run started (UTC, ISO 8601)")
    cell: Cell | None = _f("what ran")
    spec: dict | None = _f("the full model spec used (hyperparameters after overrides)")
    config: Config | None = _f("how it was measured")
    status: str | None = _f("`ok`, `accuracy_mismatch`, `failed`, `timeout`, `oom`, `skipped`")
    error: str | None = _f("the tail of the error ('' when there is none)")
    dataset: Dataset | None = _f("what the adapter received")
    times: Times | None = _f("what was timed")
    sampled: Sampled | None = _f("sampled task only: what each library sampled")
    accuracy: Accuracy | None = _f("accuracy after training")
    accuracy_check: AccuracyCheck | None = _f("the published reference and whether this seed is inside its band "
                                              "(null when there is none)")
    memory: Memory | None = _f("peak memory, MB")
    time_to_accuracy: TimeToAccuracy | None = _f("`--until` runs only ([usage.md](usage.md#time-to-accuracy))")
    params: int | None = _f("number of trainable parameters")
    library_version: str | None = _f("the adapter's library version")
    notes: list | None = _f("facts worth knowing (workarounds, unavoidable differences); a value that was not "
                            "finite is written as null and named here")
    plugin: Plugin | None = _f("only for a plug-in adapter ([adapters.md](adapters.md)); `notes` then starts with "
                               "the same fact")
    env: dict | None = _f("python, implementation, OS, machine, CPU model (`cpu_model`), `cores`, `threads`, `gpu`, "
                          "hostname, gnnbench version and `git_revision`, `library_versions`")
    isolation: dict | None = _f("what the child process ran with: `pid`, `ml_modules` loaded, torch/TF/XLA thread "
                                "pools, thread environment, CPU `affinity`, TF GPU memory growth")
    available_s: float | None = _f("time of `available()` in the child (library import; the native adapter compiles "
                                   "or loads its kernels here)")
    load_s: float | None = _f("dataset load time, s")
    wall_s: float | None = _f("wall time of the child process, s")
    node: Node | None = _f("Ray executor only ([ray.md](ray.md)); `env` is then that node's")
    extra: dict | None = _tail()[0]
    _absent: frozenset | None = _tail()[1]

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        """A record of any schema this gnnbench reads, upgraded to SCHEMA_VERSION."""
        return super().from_dict(upgrade(d))

    @property
    def ran(self) -> bool:
        """It ran (ok or accuracy_mismatch) and has epoch times."""
        return self.status in ("ok", "accuracy_mismatch") and bool(self.times and self.times.epoch_ms)


# --- schema upgrades ----------------------------------------------------------------------------

def _upgrade_1_to_2(d: dict) -> dict:
    """Schema 1 -> 2: the fields that appeared while schema 1 was written, None where absent."""
    d = dict(d, schema=2)
    if isinstance(d.get("memory"), dict):
        d["memory"] = {"load_peak_rss_mb": None, "peak_rss_after_load_mb": None, **d["memory"]}
    if isinstance(d.get("times"), dict):
        d["times"] = {"first_epoch_ms": None, **d["times"]}
    if isinstance(d.get("config"), dict):
        d["config"] = {"rss_limit_gb": None, **d["config"]}
    return d


UPGRADES = {1: _upgrade_1_to_2}
READABLE = (*UPGRADES, SCHEMA_VERSION)


def upgrade(d: dict) -> dict:
    """The record dict upgraded to SCHEMA_VERSION (a new dict; ``d`` is not changed). ValueError for
    a schema this gnnbench does not read."""
    schema = d.get("schema")
    if schema not in READABLE:
        raise ValueError(f"schema version {schema} is not supported (this gnnbench reads "
                         f"{', '.join(map(str, READABLE))})")
    while d.get("schema") != SCHEMA_VERSION:
        d = UPGRADES[d["schema"]](d)
    return d


# --- the schema table (docs/records.md) ---------------------------------------------------------

def _type_name(hint) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    t = args[0]
    return {str: "string", int: "integer", float: "number", bool: "boolean", list: "list", dict: "object"}.get(
        t, getattr(t, "__name__", str(t)))


def schema_rows(root: type = Record, prefix: str = "") -> list[tuple[str, str, str]]:
    """(field path, type, description) for every field of ``root`` and of its parts, depth first."""
    hints = typing.get_type_hints(root)
    out = []
    for f in root._fields():
        sub = _part_type(hints[f.name])
        out.append((prefix + f.name, "object" if sub else _type_name(hints[f.name]), f.metadata.get("doc", "")))
        if sub is not None:
            out.extend(schema_rows(sub, prefix + f.name + "."))
    return out


DOC_INTRO = """# Result records (JSONL, schema {schema})

One line per run. A field a run did not produce is absent (a run killed by the parent has no `times`,
a fixed-length run no `time_to_accuracy`); `null` is a value the run did not measure. The table is
generated from `gnnbench/record.py` (`python -m gnnbench.record --markdown > docs/records.md`); readers
get records through `gnnbench.results.read_records`, upgraded to schema {schema}, and typed access
through `gnnbench.record.Record.from_dict`.
"""

DOC_OUTRO = """
Schema 1 records (written before schema 2) are read too: `read_records` upgrades them
(`gnnbench.record._upgrade_1_to_2`), filling the fields that appeared while schema 1 was written
(`memory.load_peak_rss_mb`, `memory.peak_rss_after_load_mb`, `config.rss_limit_gb`,
`times.first_epoch_ms`) with null where a record lacks them. A record of a schema this gnnbench
does not know is an error naming the file and line.

A NaN or infinite value is written as null and named in `notes`. Readers tolerate a torn last line (moved to `FILE.rejected`); `gnnbench repair FILE` moves any other bad line there.
"""


def markdown(root: type = Record) -> str:
    """docs/records.md: the intro, the schema table of ``root``, the outro."""
    lines = [DOC_INTRO.format(schema=SCHEMA_VERSION), "| field | type | meaning |", "|---|---|---|"]
    for path, typ, doc in schema_rows(root):
        lines.append(f"| `{path}` | {typ} | {doc.replace('|', '/')} |")
    return "\n".join(lines) + "\n" + DOC_OUTRO


def main(argv: list[str]) -> int:
    if argv != ["--markdown"]:
        print("usage: python -m gnnbench.record --markdown", file=sys.stderr)
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
