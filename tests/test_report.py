"""Report aggregation on hand-made records: pooling, status, relative speed, variants."""
import dataclasses

from conftest import make_record

from gnnbench.report import rows, to_csv, to_markdown
from gnnbench.specs import get_spec


def test_pooling_status_relative_and_variants():
    nodrop = dataclasses.asdict(dataclasses.replace(get_spec("gcn", "cora"), dropout=0.0))
    records = [
        make_record("a", "gcn", 0, [10, 11, 12], 0.81), make_record("a", "gcn", 1, [13, 14], 0.82),
        make_record("b", "gcn", 0, [5, 5, 5], 0.50),                       # fast but wrong
        make_record("c", "gcn", 0, [20, 20], 0.81), make_record("c", "gcn", 1, [], None, status="failed"),
        make_record("a", "gcn", 0, [7, 7], 0.80, spec=nodrop),
    ]
    r = {(x["library"], x["variant"]): x for x in rows(records)}
    a = r[("a", "")]
    assert a["median_ms"] == 12 and a["seeds"] == 2 and a["epochs"] == 5
    assert abs(a["test_acc_mean"] - 0.815) < 1e-12
    assert r[("b", "")]["status"] == "accuracy_mismatch"
    assert r[("c", "")]["status"] == "failed" and r[("c", "")]["error"] == "boom"
    assert r[("a", "dropout=0.0")]["median_ms"] == 7
    # relative to the fastest ok row: b is excluded (mismatch), the dropout-free variant is fastest
    assert r[("a", "dropout=0.0")]["relative"] == 1.0 and abs(a["relative"] - 12 / 7) < 1e-9
    assert r[("b", "")]["relative"] == 5 / 7
    md = to_markdown(records)
    assert "| a | gcn (dropout=0.0) |" in md and "accuracy_mismatch" in md and "81.5 ± 0.7 (n=2) (81.5)" in md
    assert to_csv(records).splitlines()[0].startswith("dataset,device,library,model,variant")


def test_native_ratio_table_uses_fastest_ok_library():
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("native_ratios", ROOT / "benchmarks" / "native_ratios.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    records = [make_record("native", "gcn", 0, [2, 2], 0.81), make_record("pyg", "gcn", 0, [10, 10], 0.81),
               make_record("fastwrong", "gcn", 0, [1, 1], 0.30), make_record("spektral", "gcn", 0, [5, 5], 0.81)]
    text, ok = mod.table(records)
    assert "| cora | cpu | gcn | 2.00 | spektral | 5.00 | 0.400 | met |" in text and ok
    text, ok = mod.table(records + [make_record("tf", "gcn", 0, [3, 3], 0.81)])
    assert "0.667 | MISSED" in text and not ok


def test_growth_exponents_fit_the_size_sweep():
    from gnnbench.report import growth_exponents
    recs = []
    for nodes, status in ((1000, "ok"), (4000, "ok"), (16000, "ok"), (64000, "timeout")):
        ds = f"synthetic:nodes={nodes},avg_degree=10,features=16,classes=4,seed=0,homophily=0.8"
        for lib, power in (("a", 1.0), ("b", 1.5)):
            e = nodes * 10
            st = status if lib == "b" else "ok"
            recs.append(make_record(lib, "gcn", 0, [1e-3 * e ** power] * 5, 0.5, status=st, dataset=ds, dataset__edges=e,
                            memory={"peak_rss_mb": 100 + 0.0 * e, "device_peak_mb": None},
                            drop=("times", "accuracy") if st == "timeout" else ()))
    g = {x["library"]: x for x in growth_exponents(recs)}
    assert abs(g["a"]["time_exponent"] - 1.0) < 1e-9 and g["a"]["sizes"] == 4 and g["a"]["largest_edges"] == 640000
    assert abs(g["b"]["time_exponent"] - 1.5) < 1e-9 and g["b"]["sizes"] == 3 and g["b"]["largest_edges"] == 160000
    assert g["b"]["failed"] == [(640000, "timeout", "phase not recorded")] and abs(g["a"]["memory_exponent"]) < 1e-9
    assert "| 1.50 |" in to_markdown(recs)
    # a run killed while its dataset was being generated has no edge count: named by its nodes
    big = make_record("b", "gcn", 0, [], None, status="oom",
              dataset="synthetic:nodes=256000,avg_degree=10,features=16,classes=4,seed=0,homophily=0.8",
              drop=("times", "accuracy", "dataset"),
              error="resident memory reached 20.05 GiB, over the 20 GiB --rss-limit, during loading the dataset; killed")
    g = {x["library"]: x for x in growth_exponents(recs + [big])}
    assert g["b"]["failed_unloaded"] == [(256000, "oom", "loading the dataset")]
    assert g["b"]["failed"] == [(640000, "timeout", "phase not recorded")]
    md = to_markdown(recs + [big])
    assert "| timeout at 640,000 edges, oom at 256,000 nodes (during loading the dataset) |" in md
    # a run killed after its dataset was built elsewhere in the sweep: named by edges, with its phase
    recs[-1]["error"] = "resident memory reached 20.1 GiB, over the 20 GiB --rss-limit, during training; killed"
    assert "timeout at 640,000 edges (during training) |" in to_markdown(recs)


def test_memory_growth_uses_the_after_load_peak_only_when_every_run_has_it():
    """The whole-process peak carries gnnbench's dataset build (the same for every library); the
    after-load peak is the library's. Slopes and the largest-graph figure use the after-load peak
    when every run of the sweep recorded it, and never mix the two measures in one slope."""
    from gnnbench.report import growth_exponents, memory_key
    recs = []
    for nodes in (1000, 4000, 16000):
        ds = f"synthetic:nodes={nodes},avg_degree=10,features=16,classes=4,seed=0,homophily=0.8"
        for lib in ("a", "b"):
            e = nodes * 10
            # whole-process peak flat (a big load transient), after-load peak linear in the edges
            recs.append(make_record(lib, "gcn", 0, [1.0] * 3, 0.5, dataset=ds, dataset__edges=e,
                            memory={"peak_rss_mb": 5000.0, "load_peak_rss_mb": 5000.0,
                                    "peak_rss_after_load_mb": 0.01 * e, "device_peak_mb": None}))
    g = {x["library"]: x for x in growth_exponents(recs)}
    assert g["a"]["memory_measure"] == "peak_rss_after_load_mb"
    assert abs(g["a"]["memory_exponent"] - 1.0) < 1e-9 and g["a"]["largest_mb"] == 1600.0
    assert g["a"]["largest_load_mb"] == 5000.0
    md = to_markdown(recs)
    assert "| 1.0 / 1600 (5000) |" in md and "peak RSS after the dataset is loaded" in md
    assert "| 5000 / 1600 |" in md and "peak MB (whole / after load)" in md
    # one older run without the split: the whole sweep falls back to the whole-process peak
    old = recs[-1]
    old["memory"] = {"peak_rss_mb": 5000.0, "device_peak_mb": None}
    g = {x["library"]: x for x in growth_exponents(recs)}
    assert g["a"]["memory_measure"] == g["b"]["memory_measure"] == "peak_rss_mb"
    assert abs(g["a"]["memory_exponent"]) < 1e-9 and g["b"]["largest_mb"] == 5000.0
    assert memory_key([]) == "peak_rss_mb"
    # a library skipped at every size is said once, not size by size
    skipped = []
    for r in recs[::2]:        # one run per size
        skipped.append(make_record("c", "gcn", 0, [], None, status="skipped", dataset=r["cell"]["dataset"], error="no sampler",
                           drop=("times", "accuracy")))
    assert "| 0 | – | – | – edges | – / – | skipped at every size |" in to_markdown(recs + skipped)
    # a table without the split keeps the old header
    assert "peak MB (whole" not in to_markdown([make_record("a", "gcn", 0, [1.0], 0.81)])


def test_protocol_line_says_when_runs_differ():
    from gnnbench.report import environment_lines
    a = make_record("a", "gcn", 0, [10], 0.81, config={"warmup": 2, "epochs": 10, "infer_reps": 20})
    b = make_record("b", "gcn", 0, [10], 0.81, config={"warmup": 1, "epochs": 3, "infer_reps": 3, "rss_limit_gb": 20.0})
    same = " ".join(environment_lines([a, dict(a)]))
    assert "2 warm-up epochs, 10 timed epochs" in same and "differ" not in same and "limit" not in same
    mixed = " ".join(environment_lines([a, b]))
    assert "runs differ" in mixed and "2 / 10 / 20 in 1 run(s)" in mixed and "1 / 3 / 3 in 1 run(s)" in mixed
    assert "resident-memory limit per child: 20 GiB" in mixed


def test_to_frame_one_row_per_record(tmp_path):
    from gnnbench.results import FRAME_COLUMNS, append_record, to_frame
    path = tmp_path / "r.jsonl"
    import pandas as pd
    recs = [make_record("a", "gcn", 0, [10.0, 12.0, 14.0], 0.81), make_record("a", "gcn", 1, [11.0], 0.80),
            make_record("b", "gcn", 0, [], None, status="failed")]
    for r in recs:
        append_record(path, r)
    df = to_frame(path)
    assert list(df.columns) == list(FRAME_COLUMNS) and len(df) == 3
    first = df.iloc[0]
    assert (first.library, first.median_ms, first.p25_ms, first.epochs, first.test_acc) == ("a", 12.0, 11.0, 3, 0.81)
    assert df.iloc[2].status == "failed" and pd.isna(df.iloc[2].median_ms) and df.iloc[2].error == "boom\nmore"
    assert df.iloc[1].seed == 1 and df.iloc[0].hardware == "cpu, 2 cores" and df.iloc[0].variant == ""
    assert set(df.file) == {str(path)}
    assert list(to_frame([path, path]).key) == [r["key"] for r in recs] * 2
