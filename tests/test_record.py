"""The typed record (gnnbench.record): schema versions, upgrades, round trips, docs/records.md."""
import json
from pathlib import Path

import pytest

from gnnbench.errors import UsageError

def test_readers_accept_schema_1_and_2_and_return_upgraded_records(tmp_path):
    from gnnbench.record import SCHEMA_VERSION, Record
    from gnnbench.results import read_records
    old = {"schema": 1, "cell": {"library": "x"}, "key": "a", "memory": {"peak_rss_mb": 10.0},
           "config": {"epochs": 1}, "times": {"epoch_ms": [1.0]}}
    new = {"schema": 2, "cell": {"library": "x"}, "key": "b", "memory": {"peak_rss_mb": 11.0, "load_peak_rss_mb": 5.0,
                                                                        "peak_rss_after_load_mb": 9.0}}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(old) + "\n" + json.dumps(new) + "\n")
    a, b = read_records(path)
    assert SCHEMA_VERSION == 2 and a["schema"] == b["schema"] == 2
    assert a["memory"] == {"peak_rss_mb": 10.0, "load_peak_rss_mb": None, "peak_rss_after_load_mb": None}
    assert a["times"]["first_epoch_ms"] is None and a["config"]["rss_limit_gb"] is None
    assert b["memory"]["load_peak_rss_mb"] == 5.0
    rec = Record.from_dict(old)                      # typed access upgrades too
    assert rec.schema == 2 and rec.memory.load_peak_rss_mb is None and rec.memory.peak_rss_mb == 10.0
    assert rec.dataset is None and "dataset" not in rec.to_dict()      # absent stays absent


def test_a_record_of_an_unknown_schema_is_a_one_line_error(tmp_path):
    from gnnbench.record import Record
    from gnnbench.results import read_records
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"schema": 3, "cell": {}, "key": "k"}) + "\n")
    with pytest.raises(UsageError) as exc:
        read_records(path)
    assert "schema version 3 is not supported" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ValueError):
        Record.from_dict({"schema": 3, "cell": {}, "key": "k"})


def test_every_committed_record_round_trips_through_the_typed_record():
    """Record.from_dict(d).to_dict() is the upgraded dict, key for key (nothing lost or added), and
    every field the writers wrote is one the schema names (no `extra`)."""
    from gnnbench.record import Record, _Part, upgrade
    root = Path(__file__).resolve().parents[1] / "results"
    n = 0
    for f in sorted(root.rglob("*.jsonl")):
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            rec = Record.from_dict(d)
            assert rec.to_dict() == upgrade(d), f"{f}: {d['key']}"
            parts = [rec] + [getattr(rec, k) for k in vars(rec) if isinstance(getattr(rec, k), _Part)]
            assert not [p.extra for p in parts if p.extra], f"{f}: {d['key']} has fields the schema does not name"
            n += 1
    assert n > 500


def test_docs_records_md_is_generated_from_the_record():
    """docs/records.md is `python -m gnnbench.record --markdown`; a field added to the record without
    regenerating it fails this test."""
    import dataclasses

    from gnnbench import record
    doc = (Path(__file__).resolve().parents[1] / "docs" / "records.md").read_text()
    assert doc == record.markdown(), "docs/records.md is stale: python -m gnnbench.record --markdown > docs/records.md"
    grown = dataclasses.make_dataclass(
        "Record", [("new_field", "int | None", dataclasses.field(default=None, metadata={"doc": "a new field"}))],
        bases=(record.Record,))
    grown.__module__ = record.__name__
    assert "| `new_field` | integer | a new field |" in record.markdown(grown)
    assert record.markdown(grown) != doc
