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


# p-values of the hand-written Mann-Whitney U (normal approximation, tie correction) that
# gnnbench.stats used before scipy.stats.mannwhitneyu replaced it, on fixed inputs: the scipy call
# must give the same numbers.
_X = [10.001, 10.299, 9.726, 9.109, 9.545, 9.008, 10.06, 11.34, 9.508, 9.38, 10.49, 10.357, 10.105, 9.07,
      9.971, 10.695, 8.656, 9.542, 8.099, 8.71, 8.158, 9.765, 8.733, 10.271, 10.157, 9.813, 7.483, 9.461, 9.951,
      10.113]
_Y = [8.87, 9.922, 9.421, 9.591, 11.461, 9.592, 10.367, 11.284, 9.816, 10.288, 10.51, 10.464, 9.175, 10.476,
      11.759, 8.853, 11.259, 10.519, 9.759, 12.4, 11.162, 9.201, 10.475, 10.977, 10.211]
_OLD_MWU = [  # (x, y, alternative, continuity, U1, p)
    ([1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8], "two-sided", True, 4.5, 0.066015431521231),
    ([1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8], "two-sided", False, 4.5, 0.05357774928971018),
    ([1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8], "greater", True, 4.5, 0.9784196103697714),
    ([1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8], "less", False, 4.5, 0.02678887464485509),
    ([1, 1, 2, 2, 3], [2, 2, 3, 3, 4, 4], "two-sided", True, 5.0, 0.07167312914446339),
    ([1, 1, 2, 2, 3], [2, 2, 3, 3, 4, 4], "less", True, 5.0, 0.035836564572231694),
    ([5], [1, 2, 3], "two-sided", True, 3.0, 0.37109336952269756),
    ([5], [1, 2, 3], "greater", False, 3.0, 0.08985624743949988),
    (_X, _Y, "two-sided", True, 214.0, 0.006668814238618368),
    (_X, _Y, "two-sided", False, 214.0, 0.006500669866303788),
    (_X, _Y, "greater", True, 214.0, 0.9968318256715565),
    (_X, _Y, "less", True, 214.0, 0.003334407119309184),
    ([1.0] * 5, [1.0] * 4, "two-sided", False, 10.0, 1.0),     # all tied: no information, p = 1
]


@pytest.mark.parametrize("x,y,alt,cont,u,p", _OLD_MWU)
def test_mann_whitney_u_matches_the_former_implementation(x, y, alt, cont, u, p):
    from gnnbench.stats import mann_whitney_u
    got_u, got_p = mann_whitney_u(x, y, alt, cont)
    assert got_u == u
    assert got_p == pytest.approx(p, rel=1e-12, abs=0)


def test_bootstrap_ratio_ci_is_seeded_and_brackets_the_ratio():
    from gnnbench.stats import bootstrap_ratio_ci
    base, cur = _X, [1.2 * v for v in _Y]
    a = bootstrap_ratio_ci(base, cur, resamples=500, seed=3)
    assert a == bootstrap_ratio_ci(base, cur, resamples=500, seed=3)          # reproducible
    assert a != bootstrap_ratio_ci(base, cur, resamples=500, seed=4)          # ... by its seed
    ratio, lo, hi = a
    assert lo < ratio < hi and 1.0 < lo and hi < 1.6
    assert bootstrap_ratio_ci([], [1.0]) == (None, None, None)
    assert bootstrap_ratio_ci([2.0], [3.0]) == (1.5, 1.5, 1.5)                # one value each: nothing varies
    r1, lo1, hi1 = bootstrap_ratio_ci([2.0], [2.0, 3.0, 4.0], resamples=200)  # one side fixed
    assert (r1, lo1, hi1 >= 1.5) == (1.5, 1.0, True) and hi1 <= 2.0
    with pytest.raises(ValueError):
        bootstrap_ratio_ci([1.0, 2.0], [1.0, 2.0], confidence=1.5)
