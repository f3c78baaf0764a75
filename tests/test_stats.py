"""Tests for drsl_utils.stats: per-sample statistics, attack-record statistics, tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from drsl_utils.stats import (
    bootstrap_ci,
    format_mean_std,
    format_seed_table,
    robust_accuracy,
    second_class_fraction_ci,
    seed_table,
    softmax_stats,
    stack_stats,
    success_association,
    success_vs_p2,
    to_latex,
    to_markdown,
    wilson_ci,
    with_identity,
)

#: What ``evaluation.evaluate`` puts beside each record of the synthetic models: their
#: identity, as data. The names are labels only; nothing parses them.
IDENTITIES = {
    "ce": {"loss": "ce"},
    "gce(q=0.7)": {"loss": "gce", "loss_params": {"q": 0.7}},
    "drsl(tau=0.1)": {"loss": "drsl", "loss_params": {"space": "logit", "tau": 0.1}},
    "ce+pgd-at": {"loss": "ce", "adversarial": "pgd"},
    "sovr+pgd-at": {"loss": "sovr", "loss_params": {"M": 0.4}, "adversarial": "pgd"},
}


def identity(model, seed=0):
    """The identity columns of a synthetic model (``ModelIdentity.columns``); a name not
    in :data:`IDENTITIES` is a foreign model, whose loss and regime are unknown."""
    from drsl_utils.evaluation import ModelIdentity

    fields = IDENTITIES.get(model)
    if fields is None:
        return ModelIdentity(model, f"{model}-{seed}", "Net", "unknown", {}, "unknown",
                             "unknown", seed, "0" * 16).columns()
    return ModelIdentity(model, f"{model}-{seed}", "mlp", seed=seed, **fields).columns()


def make_records(models=("ce", "gce(q=0.7)", "drsl(tau=0.1)"), seeds=(0, 1, 2),
                 attacks=("pgd", "fgsm"), eps=(0.05, 0.1, 0.2), n=300, k=10, seed=0):
    """Synthetic attack records with the attack engine's schema.

    Success gets likelier with the clean p2 and with eps; a successful attack lands on
    the clean second class with a model-dependent probability.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for mi, model in enumerate(models):
        for s in seeds:
            z = rng.normal(size=(n, k)) * (1.0 + 0.5 * mi)
            labels = rng.integers(0, k, n)
            z[np.arange(n), labels] += rng.uniform(2, 9, n)
            st = softmax_stats(z, labels)
            for attack in attacks:
                for e in eps:
                    logit_p2 = np.log10(st["p_top2"].to_numpy()) + 2 + 8 * e
                    p_succ = 1 / (1 + np.exp(-2 * logit_p2))
                    success = st["correct"].to_numpy() & (rng.random(n) < p_succ)
                    to_second = rng.random(n) < 0.5 + 0.15 * mi
                    other = (labels + rng.integers(1, k, n)) % k
                    adv_pred = np.where(success, np.where(to_second, st["second"], other),
                                        st["pred"])
                    adv_pred = np.where(success & (adv_pred == labels), (labels + 1) % k,
                                        adv_pred)
                    frames.append(pd.DataFrame({
                        **identity(model, s), "attack": attack, "eps": e, "sample": np.arange(n), "label": labels,
                        "clean_pred": st["pred"], "adv_pred": adv_pred,
                        "clean_second": st["second"], "clean_p_true": st["p_true"],
                        "clean_p_top": st["p_top1"], "clean_p_second": st["p_top2"],
                        "adv_p_true": np.where(success, st["p_true"] * 0.3, st["p_true"]),
                        "adv_p_top": np.where(success, 0.6, st["p_top1"]),
                        "adv_p_second": np.where(success, np.maximum(st["p_true"] * 0.3,
                                                                     st["p_top2"]),
                                                 np.minimum(st["p_top2"] * (1 + 50 * e), 0.5)),
                        "clean_gap": st["logit_gap"], "adv_gap": st["logit_gap"] * 0.5,
                        "linf": e, "l2": e * 5, "clean_correct": st["correct"],
                        "success": success,
                        "adv_is_clean_second": adv_pred == st["second"].to_numpy(),
                    }))
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------ softmax_stats


def test_softmax_stats_hand_example():
    z = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
    df = softmax_stats(z, np.array([0, 0]))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert df["pred"].tolist() == [0, 1]
    assert df["second"].tolist() == [1, 2]  # ties resolve to the lower index
    assert np.allclose(df["p_top1"], [p[0, 0], p[1, 1]])
    assert np.allclose(df["p_top2"], [p[0, 1], p[1, 2]])
    assert np.allclose(df["p_true"], p[:, 0])
    assert np.allclose(df["logit_gap"], [2.0, 0.0])
    assert np.allclose(df["logit_margin"], [2.0, -2.0])
    assert np.allclose(df["max_logit"], [3.0, 2.0])
    assert df["correct"].tolist() == [True, False]
    q0 = p[0, 1:] / p[0, 1:].sum()
    assert np.isclose(df["nontrue_entropy"][0], -(q0 * np.log(q0)).sum())
    assert np.isclose(df["nontrue_entropy"][1], math.log(2))  # equal non-true logits
    assert np.isclose(df["nontrue_max_over_mean"][1], 1.0)
    assert np.isclose(df["nontrue_var"][0], np.var(p[0, 1:]))
    assert np.isclose(df["nontrue_logit_var"][0], np.var([1.0, 0.0]))


def test_softmax_stats_torch_matches_numpy_and_is_shift_invariant():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 10, generator=g) * 4
    y = torch.randint(0, 10, (64,), generator=g)
    a = softmax_stats(z, y)
    b = softmax_stats(z.double().numpy() + 123.0, y.numpy())  # softmax is shift invariant per row
    cols = ["p_top1", "p_top2", "p_true", "logit_gap", "logit_margin", "nontrue_var",
            "nontrue_logit_var", "nontrue_entropy", "nontrue_max_over_mean"]
    pd.testing.assert_frame_equal(a[cols], b[cols], atol=1e-6, rtol=1e-6)
    assert (a["logit_margin"] > 0).eq(a["correct"]).all()
    assert (a["nontrue_entropy"] <= math.log(9) + 1e-12).all()
    assert ((a["nontrue_max_over_mean"] >= 1 - 1e-12) & (a["nontrue_max_over_mean"] <= 9)).all()


def test_softmax_stats_extreme_logits_stay_finite():
    z = np.array([[1000.0, 0.0, -5.0, -5.0], [0.0, 800.0, 1.0, 1.0]])
    df = softmax_stats(z, np.array([0, 1]))
    assert np.isfinite(df.drop(columns=["correct"]).to_numpy(dtype=float)).all()
    assert np.isclose(df["nontrue_max_over_mean"][1], 3 * np.exp(1) / (1 + 2 * np.exp(1)))
    assert df["p_top2"][0] == pytest.approx(np.exp(-1000.0), abs=1e-300)


@pytest.mark.parametrize("logits,labels,match", [
    (np.zeros(3), np.zeros(3, int), "logits must be 2-D"),
    (np.zeros((3, 1)), np.zeros(3, int), "at least 2 classes"),
    (np.zeros((3, 4)), np.zeros(2, int), "labels must be 1-D"),
    (np.zeros((3, 4)), np.array([0, 1, 4]), "out of range"),
    (np.full((1, 4), np.nan), np.array([0]), "NaN"),
])
def test_softmax_stats_rejects_bad_inputs(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        softmax_stats(logits, labels)


def test_stack_stats_adds_metadata():
    rng = np.random.default_rng(0)
    runs = [{**identity(m, s), "logits": rng.normal(size=(5, 3)),
             "labels": rng.integers(0, 3, 5), "dataset": "digits"}
            for m in ("ce", "ce+pgd-at") for s in (0, 1)]
    df = stack_stats(runs)
    assert len(df) == 20
    from drsl_utils.evaluation import IDENTITY_COLUMNS

    assert list(df.columns[:len(IDENTITY_COLUMNS) + 1]) == [*IDENTITY_COLUMNS, "dataset"]
    last = df.iloc[-1]
    assert (last["loss"], last["adversarial"], last["training"]) == ("ce", "pgd",
                                                                     "adversarial")
    with pytest.raises(ValueError, match="runs"):
        stack_stats([])


def test_stack_stats_guesses_nothing_from_a_name():
    # No identity given: no loss or regime is made up from the name.
    df = stack_stats([{"model": "DRSL-prob+PGD-AT", "logits": np.eye(3), "labels": [0, 1, 2]}])
    assert list(df.columns[:2]) == ["model", "seed"] and "loss" not in df.columns
    assert "training" not in df.columns and (df["seed"] == 0).all()


def test_with_identity_adds_the_model_columns_after_model():
    from drsl_utils.evaluation import MODEL_COLUMNS

    source = pd.DataFrame([identity(m, s) for m in ("ce", "ce+pgd-at") for s in (0, 1)])
    table = pd.DataFrame({"model": ["ce+pgd-at", "mine", "ce"], "value": [1, 2, 3],
                          "loss": ["kept", "kept", "kept"]})
    out = with_identity(table, source)
    added = [c for c in MODEL_COLUMNS if c != "loss"]
    assert list(out.columns) == ["model", *added, "value", "loss"]
    assert list(out["loss"]) == ["kept"] * 3  # a column the frame has stays as it is
    assert list(out["adversarial"].iloc[[0, 2]]) == ["pgd", "none"]
    assert out.iloc[1][added].isna().all()  # a model the source does not know
    assert with_identity(table, source[["model", "seed"]]) is table  # nothing to add
    with pytest.raises(ValueError, match="source must be a DataFrame with a 'model' column"):
        with_identity(table, source.drop(columns="model"))


def test_record_tables_carry_identity_not_the_name():
    # A model named like an adversarially trained one that is a DRSL model trained on
    # labels: every table says what it is, read from its identity columns.
    recs = make_records(models=("ce",), seeds=(0, 1), attacks=("pgd",), eps=(0.1,), n=50)
    ident = identity("drsl(tau=0.1)")
    recs = recs.assign(model="PGD-AT", loss=ident["loss"], loss_params=ident["loss_params"])
    for out in (robust_accuracy(recs), second_class_fraction_ci(recs),
                success_vs_p2(recs, bins=3), success_association(recs, n_boot=0)):
        assert list(out.columns[1:3]) == ["architecture", "loss"]
        assert (out["loss"] == "drsl").all() and (out["training"] == "standard").all()
        assert (out["loss_params"] == ident["loss_params"]).all()
    bare = recs[[c for c in recs.columns if c not in ("loss", "training", "adversarial",
                                                      "architecture", "loss_params",
                                                      "distilled")]]
    assert "loss" not in robust_accuracy(bare).columns  # hand-built: nothing made up


# ------------------------------------------------------------------ intervals


def test_wilson_ci_known_values_and_empty():
    lo, hi = wilson_ci(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_ci(np.array([0, 3]), np.array([0, 3]))
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and hi[1] == 1.0 and lo[1] < 1.0
    with pytest.raises(ValueError, match="level"):
        wilson_ci(1, 2, level=1.5)


def test_bootstrap_ci_covers_mean_and_is_reproducible():
    x = np.random.default_rng(1).normal(loc=2.0, size=400)
    est, lo, hi = bootstrap_ci(x, np.mean, n_boot=500, seed=3)
    assert lo < est < hi and lo < 2.0 < hi
    assert (est, lo, hi) == bootstrap_ci(x, np.mean, n_boot=500, seed=3)
    _, lo2, hi2 = bootstrap_ci(x, lambda v: float(np.median(v)), n_boot=200, seed=0,
                               vectorized=False)
    assert lo2 < hi2
    assert all(math.isnan(v) for v in bootstrap_ci([], np.mean))
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(x, n_boot=0)


# ------------------------------------------------------------------ record statistics


@pytest.fixture(scope="module")
def records():
    return make_records()


def test_second_class_fraction_matches_direct_count(records):
    out = second_class_fraction_ci(records)
    assert len(out) == 3 * 2 * 3 and (out["n_seeds"] == 3).all()
    row = out[(out.model == "ce") & (out.attack == "pgd") & (out.eps == 0.1)].iloc[0]
    sub = records[(records.model == "ce") & (records.attack == "pgd") & (records.eps == 0.1)
                  & records.success]
    assert row["n_success"] == len(sub)
    assert row["fraction"] == pytest.approx(sub["adv_is_clean_second"].mean())
    assert row["ci_low"] <= row["fraction"] <= row["ci_high"]
    assert row["chance"] == pytest.approx(1 / 9) and row["loss"] == "ce"
    # Finding 1 holds in the synthetic data (>= 50 % vs chance 11 %).
    assert (out["p_value"] < 1e-3).all()
    per_seed = second_class_fraction_ci(records, pool_seeds=False)
    assert len(per_seed) == 3 * len(out) and (per_seed["n_seeds"] == 1).all()


def test_second_class_fraction_no_successes_gives_nan(records):
    quiet = records.assign(success=False)
    out = second_class_fraction_ci(quiet, num_classes=10)
    assert (out["n_success"] == 0).all()
    assert out[["fraction", "ci_low", "ci_high", "p_value"]].isna().all().all()
    quiet.attrs["num_classes"] = 100  # attacks.evaluate records K here (evaluation.evaluate)
    assert (second_class_fraction_ci(quiet)["chance"] == 1 / 99).all()


def test_second_class_fraction_ci_independent_of_other_groups(records):
    full = second_class_fraction_ci(records)
    only = second_class_fraction_ci(records[records.model == "ce"])
    pd.testing.assert_frame_equal(full[full.model == "ce"].reset_index(drop=True), only)


def test_success_vs_p2_counts_and_monotone_trend(records):
    out = success_vs_p2(records)
    assert len(out) == 3 * 2 * 3 * 7  # groups x bins, empty bins kept
    cc = records[records.clean_correct]
    sub = out[(out.model == "ce") & (out.attack == "pgd") & (out.eps == 0.1)]
    assert sub["n"].sum() == len(cc[(cc.model == "ce") & (cc.attack == "pgd")
                                   & (cc.eps == 0.1)])
    valid = sub[sub.n >= 30]
    assert valid["success_rate"].is_monotonic_increasing
    empty = out[out.n == 0]
    assert empty["success_rate"].isna().all()
    boot = success_vs_p2(records, bins=4, ci="bootstrap", n_boot=100)
    assert len(boot) == 3 * 2 * 3 * 4
    counts = boot.groupby(["model", "attack", "eps"])["n"].agg(["min", "max"])
    assert (counts["max"] - counts["min"] <= 1).all()  # equal-count bins
    with pytest.raises(ValueError, match="ci"):
        success_vs_p2(records, ci="exact")
    with pytest.raises(ValueError, match="bins"):
        success_vs_p2(records, bins=[0.1, 0.0])


def test_success_association_detects_p2_effect(records):
    out = success_association(records, n_boot=100)
    assert len(out) == 18
    assert (out["auc"] > 0.6).all() and (out["auc_low"] < out["auc"]).all()
    assert (out["auc"] < out["auc_high"]).all()
    # AUC depends only on ranks: a monotone transform leaves it unchanged.
    logged = success_association(records.assign(clean_p_second=np.log(records.clean_p_second)),
                                 n_boot=10)
    assert np.allclose(logged["auc"], out["auc"])
    none = success_association(records.assign(success=False), n_boot=10)
    assert none["auc"].isna().all() and (none["n_success"] == 0).all()


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 60).astype(float)  # many ties
    y = rng.random(60) < 0.4
    recs = pd.DataFrame({"model": "m", "attack": "a", "eps": 0.1, "clean_correct": True,
                         "success": y, "clean_p_second": x})
    auc = success_association(recs, n_boot=10)["auc"].iloc[0]
    diff = x[y][:, None] - x[~y][None, :]
    assert auc == pytest.approx(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_robust_accuracy(records):
    out = robust_accuracy(records)
    assert len(out) == 3 * 3 * 2 * 3
    sub = records[(records.model == "ce") & (records.seed == 1) & (records.attack == "fgsm")
                  & (records.eps == 0.2)]
    row = out[(out.model == "ce") & (out.seed == 1) & (out.attack == "fgsm")
              & (out.eps == 0.2)].iloc[0]
    assert row["robust_accuracy"] == pytest.approx((sub.clean_correct & ~sub.success).mean())
    assert row["clean_accuracy"] == pytest.approx(sub.clean_correct.mean())


def test_missing_columns_named(records):
    with pytest.raises(ValueError, match="success"):
        second_class_fraction_ci(records.drop(columns=["success"]))


# ------------------------------------------------------------------ seed tables


def test_seed_table_mean_std_and_format():
    df = pd.DataFrame({"model": ["ce"] * 3 + ["gce"] * 3 + ["drsl"],
                       "seed": [0, 1, 2, 0, 1, 2, 0],
                       "acc": [0.952, 0.953, 0.954, 0.95, 0.96, 0.97, 0.9]})
    t = seed_table(df, ["model"], ["acc"])
    ce = t[t.model == "ce"].iloc[0]
    assert ce["mean"] == pytest.approx(0.953) and ce["std"] == pytest.approx(0.001)
    assert ce["n_seeds"] == 3
    assert np.isnan(t[t.model == "drsl"]["std"].iloc[0])
    wide = format_seed_table(t, index="model")
    assert wide.loc["ce", "acc"] == "0.953 ± 0.0010"
    assert wide.loc["gce", "acc"] == "0.960 ± 0.010"
    assert wide.loc["drsl", "acc"] == "0.900" and wide.loc["drsl", "seeds"] == "1"
    md = to_markdown(wide)
    assert "0.953 ± 0.0010" in md and md.count("\n") == 4
    tex = to_latex(wide, caption="Clean accuracy", label="tab:acc")
    assert r"$0.953 \pm 0.0010$" in tex and r"\toprule" in tex and r"\label{tab:acc}" in tex


def test_seed_table_keeps_group_order_and_renders_multiindex():
    df = pd.DataFrame({"model": ["GCE", "GCE", "CE", "CE"], "attack": "pgd",
                       "seed": [0, 1, 0, 1], "acc": [0.5, 0.6, 0.7, 0.8],
                       "rob": [0.1, 0.2, 0.3, 0.4]})
    t = seed_table(df, ["model", "attack"], ["rob", "acc"])
    assert t["model"].tolist() == ["GCE", "GCE", "CE", "CE"]
    assert t["quantity"].tolist() == ["rob", "acc", "rob", "acc"]
    assert seed_table(df, ["model"], ["acc"], sort=True)["model"].tolist() == ["CE", "GCE"]
    wide = format_seed_table(t)
    assert list(wide.columns) == ["rob", "acc", "seeds"]
    md = to_markdown(wide).splitlines()
    assert md[0].split("|")[1].strip() == "model" and "('GCE'" not in md[2]
    assert md[1].startswith("|:")  # text columns flush left


def test_seed_table_averages_within_seed_first(records):
    t = seed_table(records, ["model", "attack", "eps"], ["success", "clean_correct"])
    assert set(t["quantity"]) == {"success", "clean_correct"}
    assert (t["n_seeds"] == 3).all()
    per_seed = records.groupby(["model", "attack", "eps", "seed"])["success"].mean()
    expected = per_seed.groupby(["model", "attack", "eps"]).std()
    got = t[t.quantity == "success"].set_index(["model", "attack", "eps"])["std"]
    assert np.allclose(got.sort_index(), expected.sort_index())
    with pytest.raises(ValueError, match="value_cols"):
        seed_table(records, ["model"], [])
    with pytest.raises(ValueError, match="nope"):
        seed_table(records, ["model"], ["nope"])


@pytest.mark.parametrize("mean,std,text", [
    (0.953, 0.0013, "0.953 ± 0.0013"),
    (0.894, 0.02, "0.894 ± 0.020"),
    (0.5, 0.0, "0.500 ± 0.000"),
    (0.5, float("nan"), "0.500"),
    (float("nan"), 0.1, "–"),
])
def test_format_mean_std(mean, std, text):
    assert format_mean_std(mean, std) == text


def test_latex_escapes_text():
    df = pd.DataFrame({"model": ["drsl_prob&x"], "acc": ["0.9 ± 0.01"]}).set_index("model")
    tex = to_latex(df)
    assert r"drsl\_prob\&x" in tex and r"$0.9 \pm 0.01$" in tex


def test_second_class_fraction_wilson_at_k_equal_n_is_not_degenerate():
    recs = make_records(models=("ce",), seeds=(0,), attacks=("pgd",), eps=(0.2,), n=200)
    recs = recs.assign(adv_is_clean_second=True)
    row = second_class_fraction_ci(recs).iloc[0]
    assert row["fraction"] == 1.0 and row["ci_high"] == 1.0 and row["ci_low"] < 1.0
    low, high = wilson_ci(9, 9)
    assert float(high) == 1.0 and 0.6 < float(low) < 0.75  # 9/9: about [0.70, 1]


def test_paired_auc_difference_of_identical_scores_is_exactly_zero():
    from drsl_utils.stats import paired_auc_difference

    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.4
    s = rng.normal(size=300) + y
    assert paired_auc_difference(y, s, s, n_boot=200) == (0.0, 0.0, 0.0)
    d, lo, hi = paired_auc_difference(y, s, rng.normal(size=300), n_boot=300)
    assert lo <= d <= hi and d > 0.1  # an informative score beats noise
    assert all(math.isnan(v) for v in paired_auc_difference(np.zeros(5), s[:5], s[:5]))


def test_paired_auc_per_group(records):
    from drsl_utils.stats import paired_auc

    out = paired_auc(records.query("attack == 'pgd' and eps == 0.1"), n_boot=50)
    assert len(out) == 3 * 3  # models x seeds
    assert ((out["diff_low"] <= out["diff"]) & (out["diff"] <= out["diff_high"])).all()
    assert (out["auc_a"] > 0.5).all()


def test_dip_test_separates_one_peak_from_two():
    from drsl_utils.stats import dip_table, dip_test

    rng = np.random.default_rng(1)
    one = rng.normal(size=5000)
    two = np.concatenate([rng.normal(size=2500), rng.normal(5, 1, size=2500)])
    d1, p1, crit = dip_test(one)
    d2, p2, crit2 = dip_test(two)
    assert crit == crit2 and d1 < crit < d2 and p1 > 0.05 > p2
    df = pd.DataFrame({"model": ["a"] * 5000 + ["b"] * 5000, "seed": 0,
                       "logit_margin": np.concatenate([one, two])})
    t = dip_table(df)
    assert list(t["excess"] > 0) == [False, True]


def test_dead_shape_and_agreement_helpers_are_gone():
    # stats.bimodality (Sarle's coefficient) and stats.rank_agreement had no caller left
    # (the two-peaks claim uses dip_test, the agreement claim rank_agreement_by_seed).
    import drsl_utils.stats as S

    for name in ("bimodality", "rank_agreement"):
        assert name not in S.__all__ and not hasattr(S, name)


# ------------------------------------------------------------------ margins, compare


def _records_from_logits(z, z_adv, labels):
    """The softmax columns the attack engine writes, from clean and adversarial logits."""
    cols = {"label": labels}
    for side, logits in (("clean", z), ("adv", z_adv)):
        st = softmax_stats(logits, labels)
        cols |= {f"{side}_pred": st["pred"], f"{side}_gap": st["logit_gap"],
                 f"{side}_p_true": st["p_true"], f"{side}_p_top": st["p_top1"]}
    return pd.DataFrame(cols)


def test_with_margins_recovers_the_logit_margin_from_the_softmax():
    from drsl_utils.stats import with_margins

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, 500)
    z = rng.normal(scale=4.0, size=(500, 7)) + 30.0  # a shift the margin ignores
    z_adv = z + rng.normal(scale=6.0, size=z.shape)
    out = with_margins(_records_from_logits(z, z_adv, labels))
    for side, logits in (("clean", z), ("adv", z_adv)):
        others = np.where(np.eye(7, dtype=bool)[labels], -np.inf, logits).max(axis=1)
        expected = logits[np.arange(500), labels] - others
        np.testing.assert_allclose(out[f"{side}_margin"], expected, atol=1e-9)
    assert (out["adv_margin"] < 0).any() and (out["clean_margin"] > 0).any()


def _paired_records(effect, seeds=(0, 1, 2, 3, 4), n=200, seed=0):
    """Two models per seed on the same n images; b's robust accuracy is lower by about
    ``effect`` (a fraction), plus seed noise."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in seeds:
        for model, p_robust in (("a-model", 0.5 + effect / 2), ("b-model", 0.5 - effect / 2)):
            p = np.clip(p_robust + rng.normal(scale=0.01), 0, 1)
            robust = rng.random(n) < p
            frames.append(pd.DataFrame({
                "model": model, "seed": s, "attack": "pgd", "eps": 0.1, "sample": np.arange(n),
                "clean_correct": True, "success": ~robust}))
    return pd.concat(frames, ignore_index=True)


def test_compare_hands_a_paired_comparison_to_the_claims_rule():
    from drsl_utils import claims
    from drsl_utils.stats import EXPLORATORY_NOTE, compare

    records = _paired_records(0.2)
    before = (dict(claims.CLAIMS), claims.declaration_hash())
    row = compare(records, "a-model", "b-model", sesoi=2.0, attack="pgd", eps=0.1)
    assert len(row) == 1
    r = row.iloc[0]
    assert r["verdict"] == "holds" and r["n_seeds"] == 5 and r["exploratory"]
    # The same per-seed differences as a direct computation, in percentage points.
    wide = (records.assign(rob=~records["success"]).groupby(["seed", "model"])["rob"].mean()
            .unstack())
    assert r["mean"] == pytest.approx(100 * (wide["a-model"] - wide["b-model"]).mean())
    assert not r["in_family"] and r["k_holds"] == 1.0 and r["image_sd"] > 0
    assert r["note"].startswith(EXPLORATORY_NOTE) and "Holm family" in r["note"]
    # The registry and the declaration are as they were: an ad-hoc comparison does not
    # make a confirmatory report exploratory.
    assert (dict(claims.CLAIMS), claims.declaration_hash()) == before
    # No effect: not "holds"; the opposite direction reads "reversed".
    assert compare(_paired_records(0.0), "a-model", "b-model", sesoi=2.0, attack="pgd",
                   eps=0.1).iloc[0]["verdict"] != "holds"
    assert compare(records, "a-model", "b-model", sesoi=2.0, attack="pgd", eps=0.1,
                   direction="less").iloc[0]["verdict"] == "reversed"
    # A selection by columns, and clean accuracy without an attack.
    same = compare(records, {"model": "a-model"}, {"model": "b-model"}, sesoi=1.0,
                   metric="clean_accuracy", direction="equivalent")
    assert same.iloc[0]["mean"] == 0.0 and same.iloc[0]["a"] == "model=a-model"


@pytest.mark.parametrize("kwargs,match", [
    ({"metric": "auc"}, "metric"),
    ({"direction": "bigger"}, "direction"),
    ({"attack": None}, "needs attack and eps"),
    ({"attack": "cw"}, "attack"),
    ({"eps": 0.3}, "eps=0.3"),
    ({"b": "c-model"}, "b-model"),
    ({"b": "a-model"}, "disjoint"),
])
def test_compare_names_bad_arguments(kwargs, match):
    from drsl_utils.stats import compare

    args = {"a": "a-model", "b": "b-model", "sesoi": 2.0, "attack": "pgd", "eps": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        compare(_paired_records(0.2, seeds=(0, 1)), **args)


def test_compare_needs_paired_seeds_and_at_least_two():
    from drsl_utils.stats import compare

    records = _paired_records(0.2)
    unpaired = records[~((records["model"] == "a-model") & (records["seed"] == 4))]
    with pytest.raises(ValueError, match=r"seeds do not pair.*\[0, 1, 2, 3\].*\[0, 1, 2, 3, 4\]"):
        compare(unpaired, "a-model", "b-model", sesoi=2.0, attack="pgd", eps=0.1)
    with pytest.raises(ValueError, match="at least two seeds"):
        compare(records[records["seed"] == 0], "a-model", "b-model", sesoi=2.0,
                attack="pgd", eps=0.1)
    # Foreign models all carry seed -1: the error says how to pair them, and seed_col does.
    foreign = records.assign(run=records["seed"], seed=-1)
    with pytest.raises(ValueError, match="seed_col"):
        compare(foreign, "a-model", "b-model", sesoi=2.0, attack="pgd", eps=0.1)
    by_run = compare(foreign, "a-model", "b-model", sesoi=2.0, attack="pgd", eps=0.1,
                     seed_col="run")
    plain = compare(records, "a-model", "b-model", sesoi=2.0, attack="pgd", eps=0.1)
    assert by_run.iloc[0]["mean"] == plain.iloc[0]["mean"]
    assert by_run.iloc[0]["image_sd"] == pytest.approx(plain.iloc[0]["image_sd"])
