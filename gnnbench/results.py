"""Results files: append-only JSON Lines, one record per child run.

Every record is written at once (flushed and fsynced), so a crash of the
harness loses nothing already measured. Nothing here ever truncates a file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import UsageError

SCHEMA_VERSION = 1
STATUSES = ("ok", "accuracy_mismatch", "failed", "timeout", "oom", "skipped")
# a run with one of these statuses is complete: --resume does not run it again
COMPLETE = ("ok", "accuracy_mismatch", "skipped")


def append_record(path: str | os.PathLike, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, allow_nan=False, default=_jsonable) + "\n"
    with open(path, "a+b") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":       # a torn last line from a killed writer: keep it, start afresh
                fh.write(b"\n")
        fh.write(line.encode())
        fh.flush()
        os.fsync(fh.fileno())


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_records(path: str | os.PathLike) -> list[dict]:
    """All records of a results file; a corrupt line is an error naming file and line."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"results file not found: {path}")
    records = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read results file {path}: {exc}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{n}: corrupt results line ({exc.msg})") from None
        if not isinstance(rec, dict) or "schema" not in rec or "cell" not in rec:
            raise UsageError(f"{path}:{n}: not a gnnbench record (no schema/cell)")
        if rec["schema"] != SCHEMA_VERSION:
            raise UsageError(f"{path}:{n}: schema version {rec['schema']} is not supported "
                             f"(this gnnbench reads {SCHEMA_VERSION})")
        records.append(rec)
    return records


def completed_keys(path: str | os.PathLike) -> set[str]:
    if not Path(path).exists():
        return set()
    return {r["key"] for r in read_records(path) if r.get("status") in COMPLETE}


def latest_per_key(records: list[dict]) -> list[dict]:
    """The last record of each run key, in first-seen order."""
    latest: dict[str, dict] = {}
    for r in records:
        latest[r["key"]] = r
    return list(latest.values())
