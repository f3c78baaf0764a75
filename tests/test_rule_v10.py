"""Rule v10 (methods review 6 of the fifth confirmatory report): the replication
forecast's variance history, a detection claim's power at its alternative's effect,
leave-one-seed-out estimates, the split underpowered count, the size p, the final
record and the verdict history."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from drsl_utils import claims as C
from drsl_utils import seed_history, stats, suite
from drsl_utils.report import loso_text, verdict_table


def test_variance_prior_pools_the_earlier_runs_by_hand():
    runs = seed_history.VALUES["drsl-noise-pair"]
    scale = C.get_claim("drsl-noise-pair").scale
    num = sum(float(np.var(list(v.values()), ddof=1)) * (len(v) - 1) for v in runs.values())
    dof = sum(len(v) - 1 for v in runs.values())
    s2, nu0 = C.variance_prior("drsl-noise-pair")
    assert nu0 == dof == 20  # five runs of 5 seeds
    assert s2 == pytest.approx(num / dof * scale**2)


def test_a_claim_without_a_history_keeps_the_flat_prior():
    s2, nu0 = C.variance_prior("no-such-claim")
    assert nu0 == 0.0 and math.isnan(s2)
    # nu0 = 0 gives exactly the numbers of the flat-prior draw.
    a = C.fresh_run_probabilities(np.array([2.0, 3.0]), 1.0, 5, "greater", 1.25,
                                  draws=2000)
    b = C.fresh_run_probabilities(np.array([2.0, 3.0]), 1.0, 5, "greater", 1.25,
                                  draws=2000, prior_var=7.0, prior_df=0.0)
    assert np.array_equal(a["holds"], b["holds"])


def test_the_history_moves_the_forecast_towards_its_variance():
    """A small observed sd with a larger history reads less sure, and the reverse."""
    kw = dict(draws=20_000)
    flat = C.fresh_run_probabilities(3.0, 1.0, 5, "greater", 1.25, **kw)["holds"]
    wide = C.fresh_run_probabilities(3.0, 1.0, 5, "greater", 1.25, prior_var=4.0,
                                     prior_df=20.0, **kw)["holds"]
    tight = C.fresh_run_probabilities(3.0, 1.0, 5, "greater", 1.25, prior_var=0.25,
                                      prior_df=20.0, **kw)["holds"]
    assert wide < flat < tight


def test_the_declaration_freezes_the_history(monkeypatch):
    before = C.declaration_hash(profile="quick")
    assert C.declaration("quick")["variance_history"]["drsl-noise-pair"][1] == 20.0
    runs = dict(seed_history.VALUES["drsl-noise-pair"])
    runs[99] = {1: 0.0, 2: 0.5}
    monkeypatch.setitem(seed_history.VALUES, "drsl-noise-pair", runs)
    assert C.declaration_hash(profile="quick") != before


def test_a_detection_claims_power_is_its_own_test_at_the_alternative():
    values = {s: v for s, v in enumerate([-0.0017, -0.0010, -0.0013, -0.0005, -0.0020])}
    ev = C.Evidence("sovr-two-peaks", values, alt_effect=0.0048,
                    alternative="0.7 N(0,1) + 0.3 N(3.5,1)")
    row = C.assess([ev]).iloc[0]
    c = C.get_claim("sovr-two-peaks")
    level = C.ALPHA / len(C.declared_family())
    sd = float(np.std(list(values.values()), ddof=1)) * c.scale
    want = C.design_power(sd, 5, 0.0048 * c.scale, "greater", alpha=level)
    assert row["alt_power"] == pytest.approx(want)
    assert row["underpowered"] == (want < C.POWER_TARGET)
    # alt_effect survives the JSON round trip of the notebooks' metadata.
    assert C.Evidence.from_json(ev.to_json()).alt_effect == 0.0048
    with pytest.raises(ValueError, match="alt_effect"):
        C.Evidence("sovr-two-peaks", values, alt_effect=math.inf)


def test_dip_excess_of_the_named_alternative_is_about_the_sesoi():
    excess = stats.dip_excess(10_000, means=(0.0, 3.5), n_sim=40)
    assert 0.0035 < excess < 0.0065
    assert stats.dip_excess(10_000, means=(0.0, 3.0), n_sim=40) < 0


def test_loso_reports_the_estimates_side_and_range():
    values = {s: v for s, v in enumerate([0.099, 0.11, 0.12, 0.126, 0.05])}
    ev = [C.Evidence("drsl-noise-pair", values)]
    loso = C.loso_agreement(ev).iloc[0]
    scale = C.get_claim("drsl-noise-pair").scale
    means = [np.mean([v for k, v in values.items() if k != s]) * scale for s in values]
    assert loso["loso_n"] == 5 and loso["loso_side"] == 5
    assert loso["loso_low"] == pytest.approx(min(means))
    assert loso["loso_high"] == pytest.approx(max(means))
    row = pd.Series({"claim": "drsl-noise-pair", "n_seeds": 5, "loso_n": 5, "loso_agree": 2,
                     "loso_side": 5, "loso_low": 9.9, "loso_high": 12.6})
    text = loso_text(row)
    assert text == ("; leave one seed out: verdict 2/5, estimate on the claimed side 5/5 "
                    "(+9.9 pp to +12.6 pp)")
    assert "verdict" not in loso_text(row, verdict=False)


def test_the_underpowered_count_is_split_by_what_the_rows_showed():
    weak = pd.DataFrame({"claim": ["a", "b", "c"], "verdict": ["holds", "holds",
                                                                "inconclusive"],
                         "size": [C.SIZE_LABELS[True], C.SIZE_LABELS[False], ""]})
    text = suite._underpowered(weak)
    assert text.startswith("**3 of them are underpowered**")
    assert "1 hold at least the SESOI regardless (`a`)" in text
    assert "1 hold with the size open (`b`)" in text and "1 read *inconclusive* (`c`)" in text
    assert "did not hold" not in text
    assert "None of them" in suite._underpowered(weak[:0])


def test_the_p_column_adds_the_size_tests_p_beside_a_holds():
    values = {s: 0.5 + 0.01 * s for s in range(8)}  # far above the SESOI (0.1 nats)
    table = C.evidence_frame([C.Evidence("drsl-mechanism-entropy", values)])
    view = verdict_table(table).iloc[0]
    row = table.iloc[0]
    assert view["p"].startswith("< 0.001; size p ")
    p_min = min(1.0, row["p_min"] * row["k_min"])
    assert view["p"].endswith("< 0.001" if p_min < 0.001 else f"{p_min:.3f}")


def test_a_final_declaration_says_so_and_is_hashed(monkeypatch):
    ev = [C.Evidence(cid, {s: 1.0 + 0.1 * s for s in range(1000, 1005)}, profile="quick")
          for cid in C.declared_family()]

    def status():
        record = {"declaration": C.declaration_hash(profile="quick"), "commit": "abc",
                  "profile": "quick", "seeds": list(range(1000, 1005))}
        return C.confirmatory_status(record, range(1000, 1005), evidence=ev,
                                     code=(True, "same code"))

    final_hash = C.declaration_hash(profile="quick")
    assert C.FINAL and C.declaration("quick")["final"] is True
    state, why = status()
    assert state == "confirmatory" and "declared final before the run" in why
    monkeypatch.setattr(C, "FINAL", False)
    assert C.declaration_hash(profile="quick") != final_hash  # it cannot be set later
    state, why = status()
    assert state == "confirmatory" and "final" not in why


def test_the_history_section_prints_each_run_beside_this_one():
    cid = "drsl-noise-pair"
    history = {"runs": [{"run": 1, "seeds": "1000-1012", "rule": "v5",
                         "primaries": {cid: {"verdict": "holds", "size": "size open",
                                             "mean": 11.0}}},
                        {"run": 99, "seeds": "3000-3012", "rule": "v6",
                         "primaries": {}}]}
    fam = pd.DataFrame({"claim": [cid], "verdict": ["holds"], "mean": [11.5], "sd": [3.9],
                        "size": [C.SIZE_LABELS[True]]})
    lines = suite._history_section(fam, history, "confirmatory")
    assert lines[0] == "## Verdict history of the primary findings"
    assert any("run 1 (seeds 1000-1012, rule v5)" in ln for ln in lines)
    run1 = list(seed_history.VALUES[cid][1].values())
    sd1 = float(np.std(run1, ddof=1)) * C.get_claim(cid).scale
    c = C.get_claim(cid)
    assert (f"| `{cid}` | holds in direction, size open; +11.0 pp (sd {c.fmt(sd1, False)}) "
            "| – | holds, at least the SESOI; +11.5 pp (sd 3.9 pp) |") in lines
    assert suite._history_section(fam, {}, "confirmatory") == []


def test_a_history_that_todays_variance_contradicts_is_dropped():
    """Methods review 7, M1: the F test gates the pooling (two-sided, 0.05)."""
    out = C.pool_history(np.array([1.0, 0.3, 3.0]), 5, 1.0, 20.0)
    assert list(out["dropped"]) == [False, True, True]
    assert list(out["prior_df"]) == [20.0, 0.0, 0.0]
    ratio_p = 2 * min(sps.f.cdf(0.09, 4, 20), sps.f.sf(0.09, 4, 20))
    assert out["p"][1] == pytest.approx(ratio_p)
    # A row with no history has no test.
    none = C.pool_history(1.0, 5, math.nan, 0.0)
    assert np.isnan(none["p"]) and not none["dropped"]


def test_the_report_says_when_the_history_was_dropped():
    s2, nu0 = C.variance_prior("drsl-noise-pair")
    sd_hist = math.sqrt(s2) / C.get_claim("drsl-noise-pair").scale
    tiny = {s: 0.11 + 0.02 * sd_hist * (s - 2) for s in range(5)}  # sd far below it
    table = C.evidence_frame([C.Evidence("drsl-noise-pair", tiny)])
    row = table.iloc[0]
    assert row["history_dropped"] and row["history_df"] == nu0
    flat = C.fresh_run_probabilities(row["mean"], row["sd"], 5, "greater",
                                     C.get_claim("drsl-noise-pair").sesoi, row["k_holds"],
                                     row["k_not"], k_rev=row["k_rev"], df=row["df"])
    assert row["replication"] == pytest.approx(float(flat["holds"]))
    cell = verdict_table(table).iloc[0]["replication"]
    assert "variance history (sd " in cell and "dropped: today's sd differs, F p" in cell
    near = {s: 0.11 + sd_hist * v for s, v in enumerate([-1.2, -0.5, 0.1, 0.6, 1.0])}
    kept_table = C.evidence_frame([C.Evidence("drsl-noise-pair", near)])
    kept = kept_table.iloc[0]
    assert not kept["history_dropped"]
    assert "variance history sd" in verdict_table(kept_table).iloc[0]["replication"]
