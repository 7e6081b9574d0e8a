"""Suite keys of the executor (executor, ray_address, resources, placement, retries): read and checked."""
import pytest

from gnnbench.config import load_suite
from gnnbench.errors import UsageError

HEAD = "libraries: [test-ok]\nmodels: [gcn]\ndatasets: [cora]\n"


def test_executor_keys_are_read(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(HEAD + "executor: ray\nray_address: HEAD_ADDRESS:6379\nresources: {bench_cpu: 1, big: 2.5}\n"
                        "placement: exclusive\nretries: 1\n")
    ex = load_suite(str(p)).executor
    assert (ex.kind, ex.ray_address, ex.resources, ex.placement, ex.retries) == \
        ("ray", "HEAD_ADDRESS:6379", {"bench_cpu": 1.0, "big": 2.5}, "exclusive", 1)
    p.write_text(HEAD)
    ex = load_suite(str(p)).executor
    assert (ex.kind, ex.ray_address, ex.resources, ex.placement, ex.retries) == ("local", None, {}, "shared", 0)


@pytest.mark.parametrize("text,msg", [
    ("executor: dask\n", "'executor' must be one of local, ray, got 'dask'"),
    ("placement: spread\n", "'placement' must be one of shared, exclusive"),
    ("resources: [a, b]\n", "'resources' must map custom resource names to positive amounts"),
    ("resources: {a: 0}\n", "'resources' must map custom resource names to positive amounts"),
    ("resources: {a: yes}\n", "'resources' must map custom resource names to positive amounts"),
    ("resources: {CPU: 4}\n", "'resources' names CPU; CPUs and GPUs come from 'threads' and the device"),
    ("retries: -1\n", "'retries' must be an integer from 0 to 5"),
    ("retries: twice\n", "'retries' must be an integer from 0 to 5"),
    ("retries: true\n", "'retries' must be an integer from 0 to 5"),
])
def test_bad_executor_keys(tmp_path, text, msg):
    p = tmp_path / "s.yaml"
    p.write_text(HEAD + text)
    with pytest.raises(UsageError, match=msg):
        load_suite(str(p))
