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
    # Same per-seed values: the t bound's width is the image variance alone, on
    # n_seeds - 1 = 1 degree of freedom; each end is the wider of it and the exact
    # Clopper-Pearson bound of the discordant count on that side (2 of 8 up, 0 down).
    per_image = np.array([0, 0.5, 0.5, 0])
    half = float(sps.t.ppf(0.975, 1)) * math.sqrt(per_image.var(ddof=1) / 4)
    exact_up = float(sps.beta.ppf(0.975, 3, 6))
    assert row["high"] == pytest.approx(max(0.25 + half, exact_up))
    assert row["low"] == pytest.approx(min(0.25 - half, -(1 - 0.025 ** (1 / 8))))


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


def test_moments_keep_n_minus_one_degrees_of_freedom():
    """Not Welch-Satterthwaite: with two seeds it missed its 95 % bound 8.5 % of the
    time (methods review, M1); the seed term's n - 1 is conservative."""
    m, se, df = K.moments([0.1, 0.3], 0.0, 100)
    assert m == pytest.approx(0.2) and df == 1.0
    v_seed = np.var([0.1, 0.3], ddof=1) / 2
    m, se, df = K.moments([0.1, 0.3], v_seed, 101)
    assert se == pytest.approx(math.sqrt(2 * v_seed)) and df == 1.0
    # A floor whose normal bound is the wider replaces the t term, on a normal
    # reference: it is never multiplied by the t quantile (methods review 2, point 2).
    assert K.moments([0.1, 0.3], v_seed, 101, floor_se=1.0)[1:] == (1.0, math.inf)
    se_t = math.sqrt(2 * v_seed)
    just_below = 0.99 * se_t * sps.t.isf(0.05, 1) / sps.norm.isf(0.05)
    assert K.moments([0.1, 0.3], v_seed, 101, floor_se=just_below)[1:] == (
        pytest.approx(se_t), 1.0)


def test_zero_discordant_images_do_not_give_a_zero_width_interval():
    """0 of 400 cells discordant is compatible with a rate of about 3/400: the floor
    is the exact Clopper-Pearson bound's (rule of three), not 0."""
    diff = K.Differential("apgd-dlr", K.REFERENCE, "DRSL", "CE", 0.05, {0: 0.0, 1: 0.0},
                          0.0, 200, 0.0, 0.0)
    m, se, df = diff.moments(100.0)
    upper_cp = 1 - 0.05 ** (1 / 400)  # one-sided 95 % Clopper-Pearson at zero events
    assert m == 0 and df == math.inf  # the floor decides: a normal reference
    assert se == pytest.approx(100 * math.sqrt(2) * upper_cp / sps.norm.ppf(0.95))
    assert diff.interval().high > 0 > diff.interval().low
    # The differential's own bound is the exact one, 0.75 pp at 0 of 400: below the
    # flag's threshold of a 2 pp SESOI (1 pp), so a calibration can read "not flagged"
    # (at a 1 pp SESOI it cannot: claims' cal_clearable says so, methods review 3, A1).
    assert diff.bound("upper", 0.95, 100.0) == pytest.approx(100 * upper_cp)
    assert diff.bound("lower", 0.95, 100.0) == pytest.approx(-100 * upper_cp)
    old = K.Differential.from_json({k: v for k, v in diff.to_json().items()
                                    if k not in ("n_up", "n_down")})
    assert old.n_up is None and old.moments(100.0)[1] == 0.0  # an old record: no floor
    assert K.count_se(0, 0, 400) < K.count_se(4, 0, 400)


def _simulated_upper_bounds(rate_a: float, rate_b: float, seeds: int, tau: float,
                            floor: bool | str = True, reps: int = 2000, images: int = 200
                            ) -> tuple[np.ndarray, float]:
    """One-sided 95 % upper bounds of the differential over ``reps`` simulated
    calibrations, and the true differential. Binary per-image overstatement of two
    models on a shared image subset (an image's difficulty is shared by both models
    and all seeds: logit sd 1), with a per-seed random effect (logit sd ``tau``) per
    model. ``floor=False``: the old rule (Welch-Satterthwaite df, no count floor)."""
    from scipy.special import expit, logit

    rng = np.random.default_rng(7)
    img = rng.normal(0.0, 1.0, (reps, 1, images))
    cells = [rng.random((reps, seeds, images))
             < expit(logit(rate) + img + rng.normal(0.0, tau, (reps, seeds, 1)))
             for rate in (rate_a, rate_b)]
    d = cells[0].astype(float) - cells[1]
    if floor == "bound":  # Differential.bound: the wider of the t and the exact bound
        per_seed, per_image = d.mean(-1), d.mean(-2)
        se = np.sqrt(per_seed.var(-1, ddof=1) / seeds + per_image.var(-1, ddof=1) / images)
        up = (d > 0).sum(axis=(-2, -1))
        exact = np.where(up >= seeds * images, 1.0,
                         sps.beta.ppf(0.95, up + 1, seeds * images - up))
        upper = np.maximum(per_seed.mean(-1) + sps.t.isf(0.05, seeds - 1) * se, exact)
    elif floor:
        m, se, df = K.cell_moments(d)
        upper = m + sps.t.isf(0.05, df) * se
    else:
        per_seed, per_image = d.mean(-1), d.mean(-2)
        vs, vi = per_seed.var(-1, ddof=1) / seeds, per_image.var(-1, ddof=1) / images
        den = vs**2 / (seeds - 1) + vi**2 / (images - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            df = np.where(den > 0, (vs + vi) ** 2 / den, np.inf)
        upper = per_seed.mean(-1) + sps.t.isf(0.05, df) * np.sqrt(vs + vi)
    z = np.random.default_rng(1).normal(size=(2, 200_000))
    truth = float((expit(logit(rate_a) + z[0] + tau * z[1])
                   - expit(logit(rate_b) + z[0] + tau * z[1])).mean())
    return upper, truth


@pytest.mark.parametrize("seeds", [2, 3, 5])
@pytest.mark.parametrize("rate_a, rate_b, tau", [
    (0.002, 1e-9, 0.3),   # sparse: most subsets hold no discordant image of b, few of a
    (0.004, 0.001, 0.3),
    (0.04, 0.02, 0.5),    # the size measured in issue 26 (2-4 pp vs 4-6 pp)
    (0.2, 0.05, 0.7),     # a strongly masked model, seed effects large
])
def test_differential_upper_bound_covers_at_its_level(seeds, rate_a, rate_b, tau):
    """Coverage of the one-sided 95 % upper bound of the calibrated differential with
    binary per-image outcomes, a shared image subset and 2-5 seeds: it misses at most
    5 % (+ Monte Carlo allowance 1.5 %). (Seed effects far larger than these, a logit
    sd of 1.5 with 3 seeds, reach 6.7 %: the t reference on skewed per-seed rates.)"""
    upper, truth = _simulated_upper_bounds(rate_a, rate_b, seeds, tau)
    assert (upper < truth).mean() <= 0.05 + 0.015


@pytest.mark.parametrize("seeds", [2, 5])
@pytest.mark.parametrize("rate_a, rate_b, tau", [
    (0.002, 1e-9, 0.3), (0.004, 0.001, 0.3), (0.04, 0.02, 0.5), (0.2, 0.05, 0.7)])
def test_the_differential_bound_that_flags_covers_at_its_level(seeds, rate_a, rate_b, tau):
    """:meth:`Differential.bound`, which decides the flag, covers as well: the wider of
    the t bound and the exact bound of the up count (the differential is at most the up
    rate) misses at most 5 % (+ 1.5 %)."""
    upper, truth = _simulated_upper_bounds(rate_a, rate_b, seeds, tau, floor="bound")
    assert (upper < truth).mean() <= 0.05 + 0.015
    one = K.Differential("apgd-dlr", K.REFERENCE, "a", "b", 0.1, {0: 0.01, 1: 0.0}, 0.0,
                         100, 1.0, 0.0)
    x = np.array([0.01, 0.0])
    t_bound = x.mean() + sps.t.isf(0.05, 1) * x.std(ddof=1) / math.sqrt(2)
    assert one.bound("upper", 0.95) == pytest.approx(
        max(t_bound, sps.beta.ppf(0.95, 2, 199)))


def test_the_old_differential_bound_undercovered_on_sparse_counts():
    """The test above can fail: the old rule (zero width at zero counts,
    Welch-Satterthwaite df) misses the sparse case far more than 5 %."""
    upper, truth = _simulated_upper_bounds(0.002, 1e-9, 2, 0.3, floor=False)
    assert (upper < truth).mean() > 0.15
