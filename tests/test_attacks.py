"""Tests of attacks.py: the eps-ball and box guarantees, RNG and mode hygiene,
reproducibility, validation, the record schema, the summaries and the cache."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torchattacks
from torch import nn

from drsl_utils import attacks as A
from drsl_utils.data import load_dataset

# Small budgets keep the whole file within seconds on two cores.
FAST = {
    "fgsm": {},
    "pgd": {"steps": 5},
    "pgd-l2": {"steps": 5},
    "cw": {"steps": 30},
    "deepfool": {"steps": 10},
    "apgd-ce": {"steps": 10},
    "apgd-dlr": {"steps": 10},
    "square": {"steps": 50},
    "fab": {"steps": 10},
    "autoattack": {"version": "reduced", "steps": 5, "n_queries": 50, "n_target_classes": 2},
}
EPS = {"Linf": 0.15, "L2": 1.0}
TOL = 1e-5


@pytest.fixture(scope="module")
def subset():
    ds = load_dataset("digits", "test").subset(48, seed=0)
    return ds.images, ds.labels


def test_fast_table_covers_every_attack():
    assert set(FAST) == set(A.ATTACKS)


def _norms(adv: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    delta = (adv - x).flatten(1)
    return delta.abs().amax(1), delta.norm(dim=1)


@pytest.mark.parametrize("name", A.ATTACKS)
def test_adversarials_stay_in_the_eps_ball_and_the_box(name, digits_model, subset):
    x, y = subset
    for norm in A._FAMILIES[name].norms:
        eps = EPS[norm]
        atk = A.build_attack(name, digits_model.model, eps, norm=norm, **FAST[name])
        adv = atk(x, y)
        assert adv.shape == x.shape and adv.dtype == x.dtype
        linf, l2 = _norms(adv, x)
        bound = linf if norm == "Linf" else l2
        assert float(bound.max()) <= eps + TOL, (name, norm)
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
        assert atk.norm == norm


@pytest.mark.parametrize("name", A.ATTACKS)
def test_attack_leaves_rng_mode_and_grads_alone_and_is_reproducible(name, digits_model,
                                                                    subset):
    x, y = subset
    model = digits_model.model
    norm = A._FAMILIES[name].norms[0]
    atk = A.build_attack(name, model, EPS[norm], seed=3, **FAST[name])
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    model.train()
    try:
        first = atk(x, y)
        assert torch.equal(torch.get_rng_state(), before)
        assert model.training
        assert all(p.requires_grad for p in model.parameters())
        for p, g in zip(model.parameters(), grads):  # no gradients leak into the model
            assert (p.grad is None and g is None) or torch.equal(p.grad, g)
        second = atk(x, y)
        assert torch.equal(first, second)
    finally:
        model.eval()
    assert torch.equal(torch.get_rng_state(), before)


def test_seed_changes_random_starts(digits_model, subset):
    x, y = subset
    a = A.build_attack("pgd", digits_model.model, 0.1, steps=2, seed=0)(x, y)
    b = A.build_attack("pgd", digits_model.model, 0.1, steps=2, seed=1)(x, y)
    assert not torch.equal(a, b)


def test_eps_zero_returns_the_clean_inputs(digits_model, subset):
    x, y = subset
    for name in ("pgd", "cw", "autoattack"):
        adv = A.build_attack(name, digits_model.model, 0.0, **FAST[name])(x, y)
        assert torch.equal(adv, x)


def test_pgd_restarts_only_add_successes(digits_model, subset):
    x, y = subset
    model = digits_model.model
    one = A.build_attack("pgd", model, 0.08, steps=3)(x, y)
    three = A.build_attack("pgd", model, 0.08, steps=3, restarts=3)(x, y)
    with torch.no_grad():
        fooled_one = model(one).argmax(1) != y
        fooled_three = model(three).argmax(1) != y
    assert bool((fooled_three | ~fooled_one).all())  # fooled once stays fooled
    assert int(fooled_three.sum()) >= int(fooled_one.sum())


def test_batched_deepfool_matches_torchattacks(digits_model, subset):
    x, y = subset
    model = digits_model.model
    ours = A._deepfool(model, x[:16], y[:16], steps=5, overshoot=0.02, num_classes=10)
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    ref = torchattacks.DeepFool(model, steps=5, overshoot=0.02)(x[:16], y[:16])
    assert torch.allclose(ours, ref, atol=1e-4)
    for p, g in zip(model.parameters(), grads):  # torchattacks' DeepFool adds to .grad
        p.grad = g


def test_autoattack_standard_uses_croce_hein_constants(digits_model):
    atk = A.build_attack("autoattack", digits_model.model, 0.1)
    assert atk.name == "autoattack-standard"
    apgd, apgdt, fabt, square = atk.inner.attacks
    assert isinstance(apgd, torchattacks.APGD) and apgd.loss == "ce"
    assert (apgd.steps, apgd.n_restarts) == (100, 1)
    assert isinstance(apgdt, torchattacks.APGDT)
    assert (apgdt.steps, apgdt.n_restarts, apgdt.n_target_classes) == (100, 1, 9)
    assert isinstance(fabt, torchattacks.FAB) and fabt.multi_targeted
    assert (fabt.steps, fabt.n_restarts, fabt.n_target_classes) == (100, 1, 9)
    assert isinstance(square, torchattacks.Square)
    assert (square.n_queries, square.n_restarts, square.rescale_schedule) == (5000, 1, False)

    reduced = A.build_attack("autoattack", digits_model.model, 0.1, version="reduced")
    assert reduced.name == "autoattack-reduced"
    apgd, apgdt, fabt, square = reduced.inner.attacks
    assert apgd.steps == apgdt.steps == fabt.steps == 20
    assert apgdt.n_target_classes == fabt.n_target_classes == 3
    assert square.n_queries == 1000


def test_number_of_classes_comes_from_the_model(digits_model):
    model = copy.deepcopy(digits_model.model)
    model.head = nn.Linear(model.head.in_features, 3)
    assert model.num_classes == 3
    atk = A.build_attack("autoattack", model, 0.1)
    _, apgdt, fabt, _ = atk.inner.attacks
    assert apgdt.n_target_classes == fabt.n_target_classes == 2
    fab = A.build_attack("fab", model, 0.1, targeted=True)
    assert fab.inner.n_target_classes == 2 and fab.num_classes == 3
    with pytest.raises(ValueError, match="n_classes=10"):
        A.build_attack("fab", model, 0.1, n_classes=10)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "pgdd"}, r"name='pgdd'.*'fgsm'.*'autoattack'"),
    ({"eps": -0.1}, r"eps=-0\.1.*\[0, 1\]"),
    ({"eps": 1.5}, r"eps=1\.5.*\[0, 1\]"),
    ({"name": "pgd-l2", "eps": -1.0}, r"eps=-1\.0.*>= 0"),
    ({"steps": 0}, r"steps=0.*>= 1"),
    ({"restarts": 0}, r"restarts=0.*>= 1"),
    ({"norm": "L2"}, r"norm='L2'.*'Linf'"),
    ({"name": "apgd-ce", "step_size": 0.1}, r"step_size=0\.1.*None"),
    ({"name": "fgsm", "steps": 3}, r"steps=3.*None"),
    ({"name": "cw", "restarts": 2}, r"restarts=2.*allowed: 1"),
    ({"foo": 1}, r"unknown option.*foo.*random_start"),
    ({"name": "autoattack", "version": "fast"}, r"version='fast'.*'standard'.*'reduced'"),
    ({"name": "autoattack", "steps": 10}, r"steps=10.*version='standard'.*100"),
    ({"name": "square", "loss": "hinge"}, r"loss='hinge'.*'margin'"),
    ({"name": "cw", "c": -1}, r"c=-1.*> 0"),
    ({"name": "deepfool", "overshoot": -0.1}, r"overshoot=-0\.1.*>= 0"),
    ({"random_start": "yes"}, r"random_start='yes'.*True or False"),
])
def test_bad_parameters_raise_value_errors(digits_model, kwargs, match):
    args = {"name": "pgd", "eps": 0.1, **kwargs}
    name, eps = args.pop("name"), args.pop("eps")
    with pytest.raises(ValueError, match=match):
        A.build_attack(name, digits_model.model, eps, **args)


def test_l2_eps_beyond_the_input_box_raises(digits_model, subset):
    x, y = subset  # d = 64, so sqrt(d) = 8
    atk = A.build_attack("pgd-l2", digits_model.model, 8.5)
    with pytest.raises(ValueError, match=r"eps=8\.5.*sqrt\(d\)"):
        atk(x, y)
    with pytest.raises(ValueError, match=r"eps=8\.5.*sqrt\(d\)"):
        A.evaluate([digits_model], [A.AttackSpec("pgd-l2", eps=[8.5])], x, y,
                   progress=False, cache=False)


def test_evaluate_rejects_bad_inputs(digits_model, subset):
    x, y = subset
    tm = digits_model
    with pytest.raises(ValueError, match="name='nope'"):
        A.evaluate([tm], ["nope"], x, y, eps_grid=[0.1], cache=False, progress=False)
    with pytest.raises(ValueError, match="no eps grid"):
        A.evaluate([tm], ["fgsm"], x, y, cache=False, progress=False)
    with pytest.raises(ValueError, match="repeated record names"):
        A.evaluate([tm], ["fgsm", ("fgsm", {"seed": 1})], x, y, eps_grid=[0.1],
                   cache=False, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        A.evaluate([tm], ["fgsm"], x * 2, y, eps_grid=[0.1], cache=False, progress=False)
    with pytest.raises(ValueError, match="batch_size=0"):
        A.evaluate([tm], ["fgsm"], x, y, eps_grid=[0.1], batch_size=0, cache=False,
                   progress=False)
    with pytest.raises(ValueError, match="eps grid as"):
        A.AttackSpec("pgd", {"eps": 0.1})


SPECS = [
    ("pgd", {"steps": 5}),
    "fgsm",
    A.AttackSpec("pgd-l2", {"steps": 5}, eps=[0.0, 1.0]),
    A.AttackSpec("autoattack", FAST["autoattack"]),
]


@pytest.fixture(scope="module")
def result(digits_model, subset, tmp_path_factory):
    x, y = subset
    return A.evaluate([digits_model], SPECS, x, y, eps_grid=[0.0, 0.1], batch_size=20,
                      device="cpu", progress=False,
                      cache_dir=tmp_path_factory.mktemp("attack-cache"))


def test_records_have_the_schema(result, subset, digits_model):
    rec = result.records
    n = subset[1].shape[0]
    assert list(rec.columns) == list(A.RECORD_COLUMNS)
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


def test_summaries_are_consistent(result):
    rec = result.records
    ra = A.robust_accuracy(rec)
    assert len(ra) == 8 and (ra["n"] == rec["sample"].nunique()).all()
    zero = ra[ra["eps"] == 0]
    np.testing.assert_allclose(zero["robust_accuracy"], zero["clean_accuracy"])
    assert (ra["robust_accuracy"] <= ra["clean_accuracy"] + 1e-12).all()
    assert (ra[ra["eps"] > 0]["robust_accuracy"] < ra[ra["eps"] > 0]["clean_accuracy"]).all()

    assert not (rec["success"] & ~rec["clean_correct"]).any()
    sr = A.success_rate(rec)
    merged = ra.merge(sr, on=["model", "model_key", "loss", "seed", "attack", "eps"])
    # robust = clean - successes / n: success is counted over clean-correct samples only
    np.testing.assert_allclose(merged["robust_accuracy"],
                               merged["clean_accuracy"] - merged["n_success"] / merged["n"])
    np.testing.assert_allclose(merged["n_clean_correct"], merged["clean_accuracy"] * merged["n"])
    np.testing.assert_allclose(sr["success_rate"], sr["n_success"] / sr["n_clean_correct"])
    assert (sr.loc[sr["eps"] == 0, "success_rate"] == 0).all()

    sc = A.second_class_fraction(rec)
    assert np.allclose(sc["chance"], 1 / 9)
    assert sc.loc[sc["eps"] == 0, "second_fraction"].isna().all()
    hit = sc[sc["n_success"] > 0]
    assert ((hit["second_fraction"] >= 0) & (hit["second_fraction"] <= 1)).all()
    assert (A.second_class_fraction(rec, num_classes=5)["chance"] == 0.25).all()


def test_evaluate_keeps_rng_and_mode(digits_model, subset, cache_dir):
    x, y = subset
    torch.manual_seed(7)
    before = torch.get_rng_state()
    digits_model.model.train()
    try:
        A.evaluate([digits_model], [("apgd-ce", {"steps": 3}), ("square", {"steps": 20})],
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

    monkeypatch.setattr(A, "build_attack", counting)
    specs = [("pgd", {"steps": 3}), "fgsm"]

    def run(**kw):
        return A.evaluate([digits_model], specs, x, y, eps_grid=[0.05, 0.1],
                          cache_dir=cache_dir, progress=False, **kw)

    first = run()
    assert len(built) == 4 and not first.units["from_cache"].any()
    files = sorted((cache_dir / "attacks" / digits_model.key).glob("*.npz"))
    assert len(files) == 5  # 4 units and the clean pass
    second = run()
    assert len(built) == 4 and second.units["from_cache"].all()
    pd.testing.assert_frame_equal(first.records, second.records)
    np.testing.assert_array_equal(first.adv_features(digits_model.key, "pgd", 0.1),
                                  second.adv_features(digits_model.key, "pgd", 0.1))

    run(batch_size=16)  # batch size and device are not part of the key
    assert len(built) == 4
    A.evaluate([digits_model], [("pgd", {"steps": 4})], x, y, eps_grid=[0.1],
               cache_dir=cache_dir, progress=False)
    assert len(built) == 5  # a changed parameter is a new unit
    A.evaluate([digits_model], specs, x[:40], y[:40], eps_grid=[0.1],
               cache_dir=cache_dir, progress=False)
    assert len(built) == 7  # so is another subset
    fresh = cache_dir.parent / "unused-cache"
    A.evaluate([digits_model], specs, x, y, eps_grid=[0.1], cache=False, cache_dir=fresh,
               progress=False)
    assert len(built) == 9 and not fresh.exists()


def test_unit_lookup_errors_name_what_exists(result, digits_model):
    with pytest.raises(KeyError, match="available"):
        result.adv_logits(digits_model.key, "pgd", 0.3)
    with pytest.raises(KeyError, match="unknown"):
        result.clean_logits("no-such-model")
    assert math.isclose(result.attacks["pgd"]["steps"], 5)
    assert result.attacks["autoattack-reduced"]["version"] == "reduced"
