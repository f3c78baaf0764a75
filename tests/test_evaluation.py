"""Tests of evaluation.py: records, stored arrays, RNG and mode hygiene, and the cache."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from drsl_utils import attacks as A
from drsl_utils import evaluation as E
from drsl_utils.cache import entry_dir
from drsl_utils.data import load_dataset
from drsl_utils.errors import PixelRangeError, UnknownNameError

FAST_AA = {"version": "reduced", "steps": 5, "n_queries": 50, "n_target_classes": 2}
TOL = 1e-5


@pytest.fixture(scope="module")
def subset():
    ds = load_dataset("digits", "test").subset(48, seed=0)
    return ds.images, ds.labels


def test_evaluate_rejects_bad_inputs(digits_model, subset):
    x, y = subset
    tm = digits_model
    with pytest.raises(UnknownNameError, match="name='nope'"):
        E.evaluate([tm], ["nope"], x, y, eps_grid=[0.1], cache=False, progress=False)
    with pytest.raises(ValueError, match="no eps grid"):
        E.evaluate([tm], ["fgsm"], x, y, cache=False, progress=False)
    with pytest.raises(ValueError, match="repeated record names"):
        E.evaluate([tm], ["fgsm", ("fgsm", {"seed": 1})], x, y, eps_grid=[0.1],
                   cache=False, progress=False)
    with pytest.raises(PixelRangeError, match=r"\[0, 1\] \(got \[0, 2\]\)"):
        E.evaluate([tm], ["fgsm"], x * 2, y, eps_grid=[0.1], cache=False, progress=False)
    with pytest.raises(ValueError, match="batch_size=0"):
        E.evaluate([tm], ["fgsm"], x, y, eps_grid=[0.1], batch_size=0, cache=False,
                   progress=False)
    with pytest.raises(ValueError, match=r"eps=8\.5.*sqrt\(d\)"):
        E.evaluate([tm], [A.AttackSpec("pgd-l2", eps=[8.5])], x, y, progress=False,
                   cache=False)


SPECS = [
    ("pgd", {"steps": 5}),
    "fgsm",
    A.AttackSpec("pgd-l2", {"steps": 5}, eps=[0.0, 1.0]),
    A.AttackSpec("autoattack", FAST_AA),
]


@pytest.fixture(scope="module")
def result(digits_model, subset, tmp_path_factory):
    x, y = subset
    return E.evaluate([digits_model], SPECS, x, y, eps_grid=[0.0, 0.1], batch_size=20,
                      device="cpu", progress=False,
                      cache_dir=tmp_path_factory.mktemp("attack-cache"))


def test_records_have_the_schema(result, subset, digits_model):
    rec = result.records
    n = subset[1].shape[0]
    assert list(rec.columns) == list(E.RECORD_COLUMNS)
    assert len(rec) == (2 + 2 + 2 + 2) * n
    assert set(rec["attack"]) == {"pgd", "fgsm", "pgd-l2", "autoattack-reduced"}
    for col in ("seed", "sample", "label", "clean_pred", "adv_pred", "clean_second"):
        assert pd.api.types.is_integer_dtype(rec[col]), col
    for col in ("eps", "clean_p_true", "clean_p_top", "clean_p_second", "adv_p_true",
                "adv_p_top", "adv_p_second", "clean_gap", "adv_gap", "linf", "l2"):
        assert pd.api.types.is_float_dtype(rec[col]), col
    for col in ("clean_correct", "success", "adv_is_clean_second"):
        assert pd.api.types.is_bool_dtype(rec[col]), col
    assert (rec["model"] == digits_model.config.label).all()
    assert (rec["model_key"] == digits_model.key).all()
    assert (rec["loss"] == "ce").all() and (rec["seed"] == 0).all()
    np.testing.assert_array_equal(result.labels, subset[1].numpy())
    # Every record carries its model's identity, the same as AttackResult.models.
    ident = E.model_identity(digits_model).columns()
    assert rec[list(E.IDENTITY_COLUMNS)].drop_duplicates().to_dict("records") == [ident]
    assert result.models[list(E.IDENTITY_COLUMNS)].to_dict("records") == [ident]
    assert ident | {"model_key": "", "loss_params": ""} == {
        "model": digits_model.config.label, "model_key": "", "architecture": "mlp",
        "loss": "ce", "loss_params": "", "training": "standard", "adversarial": "none",
        "distilled": "none", "seed": 0, "weights": ""}


def test_records_agree_with_the_stored_logits(result, digits_model, subset):
    rec, key = result.records, digits_model.key
    clean = result.clean_logits(key)
    assert clean.shape == (subset[1].shape[0], 10)
    assert result.clean_features(digits_model.config.label).shape == (clean.shape[0], 256)
    for (attack, eps), unit in rec.groupby(["attack", "eps"], sort=False):
        logits = result.adv_logits(key, attack, eps)
        assert result.adv_features(key, attack, eps).shape == (clean.shape[0], 256)
        np.testing.assert_array_equal(unit["adv_pred"], logits.argmax(1))
        np.testing.assert_array_equal(unit["clean_pred"], clean.argmax(1))
        order = np.argsort(-clean, axis=1)
        np.testing.assert_array_equal(unit["clean_second"], order[:, 1])
        probs = torch.from_numpy(logits).double().softmax(1).numpy()
        np.testing.assert_allclose(unit["adv_p_true"], probs[np.arange(len(probs)),
                                                             unit["label"]], rtol=1e-6)
        np.testing.assert_allclose(unit["adv_p_top"], probs.max(1), rtol=1e-6)
        np.testing.assert_allclose(unit["adv_gap"], np.sort(logits, 1)[:, -1]
                                   - np.sort(logits, 1)[:, -2], rtol=1e-5, atol=1e-6)
        assert (unit["adv_p_top"] >= unit["adv_p_second"]).all()
        assert (unit["clean_gap"] >= 0).all()
        norm = "L2" if attack == "pgd-l2" else "Linf"
        bound = unit["l2"] if norm == "L2" else unit["linf"]
        assert (bound <= eps + TOL).all()
        if eps == 0:
            assert (unit["linf"] == 0).all()


def test_stats_summaries_read_the_records(result):
    from drsl_utils import stats

    rec = result.records
    ra = stats.robust_accuracy(rec)
    assert len(ra) == 8 and (ra["n"] == rec["sample"].nunique()).all()
    zero = ra[ra["eps"] == 0]
    np.testing.assert_allclose(zero["robust_accuracy"], zero["clean_accuracy"])
    assert (ra["robust_accuracy"] <= ra["clean_accuracy"] + 1e-12).all()
    assert (ra[ra["eps"] > 0]["robust_accuracy"] < ra[ra["eps"] > 0]["clean_accuracy"]).all()
    assert not (rec["success"] & ~rec["clean_correct"]).any()
    # robust = clean - successes / n: success is counted over clean-correct samples only
    np.testing.assert_allclose(ra["robust_accuracy"],
                               ra["clean_accuracy"] * (1 - ra["success_rate"]))
    assert (ra.loc[ra["eps"] == 0, "success_rate"] == 0).all()
    sc = stats.second_class_fraction_ci(rec)
    assert np.allclose(sc["chance"], 1 / 9)
    assert sc.loc[sc["eps"] == 0, "fraction"].isna().all()


def test_clean_errors_are_not_attacked(digits_model, subset):
    x, y = subset
    y = y.clone()
    wrong = torch.tensor([0, 5, 17, 30])
    y[wrong] = (y[wrong] + 1) % 10  # these samples are now clean errors of the model
    res = E.evaluate([digits_model], [("pgd", {"steps": 3})], x, y, eps_grid=[0.1],
                     batch_size=16, cache=False, progress=False, device="cpu")
    rec = res.records.sort_values("sample")
    errors = ~rec["clean_correct"].to_numpy()
    assert errors[wrong.numpy()].all()
    # a clean error keeps its clean image: no perturbation, the clean logits
    assert (rec["linf"].to_numpy()[errors] == 0).all()
    adv, clean = res.adv_logits(digits_model.key, "pgd", 0.1), res.clean_logits(digits_model.key)
    np.testing.assert_allclose(adv[errors], clean[errors], rtol=1e-6, atol=1e-6)
    # every clean-correct sample is attacked
    assert (rec["linf"].to_numpy()[~errors] > 0).all()
    assert not rec["success"].to_numpy()[errors].any()


def test_evaluate_keeps_rng_and_mode(digits_model, subset, cache_dir):
    x, y = subset
    torch.manual_seed(7)
    before = torch.get_rng_state()
    digits_model.model.train()
    try:
        E.evaluate([digits_model], [("apgd-ce", {"steps": 3}), ("square", {"steps": 20})],
                   x, y, eps_grid=[0.1], cache_dir=cache_dir, progress=False)
        assert digits_model.model.training
    finally:
        digits_model.model.eval()
    assert torch.equal(torch.get_rng_state(), before)


def test_second_call_is_served_from_the_cache(digits_model, subset, cache_dir, monkeypatch):
    x, y = subset
    built = []
    real = A.build_attack

    def counting(*args, **kwargs):
        built.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(E, "build_attack", counting)
    specs = [("pgd", {"steps": 3}), "fgsm"]

    def run(**kw):
        return E.evaluate([digits_model], specs, x, y, eps_grid=[0.05, 0.1],
                          cache_dir=cache_dir, progress=False, **kw)

    first = run()
    assert len(built) == 4 and not first.units["from_cache"].any()
    files = sorted((entry_dir("attacks", cache_dir) / digits_model.key).glob("*.npz"))
    assert len(files) == 5  # 4 units and the clean pass
    second = run()
    assert len(built) == 4 and second.units["from_cache"].all()
    pd.testing.assert_frame_equal(first.records, second.records)
    np.testing.assert_array_equal(first.adv_features(digits_model.key, "pgd", 0.1),
                                  second.adv_features(digits_model.key, "pgd", 0.1))

    run(batch_size=16)  # batch size and device are not part of the key
    assert len(built) == 4
    E.evaluate([digits_model], [("pgd", {"steps": 4})], x, y, eps_grid=[0.1],
               cache_dir=cache_dir, progress=False)
    assert len(built) == 5  # a changed parameter is a new unit
    E.evaluate([digits_model], specs, x[:40], y[:40], eps_grid=[0.1],
               cache_dir=cache_dir, progress=False)
    assert len(built) == 7  # so is another subset
    fresh = cache_dir.parent / "unused-cache"
    E.evaluate([digits_model], specs, x, y, eps_grid=[0.1], cache=False, cache_dir=fresh,
               progress=False)
    assert len(built) == 9 and not fresh.exists()


def test_unit_lookup_errors_name_what_exists(result, digits_model):
    with pytest.raises(KeyError, match="available"):
        result.adv_logits(digits_model.key, "pgd", 0.3)
    with pytest.raises(KeyError, match="unknown"):
        result.clean_logits("no-such-model")
    assert math.isclose(result.attacks["pgd"]["steps"], 5)
    assert result.attacks["autoattack-reduced"]["version"] == "reduced"


def test_missing_units_names_what_evaluate_computes(digits_model, subset, cache_dir):
    """missing_units and evaluate share one plan: a model is missing until evaluate has
    written every unit, and again as soon as one unit file is gone (only that unit is
    then recomputed)."""
    x, y = subset
    specs, key = [("pgd", {"steps": 2}), "fgsm"], digits_model.key

    def missing():
        return E.missing_units([key, "other-key"], specs, x, y, eps_grid=[0.1],
                               cache_dir=cache_dir)

    def run():
        return E.evaluate([digits_model], specs, x, y, eps_grid=[0.1], cache_dir=cache_dir,
                          progress=False)

    assert missing() == [key, "other-key"]
    first = run()
    assert missing() == ["other-key"]
    assert all(Path(p).exists() for p in first.units["path"])
    Path(first.units["path"].iloc[1]).unlink()
    assert missing() == [key, "other-key"]
    assert run().units["from_cache"].tolist() == [True, False]


# ------------------------------------------------------------------ identity as data


def _stub(config):
    """A TrainedModel of ``config`` without training it: identity reads the config only."""
    from drsl_utils.training import TrainedModel

    return TrainedModel(config, None, config.key, {}, 0.0, 0.0, False)


def test_model_identity_reads_the_training_configuration():
    import json

    from drsl_utils.training import TrainConfig

    drsl = TrainConfig(dataset="digits", model="cnn", loss="drsl", loss_params={"tau": 0.5},
                       seed=3, adversarial="trades")
    ident = E.model_identity(_stub(drsl), "my DRSL")
    assert (ident.model, ident.model_key, ident.architecture, ident.loss) == (
        "my DRSL", drsl.key, "cnn", "drsl")
    assert dict(ident.loss_params) == {"space": "logit", "tau": 0.5}  # default filled in
    assert (ident.adversarial, ident.training, ident.seed, ident.weights) == (
        "trades", "adversarial", 3, "")
    cols = ident.columns()
    assert list(cols) == list(E.IDENTITY_COLUMNS)
    assert json.loads(cols["loss_params"]) == {"space": "logit", "tau": 0.5}
    student = TrainConfig(dataset="digits", teacher=drsl.replace(model="mlp"),
                          distill_variant="permuted")
    assert E.model_identity(_stub(student)).distilled == "permuted"
    assert E.model_identity(_stub(student)).model == student.label  # the default name
    with pytest.raises(E.ModelTypeError, match="model=str is not valid"):
        E.model_identity("CE")


def test_records_carry_identity_whatever_the_name(digits_model, subset):
    """A CE model trained on labels named "PGD-AT" and a foreign model named "CE":
    statistics and plots read what they are from the identity columns, not the names."""
    from drsl_utils import plots, stats
    from drsl_utils.cache import weights_fingerprint

    x, y = subset
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    res = E.evaluate({"PGD-AT": digits_model, "CE": net}, ["fgsm"], x, y, eps_grid=[0.1],
                     device="cpu", cache=False, progress=False)
    ident = res.records.drop_duplicates("model").set_index("model")
    assert (ident.loc["PGD-AT", ["loss", "training", "adversarial"]].tolist()
            == ["ce", "standard", "none"])
    assert (ident.loc["CE", ["loss", "training", "architecture", "seed"]].tolist()
            == ["unknown", "unknown", "Sequential", -1])
    assert ident.loc["CE", "weights"] == weights_fingerprint(net)
    robust = stats.robust_accuracy(res.records).set_index("model")
    assert robust.loc["PGD-AT", "training"] == "standard"
    assert robust.loc["CE", "loss"] == "unknown"
    st = plots.model_styles(["PGD-AT", "CE"], robust.reset_index())
    assert st["PGD-AT"] == plots.Style(plots.LOSS_COLORS["ce"], "-", "o")  # CE, standard
    assert st["CE"].linestyle != "--"
