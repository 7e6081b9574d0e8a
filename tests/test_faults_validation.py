"""Fault tests, validation: every invalid value, from the CLI and from a suite file alike, is one
line on stderr naming the option or file:line, exit 2, before any run (no results file)."""
import pytest

from conftest import run_cli

TEST_ENV = {"GNNBENCH_TEST_ADAPTERS": "1"}
BASE = {"gcn": ("gcn", "cora"), "gat": ("gat", "cora"), "gin": ("gin", "mutag")}

# (model, CLI arguments, the suite file's line for the same value, text the error must hold)
RUN_KEYS = [
    (["--epochs", "0"], "epochs: 0", "'epochs' must be an integer >= 1"),
    (["--epochs", "2.7"], "epochs: 2.7", "'epochs' must be an integer >= 1"),
    (["--warmup", "-1"], "warmup: -1", "'warmup' must be an integer >= 0"),
    (["--warmup", "true"], "warmup: true", "'warmup' must be an integer >= 0"),
    (["--repeats", "0"], "repeats: 0", "'repeats' must be an integer >= 1"),
    (["--timeout", "0"], "timeout: 0", "'timeout' must be a finite number > 0"),
    (["--timeout", "inf"], "timeout: .inf", "'timeout' must be a finite number > 0"),
    (["--threads", "0"], "threads: 0", "'threads' must be an integer >= 1"),
    (["--threads", "9999"], "threads: 9999", "use --oversubscribe"),
    (["--memory-limit", "0"], "memory_limit_gb: 0", "'memory_limit_gb' must be a finite number > 0"),
    (["--rss-limit", "nan"], "rss_limit_gb: .nan", "'rss_limit_gb' must be a finite number > 0"),
]
HYPER = [
    ("gcn", "hidden=0", "gcn.hidden must be an integer >= 1"),
    ("gcn", "layers=0", "gcn.layers must be an integer >= 1"),
    ("gcn", "dropout=2", "gcn.dropout must be a finite number >= 0 and < 1"),
    ("gcn", "dropout=-0.1", "gcn.dropout must be a finite number >= 0 and < 1"),
    ("gcn", "lr=nan", "gcn.lr must be a finite number > 0"),
    ("gcn", "lr=0", "gcn.lr must be a finite number > 0"),
    ("gcn", "weight_decay=-1", "gcn.weight_decay must be a finite number >= 0"),
    ("gcn", "optimizer=adamw", "valid: adam, sgd"),
    ("gcn", "features=csr", "valid: dense, sparse"),
    ("gat", "heads=0", "gat.heads must be an integer >= 1"),
    ("gat", "out_heads=0", "gat.out_heads must be an integer >= 1"),
    ("gat", "attn_dropout=1", "gat.attn_dropout must be a finite number >= 0 and < 1"),
    ("gat", "negative_slope=-0.2", "gat.negative_slope must be a finite number >= 0"),
    ("gin", "batch_size=0", "gin.batch_size must be an integer >= 1"),
    ("gin", "eps=inf", "gin.eps must be a finite number"),
    ("gin", "num_folds=1", "gin.num_folds must be an integer >= 2"),
    ("gin", "fold=-1", "gin.fold must be an integer >= 0"),
    ("gin", "fold=10", "fold 10 must be less than num_folds 10"),
    ("gin", "hidden=true", "for gin.hidden (expected int)"),
]
SYNTHETIC = [
    ("synthetic:nodes=inf", "bad value for synthetic parameter nodes: 'inf'"),
    ("synthetic:avg_degree=0", "avg_degree>=1"),
    ("synthetic:classes=1", "classes>=2"),
    ("synthetic:nodes=2", "class 1 has no node"),
    ("synthetic:nodes=2.5", "bad value for synthetic parameter nodes: '2.5'"),
]


def _one_line(p, *parts):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gnnbench: error: "), p.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])


def _suite(tmp_path, model="gcn", body="", datasets=None):
    model, dataset = BASE[model]
    text = f"libraries: [test-ok]\nmodels: [{model}]\ndatasets: [{datasets or dataset}]\n# under test:\n{body}\n"
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def _run(tmp_path, data_dir, *args):
    out = tmp_path / "r.jsonl"
    p = run_cli("run", *args, "--data-dir", data_dir, "--out", out, "--no-report", env=TEST_ENV)
    assert not out.exists(), "nothing may be created before the input is valid"
    return p


@pytest.mark.parametrize("cli,line,msg", RUN_KEYS, ids=[c[1] for c in RUN_KEYS])
def test_run_keys_from_cli(tmp_path, data_dir, cli, line, msg):
    _one_line(_run(tmp_path, data_dir, "--suite", _suite(tmp_path), *cli), f": {cli[0]}: ", msg)


@pytest.mark.parametrize("cli,line,msg", RUN_KEYS, ids=[c[1] for c in RUN_KEYS])
def test_run_keys_from_suite(tmp_path, data_dir, cli, line, msg):
    s = _suite(tmp_path, body=line)          # the value sits on line 5
    _one_line(_run(tmp_path, data_dir, "--suite", s), f"{s}:5: ", msg)


def test_infer_reps_from_suite(tmp_path, data_dir):
    s = _suite(tmp_path, body="infer_reps: 0")
    _one_line(_run(tmp_path, data_dir, "--suite", s), f"{s}:5: ", "'infer_reps' must be an integer >= 1")


@pytest.mark.parametrize("model,kv,msg", HYPER, ids=[f"{m}-{kv}" for m, kv, _ in HYPER])
def test_hyperparameters_from_cli(tmp_path, data_dir, model, kv, msg):
    p = _run(tmp_path, data_dir, "--suite", _suite(tmp_path, model), "--set", kv)
    _one_line(p, ": --set", msg)


@pytest.mark.parametrize("model,kv,msg", HYPER, ids=[f"{m}-{kv}" for m, kv, _ in HYPER])
def test_hyperparameters_from_suite(tmp_path, data_dir, model, kv, msg):
    key, value = kv.split("=")
    value = {"nan": ".nan", "inf": ".inf"}.get(value, value)
    s = _suite(tmp_path, model, f"overrides:\n  {BASE[model][0]}:\n    {key}: {value}")   # line 7
    _one_line(_run(tmp_path, data_dir, "--suite", s), f"{s}:7: " if key != "fold" or value != "10" else f"{s}:5: ",
              msg)


@pytest.mark.parametrize("dataset,msg", SYNTHETIC, ids=[d for d, _ in SYNTHETIC])
def test_synthetic_parameters_from_cli(tmp_path, data_dir, dataset, msg):
    _one_line(_run(tmp_path, data_dir, "--suite", _suite(tmp_path), "--datasets", dataset), ": --datasets: ", msg)


@pytest.mark.parametrize("dataset,msg", SYNTHETIC, ids=[d for d, _ in SYNTHETIC])
def test_synthetic_parameters_from_suite(tmp_path, data_dir, dataset, msg):
    s = _suite(tmp_path, datasets=f"'{dataset}'")
    _one_line(_run(tmp_path, data_dir, "--suite", s), f"{s}:3: ", msg)


def test_duplicate_yaml_key_names_file_and_line(tmp_path, data_dir):
    s = _suite(tmp_path, body="epochs: 3\nepochs: 4")
    _one_line(_run(tmp_path, data_dir, "--suite", s), f"{s}:6:", "duplicate key 'epochs' (first on line 5)")


def test_duplicate_key_in_overrides(tmp_path, data_dir):
    s = _suite(tmp_path, body="overrides:\n  gcn: {hidden: 8, hidden: 16}")
    _one_line(_run(tmp_path, data_dir, "--suite", s), f"{s}:6:", "duplicate key 'hidden'")


def test_non_utf8_suite(tmp_path, data_dir):
    s = tmp_path / "s.yaml"
    s.write_bytes(b"libraries: [test-ok]\nname: caf\xe9\n")
    _one_line(_run(tmp_path, data_dir, "--suite", s), f"{s}:2: ", "not UTF-8")


@pytest.mark.heavy
def test_oversubscribe_flag_and_suite_key(tmp_path, data_dir):
    import os
    many = str(len(os.sched_getaffinity(0)) + 1)
    for args in (["--suite", _suite(tmp_path), "--threads", many, "--oversubscribe"],
                 ["--suite", _suite(tmp_path, body=f"threads: {many}\noversubscribe: true")]):
        out = tmp_path / "ok.jsonl"
        p = run_cli("run", *args, "--epochs", "1", "--warmup", "0", "--data-dir", data_dir, "--out", out, "--no-report",
                    env=TEST_ENV)
        assert p.returncode == 0, p.stderr
        assert '"threads": ' + many in out.read_text()
        out.unlink()


@pytest.mark.parametrize("cmd", [["verify", "--libs", "test-ok", "--models", "gcn", "--datasets", "cora"],
                                 ["kernels", "--impls", "native", "--datasets", "cora"]])
def test_verify_and_kernels_threads_at_most_the_cores(data_dir, cmd):
    _one_line(run_cli(*cmd, "--threads", "9999", "--data-dir", data_dir, env=TEST_ENV), "--threads: 'threads' is 9999")


@pytest.mark.parametrize("args", [["compare", "--resamples", "5", "a", "b"], ["run", "--bogus"], ["frob"],
                                  ["report", "--format", "xml", "r.jsonl"]])
def test_click_usage_errors_are_one_line(args):
    _one_line(run_cli(*args))
