"""The calibration of cheap attacks against standard AutoAttack: hand-computed
overstatements and differentials on synthetic records, and one real run on digits."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from drsl_utils import calibration as K


def _records(robust: dict[tuple[str, int, str], list[int]], eps: float = 0.1) -> pd.DataFrame:
    """Records where every sample is clean-correct; robust[model, seed, attack] lists
    per-sample robustness (1 robust, 0 fooled)."""
    rows = []
    for (model, seed, attack), flags in robust.items():
        for i, r in enumerate(flags):
            rows.append({"model": model, "seed": seed, "attack": attack, "eps": eps,
                         "sample": i, "clean_correct": True, "success": not r})
    return pd.DataFrame(rows)


def test_overstatement_by_hand():
    rec = _records({("CE", 0, "apgd-dlr"): [1, 1, 0, 0], ("CE", 0, K.REFERENCE): [1, 0, 0, 0],
                    ("CE", 1, "apgd-dlr"): [1, 1, 1, 0], ("CE", 1, K.REFERENCE): [1, 1, 0, 0]})
    o = K.overstatement(rec, "apgd-dlr", 0.1).set_index("seed")
    assert o.loc[0, "robust_cheap"] == 0.5 and o.loc[0, "robust_reference"] == 0.25
    assert o.loc[0, "overstatement"] == 0.25 and o.loc[1, "overstatement"] == 0.25
    table = K.overstatement_table(rec, ["apgd-dlr"], 0.1)
    row = table.iloc[0]
    assert row["overstatement"] == 0.25 and row["n_seeds"] == 2 and row["n_images"] == 4
    # Same per-seed values: the interval's width is the image variance alone, with the
    # images' degrees of freedom (Welch-Satterthwaite: 4 images - 1).
    per_image = np.array([0, 0.5, 0.5, 0])
    half = float(sps.t.ppf(0.975, 3)) * math.sqrt(per_image.var(ddof=1) / 4)
    assert row["high"] - row["overstatement"] == pytest.approx(half)


def test_clean_errors_are_not_robust_under_either_attack():
    rec = _records({("CE", 0, "pgd"): [1, 1], ("CE", 0, K.REFERENCE): [1, 0]})
    rec.loc[rec["sample"] == 0, "clean_correct"] = False
    o = K.overstatement(rec, "pgd", 0.1).iloc[0]
    assert o["robust_cheap"] == 0.5 and o["robust_reference"] == 0.0


def test_differential_is_the_gap_of_the_overstatements():
    rec = _records({
        ("DRSL", 0, "apgd-dlr"): [1, 1, 1, 0], ("DRSL", 0, K.REFERENCE): [1, 0, 0, 0],
        ("CE", 0, "apgd-dlr"): [1, 1, 0, 0], ("CE", 0, K.REFERENCE): [1, 1, 0, 0],
        ("DRSL", 1, "apgd-dlr"): [1, 1, 0, 0], ("DRSL", 1, K.REFERENCE): [1, 0, 0, 0],
        ("CE", 1, "apgd-dlr"): [1, 0, 0, 0], ("CE", 1, K.REFERENCE): [1, 0, 0, 0]})
    diff = K.differential(rec, "apgd-dlr", "DRSL", "CE", 0.1)
    assert diff.values == {0: 0.5, 1: 0.25} and diff.n_images == 4
    assert K.Differential.from_json(diff.to_json()) == diff
    iv = diff.interval()
    assert iv.mean == pytest.approx(0.375) and iv.low < iv.mean < iv.high
    bound, shift = K.calibrated_bound(0.06, iv, "greater")
    assert shift == iv.high and bound == pytest.approx(0.06 - iv.high)


def test_bad_input_names_the_value():
    rec = _records({("CE", 0, "pgd"): [1], ("CE", 0, K.REFERENCE): [1]})
    with pytest.raises(ValueError, match="'square'"):
        K.overstatement(rec, "square", 0.1)
    with pytest.raises(ValueError, match="'DRSL'"):
        K.differential(rec, "pgd", "DRSL", "CE", 0.1)
    with pytest.raises(ValueError, match="direction"):
        K.calibrated_bound(0.1, K.Interval(0, 0, 0, 2, 1, 0.95), "equivalent")
    with pytest.raises(ValueError, match="no images"):
        K.overstatement(rec, "pgd", 0.3)


def test_real_standard_autoattack_is_at_least_as_strong_as_its_parts():
    """On digits, standard AutoAttack's robust accuracy is not above APGD-CE's (it runs
    APGD-CE first and keeps the worst case) on the same images."""
    from drsl_utils.attacks import AttackSpec
    from drsl_utils.evaluation import evaluate
    from drsl_utils.experiments import eval_subset, get_profile, model_config
    from drsl_utils.training import train

    profile = get_profile("smoke")
    sub = eval_subset(profile).subset(40, seed=0)
    tm = train(model_config(profile, "CE", seed=0), progress=False)
    res = evaluate([tm], [AttackSpec("apgd-ce", {"steps": 5}, eps=(0.1,)),
                          AttackSpec("autoattack", {"version": "standard"}, eps=(0.1,))],
                   sub.images, sub.labels, names=["CE"], progress=False)
    table = K.overstatement_table(res.records, ["apgd-ce"], 0.1)
    assert table.iloc[0]["robust_reference"] <= table.iloc[0]["robust_cheap"]
    assert table.iloc[0]["overstatement"] >= 0


def test_moments_follow_welch_satterthwaite():
    m, se, df = K.moments([0.1, 0.3], 0.0, 100)
    assert m == pytest.approx(0.2) and df == pytest.approx(1.0)  # no image term: n - 1
    v_seed = np.var([0.1, 0.3], ddof=1) / 2
    m, se, df = K.moments([0.1, 0.3], v_seed, 101)
    assert se == pytest.approx(math.sqrt(2 * v_seed))
    assert df == pytest.approx((2 * v_seed) ** 2 / (v_seed**2 / 1 + v_seed**2 / 100))
