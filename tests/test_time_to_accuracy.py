"""Time to accuracy (`gnnbench run --until val_acc=X`): the harness trains until its own validation
accuracy first reaches a target, times the training steps only, and keeps these runs apart from
fixed-length ones in keys, --resume, the report and compare."""
import copy
import dataclasses
import time

import numpy as np
import pytest

from conftest import make_record, run_cli
from gnnbench.compare import compare, to_markdown as compare_md
from gnnbench.config import Cell, Suite, expand, load_suite
from gnnbench.errors import UsageError
from gnnbench.report import rows, to_markdown, tta_rows
from gnnbench.results import read_records
from gnnbench.specs import get_spec
from gnnbench import validate

TEST_ENV = {"GNNBENCH_TEST_ADAPTERS": "1"}


def _run(out, data_dir, *args, lib="test-ref", model="gcn"):
    p = run_cli("run", "--libs", lib, "--models", model, "--datasets", "cora", "--threads", "1",
                "--data-dir", data_dir, "--out", out, *args, env=TEST_ENV, timeout=300)
    assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def low(tmp_path_factory, data_dir):
    """test-ref (the NumPy reference GCN, a model that learns) until val_acc 0.5, at most 60 epochs."""
    out = tmp_path_factory.mktemp("tta") / "low.jsonl"
    p = _run(out, data_dir, "--until", "val_acc=0.5", "--epochs", "60")
    return out, p


# --- the run mode ---------------------------------------------------------------------------------


@pytest.mark.heavy
def test_reaches_a_low_target_in_few_epochs(low):
    out, p = low
    (r,) = read_records(out)
    t = r["time_to_accuracy"]
    assert r["status"] == "ok" and t["reached"] is True and t["target"] == 0.5 and t["source"] == "given"
    assert 1 <= t["epochs"] <= 30, t
    curve = t["val_acc_per_epoch"]
    assert len(curve) == t["epochs"] == t["epochs_run"] == t["evals"] == len(r["times"]["epoch_ms"])
    assert curve[-1] >= 0.5 and all(v < 0.5 for v in curve[:-1]), "stops at the first epoch that reaches it"
    assert t["train_s"] == pytest.approx(sum(r["times"]["epoch_ms"]) / 1e3, rel=1e-3)
    assert t["eval_s"] > 0 and t["cap"] == 60
    assert r["config"]["until"]["target"] == 0.5 and r["config"]["warmup"] == 0
    assert "/until-val_acc=0.5/seed0" in r["key"]
    # its own table in the report, never a row of the epoch-time table
    assert "## Time to accuracy" in p.stdout and "| test-ref | gcn | val_acc ≥ 0.5 | 1/1 in ≤ 60 |" in p.stdout
    assert "| test-ref | gcn | " not in p.stdout.split("## Time to accuracy")[0]


@pytest.mark.heavy
def test_unreachable_target_runs_to_the_cap(tmp_path, data_dir):
    out = tmp_path / "r.jsonl"
    _run(out, data_dir, "--until", "val_acc=1.0", "--epochs", "4", "--no-report")
    (r,) = read_records(out)
    t = r["time_to_accuracy"]
    assert r["status"] == "ok" and t["reached"] is False and t["epochs"] is None and t["train_s"] is None
    assert t["epochs_run"] == t["cap"] == 4 == len(t["val_acc_per_epoch"]) == len(r["times"]["epoch_ms"])
    assert t["train_s_run"] == pytest.approx(sum(r["times"]["epoch_ms"]) / 1e3, rel=1e-3)
    assert t["best_val_acc"] == max(t["val_acc_per_epoch"]) < 1.0


@pytest.mark.heavy
def test_evaluation_time_is_not_in_the_training_time(monkeypatch, data_dir):
    """logits() sleeps 60 ms: five evaluations (0.3 s) are in eval_s, none of it in the training clock."""
    import gnnbench.adapters as registry
    from gnnbench import child
    from gnnbench.adapters.testing import FakeAdapter

    class SlowEval(FakeAdapter):
        def logits(self):
            time.sleep(0.06)
            return super().logits()

    monkeypatch.setattr(registry, "adapter_class", lambda name: SlowEval)
    spec = dataclasses.asdict(get_spec("gcn", "cora"))
    job = {"cell": {"library": "test-ok", "model": "gcn", "dataset": "cora", "device": "cpu", "spec": spec, "seed": 0,
                    "until": {"metric": "val_acc", "target": 1.0, "source": "given"}},
           "config": {"threads": 1, "epochs": 5, "warmup": 0, "infer_reps": 1}, "data_dir": data_dir}
    out = child.run(job)
    t = out["time_to_accuracy"]
    assert t["evals"] == 5 and t["eval_s"] >= 5 * 0.06
    assert t["train_s_run"] == pytest.approx(sum(out["times"]["epoch_ms"]) / 1e3, rel=1e-3)
    assert t["train_s_run"] < 0.15, t          # the logistic-regression steps take a few ms in all
    assert max(out["times"]["epoch_ms"]) < 60, "no epoch holds an evaluation"


def test_the_target_is_scored_on_the_harness_validation_mask(monkeypatch, data_dir):
    """Logits right on the validation nodes only (and wrong elsewhere): the validation accuracy is 1.0
    from the first epoch, the test accuracy low; the harness's own val mask decides."""
    import gnnbench.adapters as registry
    from gnnbench import child
    from gnnbench.adapters.testing import FakeAdapter

    class ValOnly(FakeAdapter):
        def prepare(self, graph, spec, device, seed, weights):
            super().prepare(graph, spec, device, seed, weights)
            self.val = np.asarray(graph.val_mask, bool)

        def logits(self):
            z = np.zeros((self.x.shape[0], self.w.shape[1]), np.float32)
            z[np.arange(len(self.y)), (self.y + 1) % self.w.shape[1]] = 1.0      # wrong everywhere
            val = self.val
            z[val] = 0.0
            z[np.flatnonzero(val), self.y[val]] = 1.0                              # right on val
            return z

    monkeypatch.setattr(registry, "adapter_class", lambda name: ValOnly)
    spec = dataclasses.asdict(get_spec("gcn", "cora"))
    job = {"cell": {"library": "test-ok", "model": "gcn", "dataset": "cora", "device": "cpu", "spec": spec, "seed": 0,
                    "until": {"metric": "val_acc", "target": 0.99, "source": "given"}},
           "config": {"threads": 1, "epochs": 5, "warmup": 0, "infer_reps": 1}, "data_dir": data_dir}
    out = child.run(job)
    t = out["time_to_accuracy"]
    assert t["reached"] and t["epochs"] == 1 and t["val_acc_per_epoch"] == [1.0], t
    assert out["accuracy"]["test"] == 0.0 and out["status"] == "ok"


@pytest.mark.heavy
def test_sampled_task_trains_to_the_target(tmp_path, data_dir):
    """Neighbour-sampled SAGE has the validation split too: the native library, to a low target."""
    pytest.importorskip("torch")
    out = tmp_path / "r.jsonl"
    _run(out, data_dir, "--until", "val_acc=0.3", "--epochs", "10", "--no-report", lib="native", model="sage-sampled")
    (r,) = read_records(out)
    if r["status"] == "skipped":
        pytest.skip(r["error"])
    t = r["time_to_accuracy"]
    assert r["status"] == "ok" and t["reached"] and len(r["times"]["sample_ms"]) == t["epochs_run"], r
    assert t["train_s"] == pytest.approx(sum(r["times"]["epoch_ms"]) / 1e3, rel=1e-3)


# --- identity and --resume ------------------------------------------------------------------------


@pytest.mark.heavy
def test_key_and_resume_keep_modes_apart(tmp_path, data_dir):
    spec = dataclasses.asdict(get_spec("gcn", "cora"))
    plain = Cell("test-ok", "gcn", "cora", "cpu", spec, 0)
    assert plain.key() == f"test-ok/gcn/cora/cpu/{plain.spec_hash()}/seed0", "fixed-length keys never change"
    out = tmp_path / "r.jsonl"
    common = ("--epochs", "2", "--no-report", "--resume")
    _run(out, data_dir, "--warmup", "0", *common, lib="test-ok")
    _run(out, data_dir, "--until", "val_acc=1.0", *common, lib="test-ok")
    keys = [r["key"] for r in read_records(out)]
    assert keys == [plain.key(), plain.key().replace("/seed0", "/until-val_acc=1/seed0")]
    first = read_records(out)
    assert "until" not in first[0]["config"] and "time_to_accuracy" not in first[0]
    for args in (("--warmup", "0"), ("--until", "val_acc=1.0")):       # both complete: nothing runs
        _run(out, data_dir, *args, *common, lib="test-ok")
    assert read_records(out) == first
    _run(out, data_dir, "--until", "val_acc=0.99", *common, lib="test-ok")   # another target: another run
    assert [r["key"].split("/")[-2] for r in read_records(out)][2:] == ["until-val_acc=0.99"]


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value,msg", [
    ("val_acc=2", "must be a fraction in (0, 1]"), ("val_acc=0", "must be a fraction in (0, 1]"),
    ("val_acc=nan", "must be a fraction in (0, 1]"), ("val_acc=", "must be a fraction in (0, 1]"),
    ("loss=0.1", "names the metric 'loss'"), ("test_acc=0.8", "names the metric 'test_acc'"),
])
def test_until_values(value, msg):
    with pytest.raises(UsageError, match=msg.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        validate.until(value)


def test_until_forms_and_the_reference_target(monkeypatch):
    monkeypatch.setenv("GNNBENCH_TEST_ADAPTERS", "1")
    assert validate.until("val_acc=0.75") == {"metric": "val_acc", "target": 0.75}
    assert validate.until("val_acc=ref") == validate.until(" val_acc ") == {"metric": "val_acc", "target": None}
    s = Suite("t", ["test-ok"], ["gcn", "gat"], ["cora", "citeseer"], until=validate.until("val_acc"))
    cells = {(c.model, c.dataset): c.until for c in expand(s)}
    assert cells[("gcn", "cora")] == {"metric": "val_acc", "target": 0.79, "source": "ref", "reference_pct": 81.5,
                                      "band_pct": 2.5}
    assert cells[("gat", "citeseer")]["target"] == 0.7


def _one_line(p, *parts):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gnnbench: error: "), p.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])


@pytest.mark.parametrize("args,msg", [
    (["--until", "val_acc=1.5"], "--until: 'until' val_acc must be a fraction in (0, 1]"),
    (["--until", "val_acc=0.5", "--warmup", "3"], "--warmup: 3 warm-up epochs, but a time-to-accuracy run"),
    (["--until", "val_acc", "--models", "gin", "--datasets", "mutag"], "--until: gin is graph classification"),
    (["--until", "val_acc=ref", "--datasets", "synthetic:nodes=200"],
     "--until: no published reference accuracy for gcn on synthetic:"),
    (["--until", "val_acc", "--models", "sage-sampled"], "no published reference accuracy for sage-sampled on cora"),
], ids=["range", "warmup", "graph-task", "no-reference", "no-reference-sampled"])
def test_cli_errors_are_one_line(tmp_path, data_dir, args, msg):
    out = tmp_path / "r.jsonl"
    opts = {"--models": "gcn", "--datasets": "cora"}
    rest = []
    it = iter(args)
    for a in it:
        if a in opts:
            opts[a] = next(it)
        else:
            rest.append(a)
    p = run_cli("run", "--libs", "test-ok", *[x for kv in opts.items() for x in kv], *rest, "--data-dir", data_dir,
                "--out", out, env=TEST_ENV)
    _one_line(p, msg)
    assert not out.exists()


def test_suite_key(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("GNNBENCH_TEST_ADAPTERS", "1")
    path = tmp_path / "s.yaml"
    path.write_text("libraries: [test-ok]\nmodels: [gcn]\ndatasets: [cora]\nuntil: val_acc=0.6\n")
    s = load_suite(str(path))
    assert s.until == {"metric": "val_acc", "target": 0.6} and s.run.warmup == 0
    assert expand(s)[0].until["target"] == 0.6
    for body, line, msg in (("until: {val_acc: 0.7}", 4, "'until' must be written val_acc=X"),
                            ("until: val_acc=0.7\nwarmup: 10", 5, "'warmup' is 10, but a time-to-accuracy suite")):
        path.write_text(f"libraries: [test-ok]\nmodels: [gcn]\ndatasets: [cora]\n{body}\n")
        _one_line(run_cli("run", "--suite", path, "--data-dir", data_dir, "--out", tmp_path / "r.jsonl",
                          env=TEST_ENV), f"{path}:{line}: ", msg)


# --- report and compare ---------------------------------------------------------------------------


def tta(lib, seed, epoch_ms, reached_at, target=0.79, source="ref", status="ok"):
    """A hand-made time-to-accuracy record: ``reached_at`` epochs to the target, None for not reached."""
    until = {"metric": "val_acc", "target": target, "source": source}
    run_s = sum(epoch_ms) / 1e3
    extra = {"time_to_accuracy": {**until, "reached": reached_at is not None, "cap": 50,
                                  "epochs": reached_at, "train_s": run_s if reached_at else None,
                                  "epochs_run": len(epoch_ms), "train_s_run": run_s, "eval_s": 0.01 * len(epoch_ms),
                                  "evals": len(epoch_ms), "val_acc_per_epoch": [0.5] * len(epoch_ms),
                                  "best_val_acc": 0.8 if reached_at else 0.6}} if status == "ok" else {}
    return make_record(lib, "gcn", seed, epoch_ms, 0.78, status=status, drop=() if status == "ok" else ("times",),
                       key=lambda k: k.replace(f"/seed{seed}", f"/until-val_acc={target:g}/seed{seed}"),
                       config={"epochs": 50, "warmup": 0, "threads": 2, "until": until}, **extra)


def test_report_table_ranks_by_time_to_target_and_by_epoch_time():
    records = [
        tta("fast-epochs", 0, [1.0] * 40, 40), tta("fast-epochs", 1, [1.0] * 44, 44),   # 40-44 ms to target
        tta("few-epochs", 0, [2.0] * 10, 10), tta("few-epochs", 1, [2.0] * 12, 12),     # 20-24 ms
        tta("half", 0, [1.5] * 8, 8), tta("half", 1, [1.5] * 50, None),                  # one seed of two
        tta("broken", 0, [], None, status="failed"),
        make_record("fast-epochs", "gcn", 0, [9.0, 9.0], 0.81),                                   # a fixed-length run
    ]
    t = {r["library"]: r for r in tta_rows(records)}
    assert t["few-epochs"]["rank_tta"] == 1 and t["fast-epochs"]["rank_tta"] == 2 and t["half"]["rank_tta"] is None
    assert t["fast-epochs"]["rank_epoch"] == 1 and t["half"]["rank_epoch"] == 2 and t["few-epochs"]["rank_epoch"] == 3
    assert t["few-epochs"]["epochs_to_target"] == 11 and t["few-epochs"]["s_to_target"] == pytest.approx(0.022)
    assert t["half"]["reached"] == 1 and t["half"]["seeds"] == 2 and t["broken"]["status"] == "failed"
    (fixed,) = rows(records)                  # the epoch-time table holds the fixed-length run alone
    assert fixed["library"] == "fast-epochs" and fixed["median_ms"] == 9.0 and fixed["seeds"] == 1
    md = to_markdown(records)
    assert ("| cora | cpu | few-epochs | gcn | val_acc ≥ 0.79 (ref − band) | 2/2 in ≤ 50 | 11 | 0.022 | 2.00 | "
            "0.110 | 1 | 3 | ok |") in md
    assert "| half | gcn | val_acc ≥ 0.79 (ref − band) | 1/2 in ≤ 50 (best 0.700) |" in md
    assert "| broken | gcn |" in md and "failed: boom" in md
    assert md.index("## cora on cpu") < md.index("## Time to accuracy")
    # a file without time-to-accuracy runs has no such section
    assert "Time to accuracy" not in to_markdown(records[-1:])


def test_compare_time_to_target():
    base = [tta("a", s, list(np.full(20 + s, 5.0) + 0.01 * np.arange(20 + s)), 20 + s) for s in range(3)]
    same = copy.deepcopy(base)
    for r in same:
        r["time_to_accuracy"]["train_s"] *= 1.02
    res = compare(base, same)
    (row,) = res["cells"]
    assert row["verdict"] == "unchanged" and row["until"]["target"] == 0.79 and row["ratio"] == pytest.approx(1.02)
    # more epochs to the target, the same epoch times: +50 %, regressed (the count moved)
    slow = [tta("a", s, list(np.full(30 + s, 5.0) + 0.01 * np.arange(30 + s)), 30 + s) for s in range(3)]
    (row,) = compare(base, slow)["cells"]
    assert row["verdict"] == "regressed" and row["epochs_to_target"] == [21, 31], row
    assert "median time to target +" in row["reasons"][0] and "epochs to target 21 → 31" in row["reasons"][0]
    (row,) = compare(slow, base)["cells"]
    assert row["verdict"] == "improved"
    # +30 % seconds, same epochs, epoch times indistinguishable: noise, not counted
    noisy = copy.deepcopy(base)
    for r in noisy:
        r["time_to_accuracy"]["train_s"] *= 1.3
    (row,) = compare(base, noisy)["cells"]
    assert row["verdict"] == "unchanged" and "not counted" in row["notes"][0], row
    # fewer seeds reach it
    lost = copy.deepcopy(base)
    lost[2] = tta("a", 2, [5.0] * 50, None)
    (row,) = compare(base, lost)["cells"]
    assert row["verdict"] == "regressed" and row["reasons"][0] == "reached the target in 3/3 → 2/3 seeds"
    # never pooled with a fixed-length run of the same cell
    fixed = make_record("a", "gcn", 0, [5.0] * 20, 0.81)
    res = compare(base + [fixed], same + [fixed])
    assert sorted(bool(r.get("until")) for r in res["cells"]) == [False, True]
    md = compare_md(res)
    assert "#### Time to accuracy" in md and "| unchanged | a | gcn | cora | cpu | val_acc ≥ 0.79 | " in md
    (row,) = [r for r in compare(base, [fixed])["cells"] if r["verdict"] == "missing"]
    assert "run mode differs between the files (until val_acc ≥ 0.79 → fixed length)" in row["notes"]


@pytest.mark.heavy
def test_compare_cli_on_real_runs(low, tmp_path):
    out, _ = low
    p = run_cli("compare", out, out, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "#### Time to accuracy" in p.stdout and "| unchanged | test-ref | gcn | cora | cpu | val_acc ≥ 0.5 |" in p.stdout
