"""Properties of the losses in ``drsl_utils.losses``: gradients, limits, invariances,
stability, reduction, parameter checks, and that each one trains."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from drsl_utils.losses import (
    DRSL,
    LOSSES,
    GeneralizedCrossEntropy,
    MarginCrossEntropy,
    MeanAbsoluteError,
    OneVsRest,
    SwitchingOneVsRest,
    get_loss,
    logit_margin,
)

# Non-default parameters too, so every code path (fused DRSL, prob space, scale,
# OVR weight) is covered.
CASES = {
    "ce": {},
    "gce": {"q": 0.3},
    "mae": {},
    "drsl": {"tau": 0.3},
    "drsl-prob": {"tau": 2.0, "space": "prob"},
    "isce": {"m": 0.5, "s": 2.0},
    "ovr": {},
    "sovr": {"M": 0.5, "ovr_weight": 0.7},
}


def make(case: str):
    return get_loss(case.split("-")[0], **CASES[case])


def sample(b: int = 8, k: int = 5, seed: int = 0, scale: float = 2.0,
           dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(b, k, generator=g, dtype=dtype),
            torch.randint(0, k, (b,), generator=g))


def test_cases_cover_every_registered_loss():
    assert {c.split("-")[0] for c in CASES} == set(LOSSES)


# --- gradients --------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_gradcheck(case):
    # Random float64 logits: margins differ by far more than gradcheck's 1e-6 steps, so
    # SOVR's switch set stays fixed while it differentiates.
    loss = make(case)
    z, y = sample(seed=1)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: loss.per_sample(t, y), (z,))


def test_drsl_fused_path_matches_autograd_path():
    loss = DRSL(tau=0.3)
    z, y = sample(seed=2)
    z.requires_grad_(True)
    fused = loss.per_sample(z, y)
    plain = F.cross_entropy(z, y, reduction="none") + 0.3 * loss.penalty(z, y)
    torch.testing.assert_close(fused, plain)
    g1, = torch.autograd.grad(fused.sum(), z)
    g2, = torch.autograd.grad(plain.sum(), z)
    torch.testing.assert_close(g1, g2)


def test_drsl_fused_path_float32_matches_float64():
    # Realistic float32 logits, and the same with a large common offset per row.
    loss = DRSL(tau=0.3)
    z, y = sample(b=64, k=10, seed=22, scale=8.0)
    for offset in (0.0, 1e3):
        z32 = (z + offset).float().requires_grad_(True)
        z64 = z.clone().requires_grad_(True)
        v32, v64 = loss.per_sample(z32, y), loss.per_sample(z64, y)
        torch.testing.assert_close(v32.double(), v64, rtol=1e-4, atol=1e-2)
        g32, = torch.autograd.grad(v32.sum(), z32)
        g64, = torch.autograd.grad(v64.sum(), z64)
        torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-3)


def test_drsl_fused_path_refuses_double_backward():
    # First-order only by design: a second derivative must fail loudly, not be wrong.
    z, y = sample(seed=23)
    z.requires_grad_(True)
    (g,) = torch.autograd.grad(DRSL().per_sample(z, y).sum(), z, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.square().sum(), z)


# --- DRSL -------------------------------------------------------------------------

def _spread_reference(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The paper's d, written the slow obvious way (row by row)."""
    out = []
    for v, y in zip(values, labels):
        others = torch.cat([v[:y], v[y + 1:]])
        out.append(((others - others.mean()) ** 2).sum())
    return torch.stack(out)


@pytest.mark.parametrize("space", ["logit", "prob"])
def test_drsl_penalty_matches_definition(space):
    z, y = sample(seed=3)
    values = z if space == "logit" else z.softmax(1)
    torch.testing.assert_close(DRSL(space=space).penalty(z, y), _spread_reference(values, y))


def test_drsl_prob_penalty_uses_mean_one_minus_py():
    z, y = sample(seed=4)
    p = z.softmax(1)
    k = z.shape[1]
    target = (1 - p.gather(1, y[:, None])) / (k - 1)
    d = ((p - target) ** 2).scatter(1, y[:, None], 0.0).sum(1)
    torch.testing.assert_close(DRSL(space="prob").penalty(z, y), d)


@pytest.mark.parametrize("space", ["logit", "prob"])
def test_drsl_penalty_invariant_to_row_constant(space):
    z, y = sample(seed=5)
    shift = 100.0 * torch.randn(z.shape[0], 1, dtype=z.dtype)
    loss = DRSL(space=space, tau=0.5)
    torch.testing.assert_close(loss.penalty(z + shift, y), loss.penalty(z, y))
    torch.testing.assert_close(loss.per_sample(z + shift, y), loss.per_sample(z, y))


@pytest.mark.parametrize("space", ["logit", "prob"])
def test_drsl_penalty_zero_when_non_true_entries_equal(space):
    b, k = 6, 7
    y = torch.arange(b) % k
    z = torch.randn(b, 1, dtype=torch.float64).expand(b, k).clone()
    z[torch.arange(b), y] = 5.0 * torch.randn(b, dtype=torch.float64)
    torch.testing.assert_close(DRSL(space=space).penalty(z, y), torch.zeros(b, dtype=z.dtype))


def test_drsl_logit_penalty_equals_penalty_on_log_softmax():
    z, y = sample(seed=6)
    loss = DRSL(space="logit")
    torch.testing.assert_close(loss.penalty(z, y), loss.penalty(z.log_softmax(1), y))


@pytest.mark.parametrize("space", ["logit", "prob"])
def test_drsl_tau_zero_is_ce(space):
    z, y = sample(seed=7)
    torch.testing.assert_close(DRSL(tau=0.0, space=space).per_sample(z, y),
                               F.cross_entropy(z, y, reduction="none"))


def test_drsl_penalty_accurate_with_large_row_offset():
    # float32 with a common offset of 1e4: centring first keeps d close to float64's.
    z, y = sample(seed=8, dtype=torch.float32)
    shifted = z + 1e4
    torch.testing.assert_close(DRSL().penalty(shifted, y), DRSL().penalty(z.double(), y).float(),
                               rtol=1e-3, atol=1e-2)


# --- GCE and MAE ------------------------------------------------------------------

def test_gce_tends_to_ce_as_q_goes_to_zero():
    z, y = sample(seed=9)
    ce = F.cross_entropy(z, y, reduction="none")
    q = 1e-4
    # (1 - exp(-q c)) / q = c - q c^2 / 2 + ..., so the gap is about q c^2 / 2.
    gap = (GeneralizedCrossEntropy(q=q).per_sample(z, y) - ce).abs()
    assert torch.all(gap <= q * ce**2)
    assert GeneralizedCrossEntropy(q=1e-4).per_sample(z, y).sub(ce).abs().max() < \
        GeneralizedCrossEntropy(q=1e-2).per_sample(z, y).sub(ce).abs().max()


def test_gce_at_q_one_is_mae():
    z, y = sample(seed=10)
    torch.testing.assert_close(GeneralizedCrossEntropy(q=1.0).per_sample(z, y),
                               MeanAbsoluteError().per_sample(z, y))
    torch.testing.assert_close(MeanAbsoluteError().per_sample(z, y),
                               1 - z.softmax(1).gather(1, y[:, None]).squeeze(1))


def test_gce_matches_definition():
    z, y = sample(seed=11)
    p_y = z.softmax(1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(GeneralizedCrossEntropy(q=0.7).per_sample(z, y),
                               (1 - p_y**0.7) / 0.7)


# --- I-SCE-style margin -------------------------------------------------------------

def test_isce_is_ce_of_shifted_scaled_logits():
    z, y = sample(seed=12)
    onehot = F.one_hot(y, z.shape[1]).to(z.dtype)
    torch.testing.assert_close(MarginCrossEntropy(m=0.8, s=3.0).per_sample(z, y),
                               F.cross_entropy(3.0 * (z - 0.8 * onehot), y, reduction="none"))
    torch.testing.assert_close(MarginCrossEntropy(m=0.0, s=1.0).per_sample(z, y),
                               F.cross_entropy(z, y, reduction="none"))


def test_isce_margin_raises_the_loss():
    z, y = sample(seed=13)
    assert torch.all(MarginCrossEntropy(m=1.0).per_sample(z, y)
                     > MarginCrossEntropy(m=0.0).per_sample(z, y))


# --- OVR, margins, SOVR -------------------------------------------------------------

def test_ovr_matches_definition():
    z, y = sample(seed=14)
    onehot = F.one_hot(y, z.shape[1]).to(z.dtype)
    ref = -(onehot * F.logsigmoid(z) + (1 - onehot) * F.logsigmoid(-z)).sum(1)
    torch.testing.assert_close(OneVsRest().per_sample(z, y), ref)
    torch.testing.assert_close(OneVsRest().per_sample(z, y),
                               F.binary_cross_entropy_with_logits(z, onehot,
                                                                  reduction="none").sum(1))


def test_logit_margin_matches_definition():
    z, y = sample(seed=15)
    ref = torch.stack([v[t] - torch.cat([v[:t], v[t + 1:]]).max() for v, t in zip(z, y)])
    torch.testing.assert_close(logit_margin(z, y), ref)


def test_sovr_tiny_fraction_is_ce():
    z, y = sample(b=32, seed=16)
    loss = SwitchingOneVsRest(M=1e-9)
    assert not loss.switched_mask(z, y).any()
    torch.testing.assert_close(loss.per_sample(z, y), F.cross_entropy(z, y, reduction="none"))


@pytest.mark.parametrize("weight", [1.0, 0.25])
def test_sovr_full_fraction_is_weighted_ovr(weight):
    z, y = sample(b=32, seed=17)
    loss = SwitchingOneVsRest(M=1.0, ovr_weight=weight)
    assert loss.switched_mask(z, y).all()
    torch.testing.assert_close(loss.per_sample(z, y), weight * OneVsRest().per_sample(z, y))


@pytest.mark.parametrize("m_frac, batch", [(0.4, 128), (0.29, 100), (0.5, 7), (0.3, 3)])
def test_sovr_switches_the_smallest_margins(m_frac, batch):
    z, y = sample(b=batch, k=10, seed=18)
    loss = SwitchingOneVsRest(M=m_frac)
    mask = loss.switched_mask(z, y)
    n = math.floor(round(m_frac * batch, 9))
    assert int(mask.sum()) == n == loss.num_switched(batch)
    margins = logit_margin(z, y)
    if 0 < n < batch:
        assert margins[mask].max() <= margins[~mask].min()
    ce = F.cross_entropy(z, y, reduction="none")
    ovr = OneVsRest().per_sample(z, y)
    torch.testing.assert_close(loss.per_sample(z, y), torch.where(mask, ovr, ce))


# --- every loss: stability, reduction, checks -----------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_finite_for_huge_logits(case):
    loss = make(case)
    g = torch.Generator().manual_seed(19)
    z = (1e4 * torch.randn(16, 10, generator=g)).clamp(-1e4, 1e4)
    z[:4] = 1e4 * torch.sign(torch.randn(4, 10, generator=g))  # exact +-1e4 entries
    y = torch.randint(0, 10, (16,), generator=g)
    z.requires_grad_(True)
    value = loss(z, y)
    (grad,) = torch.autograd.grad(value, z)
    assert torch.isfinite(value)
    assert torch.isfinite(loss.per_sample(z, y)).all()
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("case", CASES)
def test_batch_mean_unchanged_by_repeating_the_batch(case):
    # For sovr (M=0.5): 8 samples switch 4, the doubled batch switches 8, the same
    # samples twice, since floor(M * B) scales with B here.
    loss = make(case)
    z, y = sample(seed=20)
    torch.testing.assert_close(loss(torch.cat([z, z]), torch.cat([y, y])), loss(z, y))


@pytest.mark.parametrize("case", CASES)
def test_forward_is_mean_of_per_sample(case):
    loss = make(case)
    z, y = sample(seed=21)
    torch.testing.assert_close(loss(z, y), loss.per_sample(z, y).mean())


@pytest.mark.parametrize("case", CASES)
def test_float32_under_bf16_autocast(case):
    # The engine calls per_sample(logits.float(), y) inside autocast: no op of a loss
    # may drop to bf16 there.
    loss = make(case)
    z, y = sample(b=32, k=10, seed=24, scale=5.0, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss.per_sample(z, y)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, loss.per_sample(z, y))


BAD_PARAMS = [
    ("gce", {"q": 0.0}, "q"),
    ("gce", {"q": 1.5}, "q"),
    ("gce", {"q": -0.1}, "q"),
    ("gce", {"q": float("nan")}, "q"),
    ("gce", {"q": "0.7"}, "q"),
    ("drsl", {"tau": -0.1}, "tau"),
    ("drsl", {"space": "softmax"}, "space"),
    ("isce", {"m": -1.0}, "m"),
    ("isce", {"s": 0.0}, "s"),
    ("isce", {"s": -2.0}, "s"),
    ("sovr", {"M": 0.0}, "M"),
    ("sovr", {"M": 1.2}, "M"),
    ("sovr", {"ovr_weight": -1.0}, "ovr_weight"),
]


@pytest.mark.parametrize("name, params, param", BAD_PARAMS)
def test_bad_parameter_raises_naming_it_and_its_value(name, params, param):
    with pytest.raises(ValueError, match=rf"\b{param}=") as info:
        get_loss(name, **params)
    assert repr(params[param]) in str(info.value)
    if param != "space":
        assert "must lie in" in str(info.value)  # the allowed range


@pytest.mark.parametrize("name, param", [("ce", "tau"), ("drsl", "q"), ("sovr", "m")])
def test_unknown_keyword_raises_listing_the_parameters(name, param):
    with pytest.raises(ValueError, match=rf"no parameter '{param}'; its parameters are"):
        get_loss(name, **{param: 0.1})


def test_unknown_loss_lists_registered_names():
    with pytest.raises(ValueError) as info:
        get_loss("focal")
    for name in LOSSES:
        assert name in str(info.value)


@pytest.mark.parametrize("case", CASES)
def test_bad_inputs(case):
    loss = make(case)
    z, y = sample()
    with pytest.raises(ValueError, match="labels out of range"):
        loss(z, torch.full_like(y, z.shape[1]))
    with pytest.raises(ValueError, match="labels out of range"):
        loss(z, torch.full_like(y, -1))
    with pytest.raises(ValueError, match="2-D"):
        loss(z[None], y)
    with pytest.raises(ValueError, match="1-D"):
        loss(z, y[:-1])


# --- every loss trains --------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_trains_on_digits(name, cache_dir):
    from drsl_utils.training import TrainConfig, train

    # Default parameters, lr 1e-3, 6 epochs of 11 steps. Measured (seed 0): ce 0.95,
    # gce 0.95, mae 0.86 (slowest: its gradient vanishes where p_y is small), drsl 0.96,
    # isce 0.95, ovr 0.93, sovr 0.95.
    config = TrainConfig(dataset="digits", epochs=6, loss=name)
    result = train(config, cache_dir=cache_dir, device="cpu", progress=False)
    print(f"{name}: test accuracy {result.test_accuracy:.3f}")
    assert result.test_accuracy > 0.5  # chance is 0.1
