"""The Ray executor: each run (cell x seed) is one Ray task that calls ``runner.run_one`` on its node.

The task spawns the same child process as the local runner (isolation, thread pinning, --timeout,
--rss-limit, the record: all ``run_one``'s); Ray only decides where. Nothing Ray does runs inside the
child, so nothing of it is in the timed region. The driver (the ``gnnbench run`` process) appends and
fsyncs each record as its task finishes (``results.append_record``), so ``--resume`` works across
executors. Each record gains ``node`` (Ray node id, hostname, attempt, the cores it was pinned to)
and carries the environment of the node it ran on (``run_one`` reads it there).

Resources: a task asks for ``num_cpus = threads`` (``num_gpus = 1`` for a CUDA cell) plus the suite's
custom ``resources``. ``placement: exclusive`` runs one timed run per node at a time: the driver
gives each free node one run, pinned to it, asking for all of the node's CPUs. Several runs on one
machine (two Ray nodes on one host, or a node with more CPUs than one run's threads) each take their
own cores (a per-host lock per core), so concurrent runs never share a core.

Code: gnnbench must be importable on every node (installed there, the same version; see docs/ray.md);
the driver also puts its own project root first on the workers' PYTHONPATH (``runtime_env``), which
is what a shared file system or an identical checkout path uses. A worker whose gnnbench version
differs from the driver's records the run as failed, naming both.

Data: raw dataset files are small. The driver reads each suite dataset's raw files once and puts
them in the object store; a task whose node lacks them (its data folder missing or incomplete)
writes them to a temporary data folder there and runs on that; the loader checks every file's
sha256 as always (``datasets.checksums``). Synthetic graphs are generated on the worker from their
parameters (the input fingerprint in the record proves they match).

Faults: a node lost mid-run leaves that run ``failed`` with "node lost: ..." (or, with
``retries``, runs it again on a live node); every other record is written as usual.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import platform
import socket
import sys
import tempfile
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

from .config import Cell, ExecutorConfig, RunConfig
from .errors import UsageError

INSTALL_HINT = "pip install 'gnnbench[ray]'"
LOCAL_OBJECT_STORE = 256 * 2**20     # bytes, for the instance gnnbench starts itself (raw datasets are MBs)
CONNECT_TIMEOUT_S = 10.0
STALL_CHECK_S = 10.0                 # how often the driver checks that every waiting run still fits a live node
CORE_LOCK_DIR = "gnnbench_cores-{uid}"
DATA_PREFIX = "gnnbench_raydata-"
LOST_ERRORS = ("NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "ObjectLostError",
               "OwnerDiedError", "ObjectReconstructionFailedError", "RaySystemError",
               "TaskUnschedulableError",      # pinned to a node that is gone (exclusive placement)
               "TaskCancelledError")          # cancelled by the driver: no live node fits it any longer
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# connecting


def import_ray():
    """The ``ray`` module, or a UsageError (exit 2) with the fix."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, which is not installed for {sys.executable}; install it "
                         f"with: {INSTALL_HINT} (on every node of the cluster)") from None
    return ray


def resolve_address(address: str | None) -> str | None:
    """--ray-address (or the suite's ray_address), else $RAY_ADDRESS, else None: a local instance."""
    return address or os.environ.get("RAY_ADDRESS") or None


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast (one line, exit 2) when nothing listens at ``address`` (ray.init would wait long)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"Ray address '{address}': expected HOST:PORT (the head node's address, e.g. "
                         f"HEAD_ADDRESS:6379), ray://HOST:10001 or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it with "
                         f"`ray start --head` on the head node, or fix --ray-address / RAY_ADDRESS") from None


class RaySession:
    """Ray for one suite: connects to ``address`` or starts a local instance; ``close`` undoes only
    what it did (disconnects, or stops the instance it started, by ray.shutdown)."""

    def __init__(self, address: str | None):
        ray = self.ray = import_ray()
        self.address = resolve_address(address)
        self.owned = False
        if ray.is_initialized():      # a caller (e.g. a notebook) already connected: use it, leave it
            return
        quiet = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        if self.address:
            check_reachable(self.address)
            try:
                ray.init(address=self.address, runtime_env=worker_runtime_env(), **quiet)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
                raise UsageError(f"cannot connect to the Ray cluster at {self.address}: "
                                 f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}; "
                                 f"check that `ray status --address {self.address}` works from here") from None
        else:
            from .envinfo import cpu_count
            ray.init(address="local", num_cpus=cpu_count(), object_store_memory=LOCAL_OBJECT_STORE,
                     runtime_env=worker_runtime_env(), **quiet)
        self.owned = True

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()
        self.owned = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def worker_runtime_env() -> dict:
    """What the workers get from the driver: its project root first on PYTHONPATH (used where that
    path exists on their node: a shared file system, the same checkout path; elsewhere their own
    installation is imported), and gnnbench's own settings (the driver's ``GNNBENCH_*`` variables):
    a worker's environment is otherwise the one its node was started with."""
    env = {k: v for k, v in os.environ.items() if k.startswith("GNNBENCH_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    return {"env_vars": env}


# ---------------------------------------------------------------------------------------------
# resources and nodes


def task_request(cell: Cell, cfg: RunConfig, ex: ExecutorConfig) -> dict:
    """What one run asks Ray for (without exclusive placement): {"CPU": threads, "GPU": 0/1, custom...}."""
    req = {"CPU": float(cfg.threads or 1), **ex.resources}
    if cell.device.startswith("cuda"):
        req["GPU"] = 1.0
    return req


def alive_nodes(ray) -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def fits(req: dict, node: dict, exclusive: bool = False) -> bool:
    res = node.get("Resources") or {}
    return all(res.get(k, 0.0) >= v for k, v in req.items() if not (exclusive and k == "CPU"))


def _describe_nodes(nodes: list[dict]) -> str:
    def one(n):
        res = n.get("Resources") or {}
        shown = {k: v for k, v in res.items() if not k.startswith("node:") and k not in ("memory", "object_store_memory")}
        return f"{n.get('NodeManagerHostname', '?')} {', '.join(f'{k}={v:g}' for k, v in sorted(shown.items()))}"
    return "; ".join(one(n) for n in nodes) or "none alive"


def check_feasible(ray, cells: list[Cell], cfg: RunConfig, ex: ExecutorConfig) -> None:
    """Every run must fit on some live node, else Ray would queue it for ever: one line, exit 2."""
    nodes = alive_nodes(ray)
    for req in {tuple(sorted(task_request(c, cfg, ex).items())) for c in cells}:
        req = dict(req)
        if not any(fits(req, n, ex.placement == "exclusive") for n in nodes):
            want = ", ".join(f"{k}={v:g}" for k, v in sorted(req.items()))
            raise UsageError(f"no node of the Ray cluster offers what a run asks for ({want}); nodes: "
                             f"{_describe_nodes(nodes)}. Lower --threads, or add the resources to a node "
                             f"(ray start --num-cpus N --resources '{{\"name\": 1}}')")


# ---------------------------------------------------------------------------------------------
# data shipped through the object store


def raw_files(name: str, data_dir: str | None) -> tuple[Path, list[str]]:
    """The root holding dataset ``name``'s raw files on this machine, and their paths relative to it."""
    from .datasets import TU_NAMES, locate
    if name in TU_NAMES:
        from .datasets.tu import attributes_path, raw_paths
        root = locate(name, data_dir, download=False)
        paths = [*raw_paths(root, name).values(), *[p for p in [attributes_path(root, name)] if p.exists()]]
    else:
        from .datasets.planetoid import raw_paths
        root = locate(name, data_dir, download=False)
        paths = list(raw_paths(root, name).values())
    return root, [str(p.relative_to(root)) for p in paths]


def data_payload(name: str, data_dir: str | None) -> dict:
    """{relative path: the file's bytes, as on disk} of dataset ``name`` (checked again where it lands)."""
    root, rels = raw_files(name, data_dir)
    return {rel: (root / rel).read_bytes() for rel in rels}


def local_data_dir(data_dir: str | None, rels: list[str]) -> str | None:
    """On a worker: the data folder (``data_dir``, else $GNNBENCH_DATA, else the cache) holding every
    file of ``rels``, or None when none does."""
    from .datasets import data_dirs
    for d in data_dirs(data_dir):
        if all((d / rel).is_file() for rel in rels):
            return str(d)
    return None


def materialize(payload: dict, folder: str | os.PathLike) -> str:
    """Write shipped raw files under ``folder`` (a temporary data folder); return it. Relative
    paths only, inside the folder: a payload never writes elsewhere."""
    folder = Path(folder)
    for rel, data in payload.items():
        target = (folder / rel).resolve()
        if Path(rel).is_absolute() or ".." in Path(rel).parts or folder.resolve() not in target.parents:
            raise UsageError(f"shipped dataset file '{rel}' is not a relative path inside the data folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return str(folder)


@contextlib.contextmanager
def _data_for_run(data_dir: str | None, shipped: dict | None):
    """The data folder a run uses on this node: the driver's when it is here, else a temp folder
    holding the shipped files (removed after the run)."""
    if not shipped:
        yield data_dir
        return
    here = local_data_dir(data_dir, shipped["rels"])
    if here is not None:
        yield here
        return
    import ray
    payload = ray.get(shipped["ref"][0], timeout=300)
    with tempfile.TemporaryDirectory(prefix=DATA_PREFIX) as tmp:
        yield materialize(payload, tmp)


# ---------------------------------------------------------------------------------------------
# cores: concurrent runs on one host never share one


@contextlib.contextmanager
def claimed_cores(n: int, wait_s: float = 120.0):
    """Narrow this thread's CPU affinity to ``n`` cores no other gnnbench run on this host holds
    (an flock per core, released with the process however it ends), so the child ``run_one``
    spawns pins its threads to them. Yields (cores claimed, cores allowed before)."""
    allowed = sorted(os.sched_getaffinity(0))
    if n >= len(allowed):
        yield allowed, allowed
        return
    lock_dir = Path(tempfile.gettempdir()) / CORE_LOCK_DIR.format(uid=os.getuid())
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    held: list = []
    deadline = time.monotonic() + wait_s
    while True:
        for core in allowed:
            if len(held) == n:
                break
            fh = open(lock_dir / f"{core}.lock", "a")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append((core, fh))
            except OSError:
                fh.close()
        if len(held) == n or time.monotonic() > deadline:
            break
        for _, fh in held:           # all or none: two runs holding half each would wait for ever
            fh.close()
        held = []
        time.sleep(0.1)
    try:
        cores = [c for c, _ in held] if len(held) == n else allowed
        os.sched_setaffinity(0, cores)
        yield cores, allowed
    finally:
        os.sched_setaffinity(0, allowed)
        for _, fh in held:
            fh.close()


# ---------------------------------------------------------------------------------------------
# the task


def node_info() -> dict:
    import ray
    return {"id": ray.get_runtime_context().get_node_id(), "hostname": platform.node()}


def execute(cell_d: dict, cfg_d: dict, run_id: str, data_dir, shipped, tracker, attempt: int,
            cores: int, driver_version: str) -> dict:
    """The body of one Ray task: ``run_one`` on this node, the record with ``node`` added."""
    import gnnbench
    from .envinfo import environment
    from .runner import run_one

    cell, cfg = Cell(**cell_d), RunConfig(**cfg_d)
    node = {**node_info(), "attempt": attempt}
    try:       # tell the driver where this run is, before it starts (a lost node then has a name)
        import ray
        ray.get(tracker.started.remote(cell.key(), {**node, "env": environment()}), timeout=30)
    except Exception:
        pass
    if gnnbench.__version__ != driver_version:
        return {"_mismatch": f"this node runs gnnbench {gnnbench.__version__} from {Path(gnnbench.__file__).parent}, "
                             f"the driver {driver_version}: install the same version on every node"}
    with claimed_cores(cores) as (got, allowed), _data_for_run(data_dir, shipped) as here:
        rec = run_one(cell, cfg, run_id, here)
    rec["env"]["cores"] = len(allowed)      # the node's cores, not the ones this run was pinned to
    rec["node"] = {**node, "cores": got}
    return rec


@contextlib.contextmanager
def _make_tracker(ray):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0, max_restarts=0)
    class RunTracker:
        """Which node each run started on (so a run lost with its node is recorded with the node's name)."""

        def __init__(self):
            self.runs = {}

        def started(self, key, info):
            self.runs.setdefault(key, []).append(info)

        def where(self, key):
            return self.runs.get(key, [])

    here = ray.get_runtime_context().get_node_id()
    actor = RunTracker.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True)).remote()
    try:
        yield actor
    finally:
        with contextlib.suppress(Exception):
            ray.kill(actor)


# ---------------------------------------------------------------------------------------------
# the driver


def run_cells_ray(todo: list[Cell], skipped: int, cfg: RunConfig, out, ex: ExecutorConfig, *, run_id: str,
                  data_dir: str | None = None, progress: bool = False) -> list[dict]:
    """Run ``todo`` as Ray tasks; append each record (driver side, fsynced) as its task finishes."""
    import gnnbench
    from .results import append_record
    from .runner import _Progress, _sigterm_interrupts

    if not todo:          # --resume of a complete file: nothing to start a cluster for
        return []
    session = RaySession(ex.ray_address)
    ray = session.ray
    records: list[dict] = []
    inflight: dict = {}
    try:
        check_feasible(ray, todo, cfg, ex)
        effective_dir = data_dir or os.environ.get("GNNBENCH_DATA") or None
        shipped: dict[str, dict] = {}
        for name in dict.fromkeys(c.dataset for c in todo):
            if not name.startswith("synthetic"):
                _, rels = raw_files(name, data_dir)
                shipped[name] = {"rels": rels, "ref": [ray.put(data_payload(name, data_dir))]}
        remote = ray.remote(execute)
        exclusive = ex.placement == "exclusive"
        queue = deque((c, 0) for c in todo)
        busy: set[str] = set()
        last_check = time.monotonic()
        bar = _Progress(len(todo), skipped, progress)
        with bar, _sigterm_interrupts(), _make_tracker(ray) as tracker:
            while queue or inflight:
                _submit(ray, remote, queue, inflight, busy, exclusive, cfg, ex, run_id, effective_dir, shipped,
                        tracker, gnnbench.__version__, bar)
                if not inflight:
                    if queue:     # nothing could start: no live node fits any longer
                        _fail_unplaceable(queue, cfg, run_id, ray, out, records, bar, append_record)
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
                if not ready and time.monotonic() - last_check > STALL_CHECK_S:
                    ready = _unfit(ray, inflight, cfg, ex, exclusive)   # their node gone, none other fits
                    last_check = time.monotonic()
                for ref in ready:
                    cell, attempt, node_id, t0 = inflight.pop(ref)
                    busy.discard(node_id)
                    rec, said = _collect(ray, ref, cell, attempt, cfg, run_id, tracker, t0)
                    if rec is None and attempt < ex.retries:
                        queue.appendleft((cell, attempt + 1))     # node lost: once more, on a live node
                        continue
                    if rec is None:
                        rec = _lost_record(ray, cell, attempt, cfg, run_id, tracker, t0, ex.retries, said)
                    append_record(out, rec)
                    records.append(rec)
                    bar.finish(rec)
    except BaseException:
        for ref in list(inflight):    # Ctrl-C, SIGTERM or a bug: stop the runs, keep what was written
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        session.close()
    return records


def _unfit(ray, inflight, cfg, ex, exclusive) -> list:
    """Runs in flight that no live node can take any longer (Ray would hold them for ever): cancelled,
    and returned as finished so that they are recorded as lost (or retried)."""
    nodes = alive_nodes(ray)
    live = {n["NodeID"] for n in nodes}
    out = []
    for ref, (cell, _, node_id, _) in inflight.items():
        gone = node_id is not None and node_id not in live
        if gone or not any(fits(task_request(cell, cfg, ex), n, exclusive) for n in nodes):
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            out.append(ref)
    return out


def _submit(ray, remote, queue, inflight, busy, exclusive, cfg, ex, run_id, data_dir, shipped, tracker,
            version, bar) -> None:
    if not queue:
        return
    if not exclusive:
        while queue:
            cell, attempt = queue.popleft()
            req = task_request(cell, cfg, ex)
            opts = {"num_cpus": req.pop("CPU"), "num_gpus": req.pop("GPU", 0.0), "resources": req or None,
                    "max_retries": 0, "retry_exceptions": False}
            _launch(remote, opts, inflight, cell, attempt, None, cfg, run_id, data_dir, shipped, tracker,
                    int(cfg.threads or 1), version, bar)
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    for node in alive_nodes(ray):
        if node["NodeID"] in busy or not queue:
            continue
        pick = next((i for i, (c, _) in enumerate(queue) if fits(task_request(c, cfg, ex), node, True)), None)
        if pick is None:
            continue
        cell, attempt = queue[pick]
        del queue[pick]
        req = task_request(cell, cfg, ex)
        cpus = float((node.get("Resources") or {}).get("CPU", 1.0))
        req.pop("CPU")
        opts = {"num_cpus": cpus, "num_gpus": req.pop("GPU", 0.0), "resources": req or None, "max_retries": 0,
                "retry_exceptions": False,
                "scheduling_strategy": NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)}
        busy.add(node["NodeID"])
        _launch(remote, opts, inflight, cell, attempt, node["NodeID"], cfg, run_id, data_dir, shipped, tracker,
                int(cpus), version, bar)


def _launch(remote, opts, inflight, cell, attempt, node_id, cfg, run_id, data_dir, shipped, tracker, cores,
            version, bar) -> None:
    ref = remote.options(name=f"gnnbench {cell.name} seed {cell.seed}", **opts).remote(
        cell.to_dict(), dataclasses.asdict(cfg), run_id, data_dir, shipped.get(cell.dataset), tracker, attempt,
        cores, version)
    inflight[ref] = (cell, attempt, node_id, time.monotonic())
    bar.start(cell)


def _collect(ray, ref, cell, attempt, cfg, run_id, tracker, t0) -> tuple[dict | None, str]:
    """The finished task's record, or (None, what Ray said) when its node or worker was lost."""
    try:
        rec = ray.get(ref, timeout=60)
    except ray.exceptions.RayTaskError as exc:      # our own code raised on the worker
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        return _header(cell, cfg, run_id, _where(ray, tracker, cell), attempt, t0,
                       status="failed", error=f"ray task raised {type(cause).__name__}: {cause}"), ""
    except ray.exceptions.RayError as exc:
        said = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        if type(exc).__name__ in LOST_ERRORS or isinstance(exc, _lost_types(ray)):
            return None, said
        return _header(cell, cfg, run_id, _where(ray, tracker, cell), attempt, t0, status="failed",
                       error=f"ray: {said}"), ""
    if "_mismatch" in rec:
        return _header(cell, cfg, run_id, _where(ray, tracker, cell), attempt, t0, status="failed",
                       error=rec["_mismatch"]), ""
    return rec, ""


def _lost_types(ray) -> tuple:
    ex = ray.exceptions
    return tuple(getattr(ex, n) for n in LOST_ERRORS if hasattr(ex, n))


def _where(ray, tracker, cell) -> dict | None:
    try:
        starts = ray.get(tracker.where.remote(cell.key()), timeout=10)
    except Exception:
        return None
    return starts[-1] if starts else None


def _header(cell: Cell, cfg: RunConfig, run_id: str, started: dict | None, attempt: int, t0: float, **fields) -> dict:
    """A record written by the driver for a run whose task gave none: the same shape as run_one's."""
    from .envinfo import environment
    from .results import SCHEMA_VERSION
    from .runner import record_config
    threads = cfg.threads or (started or {}).get("env", {}).get("cores") or 1
    env = dict((started or {}).get("env") or environment())
    env.update(threads=threads, library_versions={})
    node = {k: v for k, v in (started or {}).items() if k != "env"} or {"id": None, "hostname": None}
    node["attempt"] = attempt
    return {
        "schema": SCHEMA_VERSION, "run_id": run_id, "key": cell.key(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cell": {"library": cell.library, "model": cell.model, "dataset": cell.dataset, "device": cell.device,
                 "seed": cell.seed},
        "spec": cell.spec, "config": record_config(cell, cfg, threads), "env": env,
        "wall_s": round(time.monotonic() - t0, 3), "node": node, **fields,
    }


def _lost_record(ray, cell, attempt, cfg, run_id, tracker, t0, retries, said) -> dict:
    started = _where(ray, tracker, cell)
    if started is None:     # its start report never reached the driver: Ray's error still names the node
        import re
        m = re.search(r"node ID: ([0-9a-f]{16,})", said)
        started = {"id": m.group(1), "hostname": "hostname not reported"} if m else None
    who = f"{started['id']} ({started['hostname']})" if started else "the node it was placed on (it had not started)"
    tries = f" after {attempt + 1} attempts" if attempt else ""
    return _header(cell, cfg, run_id, started, attempt, t0, status="failed",
                   error=f"node lost: Ray node {who} died during this run{tries} ({said}); "
                         f"the other runs are kept: rerun with --resume" + ("" if retries else " or --retries 1"))


def _fail_unplaceable(queue, cfg, run_id, ray, out, records, bar, append_record) -> None:
    nodes = _describe_nodes(alive_nodes(ray))
    while queue:
        cell, attempt = queue.popleft()
        rec = _header(cell, cfg, run_id, None, attempt, time.monotonic(), status="failed",
                      error=f"node lost: no live Ray node fits this run any longer (nodes: {nodes}); "
                            f"rerun with --resume once the cluster has one")
        append_record(out, rec)
        records.append(rec)
        bar.finish(rec)
