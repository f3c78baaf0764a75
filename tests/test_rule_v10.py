"""Rule v10 (methods review 6 of the fifth confirmatory report): the replication
forecast's variance history, a detection claim's power at its alternative's effect,
leave-one-seed-out estimates, the split underpowered count, the size p, the final
record and the verdict history."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

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
    assert "1 hold with the size open (`b`)" in text and "1 did not hold (`c`)" in text
    assert "None of them" in suite._underpowered(weak[:0])


def test_the_p_column_adds_the_size_tests_p_beside_a_holds():
    values = {s: 0.5 + 0.01 * s for s in range(8)}  # far above the SESOI (0.1 nats)
    table = C.evidence_frame([C.Evidence("drsl-mechanism-entropy", values)])
    view = verdict_table(table).iloc[0]
    row = table.iloc[0]
    assert view["p"].startswith("< 0.001; size p ")
    p_min = min(1.0, row["p_min"] * row["k_min"])
    assert view["p"].endswith("< 0.001" if p_min < 0.001 else f"{p_min:.3f}")


def test_a_final_record_says_so():
    ev = [C.Evidence(cid, {s: 1.0 + 0.1 * s for s in range(1000, 1005)}, profile="quick")
          for cid in C.declared_family()]
    record = {"declaration": C.declaration_hash(profile="quick"), "commit": "abc",
              "profile": "quick", "seeds": list(range(1000, 1005))}
    status, why = C.confirmatory_status(record, range(1000, 1005), evidence=ev,
                                        code=(True, "same code"))
    assert status == "confirmatory" and "final" not in why
    status, why = C.confirmatory_status(record | {"final": True}, range(1000, 1005),
                                        evidence=ev, code=(True, "same code"))
    assert status == "confirmatory" and "declared final before the run" in why


def test_the_history_section_prints_each_run_beside_this_one():
    history = {"runs": [{"run": 1, "seeds": "1000-1012", "rule": "v5",
                         "primaries": {"a": {"verdict": "holds", "size": "size open"}}},
                        {"run": 2, "seeds": "3000-3012", "rule": "v6",
                         "primaries": {}}]}
    fam = pd.DataFrame({"claim": ["a"], "verdict": ["holds"],
                        "size": [C.SIZE_LABELS[True]]})
    lines = suite._history_section(fam, history, "confirmatory")
    assert lines[0] == "## Verdict history of the primary findings"
    assert any("run 1 (seeds 1000-1012, rule v5)" in ln for ln in lines)
    assert ("| `a` | holds in direction, size open | – | holds, at least the SESOI |"
            in lines)
    assert suite._history_section(fam, {}, "confirmatory") == []
