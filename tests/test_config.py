import pytest

from gnnbench.config import expand, load_suite, suite_names
from gnnbench.errors import UsageError


def test_quick_suite_expands():
    s = load_suite("quick")
    assert "quick" in suite_names()
    cells = expand(s)
    assert {c.model for c in cells} == {"gcn", "gat", "sage"}
    assert {c.dataset for c in cells} == {"cora"}
    assert "pyg" in {c.library for c in cells}
    assert len({c.key() for c in cells}) == len(cells)


def test_overrides_and_repeats(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("libraries: [pyg]\nmodels: gcn,gat\ndatasets: [cora, pubmed]\nrepeats: 3\n"
                 "overrides:\n  gcn: {hidden: 32}\n")
    cells = expand(load_suite(str(p)))
    assert len(cells) == 2 * 2 * 3
    assert all(c.spec["hidden"] == 32 for c in cells if c.model == "gcn")
    assert {c.spec["out_heads"] for c in cells if c.model == "gat" and c.dataset == "pubmed"} == {8}
    assert sorted({c.seed for c in cells}) == [0, 1, 2]


@pytest.mark.parametrize("text,msg", [
    ("libraries: [pyg]\nmodels: [gcn\ndatasets: [cora]\n", r"malformed YAML at .*s.yaml:\d+:\d+"),
    ("- a\n- b\n", "must be a YAML mapping"),
    ("libraries: [pyg]\nmodels: [gcn]\ndatasets: [cora]\nepoch: 3\n", "unknown key.*epoch"),
    ("libraries: [pyg]\nmodels: [gcn]\ndatasets: [cora]\nepochs: many\n", "'epochs' must be an integer >= 1, got 'many'"),
    ("libraries: [tensorflowz]\nmodels: [gcn]\ndatasets: [cora]\n", "unknown library 'tensorflowz'; valid libraries: .*pyg"),
    ("libraries: [pyg]\nmodels: [gin2]\ndatasets: [cora]\n", "unknown model 'gin2'"),
    ("libraries: [pyg]\nmodels: [gcn]\ndatasets: [korra]\n", "unknown dataset 'korra'"),
    ("libraries: [pyg]\nmodels: [gcn]\ndatasets: [cora]\ndevices: [tpu]\n", "unknown device 'tpu'"),
    ("libraries: [pyg]\nmodels: [gcn]\ndatasets: [cora]\noverrides: {gcn: {hiddn: 3}}\n", "unknown hyperparameter"),
])
def test_bad_suites(tmp_path, text, msg):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises(UsageError, match=msg):
        expand(load_suite(str(p)))


def test_limit_suites_carry_their_limits():
    s = load_suite("scaling-limit")
    assert s.run.rss_limit_gb == 20 and s.run.memory_limit_gb is None
    assert all(c.model == "gcn" for c in expand(s))
    sampled = load_suite("scaling-sampled-limit")
    assert sampled.run.rss_limit_gb == 20 and {c.model for c in expand(sampled)} == {"sage-sampled"}


def test_unknown_suite_name():
    with pytest.raises(UsageError, match="unknown suite 'quik'; valid suites: .*quick"):
        load_suite("quik")
