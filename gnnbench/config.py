"""Suites (YAML) and the cells they expand to.

A suite file::

    name: quick
    libraries: [pyg, dgl]          # or "all"
    models: [gcn, gat, sage]
    datasets: [cora]
    devices: [cpu]
    epochs: 200                    # timed epochs per run
    warmup: 10
    repeats: 1                     # seeds 0..repeats-1
    timeout: 900                   # seconds per child run
    threads: null                  # null = all cores
    overrides:                     # per-model hyperparameters
      gcn: {hidden: 32}
    executor: local                # or ray: one Ray task per run (docs/ray.md)
    ray_address: null              # ray only: a cluster's address (else $RAY_ADDRESS, else a local instance)
    resources: {}                  # ray only: custom resources each run asks for, e.g. {bench_node: 1}
    placement: shared              # ray only: or exclusive: one timed run per node at a time
    retries: 0                     # ray only: runs whose node was lost are run again this many times
    until: val_acc=0.75            # time to accuracy: train until the validation accuracy first reaches
                                   # 0.75 (val_acc=ref or val_acc: the published reference minus its band),
                                   # at most `epochs` epochs, no warm-up (docs/usage.md)

A cell is one (library, model, dataset, device); each seed of a cell is one
child run and one result record.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UsageError


def _config_dir() -> Path:
    """The suites folder. The top-level configs/ is installed as the package gnnbench.configs
    (pyproject.toml), so any install (wheel, pip --target, editable) finds it through the import system;
    a source checkout that is only on sys.path, not installed, has it beside the package."""
    try:
        return Path(str(importlib.resources.files("gnnbench.configs")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "configs"


CONFIG_DIR = _config_dir()
SUITE_KEYS = {"name", "description", "libraries", "models", "datasets", "devices", "epochs", "warmup",
              "repeats", "timeout", "threads", "overrides", "infer_reps", "memory_limit_gb",
              "rss_limit_gb", "oversubscribe", "executor", "ray_address", "resources", "placement", "retries",
              "until"}
EXECUTORS = ("local", "ray")
PLACEMENTS = ("shared", "exclusive")


@dataclass
class RunConfig:
    """Everything that decides how one child run is measured."""
    epochs: int = 200
    warmup: int = 10
    threads: int | None = None
    timeout: float = 900.0
    infer_reps: int = 20
    memory_limit_gb: float | None = None    # address space per child (RLIMIT_AS)
    rss_limit_gb: float | None = None       # resident memory per child, polled by the parent


@dataclass
class ExecutorConfig:
    """Where the runs execute; nothing here changes how one run is measured (not in the records' config)."""
    kind: str = "local"                              # local | ray
    ray_address: str | None = None                   # else $RAY_ADDRESS, else a local instance
    resources: dict = field(default_factory=dict)    # custom Ray resources per run, e.g. {"bench_node": 1}
    placement: str = "shared"                        # shared | exclusive (one run per node, all its CPUs)
    retries: int = 0                                 # re-runs of a run whose node was lost


@dataclass
class Cell:
    library: str
    model: str
    dataset: str
    device: str
    spec: dict                    # the full model spec, as used
    seed: int = 0
    # time to accuracy: {"metric": "val_acc", "target": 0.79, "source": "ref" | "given", ...}, resolved
    # for this model and dataset; None for a run of fixed length
    until: dict | None = None

    @property
    def name(self) -> str:
        return f"{self.library}/{self.model}/{self.dataset}/{self.device}"

    def spec_hash(self) -> str:
        from .specs import spec_hash
        return spec_hash(self.spec)

    def key(self) -> str:
        """Identity of one run: the cell, its spec, the time-to-accuracy target if any, and its seed
        (what --resume matches; a run of fixed length keeps the key it always had)."""
        mode = f"until-{self.until['metric']}={self.until['target']:g}/" if self.until else ""
        return f"{self.name}/{self.spec_hash()}/{mode}seed{self.seed}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Suite:
    name: str
    libraries: list[str]
    models: list[str]
    datasets: list[str]
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    repeats: int = 1
    overrides: dict = field(default_factory=dict)
    run: RunConfig = field(default_factory=RunConfig)
    description: str = ""
    oversubscribe: bool = False      # allow more threads than the cores this process may use
    where: dict = field(default_factory=dict)   # suite key -> "file:line", for errors found later
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    until: dict | None = None        # validate.until: {"metric", "target" (None = the reference)}


def suite_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_suite_path(name_or_file: str) -> Path:
    p = Path(name_or_file)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise UsageError(f"suite file not found: {p}")
        return p
    candidate = CONFIG_DIR / f"{name_or_file}.yaml"
    if candidate.exists():
        return candidate
    raise UsageError(f"unknown suite '{name_or_file}'; valid suites: {', '.join(suite_names())} (or a YAML file)")


def _as_list(value, key: str, path) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise UsageError(f"{path}: '{key}' must be a list of names or a comma-separated string")


def load_suite(name_or_file: str) -> Suite:
    """Read and validate a suite file: every bad value is one line naming the file and line."""
    from . import validate

    path = resolve_suite_path(name_or_file)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read suite {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: suite file is not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    try:
        data = yaml.load(text, Loader=validate.StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"malformed YAML at {loc}: {problem}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a suite must be a YAML mapping (name, libraries, models, datasets, ...)")

    def where(mapping, key):
        return f"{path}:{mapping.lines[key]}" if key in getattr(mapping, "lines", {}) else str(path)

    unknown = set(data) - SUITE_KEYS
    if unknown:
        first = min(unknown, key=lambda k: data.lines.get(k, 0))
        raise UsageError(f"{where(data, first)}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                         f"valid: {', '.join(sorted(SUITE_KEYS))}")
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise UsageError(f"{where(data, 'overrides')}: 'overrides' must map model names to {{hyperparameter: value}}")
    _check_overrides(overrides, where)
    until = None
    if data.get("until") is not None:
        with validate.at(where(data, "until")):
            until = validate.until(data["until"])
        if data.get("warmup") not in (None, 0):
            raise UsageError(f"{where(data, 'warmup')}: 'warmup' is {data['warmup']!r}, but a time-to-accuracy "
                             f"suite ('until') has no warm-up: every epoch from the initial weights counts; "
                             f"leave 'warmup' out or set it to 0")
    run = RunConfig()
    for key in ("epochs", "warmup", "threads", "timeout", "infer_reps", "memory_limit_gb", "rss_limit_gb"):
        if data.get(key) is not None:
            with validate.at(where(data, key)):
                setattr(run, key, validate.run_value(key, data[key]))
    with validate.at(where(data, "repeats")):
        repeats = validate.run_value("repeats", data.get("repeats", 1))
    if until is not None:
        run.warmup = 0
    oversubscribe = data.get("oversubscribe", False)
    if not isinstance(oversubscribe, bool):
        raise UsageError(f"{where(data, 'oversubscribe')}: 'oversubscribe' must be true or false, got {oversubscribe!r}")
    return Suite(
        name=str(data.get("name") or path.stem),
        description=str(data.get("description") or ""),
        libraries=_as_list(data.get("libraries", "all"), "libraries", where(data, "libraries")),
        models=_as_list(data.get("models"), "models", where(data, "models")),
        datasets=_as_list(data.get("datasets"), "datasets", where(data, "datasets")),
        devices=_as_list(data.get("devices", ["cpu"]), "devices", where(data, "devices")),
        repeats=repeats,
        overrides=overrides,
        run=run,
        oversubscribe=oversubscribe,
        where={k: where(data, k) for k in ("threads", "datasets", "overrides", "until")},
        executor=_executor(data, lambda key: where(data, key)),
        until=until,
    )


def _check_overrides(overrides: dict, where) -> None:
    """Each suite override in its domain, named by its file:line (unknown models are left to expand)."""
    from . import validate
    from .specs import MODELS, check_value

    for model, values in overrides.items():
        if str(model).lower() not in MODELS:
            continue
        for key, value in values.items():
            with validate.at(where(values, key)):
                check_value(MODELS[str(model).lower()](), key, value)


def _executor(data: dict, at) -> ExecutorConfig:
    """The suite's executor keys; ``at(key)`` names the key's file:line in errors."""
    ex = ExecutorConfig()
    if data.get("executor") is not None:
        ex.kind = str(data["executor"])
        if ex.kind not in EXECUTORS:
            raise UsageError(f"{at('executor')}: 'executor' must be one of {', '.join(EXECUTORS)}, got {data['executor']!r}")
    if data.get("ray_address") is not None:
        ex.ray_address = str(data["ray_address"])
    res = data.get("resources")
    if res is not None:
        if not isinstance(res, dict) or not all(isinstance(k, str) and isinstance(v, (int, float))
                                                and not isinstance(v, bool) and v > 0 for k, v in res.items()):
            raise UsageError(f"{at('resources')}: 'resources' must map custom resource names to positive amounts, "
                             f"e.g. {{bench_node: 1}}")
        reserved = sorted(set(res) & {"CPU", "GPU", "memory", "object_store_memory"})
        if reserved:
            raise UsageError(f"{at('resources')}: 'resources' names {', '.join(reserved)}; CPUs and GPUs come from "
                             f"'threads' and the device, only custom resources go here")
        ex.resources = {k: float(v) for k, v in res.items()}
    if data.get("placement") is not None:
        ex.placement = str(data["placement"])
        if ex.placement not in PLACEMENTS:
            raise UsageError(f"{at('placement')}: 'placement' must be one of {', '.join(PLACEMENTS)}, got {data['placement']!r}")
    if data.get("retries") is not None:
        v = data["retries"]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 5:
            raise UsageError(f"{at('retries')}: 'retries' must be an integer from 0 to 5, got {v!r}")
        ex.retries = v
    return ex


def _kind(task: str) -> str:
    """Which datasets a model task runs on: graph classification sets, or node-level graphs
    (full-batch and neighbour-sampled node classification alike)."""
    return "graph" if task == "graph" else "node"


def expand(suite: Suite, cli_overrides: dict | None = None) -> list[Cell]:
    """Validate every name and expand the suite into cells x seeds."""
    from gnnbench.adapters import adapter_class, adapter_names, plugin
    from . import validate
    from .datasets import canonical_dataset_name, dataset_task
    from .datasets.synthetic import check_buildable
    from .specs import check_value, get_spec, model_names

    libs = adapter_names() if suite.libraries in (["all"], []) else suite.libraries
    valid = adapter_names()
    for lib in libs:
        if lib not in valid:
            raise UsageError(f"unknown library '{lib}'; valid libraries: {', '.join(valid)}")
        if plugin(lib):         # a plug-in that does not load: one line, exit 2, before any run starts
            adapter_class(lib)
    if not suite.models:
        raise UsageError(f"suite '{suite.name}' names no models; valid models: {', '.join(model_names())}")
    if not suite.datasets:
        raise UsageError(f"suite '{suite.name}' names no datasets")
    for dev in suite.devices:
        if dev not in ("cpu", "cuda") and not dev.startswith("cuda:"):
            raise UsageError(f"unknown device '{dev}'; valid devices: cpu, cuda, cuda:N")
    for m in suite.overrides:
        if m not in model_names():
            raise UsageError(f"overrides for unknown model '{m}'; valid models: {', '.join(model_names())}")
    with validate.at(suite.where.get("datasets", f"suite {suite.name}")):
        datasets = [canonical_dataset_name(d) for d in suite.datasets]
        for d in datasets:
            check_buildable(d)
    for model in suite.models:   # a model runs on the datasets of its task (node or graph classification)
        task = _kind(get_spec(model).task)
        if not any(dataset_task(d) == task for d in datasets):
            raise UsageError(f"model '{model}' is for {task} classification, but none of the datasets "
                             f"({', '.join(datasets)}) is; e.g. "
                             + ("mutag, proteins, enzymes" if task == "graph" else "cora, citeseer, pubmed"))
    for model in suite.models:   # each --set value in its domain, named by its option
        for k, v in (cli_overrides or {}).items():
            with validate.at(f"--set {k}={v}"):
                check_value(get_spec(model), k, v)
    targets = _until_targets(suite, datasets) if suite.until else {}
    cells = []
    for dataset in datasets:
        for device in suite.devices:
            for model in suite.models:
                if _kind(get_spec(model).task) != dataset_task(dataset):
                    continue
                overrides = {**suite.overrides.get(model, {}), **(cli_overrides or {})}
                with validate.at("--set" if cli_overrides else suite.where.get("overrides", "overrides")):
                    spec = dataclasses.asdict(get_spec(model, dataset, overrides))
                for lib in libs:
                    for seed in range(max(1, suite.repeats)):
                        cells.append(Cell(lib, model.lower(), dataset, device, spec, seed,
                                          targets.get((model, dataset))))
    return cells


def _until_targets(suite: Suite, datasets: list[str]) -> dict[tuple[str, str], dict]:
    """The time-to-accuracy target of each (model, dataset) the suite pairs: the given fraction, or the
    published test reference minus its band. One line naming --until (or file:line) for a model with no
    validation split or a pair with no reference."""
    from .datasets import dataset_task
    from .published import reference
    from .specs import get_spec

    where = suite.where.get("until", "until")
    metric, given = suite.until["metric"], suite.until["target"]
    out = {}
    for model in suite.models:
        spec = get_spec(model)
        if spec.task == "graph":
            raise UsageError(f"{where}: {model} is graph classification, whose datasets have a train and a test "
                             f"fold but no validation split; time to accuracy needs one ({metric})")
        for dataset in datasets:
            if _kind(spec.task) != dataset_task(dataset):
                continue
            if given is not None:
                out[(model, dataset)] = {"metric": metric, "target": given, "source": "given"}
                continue
            ref = reference(spec.name, dataset)
            if ref is None:
                raise UsageError(f"{where}: no published reference accuracy for {model} on {dataset}, so "
                                 f"{metric}=ref has no value; give the target, e.g. {metric}=0.7")
            out[(model, dataset)] = {"metric": metric, "target": round((ref["test"] - ref["band"]) / 100, 6),
                                     "source": "ref", "reference_pct": ref["test"], "band_pct": ref["band"]}
    return out
