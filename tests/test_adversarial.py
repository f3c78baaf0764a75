"""Adversarial training methods: the attack's constraints and side effects, the loss it
returns, parameter checks, and short end-to-end runs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from drsl_utils.adversarial import ADVERSARIAL, TRADES, PGDTraining, get_adversarial
from drsl_utils.data import load_dataset
from drsl_utils.losses import get_loss
from drsl_utils.models import build_model
from drsl_utils.runtime import seeded

METHODS = {
    "pgd": {"eps": 0.1, "steps": 3},
    "pgd-train": {"eps": 0.1, "steps": 3, "attack_loss": "train"},
    "trades": {"eps": 0.1, "steps": 3},
}


def make(case: str):
    return get_adversarial(case.split("-")[0], **METHODS[case])


@pytest.fixture(scope="module")
def batch():
    ds = load_dataset("digits", "train")
    return ds.images[:64], ds.labels[:64]


@pytest.fixture()
def model():
    with seeded(0):
        return build_model("mlp", "digits")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_methods_cover_every_registered_one():
    assert {c.split("-")[0] for c in METHODS} == set(ADVERSARIAL)


@pytest.mark.parametrize("case", METHODS)
@pytest.mark.parametrize("eps", [0.03, 0.3])
def test_examples_stay_in_eps_ball_and_unit_box(case, eps, model, batch):
    x, y = batch
    adv = get_adversarial(case.split("-")[0], **{**METHODS[case], "eps": eps})
    x_adv = adv.perturb(model, get_loss("ce"), x, y, generator=gen())
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert not x_adv.requires_grad


def test_pgd_raises_the_attacked_loss(model, batch):
    x, y = batch
    adv = PGDTraining(eps=0.1, steps=5)
    x_adv = adv.perturb(model, get_loss("ce"), x, y, generator=gen())
    with torch.no_grad():
        assert F.cross_entropy(model.eval()(x_adv), y) > F.cross_entropy(model(x), y)


def test_trades_raises_the_kl(model, batch):
    x, y = batch
    model.eval()
    adv = TRADES(eps=0.1, steps=5)
    x_adv = adv.perturb(model, get_loss("ce"), x, y, generator=gen())
    x_noise = (x + 0.001 * torch.randn(x.shape, generator=gen())).clamp(0, 1)
    with torch.no_grad():
        p = model(x).log_softmax(1)

        def kl(xa):
            return F.kl_div(model(xa).log_softmax(1), p, log_target=True, reduction="sum")

        assert kl(x_adv) > 10 * kl(x_noise)


@pytest.mark.parametrize("case", METHODS)
@pytest.mark.parametrize("train_mode", [True, False])
def test_attack_has_no_side_effects(case, train_mode, model, batch):
    x, y = batch
    model.train(train_mode)
    rng = torch.get_rng_state()
    loss, logits = make(case).loss(model, get_loss("sovr"), x, y, generator=gen())
    assert model.training is train_mode
    assert all(m.training is train_mode for m in model.modules())
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())
    assert loss.dim() == 0 and loss.requires_grad and torch.isfinite(loss)
    assert logits.shape == (x.shape[0], 10)


@pytest.mark.parametrize("case", METHODS)
def test_perturb_works_under_no_grad(case, model, batch):
    x, y = batch
    adv = make(case)
    with torch.no_grad():
        inside = adv.perturb(model, get_loss("ce"), x, y, generator=gen(5))
    assert torch.equal(inside, adv.perturb(model, get_loss("ce"), x, y, generator=gen(5)))


def test_mixed_submodule_modes_are_restored(model, batch):
    x, y = batch
    model.train()
    model.body[1].eval()  # e.g. a frozen layer inside a training model
    PGDTraining(steps=1).loss(model, get_loss("ce"), x, y, generator=gen())
    assert model.training and model.body.training and not model.body[1].training


def test_mode_restored_when_the_attack_fails(model, batch):
    x, y = batch
    model.train()
    with pytest.raises(RuntimeError):
        PGDTraining().loss(model, get_loss("ce"), x[:, :, :4], y, generator=gen())
    assert model.training


@pytest.mark.parametrize("case", METHODS)
def test_deterministic_given_the_generator(case, model, batch):
    x, y = batch
    adv = make(case)
    ce = get_loss("ce")
    a = adv.perturb(model, ce, x, y, generator=gen(1))
    b = adv.perturb(model, ce, x, y, generator=gen(1))
    c = adv.perturb(model, ce, x, y, generator=gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_pgd_loss_is_the_training_loss_on_the_adversarial_examples(model, batch):
    # Its gradient is exactly that of loss_fn(model(x_adv)): the attack adds nothing.
    x, y = batch
    loss_fn = get_loss("drsl", tau=0.1)
    adv = PGDTraining(eps=0.1, steps=3)
    loss, logits = adv.loss(model, loss_fn, x, y, generator=gen(3))
    grads = torch.autograd.grad(loss, list(model.parameters()))
    x_adv = adv.perturb(model, loss_fn, x, y, generator=gen(3))
    expected = loss_fn(model(x_adv), y)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(logits, model(x_adv))
    for g, e in zip(grads, torch.autograd.grad(expected, list(model.parameters()))):
        torch.testing.assert_close(g, e)


def test_trades_loss_is_clean_loss_plus_beta_kl(model, batch):
    x, y = batch
    ce = get_loss("ce")
    loss, logits = TRADES(eps=0.1, steps=3, beta=4.0).loss(model, ce, x, y, generator=gen(4))
    x_adv = TRADES(eps=0.1, steps=3).perturb(model, ce, x, y, generator=gen(4))
    p, q = model(x).softmax(1), model(x_adv).softmax(1)
    kl = (p * (p.log() - q.log())).sum(1).mean()
    torch.testing.assert_close(loss, ce(model(x), y) + 4.0 * kl)
    torch.testing.assert_close(logits, model(x))
    loss0, _ = TRADES(beta=0.0).loss(model, ce, x, y, generator=gen(4))
    torch.testing.assert_close(loss0, ce(model(x), y))


def test_default_step_size_follows_madry_rule():
    assert PGDTraining(eps=0.3, steps=10).step_size == pytest.approx(2.5 * 0.3 / 10)
    assert PGDTraining(eps=0.3, steps=10, step_size=0.01).step_size == 0.01


def test_input_gradient_is_float32_under_bf16_autocast(model, batch):
    x, y = batch
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = PGDTraining(eps=0.1, steps=2).perturb(model, get_loss("ce"), x, y,
                                                      generator=gen())
        loss, _ = PGDTraining(eps=0.1, steps=2).loss(model, get_loss("ce"), x, y,
                                                     generator=gen())
    assert x_adv.dtype == torch.float32
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


BAD_PARAMS = [
    ("pgd", {"eps": 0.0}, "eps"),
    ("pgd", {"eps": 1.5}, "eps"),
    ("pgd", {"eps": -0.1}, "eps"),
    ("pgd", {"steps": 0}, "steps"),
    ("pgd", {"steps": 2.5}, "steps"),
    ("pgd", {"step_size": 0.0}, "step_size"),
    ("pgd", {"step_size": -0.01}, "step_size"),
    ("pgd", {"attack_loss": "kl"}, "attack_loss"),
    ("trades", {"beta": -1.0}, "beta"),
    ("trades", {"eps": 2.0}, "eps"),
]


@pytest.mark.parametrize("name, params, param", BAD_PARAMS)
def test_bad_parameter_raises_naming_it(name, params, param):
    with pytest.raises(ValueError, match=rf"\b{param}=") as info:
        get_adversarial(name, **params)
    assert repr(params[param]) in str(info.value)


def test_unknown_name_or_keyword():
    with pytest.raises(ValueError, match="pgd.*trades"):
        get_adversarial("fgsm")
    with pytest.raises(ValueError, match="no parameter 'beta'; its parameters are"):
        get_adversarial("pgd", beta=1.0)


@pytest.mark.parametrize("loss, method", [("sovr", "pgd"), ("ce", "trades")])
def test_adversarial_training_end_to_end(loss, method, cache_dir):
    from drsl_utils.training import TrainConfig, train

    config = TrainConfig(dataset="digits", epochs=3, loss=loss, adversarial=method,
                         adversarial_params={"eps": 0.1, "steps": 3})
    result = train(config, device="cpu", progress=False, cache_dir=cache_dir)
    print(f"{config.label}: test accuracy {result.test_accuracy:.3f}")
    assert result.test_accuracy > 0.5  # chance is 0.1
    assert all(torch.isfinite(torch.tensor(result.history["loss"])))
