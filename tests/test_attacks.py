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


# _project is the guarantee behind "||adv - x|| <= eps and adv in [0, 1]" for every
# attack; the attacks above already stay inside the ball, so only these direct tests fail
# when the projection is loosened. Values are dyadic so every expected value is exact.
def _image(values: list[list[float]]) -> torch.Tensor:
    """A batch of 1x1x2 "images" (N, C, H, W) from rows of two pixels."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 2)


def test_linf_projection_clamps_each_pixel_to_the_ball_then_the_box():
    x = _image([[0.5, 0.5], [0.125, 0.875], [0.5, 0.25]])
    adv = _image([[1.0, 0.0],     # outside the ball on both sides
                  [-1.0, 2.0],    # outside the ball and the box
                  [0.625, -0.5]])  # one pixel inside the ball, one outside
    expected = _image([[0.75, 0.25],   # x +- eps
                       [0.0, 1.0],     # x +- eps = -0.125, 1.125, then the box
                       [0.625, 0.0]])  # the inside pixel unchanged; 0.25 - eps = 0
    assert torch.equal(A._project(adv, x, 0.25, "Linf"), expected)


def test_l2_projection_is_a_radial_shrink_then_a_clamp_to_the_box():
    eps = 0.625
    x = _image([[0.25, 0.25], [0.875, 0.25]])
    # Both deltas are (0.75, 1.0), of length 1.25 = 2 eps: the shrink halves them.
    adv = x + _image([[0.75, 1.0], [0.75, 1.0]])
    expected = _image([[0.625, 0.75],  # x + (0.375, 0.5): on the sphere, inside the box
                       [1.0, 0.75]])   # x + (0.375, 0.5) = (1.25, 0.75), then the box
    out = A._project(adv, x, eps, "L2")
    assert torch.equal(out, expected)
    # The clamp keeps the point in the ball (|clamped - x| <= |delta| per pixel), but it is
    # not the nearest point of ball-and-box to adv: (1, 0.25 + sqrt(eps^2 - 0.125^2)) lies
    # in both and is closer. The test pins the operation the code performs.
    closer = _image([[1.0, 0.25 + (eps**2 - 0.125**2) ** 0.5]])[0]
    assert (closer - x[1]).norm() <= eps + 1e-6
    assert (closer - adv[1]).norm() < (out[1] - adv[1]).norm()
    assert (out - x).flatten(1).norm(dim=1).max() <= eps


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_points_inside_the_ball_and_the_box_are_unchanged(norm):
    x = _image([[0.5, 0.5], [0.0, 1.0], [0.25, 0.75]])
    adv = _image([[0.625, 0.375],  # inside both balls (Linf 0.125, L2 0.177)
                  [0.0, 1.0],      # adv == x, delta 0 (the L2 shrink divides by |delta|)
                  [0.5, 0.75]])    # on the sphere of either ball: |delta| = eps = 0.25
    assert torch.equal(A._project(adv, x, 0.25, norm), adv)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_projection_lands_in_the_ball_and_the_box_and_is_idempotent(norm):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 4, 4, generator=gen)
    adv = x + 3 * torch.randn(64, 1, 4, 4, generator=gen)  # far outside ball and box
    eps = 0.1 if norm == "Linf" else 0.5
    out = A._project(adv, x, eps, norm)
    delta = (out - x).flatten(1)
    size = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps + 1e-6
    assert float(size.min()) > 0  # moved, not collapsed onto x
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(A._project(out, x, eps, norm), out, rtol=0, atol=1e-6)
