"""Each library runs in its own child process: TensorFlow and PyTorch in one suite share no
thread pool (nor GPU memory settings, which live in the process)."""
import sys

import pytest

from conftest import run_cli
from gnnbench.results import read_records

pytestmark = pytest.mark.heavy   # real training or tools in child processes: `pytest -m 'not heavy'` leaves it out


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


# TensorFlow never enters the pytest process: torch lives here (the torch adapters' in-process tests),
# and the TF adapters' checks run in child processes (tests/test_spektral_adapter.py,
# tests/test_graphnets_adapter.py, and every `gnnbench run`/`verify` through conftest.run_cli).
TF_MODULES = ("tensorflow", "tf_keras", "spektral", "graph_nets", "sonnet")


def _tf_in_process() -> list[str]:
    return sorted(m for m in TF_MODULES if sys.modules.get(m) is not None)


class _NoTensorFlowAtTheEnd:
    """Checks again when the session ends, so that a test running after this one is caught too."""

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        found = _tf_in_process()
        if found:
            print(f"\ntests/test_isolation.py: {', '.join(found)} imported in the pytest process "
                  "(run TensorFlow checks in a child process)", file=sys.stderr)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def test_tensorflow_never_imported_in_the_pytest_process(request):
    """Every test module is collected (imported) before any test runs, and the tests in the files
    before this one have run: none of them may have imported TensorFlow here. The same check runs
    again at the end of the session (the run fails then, with a message) for the tests after it."""
    if not request.config.pluginmanager.has_plugin("gnnbench-no-tensorflow"):
        request.config.pluginmanager.register(_NoTensorFlowAtTheEnd(), "gnnbench-no-tensorflow")
    assert not _tf_in_process(), f"imported in the pytest process: {_tf_in_process()}"
