"""The runner: each run of a cell in a fresh child process, threads pinned, with a timeout.

Data flows one way: cells -> child runs -> records (appended at once) -> reports.
A crash, OOM kill or timeout in one run is recorded and the suite goes on. A child never outlives
gnnbench: it gets a parent-death signal, and the temp folder of a parent killed outright (SIGKILL)
is removed by the next ``spawn``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from .config import Cell, RunConfig
from .envinfo import cpu_count, environment
from .results import SCHEMA_VERSION, append_record, completed_keys

TMP_PREFIX = "gnnbench-"       # the per-run temp folders
OWNER_FILE = "owner"           # in each: "<pid> <start time>" of the gnnbench process that made it
PR_SET_PDEATHSIG = 1           # <sys/prctl.h>
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def child_env(cell: Cell, threads: int) -> dict[str, str]:
    from gnnbench.adapters import adapter_class, plugin
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(adapter_class(cell.library).child_env(threads))
    # the child imports gnnbench from the same place as the parent
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # and finds a plug-in adapter where this process found it (e.g. a folder put on sys.path at run
    # time); last, so it shadows nothing
    p = plugin(cell.library)
    if p is not None and p.location and not _child_sees(p.location, env["PYTHONPATH"]):
        env["PYTHONPATH"] += os.pathsep + p.location
    return env


def _child_sees(folder: str, pythonpath: str) -> bool:
    """Whether a child of this interpreter has ``folder`` on sys.path without our help: it is on
    PYTHONPATH or one of the interpreter's site-packages (``.pth`` additions aside)."""
    import site
    seen = pythonpath.split(os.pathsep) + site.getsitepackages() + [site.getusersitepackages()]
    real = os.path.realpath(folder)
    return any(d and os.path.realpath(d) == real for d in seen)


@functools.lru_cache(maxsize=None)
def _prctl():
    """libc's ``prctl``, or None where there is none (not Linux). Resolved in the parent: a
    pre-exec hook runs between fork and exec, where loading a library is not safe."""
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _preexec(threads: int, memory_limit_gb: float | None):
    parent, prctl = os.getpid(), _prctl()

    def fn():
        # die with the parent: SIGKILL once the thread that started us ends, however it ends
        # (the child has its own session, so neither Ctrl-C nor a killed terminal reaches it)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != parent:   # the parent died before the signal was armed
                os._exit(1)
        try:  # pin the child to the first `threads` cores it may use
            cores = sorted(os.sched_getaffinity(0))
            if threads < len(cores):
                os.sched_setaffinity(0, cores[:threads])
        except (AttributeError, OSError):
            pass
        if memory_limit_gb:
            import resource
            limit = int(memory_limit_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return fn


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks after boot), '-' where /proc cannot tell,
    None for no such process or a zombie. Together with the pid it names one process: pids are reused."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]
    except FileNotFoundError:
        if os.path.exists("/proc/self/stat"):    # /proc works: there is no such process
            return None
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "-"


def _remove_stale_tmp(tmpdir: str) -> None:
    """Remove the temp folders in ``tmpdir`` whose gnnbench process is gone (a SIGKILL leaves no
    time to clean up): only ``gnnbench-*`` folders of this user that hold gnnbench's owner marker."""
    try:
        entries = list(os.scandir(tmpdir))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(TMP_PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            pid, start = (Path(entry.path) / OWNER_FILE).read_text().split()
            now = _proc_start(int(pid))
        except (OSError, ValueError):
            continue
        reused = "-" not in (start, now) and now != start      # the pid now names another process
        if now is None or reused:
            shutil.rmtree(entry.path, ignore_errors=True)


def _tail(path: Path, lines: int = 12, chars: int = 3000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])[-chars:]


def record_config(cell: Cell, cfg: RunConfig, threads: int) -> dict:
    """The record's ``config``: how the run was measured. A time-to-accuracy run adds ``until`` (its
    target); a run of fixed length has exactly the keys it always had."""
    config = {**dataclasses.asdict(cfg), "threads": threads}
    if cell.until:
        config["until"] = dict(cell.until)
    return config


def run_one(cell: Cell, cfg: RunConfig, run_id: str, data_dir: str | None = None) -> dict:
    """Run one cell+seed in a child process and return its complete record."""
    threads = cfg.threads or cpu_count()
    record = {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "key": cell.key(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cell": {"library": cell.library, "model": cell.model, "dataset": cell.dataset,
                 "device": cell.device, "seed": cell.seed},
        "spec": cell.spec,
        "config": record_config(cell, cfg, threads),
        "env": {**environment(), "threads": threads},
    }
    job = {"cell": cell.to_dict(), "config": record["config"], "data_dir": data_dir}
    rc, child, stderr_tail, wall, watch = spawn(job, child_env(cell, threads), threads, cfg.timeout,
                                                cfg.memory_limit_gb, cfg.rss_limit_gb)
    record["wall_s"] = wall
    if watch.get("rss_killed"):
        record.update(status="oom", memory={"peak_rss_mb": watch["peak_rss_mb"], "device_peak_mb": None},
                      error=f"resident memory reached {watch['peak_rss_mb'] / 1024:.2f} GiB, over the "
                            f"{cfg.rss_limit_gb:g} GiB --rss-limit, during {watch['phase'] or 'start-up'}; "
                            f"killed by gnnbench\n" + stderr_tail)
    elif rc is None:
        record.update(status="timeout", error=f"killed after the {cfg.timeout:g} s timeout, during "
                                              f"{watch['phase'] or 'start-up'}\n" + stderr_tail)
    elif child is not None:
        child.pop("schema", None)
        record.update(child)
        if rc != 0 and record.get("status") == "ok":
            record.update(status="failed", error=f"child exited with {rc} after writing its record")
    else:
        record.update(status=_death_status(rc, stderr_tail, cfg), error=_death_message(rc) + "\n" + stderr_tail)
    record.setdefault("error", "")
    record["env"].update({"library_versions": record.pop("versions", {})})
    _mark_plugin(record, cell.library)
    return record


def _mark_plugin(record: dict, library: str) -> None:
    """A plug-in adapter's record says so: ``plugin`` (its package, version, entry point) and a note
    the reports show."""
    from gnnbench.adapters import plugin
    p = plugin(library)
    if p is None:
        return
    record["plugin"] = p.record()
    note = f"plug-in adapter from the package {p.describe()} ({p.value}), not built into gnnbench"
    record["notes"] = [note] + list(record.get("notes") or [])


def spawn(job: dict, env: dict, threads: int, timeout: float, memory_limit_gb: float | None = None,
          rss_limit_gb: float | None = None):
    """Run ``python -m gnnbench.child`` on ``job``.

    With ``rss_limit_gb`` the parent polls the child's resident set size (every 0.2 s) and kills it
    once it passes the limit: the way to find the largest graph that fits in a machine's memory
    (an address-space limit, ``memory_limit_gb``, is cruder: TensorFlow and torch reserve far more
    address space than they touch).

    Returns (exit code or None on timeout, the child's JSON output or None, stderr tail, wall
    seconds, watch) where watch holds ``rss_killed``, the highest ``peak_rss_mb`` polled and the
    ``phase`` the child last reported (loading the dataset, prepare, training, ...).

    The child dies with the thread that spawned it (``PR_SET_PDEATHSIG``; a no-op without prctl).
    Its temp folder carries an owner marker (pid and start time of this process); each call first
    removes the marked folders, in the same temp dir, whose owner is gone.
    """
    watch = {"rss_killed": False, "peak_rss_mb": None, "phase": None}
    tmpdir = tempfile.gettempdir()
    _remove_stale_tmp(tmpdir)
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX, dir=tmpdir) as tmp:
        tmp = Path(tmp)
        (tmp / OWNER_FILE).write_text(f"{os.getpid()} {_proc_start(os.getpid())}")
        (tmp / "job.json").write_text(json.dumps({**job, "phase_file": str(tmp / "phase")}))
        out_path, stdout, stderr = tmp / "record.json", tmp / "stdout", tmp / "stderr"
        cmd = [sys.executable, "-m", "gnnbench.child", str(tmp / "job.json"), str(out_path)]
        t0 = time.monotonic()
        with open(stdout, "wb") as so, open(stderr, "wb") as se:
            proc = subprocess.Popen(cmd, stdout=so, stderr=se, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True, preexec_fn=_preexec(threads, memory_limit_gb))
            try:
                rc = _wait(proc, t0 + timeout, rss_limit_gb, watch)
            except BaseException:   # Ctrl-C or SIGTERM: the child has its own session, take it down too
                _kill_group(proc)
                raise
        wall = round(time.monotonic() - t0, 3)
        try:
            watch["phase"] = (tmp / "phase").read_text() or None
        except OSError:
            pass
        readable = rc is not None and not watch["rss_killed"] and out_path.exists()
        child = json.loads(out_path.read_text()) if readable else None
        return rc, child, _tail(stderr), wall, watch


def _wait(proc: subprocess.Popen, deadline: float, rss_limit_gb: float | None, watch: dict) -> int | None:
    """Wait for the child; kill it at the deadline (returns None) or when its RSS passes the limit."""
    limit_mb = rss_limit_gb * 1024 if rss_limit_gb else None
    while True:
        left = deadline - time.monotonic()
        try:
            return proc.wait(timeout=max(0.0, min(left, 0.2) if limit_mb else left))
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() >= deadline:
            _kill_group(proc)
            return None
        if limit_mb is None:       # woke early without a limit to check: wait again
            continue
        rss = _rss_mb(proc.pid)
        if rss is not None:
            watch["peak_rss_mb"] = max(watch["peak_rss_mb"] or 0.0, rss)
            if rss > limit_mb:
                _kill_group(proc)
                watch["rss_killed"] = True
                return proc.returncode


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _death_message(rc: int) -> str:
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        hint = " (a SIGKILL gnnbench did not send: often the kernel's OOM killer)" if rc == -signal.SIGKILL else ""
        return f"child killed by {name} before writing its record{hint}"
    return f"child exited with code {rc} before writing its record"


def _death_status(rc: int, stderr_tail: str, cfg: RunConfig) -> str:
    text = stderr_tail.lower()
    if "memoryerror" in text or "bad_alloc" in text or "out of memory" in text:
        return "oom"
    if rc == -signal.SIGKILL and cfg.memory_limit_gb:
        return "oom"
    return "failed"


def pending(cells: list[Cell], out: str | os.PathLike, resume: bool) -> tuple[list[Cell], int]:
    """The cells still to run (with ``resume``: those not already complete in ``out``), and how many are done."""
    done = completed_keys(out) if resume else set()
    todo = [c for c in cells if c.key() not in done]
    return todo, len(cells) - len(todo)


def run_cells(cells: list[Cell], cfg: RunConfig, out: str | os.PathLike, *, resume: bool = False,
              data_dir: str | None = None, progress: bool | None = None, run_id: str | None = None) -> list[dict]:
    """Run every cell not already complete in ``out`` (with resume), one child process after the other on
    this machine; append each record at once. (``--executor ray``: ``ray_executor.run_cells_ray``.)"""
    todo, skipped = pending(cells, out, resume)
    run_id = run_id or new_run_id()
    records = []
    show = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(len(todo), skipped, show)
    with bar, _sigterm_interrupts():
        for cell in todo:
            bar.start(cell)
            rec = run_one(cell, cfg, run_id, data_dir)
            append_record(out, rec)
            records.append(rec)
            bar.finish(rec)
    return records


class _sigterm_interrupts:
    """SIGTERM (a CI job cancelled, `kill`) ends a suite like Ctrl-C: the running child is killed
    with it and the records already appended stay."""

    def __enter__(self):
        self._old = None
        try:
            self._old = signal.signal(signal.SIGTERM, self._raise)
        except ValueError:       # not the main thread: leave signals alone
            pass
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


class _Progress:
    """A rich progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, skipped: int, show: bool):
        self.total, self.skipped, self.show = total, skipped, show and total > 0
        self._p = None

    def __enter__(self):
        if self.show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            self._p = Progress(TextColumn("[bold]cell"), MofNCompleteColumn(), BarColumn(),
                               TextColumn("{task.description}"), TimeElapsedColumn(), transient=False)
            self._p.__enter__()
            self._task = self._p.add_task("", total=self.total)
            if self.skipped:
                self._p.console.print(f"--resume: {self.skipped} finished run(s) kept, {self.total} to run")
        return self

    def start(self, cell: Cell):
        if self._p:
            self._p.update(self._task, description=f"{cell.name} seed {cell.seed}")

    def finish(self, rec: dict):
        if self._p:
            t = rec.get("times", {}).get("median_ms")
            msg = f"{rec['key'].rsplit('/', 2)[0]}: {rec['status']}" + (f", {t:.2f} ms/epoch" if t else "")
            tta = rec.get("time_to_accuracy")
            if tta:
                msg += (f", {tta['metric']} {tta['target']:g} reached in {tta['epochs']} epochs, {tta['train_s']:.2f} s"
                        if tta["reached"] else f", {tta['metric']} {tta['target']:g} not reached in {tta['epochs_run']} epochs")
            self._p.console.print(msg)
            self._p.advance(self._task)

    def __exit__(self, *exc):
        if self._p:
            self._p.__exit__(*exc)
