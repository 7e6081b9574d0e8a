"""Each library runs in its own child process: TensorFlow and PyTorch in one suite share no
thread pool (nor GPU memory settings, which live in the process)."""
from conftest import run_cli
from gnnbench.results import read_records


def test_torch_and_tensorflow_runs_do_not_share_a_process(tmp_path, data_dir):
    out = tmp_path / "r.jsonl"
    p = run_cli("run", "--libs", "pyg,spektral,graphnets,dgl", "--models", "gcn", "--datasets", "cora",
                "--epochs", "3", "--warmup", "1", "--threads", "1", "--data-dir", data_dir, "--out", out,
                "--no-report")
    assert p.returncode == 0, p.stderr
    recs = {r["cell"]["library"]: r for r in read_records(out)}
    assert all(r["status"] in ("ok", "accuracy_mismatch") for r in recs.values()), \
        {k: r.get("error") for k, r in recs.items()}
    iso = {k: r["isolation"] for k, r in recs.items()}
    assert len({i["pid"] for i in iso.values()}) == 4, "one process per run"
    for torch_lib in ("pyg", "dgl"):
        assert "torch" in iso[torch_lib]["ml_modules"] and "tensorflow" not in iso[torch_lib]["ml_modules"]
        assert iso[torch_lib]["torch_threads"] == 1 and iso[torch_lib]["torch_interop_threads"] == 1
    for tf_lib in ("spektral", "graphnets"):
        assert "tensorflow" in iso[tf_lib]["ml_modules"] and "torch" not in iso[tf_lib]["ml_modules"]
        assert iso[tf_lib]["tf_intra_op_threads"] == 1 and iso[tf_lib]["tf_inter_op_threads"] == 1
    assert all(i["env"]["OMP_NUM_THREADS"] == "1" for i in iso.values())
