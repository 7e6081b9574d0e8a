"""The Ray executor with the real engine: a local Ray instance gnnbench starts and stops itself, and a
real two-node cluster on this machine (``ray.cluster_utils.Cluster``: head + one worker node, one CPU
each, distinct custom resources) that the tests start and shut down by their own handles.

Runs are tiny (test adapters, a few epochs); every wait is bounded.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_cli
from gnnbench.results import read_records

import ray  # noqa: F401  (make install installs it: the 'ray' extra is in 'all')

pytestmark = pytest.mark.heavy   # real training or tools in child processes: `pytest -m 'not heavy'` leaves it out

TEST_ENV = {"GNNBENCH_TEST_ADAPTERS": "1"}
BASE = ["run", "--libs", "test-ok", "--models", "gcn", "--datasets", "cora", "--warmup", "0", "--threads", "1",
        "--no-report"]


def _env(**extra):
    # the driver subprocess must not pick up a RAY_ADDRESS from the calling shell
    return {**TEST_ENV, "RAY_ADDRESS": "", **extra}


@pytest.fixture(scope="module")
def cluster():
    """Head + one worker node, each --num-cpus 1 with its own custom resource."""
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"node_a": 1},
                                                      "object_store_memory": 100 * 2**20,
                                                      "include_dashboard": False})
    try:
        c.worker = c.add_node(num_cpus=1, resources={"node_b": 1}, object_store_memory=100 * 2**20)
        c.wait_for_nodes(timeout=120)
        yield c
    finally:
        c.shutdown()


def _shape(rec):
    return {k: (sorted(v) if isinstance(v, dict) else type(v).__name__) for k, v in rec.items()}


def test_ray_records_match_local_ones_and_resume_works_across_executors(tmp_path, data_dir):
    """The local Ray instance gnnbench starts itself: a record has the local record's shape plus `node`;
    a file started by the local executor is completed by --executor ray --resume (and the reverse)."""
    out = tmp_path / "r.jsonl"
    args = [*BASE, "--epochs", "3", "--data-dir", data_dir, "--out", out]
    p = run_cli(*args, "--repeats", "1", env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr
    (local,) = read_records(out)
    p = run_cli(*args, "--repeats", "2", "--resume", "--executor", "ray", env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr
    recs = read_records(out)
    assert len(recs) == 2 and recs[0] == local, "only seed 1 ran; the local record is untouched"
    remote = recs[1]
    assert remote["cell"]["seed"] == 1 and remote["status"] == local["status"] != "failed"
    assert "node" not in local
    node = remote.pop("node")
    assert _shape(remote) == _shape(local), "same keys, the same nested keys, the same types"
    assert len(node["id"]) == 56 and node["hostname"] == local["env"]["hostname"] and node["attempt"] == 0
    assert len(node["cores"]) == 1, "pinned to one core of its own"
    assert len(remote["times"]["epoch_ms"]) == 3 and remote["env"]["cores"] == local["env"]["cores"]
    assert remote["isolation"]["affinity"] == node["cores"], "the child ran on the cores the task claimed"
    # the reverse: a file the ray executor finished is complete for the local executor
    p = run_cli(*args, "--repeats", "2", "--resume", env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr
    assert len(read_records(out)) == 2


def test_missing_ray_is_one_line_with_the_fix(tmp_path, data_dir):
    code = ("import sys; sys.modules['ray'] = None; sys.argv = ['gnnbench'] + sys.argv[1:]; "
            "from gnnbench.cli import main; main()")
    p = subprocess.run([sys.executable, "-c", code, *BASE, "--epochs", "2", "--data-dir", data_dir,
                        "--out", str(tmp_path / "r.jsonl"), "--executor", "ray"], capture_output=True, text=True,
                       env={**os.environ, **_env()}, timeout=120, cwd=ROOT)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gnnbench: error: --executor ray needs Ray"), p.stderr
    assert "pip install 'gnnbench[ray]'" in lines[0]
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("address,msg", [
    ("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),
    ("nonsense", "expected HOST:PORT"),
])
def test_unreachable_ray_address_is_one_line(tmp_path, data_dir, address, msg):
    t0 = time.monotonic()
    p = run_cli(*BASE, "--epochs", "2", "--data-dir", data_dir, "--out", tmp_path / "r.jsonl", "--executor", "ray",
                "--ray-address", address, env=_env(), timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gnnbench: error: ") and msg in lines[0], p.stderr
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / "r.jsonl").exists()


def test_ray_address_without_ray_executor_is_a_usage_error(tmp_path, data_dir):
    p = run_cli(*BASE, "--epochs", "2", "--data-dir", data_dir, "--out", tmp_path / "r.jsonl",
                "--ray-address", "127.0.0.1:1", env=_env(), timeout=60)
    assert p.returncode == 2 and "--ray-address needs --executor ray" in p.stderr, p.stderr


def test_unplaceable_run_is_refused_before_any_run(tmp_path, data_dir, cluster):
    suite = tmp_path / "s.yaml"
    suite.write_text("libraries: [test-ok]\nmodels: [gcn]\ndatasets: [cora]\nexecutor: ray\n"
                     "resources: {node_z: 1}\n")
    p = run_cli("run", "--suite", suite, "--epochs", "2", "--warmup", "0", "--threads", "1", "--no-report",
                "--data-dir", data_dir, "--out", tmp_path / "r.jsonl", "--ray-address", cluster.address,
                env=_env(), timeout=180)
    assert p.returncode == 2, p.stderr
    assert "no node of the Ray cluster offers what a run asks for (CPU=1, node_z=1)" in p.stderr, p.stderr
    assert not (tmp_path / "r.jsonl").exists()


def _children_under(pid):
    import psutil
    try:
        return [c for c in psutil.Process(pid).children(recursive=True)
                if "gnnbench.child" in " ".join(c.cmdline())]
    except psutil.Error:
        return []


def test_two_node_suite_uses_both_nodes_and_a_lost_node_costs_only_its_run(tmp_path, data_dir, cluster):
    """Four runs over head + worker; the worker node is removed (its raylet and workers killed) while a
    run is on it: that run is `failed` "node lost", the others are kept, --resume completes the file."""
    from ray._private import ray_constants
    out = tmp_path / "r.jsonl"
    args = [*BASE, "--epochs", "8", "--repeats", "4", "--data-dir", data_dir, "--out", out, "--executor", "ray",
            "--ray-address", cluster.address]
    # each epoch sleeps 0.4 s: a run lasts a few seconds, long enough to be caught on the worker
    env = {**os.environ, **_env(GNNBENCH_TEST_SLEEP_MS="400")}
    driver = subprocess.Popen([sys.executable, "-m", "gnnbench", *map(str, args)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        raylet = cluster.worker.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        deadline = time.monotonic() + 150
        while not _children_under(raylet) and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.2)
        assert _children_under(raylet), "no run started on the worker node"
        worker_id = cluster.worker.node_id
        cluster.remove_node(cluster.worker, allow_graceful=False)
        _, stderr = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, stderr
    recs = read_records(out)
    assert len(recs) == 4, stderr
    lost = [r for r in recs if r["status"] == "failed"]
    kept = [r for r in recs if r["status"] != "failed"]
    assert len(lost) == 1, [(r["status"], r["error"][:200]) for r in recs]
    print("lost run:", lost[0]["error"])
    assert lost[0]["error"].startswith(f"node lost: Ray node {worker_id} ("), lost[0]["error"]
    assert lost[0]["node"]["id"] == worker_id and lost[0]["env"]["cpu_model"]
    assert len(kept) == 3 and all(len(r["times"]["epoch_ms"]) == 8 for r in kept)
    nodes = {r["node"]["id"] for r in recs}
    assert len(nodes) == 2, "records came from both nodes"
    # --resume on what is left (the head) runs only the lost run
    p = run_cli(*args, "--resume", env=_env(), timeout=240)
    assert p.returncode == 0, p.stderr
    after = read_records(out)
    assert after[:4] == recs and len(after) == 5
    assert after[4]["key"] == lost[0]["key"] and after[4]["status"] != "failed"
    assert after[4]["node"]["id"] == cluster.head_node.node_id


def test_with_retries_a_run_lost_with_its_node_runs_again_elsewhere(tmp_path, data_dir, cluster):
    from ray._private import ray_constants
    extra = cluster.add_node(num_cpus=1, resources={"node_c": 1}, object_store_memory=100 * 2**20)
    cluster.wait_for_nodes(timeout=120)
    out = tmp_path / "r.jsonl"
    args = [*BASE, "--epochs", "8", "--repeats", "2", "--data-dir", data_dir, "--out", out, "--executor", "ray",
            "--ray-address", cluster.address, "--retries", "1"]
    env = {**os.environ, **_env(GNNBENCH_TEST_SLEEP_MS="400")}
    driver = subprocess.Popen([sys.executable, "-m", "gnnbench", *map(str, args)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        raylet = extra.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        deadline = time.monotonic() + 150
        while not _children_under(raylet) and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.2)
        assert _children_under(raylet), "no run started on the extra node"
        extra_id = extra.node_id
        cluster.remove_node(extra, allow_graceful=False)
        _, stderr = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, stderr
    recs = read_records(out)
    assert len(recs) == 2 and all(r["status"] != "failed" for r in recs), [(r["status"], r["error"][:200]) for r in recs]
    (again,) = [r for r in recs if r["node"]["attempt"] == 1]
    assert again["node"]["id"] == cluster.head_node.node_id != extra_id
    assert len(again["times"]["epoch_ms"]) == 8


def test_driver_killed_with_sigkill_then_resume_runs_only_the_missing_runs(tmp_path, data_dir, cluster):
    """The driver dies outright with runs in flight: the cluster ends its job, its runs' children die
    with their workers (long before their runs would end), and --resume runs only the missing runs."""
    import signal

    import psutil
    from ray._private import ray_constants
    out = tmp_path / "r.jsonl"
    args = [*BASE, "--epochs", "4", "--data-dir", data_dir, "--out", out]
    p = run_cli(*args, "--repeats", "1", env=_env(), timeout=120)      # seed 0, by the local executor
    assert p.returncode == 0, p.stderr
    first = read_records(out)
    ray_args = [*args, "--repeats", "3", "--resume", "--executor", "ray", "--ray-address", cluster.address]
    # 4 epochs of 3 s: a run lasts over 12 s
    env = {**os.environ, **_env(GNNBENCH_TEST_SLEEP_MS="3000")}
    driver = subprocess.Popen([sys.executable, "-m", "gnnbench", *map(str, ray_args)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raylets = [n.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid for n in cluster.list_all_nodes()]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and driver.poll() is None and not any(map(_children_under, raylets)):
            time.sleep(0.1)
        children = [c for p in raylets for c in _children_under(p)]
        assert children and driver.poll() is None, "no run in flight"
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        killed_at = time.monotonic()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, "a child of the killed driver's job still runs"
    assert time.monotonic() - killed_at < 10, "the children ended with the job, not at the end of their runs"
    assert read_records(out) == first, "nothing was appended by the killed driver, nothing lost"
    p = run_cli(*ray_args, env=_env(), timeout=240)
    assert p.returncode == 0, p.stderr
    after = read_records(out)
    assert after[:1] == first and len(after) == 3
    assert sorted(r["cell"]["seed"] for r in after) == [0, 1, 2] and all("node" in r for r in after[1:])
