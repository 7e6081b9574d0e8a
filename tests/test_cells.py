"""gnnbench.cells: the one status order and its named exception for report rows, the band check."""
from conftest import make_record

from gnnbench.cells import (RAN, ROW_STATUS_ORDER, STATUS_ORDER, band_status, cell_status, cells_of, row_status,
                            spec_key)
from gnnbench.report import rows
from gnnbench.specs import spec_hash


def test_one_order_worst_first_and_the_report_rows_exception():
    assert STATUS_ORDER[-1] == "ok" and set(STATUS_ORDER) == set(ROW_STATUS_ORDER) and set(RAN) < set(STATUS_ORDER)
    # the only difference: a report row shows the seeds that ran beside a skipped one
    assert [s for s in STATUS_ORDER if s not in ("skipped", "accuracy_mismatch")] == \
        [s for s in ROW_STATUS_ORDER if s not in ("skipped", "accuracy_mismatch")]
    assert cell_status(["ok", "skipped", "accuracy_mismatch"]) == "skipped"
    assert row_status(["ok", "skipped", "accuracy_mismatch"]) == "accuracy_mismatch"
    assert cell_status(["ok", "timeout", "oom"]) == row_status(["ok", "timeout", "oom"]) == "oom"
    assert cell_status(["ok", "weird"]) == "failed" and row_status(["ok", "weird"]) == "ok"
    assert cell_status([]) == row_status([]) == "ok"


def test_band_is_checked_on_the_mean_over_seeds_in_report_and_compare():
    # cora GCN: published 81.5 +- 2.5; seeds at 78.5 and 80.5 -> mean 79.5, inside the band although
    # one seed alone is outside it
    recs = [make_record("a", seed=0, test_acc=0.785, status="accuracy_mismatch"),
            make_record("a", seed=1, test_acc=0.805)]
    assert band_status("gcn", "cora", 0.795) == "ok" and band_status("gcn", "cora", 0.70) == "accuracy_mismatch"
    assert band_status("gcn", "no-such-dataset", 0.1) == "ok"
    (row,) = rows(recs)
    (cell,) = cells_of(recs).values()
    assert row["status"] == cell.status == "ok"
    # a skipped seed beside them: the report row still shows the ran seeds, compare calls the cell skipped
    skipped = make_record("a", seed=2, status="skipped", drop=("times", "accuracy"))
    (row,) = rows(recs + [skipped])
    (cell,) = cells_of(recs + [skipped]).values()
    assert (row["status"], cell.status) == ("ok", "skipped")


def test_spec_key_is_the_specs_hash():
    r = make_record()
    assert spec_key(r["spec"]) == spec_hash(r["spec"]) == r["key"].split("/")[4]
