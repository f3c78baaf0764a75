"""Tests of attacks.py: the eps-ball and box guarantees, RNG and mode hygiene,
reproducibility and validation of every attack."""

from __future__ import annotations

import copy

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


def test_attack_spec_rejects_eps_in_params():
    with pytest.raises(ValueError, match="eps grid as"):
        A.AttackSpec("pgd", {"eps": 0.1})
