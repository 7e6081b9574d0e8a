"""Results files: append-only JSON Lines, one record per child run.

Every record is written at once (flushed and fsynced), so a crash of the harness loses nothing
already measured. Nothing is ever dropped: a torn last line (a writer killed mid-line) is moved to
``<file>.rejected`` before the next append, a record that cannot be written is kept in a side file
(or printed), and ``repair`` moves bad lines to ``<file>.rejected`` before it rewrites a file.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import sys
import tempfile
from pathlib import Path

from .errors import UsageError
from .record import READABLE, SCHEMA_VERSION, upgrade  # noqa: F401  (SCHEMA_VERSION: what the writers write)
STATUSES = ("ok", "accuracy_mismatch", "failed", "timeout", "oom", "skipped")
# a run with one of these statuses is complete: --resume does not run it again
COMPLETE = ("ok", "accuracy_mismatch", "skipped")
# what gnnbench writes besides results files: an output path with one of these suffixes is refused
REPORT_SUFFIXES = (".md", ".csv", ".png", ".svg")


class WriteError(UsageError):
    """A results file (or a report) could not be written. Exit 2."""


def _same(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs, inputs=(), what="output") -> None:
    """Refuse an output path that is one of the inputs or another output (a results file
    overwritten by its own report or figure)."""
    outputs = [Path(p) for p in outputs if p is not None]
    for i, out in enumerate(outputs):
        for other in [*map(Path, inputs), *outputs[:i]]:
            if _same(out, other):
                raise UsageError(f"{what} {out} is the same file as {other}: it would be overwritten; "
                                 "choose another name")


def check_results_path(out: Path, reports=()) -> None:
    """Before any run: the results file's folder can be created and the file opened for append,
    and it is neither a report path nor the same file as a report gnnbench will write."""
    if out.suffix.lower() in REPORT_SUFFIXES:
        raise UsageError(f"--out {out} is a report path ({out.suffix}); the results file is JSON Lines: "
                         f"use e.g. --out {out.with_suffix('.jsonl')}")
    check_outputs(reports, [out], what="report")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create the folder of results file {out}: {exc.strerror}") from None
    existed = out.exists()
    try:
        fd = _open_locked(out)
        try:
            _repair_tail(fd, out)     # a torn last line goes to .rejected now, not after the first run
        finally:
            os.close(fd)
    except OSError as exc:
        raise WriteError(f"cannot write results file {out}: {exc.strerror or exc}") from None
    if not existed:     # writable: the first record creates it (a run refused later leaves no empty file)
        with contextlib.suppress(OSError):
            out.unlink()


def _finite(obj, path="", bad=None):
    """``obj`` with every NaN/inf float replaced by None; ``bad`` collects where they were."""
    if isinstance(obj, float) and not math.isfinite(obj):
        bad.append(path or "record")
        return None
    if isinstance(obj, dict):
        return {k: _finite(v, f"{path}.{k}" if path else str(k), bad) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v, f"{path}[{i}]", bad) for i, v in enumerate(obj)]
    return obj


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def encode(record: dict) -> str:
    """One JSON line; a value that is not finite is written as null, with a note saying where."""
    plain = json.loads(json.dumps(record, default=_jsonable))   # numpy scalars and arrays -> Python
    bad: list[str] = []
    plain = _finite(plain, bad=bad)
    if bad:
        plain["notes"] = list(plain.get("notes") or []) + [f"not finite, written as null: {', '.join(bad)}"]
    return json.dumps(plain, sort_keys=True, allow_nan=False) + "\n"


def append_record(path: str | os.PathLike, record: dict) -> None:
    """Append one record (fsynced). A torn last line is moved to ``<path>.rejected`` first. If the
    write fails, the record goes to a side file (or stderr) and WriteError says where."""
    path = Path(path)
    line = encode(record).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(path)
        try:
            _repair_tail(fd, path)
            end = os.lseek(fd, 0, os.SEEK_END)
            try:
                _write_all(fd, line)
                os.fsync(fd)
            except OSError:
                try:                 # take back a partial line rather than leave it torn
                    os.ftruncate(fd, end)
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)
    except OSError as exc:
        kept = save_aside(path, line)
        raise WriteError(f"cannot write results file {path}: {exc.strerror or exc}; this run's record was "
                         f"{kept}; the records before it are in {path}") from None


def _open_locked(path: Path) -> int:
    """Open for append under an exclusive lock, on the file now at ``path`` (``repair`` may have
    replaced it while we waited for the lock)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except OSError:
            pass
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _repair_tail(fd: int, path: Path) -> None:
    """A last line without its newline: keep it if it is a whole record, else move it to .rejected."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return
    start = max(0, size - (1 << 20))
    os.lseek(fd, start, os.SEEK_SET)
    chunk = os.read(fd, size - start)
    if chunk.endswith(b"\n"):
        return
    cut = chunk.rfind(b"\n") + 1
    if cut == 0 and start > 0:   # a last line over 1 MiB: not one gnnbench wrote
        raise OSError(f"{path}: last line is over 1 MiB and unterminated (run gnnbench repair {path})")
    tail = chunk[cut:]
    if _check(tail)[0] is not None:
        _write_all(fd, b"\n")
        return
    line_no = _count_lines(fd, start + cut) + 1
    _reject(path, [(line_no, tail, "torn last line (an interrupted write)")])
    os.ftruncate(fd, start + cut)     # the reader that came first has warned about it


def _count_lines(fd: int, upto: int) -> int:
    os.lseek(fd, 0, os.SEEK_SET)
    n, left = 0, upto
    while left > 0:
        block = os.read(fd, min(left, 1 << 20))
        if not block:
            break
        n += block.count(b"\n")
        left -= len(block)
    return n


def rejected_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejected")


def _reject(path: Path, lines) -> None:
    """Append (line number, raw bytes, reason) to ``<path>.rejected``, fsynced."""
    with open(rejected_path(path), "ab") as fh:
        for n, raw, why in lines:
            fh.write(f"# {path.name}:{n}: {why}\n".encode() + raw + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def save_aside(path: Path, line: bytes) -> str:
    """Keep a record that could not be appended: beside the file, else in the temp folder, else on
    stderr. Returns where it went, as a phrase."""
    name = f"{path.name}.unsaved-{os.getpid()}.jsonl"
    for side in (path.with_name(name), Path(tempfile.gettempdir()) / name):
        existed = side.exists()
        try:
            with open(side, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            return f"saved in {side} (append it with: cat {side} >> {path})"
        except OSError:
            if not existed:          # leave no empty or partial side file behind
                try:
                    side.unlink()
                except OSError:
                    pass
    sys.stderr.write(line.decode())
    return "printed above (no file could be written)"


def _check(raw: bytes):
    """(record, None) for a good line, (None, reason) for a bad one."""
    try:
        rec = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, f"corrupt results line ({exc.msg})"
    if not isinstance(rec, dict) or not all(k in rec for k in ("schema", "cell", "key")):
        return None, "not a gnnbench record (no schema/cell/key)"
    if rec["schema"] not in READABLE:
        return None, (f"schema version {rec['schema']} is not supported (this gnnbench reads "
                      f"{', '.join(map(str, READABLE))})")
    return rec, None


def _lines(path: Path):
    """(line number, raw bytes, ends with a newline) for each non-blank line."""
    if not path.exists():
        raise UsageError(f"results file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read results file {path}: {exc.strerror}") from None
    lines = data.split(b"\n")
    for n, raw in enumerate(lines, 1):
        if raw.strip():
            yield n, raw, n < len(lines)


def read_records(path: str | os.PathLike) -> list[dict]:
    """All records of a results file, upgraded to SCHEMA_VERSION (gnnbench.record.upgrade; typed
    access: gnnbench.record.Record.from_dict). A torn last line is skipped with a warning (the next
    append moves it to .rejected); any other bad line is an error naming file, line and the way out."""
    path = Path(path)
    records = []
    for n, raw, terminated in _lines(path):
        rec, why = _check(raw)
        if rec is not None:
            records.append(upgrade(rec))
        elif not terminated:
            print(f"gnnbench: warning: {path}:{n}: torn last line ignored (an interrupted write; the next "
                  f"append moves it to {rejected_path(path).name})", file=sys.stderr)
        else:
            hint = "" if why.startswith("schema") else \
                f"; run 'gnnbench repair {path}' to move bad lines to {rejected_path(path).name}"
            raise UsageError(f"{path}:{n}: {why}{hint}")
    return records


def repair(path: str | os.PathLike) -> tuple[int, int]:
    """Move every bad line to ``<path>.rejected`` (with its line number), then rewrite ``path``
    atomically with the good lines only. Returns (good, bad)."""
    path = Path(path)
    good, bad = [], []
    for n, raw, _ in _lines(path):
        rec, why = _check(raw)
        if rec is None:
            bad.append((n, raw, why))
        else:
            good.append(raw)
    if not bad:
        return len(good), 0
    fd = _open_locked(path)        # no gnnbench append in between
    try:
        _reject(path, bad)
        tmp = path.with_name(f".{path.name}.repair-{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(b"".join(raw + b"\n" for raw in good))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise WriteError(f"cannot repair {path}: {exc.strerror or exc} (the file is unchanged)") from None
    finally:
        os.close(fd)
    return len(good), len(bad)


def completed_keys(path: str | os.PathLike) -> set[str]:
    if not Path(path).exists():
        return set()
    return {r["key"] for r in read_records(path) if r.get("status") in COMPLETE}


# the columns of ``to_frame``, in order: one row per run (record)
FRAME_COLUMNS = (
    "library", "model", "dataset", "device", "seed", "variant", "spec_hash", "hardware", "status",
    "median_ms", "p25_ms", "p75_ms", "mean_ms", "epochs", "first_epoch_ms", "setup_s", "infer_ms",
    "test_acc", "val_acc", "train_acc", "reference_acc", "in_band",
    "peak_rss_mb", "load_peak_rss_mb", "peak_rss_after_load_mb", "device_peak_mb", "params", "library_version",
    "until_metric", "until_target", "reached", "epochs_to_target", "s_to_target",
    "error", "key", "run_id", "timestamp", "file",
)


def frame_row(record: dict, file: str = "") -> dict:
    """One record as a flat row of ``FRAME_COLUMNS`` (missing values None)."""
    from .cells import hardware_of, spec_key, until_of, variant
    from .stats import summarize

    cell = record.get("cell") or {}
    times = record.get("times") or {}
    acc = record.get("accuracy") or {}
    check = record.get("accuracy_check") or {}
    mem = record.get("memory") or {}
    until = until_of(record) or {}
    tta = record.get("time_to_accuracy") or {}
    q = summarize(times.get("epoch_ms") or [])
    return {
        "library": cell.get("library"), "model": cell.get("model"), "dataset": cell.get("dataset"),
        "device": cell.get("device"), "seed": cell.get("seed"), "variant": variant(record),
        "spec_hash": spec_key(record.get("spec")), "hardware": hardware_of(record), "status": record.get("status"),
        "median_ms": q["median"], "p25_ms": q["p25"], "p75_ms": q["p75"], "mean_ms": q["mean"], "epochs": q["n"],
        "first_epoch_ms": times.get("first_epoch_ms"), "setup_s": times.get("setup_s"),
        "infer_ms": times.get("infer_median_ms"),
        "test_acc": acc.get("test"), "val_acc": acc.get("val"), "train_acc": acc.get("train"),
        "reference_acc": check.get("test"), "in_band": check.get("in_band"),
        "peak_rss_mb": mem.get("peak_rss_mb"), "load_peak_rss_mb": mem.get("load_peak_rss_mb"),
        "peak_rss_after_load_mb": mem.get("peak_rss_after_load_mb"), "device_peak_mb": mem.get("device_peak_mb"),
        "params": record.get("params"), "library_version": record.get("library_version"),
        "until_metric": until.get("metric"), "until_target": until.get("target"),
        "reached": tta.get("reached") if tta else None, "epochs_to_target": tta.get("epochs"),
        "s_to_target": tta.get("train_s"),
        "error": record.get("error") or "", "key": record.get("key"), "run_id": record.get("run_id"),
        "timestamp": record.get("timestamp"), "file": file,
    }


def to_frame(paths) -> "pandas.DataFrame":
    """The runs of results files as a pandas DataFrame, one row per record (every record, in file
    order; reports use the latest record of each ``key``), columns FRAME_COLUMNS. For your own
    analysis and plots::

        from gnnbench.results import to_frame
        df = to_frame(["results/citation.jsonl"])
        df[df.status == "ok"].groupby(["dataset", "library", "model"]).median_ms.median()
    """
    import pandas as pd

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows = [frame_row(r, str(p)) for p in paths for r in read_records(p)]
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def write_output(path: str | os.PathLike, text: str, what: str = "report") -> None:
    """Write a report, comparison or table; an OSError is one line naming the file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise WriteError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
