import numpy as np
import pytest

from gnnbench.errors import UsageError
from gnnbench.specs import get_spec, parse_overrides, spec_from_dict
from gnnbench.stats import mean_std, summarize


def test_summarize():
    s = summarize([4, 1, 3, 2, 100])
    assert s["median"] == 3 and s["p25"] == 2 and s["p75"] == 4 and s["n"] == 5
    assert s["mean"] == pytest.approx(22.0) and s["std"] == pytest.approx(np.std([4, 1, 3, 2, 100], ddof=1))
    assert summarize([])["median"] is None
    assert mean_std([0.8, 0.82]) == pytest.approx((0.81, np.std([0.8, 0.82], ddof=1)))
    assert mean_std([]) == (None, None)


def test_specs_and_paper_defaults():
    assert get_spec("gcn").hidden == 16 and get_spec("gcn").dropout == 0.5
    gat = get_spec("gat", "cora")
    assert (gat.heads, gat.hidden, gat.out_heads, gat.lr, gat.attn_dropout) == (8, 8, 1, 0.005, 0.6)
    gat_pm = get_spec("gat", "pubmed")
    assert (gat_pm.out_heads, gat_pm.lr, gat_pm.weight_decay) == (8, 0.01, 1e-3)
    s = get_spec("sage", "cora", {"hidden": "32", "normalize_features": "false"})
    assert s.hidden == 32 and s.normalize_features is False
    assert spec_from_dict(dict(vars(s))) == s


@pytest.mark.parametrize("model,over,msg", [
    ("gcnn", {}, "unknown model 'gcnn'; valid models: gat, gcn, gin, sage"),
    ("gcn", {"hiden": 3}, "unknown hyperparameter 'hiden'"),
    ("gcn", {"hidden": "x"}, "bad value 'x' for gcn.hidden"),
    ("gcn", {"hidden": 1.5}, "bad value"),
])
def test_spec_errors(model, over, msg):
    with pytest.raises(UsageError, match=msg):
        get_spec(model, "cora", over)


def test_parse_overrides():
    assert parse_overrides(["a=1", "b = x"]) == {"a": "1", "b": "x"}
    assert parse_overrides("a=1,b=2") == {"a": "1", "b": "2"}
    with pytest.raises(UsageError):
        parse_overrides(["novalue"])
