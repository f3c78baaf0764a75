"""The verdict rule, checked by simulation against a known truth, and its pieces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drsl_utils import claims as C
from drsl_utils.claims import Claim, Evidence, assess, holm, seeds_needed, stability, t_test

QUICK_SEEDS = (5, 8)  # the quick profile's seed counts (sweeps, and CE/GCE/DRSL)


def _verdict(values, direction="greater", sesoi=1.0) -> str:
    t = t_test(values, direction, sesoi)
    return C._decide(t.p_holds, t.p_not, C.ALPHA)


@pytest.mark.parametrize("n", QUICK_SEEDS)
def test_true_effect_of_twice_the_sesoi_reads_holds(n):
    # The per-seed noise is taken as large as the SESOI itself: the claims' SESOIs are
    # set at or above the seed-to-seed spread the quick profile measures.
    rng = np.random.default_rng(n)
    draws = rng.normal(2.0, 1.0, size=(4000, n))
    share = np.mean([_verdict(x) == "holds" for x in draws])
    assert share >= 0.90, share


@pytest.mark.parametrize("n", QUICK_SEEDS)
def test_true_zero_reads_holds_at_most_five_percent(n):
    rng = np.random.default_rng(100 + n)
    draws = rng.normal(0.0, 1.0, size=(4000, n))
    share = np.mean([_verdict(x) == "holds" for x in draws])
    assert share <= 0.05 + 0.01, share  # 0.01: Monte Carlo error of 4000 draws


@pytest.mark.parametrize("n", QUICK_SEEDS)
def test_effect_well_below_the_margin_reads_does_not_hold(n):
    rng = np.random.default_rng(200 + n)
    draws = rng.normal(-0.5, 1.0, size=(4000, n))
    share = np.mean([_verdict(x) == "does not hold" for x in draws])
    assert share > 0.5, share


@pytest.mark.parametrize("n", QUICK_SEEDS)
def test_interval_coverage(n):
    rng = np.random.default_rng(300 + n)
    draws = rng.normal(0.7, 2.0, size=(4000, n))
    covered = [(t.low <= 0.7 <= t.high) for t in (t_test(x, "greater", 1.0) for x in draws)]
    assert abs(np.mean(covered) - 0.95) < 0.015


def test_equivalence_is_tost():
    rng = np.random.default_rng(7)
    inside = rng.normal(0.0, 0.1, size=(2000, 8))
    assert np.mean([_verdict(x, "equivalent", 0.3) == "holds" for x in inside]) > 0.9
    outside = rng.normal(1.0, 0.1, size=(2000, 8))
    assert np.mean([_verdict(x, "equivalent", 0.3) == "does not hold" for x in outside]) > 0.9
    # A true difference exactly at the margin is declared equivalent at most alpha.
    edge = rng.normal(0.3, 0.2, size=(4000, 8))
    assert np.mean([_verdict(x, "equivalent", 0.3) == "holds" for x in edge]) <= 0.06


def test_less_mirrors_greater():
    x = [-1.5, -2.0, -2.5, -1.0, -3.0]
    a, b = t_test(x, "less", 1.0), t_test([-v for v in x], "greater", 1.0)
    assert a.p_holds == pytest.approx(b.p_holds) and a.p_not == pytest.approx(b.p_not)


def test_zero_spread_is_decided_not_crashed():
    t = t_test([0.5] * 5, "greater", 1.0)
    assert t.sd == 0 and t.p_holds == 0.0 and t.p_not == 0.0
    assert t.low == t.high == 0.5
    t = t_test([0.0] * 5, "greater", 1.0)
    assert t.p_holds == 0.5


def test_one_seed_decides_nothing():
    t = t_test([3.0], "greater", 1.0)
    assert t.n == 1 and math.isnan(t.p_holds)
    assert C._decide(t.p_holds, t.p_not, 0.05) == "inconclusive"


def test_holm_matches_the_definition():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    adj = holm(p)
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    assert adj[3] == pytest.approx(0.02) and adj[0] == pytest.approx(0.03)
    assert adj[2] == pytest.approx(0.06) and adj[1] == pytest.approx(0.06)
    assert math.isnan(adj[4])


def test_holm_controls_the_family_wise_error():
    rng = np.random.default_rng(11)
    m, n, false = 20, 5, 0
    for _ in range(500):
        ps = [t_test(rng.normal(0, 1, n), "greater", 1.0).p_holds for _ in range(m)]
        false += bool((holm(ps) < 0.05).any())
    assert false / 500 <= 0.07


def test_seeds_needed_grows_with_noise_and_is_none_at_a_boundary():
    few = seeds_needed(1.0, 0.5, 2.0, "greater")
    many = seeds_needed(1.0, 2.0, 2.0, "greater")
    assert few is not None and many is not None and many > few
    # Halfway between zero and the SESOI both decisions are equally far.
    assert seeds_needed(1.0, 1.0, 2.0, "greater") is not None
    assert seeds_needed(0.3, 0.1, 0.3, "equivalent") is None


def _evidence(claim_id, values):
    return Evidence(claim_id, dict(enumerate(values)))


def test_assess_reports_every_row_with_what_it_ruled_out():
    ev = [_evidence("drsl-harder-dlr", [0.05, 0.06, 0.04, 0.07, 0.05, 0.06, 0.05, 0.04]),
          _evidence("isce-harder-dlr", [0.01, -0.02, 0.03, 0.0, -0.01, 0.02, 0.0, 0.01]),
          _evidence("drsl-harder-pgd", [0.2, -0.1, 0.3, -0.2, 0.25])]
    table = assess(ev).set_index("claim")
    assert table.loc["drsl-harder-dlr", "verdict"] == "holds"
    assert table.loc["drsl-harder-dlr", "n_seeds"] == 8
    assert table.loc["drsl-harder-pgd", "primary"] == False  # noqa: E712
    assert table.loc["drsl-harder-pgd", "verdict"] == "inconclusive"
    assert "rules out" in table.loc["drsl-harder-pgd", "note"]
    assert "seeds" in table.loc["drsl-harder-pgd", "note"]
    # Values enter in pp (scale 100).
    assert table.loc["drsl-harder-dlr", "mean"] == pytest.approx(5.25)


def test_holm_can_turn_a_lone_pass_into_inconclusive():
    # p_holds about 0.02 on its own: holds alone, not in a family of many weak claims.
    x = [0.8, 2.6, 0.3, 2.0, 1.5]
    alone = assess([_evidence("drsl-harder-dlr", [v / 100 for v in x])])
    assert alone["verdict"].iloc[0] == "holds"
    others = [c for c in C.CLAIMS.values() if c.primary and c.id != "drsl-harder-dlr"][:10]
    family = [_evidence("drsl-harder-dlr", [v / 100 for v in x])]
    rng = np.random.default_rng(0)
    for c in others:
        family.append(Evidence(c.id, dict(enumerate(rng.normal(0, 1, 5) / c.scale))))
    assert assess(family)["verdict"].iloc[0] != "holds"


def test_duplicate_claims_are_refused():
    ev = [_evidence("drsl-harder-dlr", [0.1, 0.2]), _evidence("drsl-harder-dlr", [0.1, 0.2])]
    with pytest.raises(ValueError, match="more than once"):
        assess(ev)


def test_unknown_claim_is_refused():
    with pytest.raises(ValueError, match="not declared"):
        Evidence("no-such-claim", {0: 1.0})


def test_stability_of_a_clear_and_a_borderline_claim():
    clear = _evidence("drsl-harder-dlr", [0.10, 0.11, 0.09, 0.10, 0.12, 0.10, 0.11, 0.09])
    borderline = _evidence("isce-harder-dlr", [0.04, -0.01, 0.05, 0.0, 0.03, -0.02, 0.06,
                                               0.01])
    st = stability([clear, borderline], n_halves=20).set_index("claim")
    assert st.loc["drsl-harder-dlr", "stability"] == 1.0
    assert st.loc["drsl-harder-dlr", "loso_n"] == 8 and st.loc["drsl-harder-dlr", "halves_n"] == 20
    assert st.loc["isce-harder-dlr", "stability"] < 1.0


def test_every_claim_is_well_formed():
    for c in C.CLAIMS.values():
        assert c.statement.endswith(".") and c.why and c.sesoi > 0
        assert c.notebook[:2].isdigit()
    primary_per_notebook = {}
    for c in C.CLAIMS.values():
        primary_per_notebook.setdefault(c.notebook, 0)
        primary_per_notebook[c.notebook] += c.primary
    assert sum(primary_per_notebook.values()) >= 20


def test_paired_and_per_seed_helpers():
    import pandas as pd

    df = pd.DataFrame({"model": ["A", "A", "B", "B", "B"], "seed": [0, 1, 0, 1, 2],
                       "v": [1.0, 2.0, 0.5, 1.0, 9.0]})
    assert C.paired(df, "v", "A", "B") == {0: 0.5, 1: 1.0}
    assert C.per_seed(df[df.model == "B"], "v", reference=1.0) == {0: -0.5, 1: 0.0, 2: 8.0}
    with pytest.raises(ValueError, match="model='C'"):
        C.paired(df, "v", "C", "B")


def test_claim_validation():
    with pytest.raises(ValueError, match="direction"):
        Claim("x", "01_x", "s", "t.", "e", "sideways", 1.0, "why")
    with pytest.raises(ValueError, match="sesoi"):
        Claim("x", "01_x", "s", "t.", "e", "greater", 0.0, "why")
