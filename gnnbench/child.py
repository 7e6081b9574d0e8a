"""The child process: runs one cell with one seed and writes its record.

    python -m gnnbench.child JOB.json RECORD.json

The harness owns the clock: every timed interval here is
``perf_counter_ns() ; adapter.<work>() ; adapter.sync() ; perf_counter_ns()``.
"""
from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from .protocol import GraphTask, NodeTask, SampledTask
from .results import SCHEMA_VERSION


def _tail(text: str, lines: int = 15, chars: int = 3000) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])[-chars:]


def _timed(fn, sync) -> int:
    t0 = time.perf_counter_ns()
    fn()
    sync()
    return time.perf_counter_ns() - t0


@dataclass
class Training:
    """What a task's runner measured (nanoseconds)."""
    epochs: list[int]                       # each timed epoch
    warm: list[int]                         # each warm-up epoch ([] when none)
    batching: list[int] | None = None       # mini-batch tasks: the batching part of each timed epoch
    batching_name: str = ""                 # what it is called in the record: 'collate' | 'sample'
    batches_per_epoch: int | None = None
    batch_stats: list[dict] = field(default_factory=list)   # sampled: what each batch held
    tta: dict | None = None                 # time to accuracy (``_until_target``)


@dataclass
class Measurements(Training):
    """A run's measurements: its training, the setup and the inference repetitions (nanoseconds)."""
    setup_ns: int = 0
    infer: list[int] = field(default_factory=list)


def run(job: dict) -> dict:
    """Measure one run; returns the child's part of the record."""
    from .metrics import accuracy
    from .published import in_band, reference
    from .weights import init_weights

    cell, cfg = job["cell"], job["config"]
    out: dict = {"status": "failed", "error": "", "notes": []}
    adapter, spec, why = preflight(job, out)
    if why:
        out.update(status="skipped", error=why)
        return out
    adapter.set_threads(cfg["threads"])
    out["versions"] = adapter.versions()
    t0 = time.perf_counter()
    _phase(job, "loading the dataset")
    graph = _load(cell, spec, job)
    out["load_s"] = time.perf_counter() - t0
    out["dataset"] = {"fingerprint": graph.fingerprint(), **graph.summary()}
    load_peak = _reset_peak_rss()     # the harness's own load transient, kept apart from the library's
    weights = init_weights(spec, graph.num_features, graph.num_classes, cell["seed"])

    t0 = time.perf_counter_ns()
    _phase(job, "prepare")
    adapter.prepare(graph, spec, cell["device"], cell["seed"], weights)
    adapter.sync()
    setup_ns = time.perf_counter_ns() - t0
    out["notes"] = adapter.notes()
    out["params"] = adapter.num_parameters()

    _phase(job, "training")
    training = RUNNERS[spec.task](adapter, graph, spec, cell, cfg)
    _phase(job, "evaluation and inference")
    acc = accuracy(adapter.logits(), graph)     # the harness scores the library's logits itself
    infer = [_timed(adapter.infer, adapter.sync) for _ in range(cfg["infer_reps"])]

    m = Measurements(**vars(training), setup_ns=setup_ns, infer=infer)
    ref = reference(cell["model"], graph.name)
    check = in_band(cell["model"], graph.name, acc.get("test"))
    after_load = _vm_hwm_mb()
    memory = {"peak_rss_mb": _peak_rss_mb(),          # the whole process's, as always
              "device_peak_mb": _mb(adapter.peak_memory()),
              "load_peak_rss_mb": load_peak, "peak_rss_after_load_mb": after_load}
    return build_record(out, m, acc, ref, check, memory, isolation())


# ---- one runner per task: the timed training epochs ------------------------------------------------
def train_full_batch(adapter: NodeTask, graph, spec, cell: dict, cfg: dict) -> Training:
    """'node': ``cfg["warmup"]`` then ``cfg["epochs"]`` epochs, each ``train_step(); sync()``; or, with
    ``cell["until"]``, epochs until the validation target (``_until_target``)."""
    sync = adapter.sync
    if cell.get("until"):
        gc.collect()
        return _until_target(adapter, graph, cell, cfg,
                             lambda e: ([_timed(adapter.train_step, sync)], None, []), batched=False)
    step = adapter.train_step
    warm = [_timed(step, sync) for _ in range(cfg["warmup"])]
    gc.collect()
    epochs = [_timed(step, sync) for _ in range(cfg["epochs"])]
    return Training(epochs, warm)


def train_graphs(adapter: GraphTask, graph, spec, cell: dict, cfg: dict) -> Training:
    """'graph': mini-batch epochs over the training graphs (``_batched_epochs``)."""
    from .errors import UsageError
    if cell.get("until"):
        raise UsageError("time to accuracy needs a validation split; graph classification has none")
    ids, seed = graph.train_idx, cell["seed"]
    warm, _, _ = _batched_epochs(adapter, ids, spec, seed, 0, cfg["warmup"])
    gc.collect()
    epochs, batching, _ = _batched_epochs(adapter, ids, spec, seed, cfg["warmup"], cfg["epochs"])
    return Training(epochs, warm, batching, "collate", _batches(ids, spec))


def train_sampled(adapter: SampledTask, graph, spec, cell: dict, cfg: dict) -> Training:
    """'sampled': mini-batch epochs over the training nodes, each batch sampled around its seed
    nodes (``_batched_epochs``, sizes in ``batch_stats``); or, with ``cell["until"]``, epochs until
    the validation target (``_until_target``)."""
    ids, seed = np.flatnonzero(graph.train_mask), cell["seed"]
    if cell.get("until"):
        gc.collect()
        t = _until_target(adapter, graph, cell, cfg,
                          lambda e: _batched_epochs(adapter, ids, spec, seed, e, 1, stats=True), batched=True)
        t.batching_name, t.batches_per_epoch = "sample", _batches(ids, spec)
        return t
    warm, _, _ = _batched_epochs(adapter, ids, spec, seed, 0, cfg["warmup"])
    gc.collect()
    epochs, batching, stats = _batched_epochs(adapter, ids, spec, seed, cfg["warmup"], cfg["epochs"], stats=True)
    return Training(epochs, warm, batching, "sample", _batches(ids, spec), stats)


RUNNERS = {"node": train_full_batch, "graph": train_graphs, "sampled": train_sampled}


def _batches(ids, spec) -> int:
    return -(-len(ids) // spec.batch_size)


# ---- the record --------------------------------------------------------------------------------------
def build_record(out: dict, m: Measurements, acc: dict, ref: dict | None, check: bool | None,
                 memory: dict, isolation: dict) -> dict:
    """The child's part of the record from the measurements: ``out`` (what preflight, loading and
    prepare wrote) completed with the times, the sampled sizes, the accuracy, the status, memory and
    isolation. Pure: the same measurements give the same dict (and JSON)."""
    from .stats import summarize
    out = dict(out)
    warm = m.warm if m.warm or not m.epochs else [m.epochs[0]]
    ms = [t / 1e6 for t in m.epochs]
    s = summarize(ms)
    out["times"] = {
        "epoch_ms": [round(t, 4) for t in ms],
        "median_ms": s["median"], "p25_ms": s["p25"], "p75_ms": s["p75"],
        "mean_ms": s["mean"], "std_ms": s["std"], "min_ms": s["min"], "max_ms": s["max"],
        "first_epoch_ms": warm[0] / 1e6 if warm else None,
        "warmup_ms": [round(t / 1e6, 4) for t in warm],
        "setup_s": m.setup_ns / 1e9,
        "infer_ms": [round(t / 1e6, 4) for t in m.infer],
        "infer_median_ms": summarize([t / 1e6 for t in m.infer])["median"],
    }
    if m.batching is not None:   # the library's batching (collation / sampling): inside each epoch, and alone
        batching_ms = [t / 1e6 for t in m.batching]
        what = m.batching_name
        out["times"][f"{what}_ms"] = [round(t, 4) for t in batching_ms]
        out["times"][f"{what}_median_ms"] = summarize(batching_ms)["median"]
        out["times"]["batches_per_epoch"] = m.batches_per_epoch
    if m.batch_stats:            # what each library sampled: differences are visible, not hidden
        keys = sorted(m.batch_stats[0])
        out["sampled"] = {f"{k}_per_batch_mean": float(np.mean([b[k] for b in m.batch_stats])) for k in keys}
        out["sampled"]["batches"] = len(m.batch_stats)
    out["accuracy"] = acc
    out["accuracy_check"] = None if ref is None else {**ref, "in_band": check}
    out["status"] = "accuracy_mismatch" if check is False else "ok"
    if m.tta is not None:
        # the run stops at a validation target by design: its test accuracy at the stop is recorded
        # (and in_band says where it lies), but the target is the accuracy criterion here
        out["time_to_accuracy"] = m.tta
        out["status"] = "ok"
    if all(v is None for v in acc.values()):       # metrics.accuracy: a logit was not finite
        out.update(status="accuracy_mismatch", error="the model's logits are not finite after training "
                                                     "(it diverged); no accuracy")
    out["memory"] = memory
    out["isolation"] = isolation
    return out


PHASE = [None]     # the phase this process is in, also for its own error records


def _phase(job: dict, name: str) -> None:
    """Leave the phase this run is in where the parent can read it if it has to kill the child
    (so an `oom` or `timeout` record says whether the library or the dataset load was running)."""
    PHASE[0] = name
    path = job.get("phase_file")
    if path:
        try:
            with open(path, "w") as fh:
                fh.write(name)
        except OSError:
            pass


def _load(cell: dict, spec, job: dict):
    from .datasets import load_graph
    if spec.task == "graph":
        return load_graph(cell["dataset"], job.get("data_dir"), node_attributes=spec.node_attributes,
                          fold=spec.fold, num_folds=spec.num_folds)
    return load_graph(cell["dataset"], job.get("data_dir"), normalize_features=spec.normalize_features)


def _batched_epochs(adapter: GraphTask | SampledTask, train_ids, spec, seed: int, first: int, count: int, stats: bool = False):
    """``count`` mini-batch epochs (epoch numbers ``first``...). Per epoch: the time of all
    ``collate(ids); sync()`` (the library's batching: graph collation, or neighbour sampling with
    the feature gather) plus all ``train_batch(batch); sync()``, and the batching part alone.
    The batch order is drawn from (seed, epoch) before the clock starts; the sampled sizes
    (``batch_stats``) are read between the timed intervals."""
    from .batching import epoch_batches
    totals, batching, all_stats = [], [], []
    sync, collate, train = adapter.sync, adapter.collate, adapter.train_batch
    clock = time.perf_counter_ns
    for e in range(first, first + count):
        batches = epoch_batches(train_ids, spec.batch_size, seed, e)
        coll = work = 0
        for ids in batches:
            t0 = clock()
            b = collate(ids)
            sync()
            t1 = clock()
            train(b)
            sync()
            t2 = clock()
            coll += t1 - t0
            work += t2 - t1
            if stats:
                all_stats.append(adapter.batch_stats(b))
        totals.append(coll + work)
        batching.append(coll)
    return totals, batching, all_stats


def _until_target(adapter: NodeTask | SampledTask, graph, cell: dict, cfg: dict, epoch, batched: bool) -> Training:
    """Train from the initial weights until the validation accuracy first reaches the target, at most
    ``cfg["epochs"]`` epochs. Each epoch is timed as always by ``epoch(e)`` (the task's runner hands
    ``train_step(); sync()``, or the batched epoch), which returns (epoch times ns, batching ns or None,
    batch stats); after it, outside that clock, the harness takes ``adapter.logits(); sync()`` and scores
    them with its own masks: that evaluation is timed on its own clock and never enters ``train_s``."""
    from .metrics import accuracy
    until = cell["until"]
    target, metric = float(until["target"]), until["metric"]
    split = metric.removesuffix("_acc")
    sync, clock = adapter.sync, time.perf_counter_ns
    epochs: list[int] = []
    batching: list[int] | None = [] if batched else None
    batch_stats: list[dict] = []
    curve: list[float | None] = []
    eval_ns = 0
    reached = False
    for e in range(cfg["epochs"]):
        t, b, st = epoch(e)
        epochs += t
        if batching is not None:
            batching += b
        batch_stats += st
        t0 = clock()
        value = accuracy(adapter.logits(), graph)[split]
        sync()
        eval_ns += clock() - t0
        curve.append(None if value is None else round(value, 6))
        if value is None:          # not finite: a diverged model never reaches anything
            break
        if value >= target:
            reached = True
            break
    run_s = sum(epochs) / 1e9
    finite = [v for v in curve if v is not None]
    tta = {**until, "reached": reached, "cap": cfg["epochs"],
           "epochs": len(epochs) if reached else None, "train_s": run_s if reached else None,
           "epochs_run": len(epochs), "train_s_run": run_s, "eval_s": eval_ns / 1e9, "evals": len(curve),
           f"{metric}_per_epoch": curve, f"best_{metric}": max(finite) if finite else None}
    return Training(epochs, [], batching, batch_stats=batch_stats, tta=tta)


ML_MODULES = ("torch", "tensorflow", "dgl", "torch_geometric", "spektral", "graph_nets", "sonnet", "jax", "jraph")


def isolation() -> dict:
    """What this child's process actually ran with: which ML libraries were loaded, the thread
    pools and GPU memory settings they report. Each run has its own process, so these never leak."""
    info: dict = {"pid": os.getpid(),
                  "ml_modules": [m for m in ML_MODULES if m in sys.modules],
                  "env": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                         "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}}
    try:
        info["affinity"] = sorted(os.sched_getaffinity(0))
    except AttributeError:
        pass
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            info["torch_cuda_memory_fraction"] = torch.cuda.get_per_process_memory_fraction() \
                if hasattr(torch.cuda, "get_per_process_memory_fraction") else None
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        info["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        info["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
        info["tf_gpu_memory_growth"] = {d.name: tf.config.experimental.get_memory_growth(d)
                                        for d in tf.config.list_physical_devices("GPU")}
    if "jax" in sys.modules:
        from gnnbench.adapters.jraph import xla_threads
        info["xla_env"] = {v: os.environ.get(v) for v in ("PJRT_NPROC", "XLA_FLAGS", "JAX_PLATFORMS")}
        info["xla_threads"] = xla_threads()
    return info


def preflight(job: dict, out: dict | None = None):
    """What a run and ``verify`` check before any work, in this order: the library imports
    (``available``; its time and version go to ``out``), it implements the model's task
    (``Adapter.for_task``), the device kind and a CUDA device exist, it implements the model and
    the spec. Returns (adapter, spec, None), or (adapter or None, spec, why it is skipped)."""
    from gnnbench.adapters import adapter_class
    from .specs import spec_from_dict

    cell = job["cell"]
    out = {} if out is None else out
    lib, device = cell["library"], cell["device"]
    spec = spec_from_dict(cell["spec"])
    registered = adapter_class(lib)
    impl = registered.for_task(spec.task)
    adapter = (impl or registered)()
    t0 = time.perf_counter()
    avail = adapter.available()          # imports the library; native compiles (or loads) its kernels here
    out["available_s"] = time.perf_counter() - t0
    out["library_version"] = avail.version
    if not avail.ok:
        return adapter, spec, (f"{lib} unavailable: {avail.reason}"
                               + (f"; install with: {avail.install_hint}" if avail.install_hint else ""))
    if impl is None:
        why = registered.missing_tasks.get(spec.task)
        return adapter, spec, (f"{lib} does not implement the {spec.task} task (model '{cell['model']}')"
                               + (f": {why}" if why else ""))
    if device.split(":")[0] not in adapter.devices:
        return adapter, spec, f"{lib} does not support device '{device}'"
    if device.startswith("cuda"):
        ok, why = _cuda_available()
        if not ok:
            return adapter, spec, why
    why = adapter.unsupported(cell["model"]) or adapter.unsupported_spec(spec)
    return adapter, spec, why or None


def run_verify(job: dict) -> dict:
    """`gnnbench verify` for one cell: compare the adapter with the reference."""
    from .verify import check

    cell, cfg = job["cell"], job["config"]
    adapter, spec, why = preflight(job)
    if why:
        return {"status": "skipped", "error": why}
    adapter.set_threads(cfg["threads"])
    graph = _load(cell, spec, job)
    res = check(adapter, spec, graph, cell["device"], cell["seed"])
    return {"status": "passed" if res["passed"] else "failed", "notes": adapter.notes(), **res}


def _cuda_available() -> tuple[bool, str]:
    try:
        import torch
    except ImportError:
        return False, "CUDA device requested but torch is not installed"
    if not torch.cuda.is_available():
        return False, "CUDA device requested but none is available on this machine"
    return True, ""


_PEAK_BEFORE_RESET = [0.0]


def _peak_rss_mb() -> float:
    """The whole process's peak RSS, including any part before _reset_peak_rss. ru_maxrss lags the
    kernel's live high-water mark (it is folded in lazily), so VmHWM is taken too: without it the
    whole-process peak could read a little below the after-load peak."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux
    return max(round(kb / 1024.0, 1), _vm_hwm_mb() or 0.0, _PEAK_BEFORE_RESET[0])


def _vm_hwm_mb() -> float | None:
    """The kernel's resident high-water mark (VmHWM), which, unlike ru_maxrss, can be reset."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return None


def _reset_peak_rss() -> float | None:
    """Return the peak so far and reset VmHWM to the current RSS (Linux >= 4.0: clear_refs 5), so
    ``peak_rss_after_load_mb`` holds the library's peak with the loaded dataset resident but not
    the transient of building it. The reset lowers ru_maxrss too (same counter), so
    ``peak_rss_mb`` is taken as the larger of the two: the whole process's peak, as before."""
    peak = _vm_hwm_mb()
    _PEAK_BEFORE_RESET[0] = _peak_rss_mb()     # already the max of ru_maxrss, VmHWM and earlier resets
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:      # no /proc (or not Linux): the after-load peak then includes the load
        pass
    return peak


OOM_TYPES = ("OutOfMemoryError", "ResourceExhaustedError")     # torch (CUDA), TensorFlow
OOM_TEXT = ("can't allocate memory", "out of memory", "oom when allocating", "failed to allocate memory")


def is_oom(exc: BaseException) -> bool:
    """An allocation failure the library raised as its own exception type (torch's CPU allocator
    raises RuntimeError "DefaultCPUAllocator: can't allocate memory", TF ResourceExhaustedError)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ in OOM_TYPES:
        return True
    text = str(exc).lower()
    return any(t in text for t in OOM_TEXT)


def _mb(nbytes):
    return None if nbytes is None else round(nbytes / 2**20, 1)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job_path, out_path = argv
    with open(job_path) as fh:
        job = json.load(fh)
    try:
        out = run_verify(job) if job.get("mode") == "verify" else run(job)
    except Exception as exc:  # recorded, never lost: the parent appends it (MemoryError included)
        from .errors import UsageError
        if is_oom(exc):
            out = {"status": "oom", "error": f"{type(exc).__name__} during {PHASE[0] or 'start-up'}: "
                                            + _tail(traceback.format_exc(), 4),
                   "memory": {"peak_rss_mb": _peak_rss_mb(), "device_peak_mb": None}}
        elif isinstance(exc, UsageError):
            out = {"status": "failed", "error": str(exc)}
        else:
            out = {"status": "failed", "error": _tail(traceback.format_exc())}
    out["schema"] = SCHEMA_VERSION
    tmp = out_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(out, fh, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
