"""Loss functions behind one registry: ``get_loss(name, **params)``.

Every loss is a module called as ``loss(logits, labels)`` that checks its inputs and
returns the batch mean. ``loss.per_sample(logits, labels)`` skips the checks and returns
one value per sample; the training engine calls ``per_sample(...).mean()`` on its hot
path. Each docstring carries the formula and its source.

Registered names: ``ce``, ``gce``, ``mae``, ``drsl``, ``isce``, ``ovr``, ``sovr``.

Notation: ``z`` are the logits of one sample (K classes), ``y`` its label,
``p = softmax(z)``. Every loss is written with ``log_softmax``, ``logsumexp`` or
``softplus``, so logits of magnitude 1e4 give finite values and finite gradients.
"""

from __future__ import annotations

import inspect
import math
from numbers import Real
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .registry import Registry

__all__ = [
    "LOSSES",
    "Loss",
    "CrossEntropy",
    "GeneralizedCrossEntropy",
    "MeanAbsoluteError",
    "DRSL",
    "MarginCrossEntropy",
    "OneVsRest",
    "SwitchingOneVsRest",
    "DRSL_SPACES",
    "get_loss",
    "register_loss",
    "logit_margin",
]

DRSL_SPACES = ("logit", "prob")


class Loss(nn.Module):
    """Base class: validates inputs, then calls :meth:`per_sample` and averages."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_inputs(logits, labels)
        return self.per_sample(logits, labels).mean()

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        params = inspect.signature(type(self).__init__).parameters
        return ", ".join(f"{p}={getattr(self, p)!r}" for p in params if p != "self")


def _check_inputs(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D (batch x classes), got shape {tuple(logits.shape)}")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must be 1-D with {logits.shape[0]} entries, got shape "
                         f"{tuple(labels.shape)}")
    k = logits.shape[1]
    # One fused check keeps this cheap (a single device sync on GPU).
    if labels.numel() and bool(((labels < 0) | (labels >= k)).any()):
        raise ValueError(f"labels out of range: every label must lie in [0, {k - 1}]")


def _check_number(name: str, value: object, low: float, high: float = math.inf, *,
                  low_open: bool = False, high_open: bool = False) -> float:
    """Return ``float(value)`` if it lies in the interval, else raise a ``ValueError``
    naming the parameter, the value and the interval."""
    interval = (f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
                .replace("inf]", "inf)"))
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name}={value!r} is not a number; it must lie in {interval}")
    v = float(value)
    too_low = v <= low if low_open else v < low
    too_high = v >= high if high_open else v > high
    if math.isnan(v) or too_low or too_high:
        raise ValueError(f"{name}={value!r} is out of range; it must lie in {interval}")
    return v


def logit_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Logit margin ``z_y - max_{k != y} z_k`` per sample (Kanai et al. 2023).

    Positive where the sample is classified correctly; differentiable (the gradient
    flows to the true logit and to the largest other logit).
    """
    idx = labels[:, None]
    true = logits.gather(1, idx).squeeze(1)
    others = logits.scatter(1, idx, float("-inf")).amax(1)
    return true - others


class CrossEntropy(Loss):
    """Softmax cross-entropy.

    ``L(z, y) = -log softmax(z)_y = -z_y + logsumexp(z)``.
    """

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, reduction="none")


class GeneralizedCrossEntropy(Loss):
    """Generalised cross-entropy (GCE), the noise-robust baseline of the DRSL paper.

    ``L_q(z, y) = (1 - p_y^q) / q`` with ``p_y^q = exp(q * log_softmax(z)_y)``, computed
    as ``-expm1(-q * CE(z, y)) / q`` (``log p_y = -CE``), which keeps full precision for
    small ``q`` and stays finite for any logits. It tends to CE as ``q -> 0`` and equals
    MAE (``1 - p_y``) at ``q = 1``.

    Source: Zhang & Sabuncu, "Generalized Cross Entropy Loss for Training Deep Neural
    Networks with Noisy Labels", NeurIPS 2018 (arXiv:1805.07836).

    Args:
        q: exponent in (0, 1]; default 0.7 (the paper's choice).
    """

    def __init__(self, q: float = 0.7) -> None:
        super().__init__()
        self.q = _check_number("q", q, 0.0, 1.0, low_open=True)

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, labels, reduction="none")
        return torch.expm1(ce * -self.q) * (-1.0 / self.q)


class MeanAbsoluteError(Loss):
    """Mean absolute error on the softmax, ``L(z, y) = 1 - p_y`` (GCE at ``q = 1``).

    For a one-hot target ``||p - e_y||_1 = 2 (1 - p_y)``; this is half of it, the usual
    normalisation. Source: Ghosh, Kumar & Sastry, "Robust Loss Functions under Label
    Noise for Deep Neural Networks", AAAI 2017 (arXiv:1712.09482).
    """

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.expm1(F.cross_entropy(logits, labels, reduction="none") * -1.0) * -1.0


def _spread(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``sum_{k != y} (v_k - mean_{j != y} v_j)^2`` per row, by plain autograd.

    Centring before squaring (rather than "sum of squares minus square of sum") keeps
    it accurate when a row carries a large common offset. No K x K masks: the true
    entry is zeroed by a scatter.
    """
    idx = labels[:, None]
    masked = values.scatter(1, idx, 0.0)
    mean = masked.sum(1, keepdim=True) / (values.shape[1] - 1)
    return (masked - mean).scatter(1, idx, 0.0).square().sum(1)


class _DRSLLogit(torch.autograd.Function):
    """Fused ``CE(z, y) + tau * sum_{k != y} (z_k - mean_{j != y} z_j)^2`` per row.

    Works on log-softmax values ``l`` (the penalty is the same on ``l`` as on ``z``, and
    ``l`` gives CE for free). The gradient is formed in the forward pass:
    ``dL/dz = softmax(z) - onehot(y) + 2 tau dev``, where ``dev`` are the centred
    non-true values (0 at ``y``); the mean's own term cancels because the deviations
    sum to zero. Why fused: right after the model's matrix products every distinct
    tiny tensor op runs cache-cold (~10-15 us each on the project's CPUs), so the op
    count, not the arithmetic, sets DRSL's overhead; one autograd node with ~12 ops
    and a 2-op backward (instead of ~20 nodes) keeps it at about 5 % of a Fashion-MNIST
    MLP step (benchmarks/bench_losses.py). First-order only: a double backward raises
    instead of being silently wrong.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor,  # type: ignore[override]
                tau: float) -> torch.Tensor:
        idx = labels[:, None]
        logp = logits.log_softmax(1)
        logp_true = logp.gather(1, idx)
        # Centre on the mean of the non-true entries (sum minus the true one).
        others_sum = logp.sum(1, keepdim=True).sub_(logp_true)
        dev = logp.sub(others_sum, alpha=1.0 / (logits.shape[1] - 1)).scatter_(1, idx, 0.0)
        # softmax - onehot + 2 tau dev; at y that is p_y - 1 (dev_y = 0).
        grad_dir = logp.exp_().add_(dev, alpha=2.0 * tau)
        grad_dir.scatter_(1, idx, logp_true.exp().sub_(1.0))
        ctx.save_for_backward(grad_dir)
        # square + sum, not vecdot: autocast would run vecdot in bf16.
        return dev.square_().sum(1).mul_(tau).sub_(logp_true.squeeze(1))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        (grad_dir,) = ctx.saved_tensors
        return grad_dir * grad[:, None], None, None


class DRSL(Loss):
    """Distribution-restrained softmax loss (DRSL).

    ``L(z, y) = CE(z, y) + tau * d(z, y)``, where ``d`` is the spread of the K-1
    non-true entries around their own mean:

    - ``space="logit"`` (default; the first author's public code):
      ``d = sum_{k != y} (z_k - mean_{j != y} z_j)^2``. Identical on log-softmax values,
      because log-softmax shifts a row by a constant.
    - ``space="prob"``: ``d = sum_{k != y} (p_k - (1 - p_y) / (K - 1))^2``, a much weaker
      regulariser (every term is below 1).

    Weight conversion: the authors' code adds the penalty *summed over the batch* with
    weight ``b`` (0.001; 0.005 in a variant) to a *batch-mean* CE. Here both terms are
    batch means, so the same objective is ``tau = b * batch_size`` (b = 0.001 at batch
    size 100 gives the default tau = 0.1; at batch 128 it is tau = 0.128).

    Source: Wang, Li, Jiang, Zhang, Zhao & Gong, "Distribution-restrained Softmax Loss
    for the Model Robustness", arXiv:2303.12363 (2023).

    Args:
        tau: penalty weight, >= 0 (default 0.1; ``tau = 0`` is plain CE).
        space: ``"logit"`` or ``"prob"``.
    """

    def __init__(self, tau: float = 0.1, space: str = "logit") -> None:
        super().__init__()
        self.tau = _check_number("tau", tau, 0.0)
        if space not in DRSL_SPACES:
            raise ValueError(f"space={space!r} is not valid; choose one of: "
                             f"{', '.join(repr(s) for s in DRSL_SPACES)}")
        self.space = space

    def penalty(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The spread ``d`` alone, per sample (no weight ``tau``)."""
        values = logits if self.space == "logit" else logits.softmax(1)
        return _spread(values, labels)

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.tau == 0.0:
            return F.cross_entropy(logits, labels, reduction="none")
        if self.space == "logit":
            return _DRSLLogit.apply(logits, labels, self.tau)
        ce = F.cross_entropy(logits, labels, reduction="none")
        return ce + self.tau * self.penalty(logits, labels)


class MarginCrossEntropy(Loss):
    """I-SCE-style margin: additive-margin softmax cross-entropy.

    ``L(z, y) = CE(s * (z - m * onehot(y)), y)``: the true-class logit is lowered by
    ``m`` inside the softmax during training, so the loss keeps pushing until the true
    logit beats the others by about ``m``; ``s`` scales the logits.

    This is an *I-SCE-style* reading, not I-SCE itself: the published I-SCE formula
    and constants were not available to us, and this is the additive-margin version of
    "softmax CE with margin-like inference information". Source of the idea: Song,
    Wang, He & Zhou, "I-SCE: Inference-Softmax Cross Entropy", Mathematics 10(19):3716
    (2022) (ICLR 2021 submission); the additive-margin form follows Wang et al.,
    "Additive Margin Softmax for Face Verification" (arXiv:1801.05599).

    Args:
        m: margin, >= 0 (default 1.0; ``m = 0, s = 1`` is plain CE).
        s: logit scale, > 0 (default 1.0).
    """

    def __init__(self, m: float = 1.0, s: float = 1.0) -> None:
        super().__init__()
        self.m = _check_number("m", m, 0.0)
        self.s = _check_number("s", s, 0.0, low_open=True)

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.m != 0.0:
            shift = logits.new_full((logits.shape[0], 1), -self.m)
            logits = logits.scatter_add(1, labels[:, None], shift)
        if self.s != 1.0:
            logits = self.s * logits
        return F.cross_entropy(logits, labels, reduction="none")


def _one_vs_rest(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # softplus(-z_y) + sum_{k != y} softplus(z_k) is the sum over k of the binary
    # cross-entropy of z_k against onehot(y)_k: one fused, max-stabilised kernel.
    onehot = torch.zeros_like(logits).scatter_(1, labels[:, None], 1.0)
    return F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").sum(1)


class OneVsRest(Loss):
    """One-versus-the-rest loss: K independent sigmoid (binary) cross-entropies.

    ``L(z, y) = softplus(-z_y) + sum_{k != y} softplus(z_k)``, that is
    ``-log sigmoid(z_y) - sum_{k != y} log(1 - sigmoid(z_k))``.

    Source: as used by SOVR, Kanai et al., "Switching One-Versus-the-Rest Loss to
    Increase the Margin of Logits for Adversarial Robustness", ICML 2023
    (arXiv:2207.10283).
    """

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return _one_vs_rest(logits, labels)


class SwitchingOneVsRest(Loss):
    """Switching one-versus-the-rest loss (SOVR).

    Within each batch of B samples, the ``n = floor(M * B)`` samples with the smallest
    logit margin ``z_y - max_{k != y} z_k`` (see :func:`logit_margin`) get
    ``ovr_weight * OVR(z, y)``; the others get ``CE(z, y)``. Meant to be used inside
    PGD adversarial training (``TrainConfig(loss="sovr", adversarial="pgd")``), where
    the margins are those of the adversarial examples.

    The floor means: at most a fraction M is switched, ``M = 1`` switches every sample
    and ``M < 1/B`` switches none (SOVR is then CE). ``n`` scales with the batch when
    ``M * B`` is an integer. The selection is not differentiated (ties in the margin
    are broken arbitrarily).

    Note that ``per_sample`` of a sample depends on the rest of its batch (through the
    switch set), unlike every other loss here.

    Source: Kanai et al., "Switching One-Versus-the-Rest Loss to Increase the Margin of
    Logits for Adversarial Robustness", ICML 2023 (arXiv:2207.10283). The seeds give neither M nor the weight;
    these defaults are this project's choice.

    Args:
        M: fraction of each batch switched to OVR, in (0, 1] (default 0.4).
        ovr_weight: weight of the OVR term, >= 0 (default 1.0).
    """

    def __init__(self, M: float = 0.4, ovr_weight: float = 1.0) -> None:
        super().__init__()
        self.M = _check_number("M", M, 0.0, 1.0, low_open=True)
        self.ovr_weight = _check_number("ovr_weight", ovr_weight, 0.0)

    def num_switched(self, batch_size: int) -> int:
        """``floor(M * batch_size)``, with a tolerance for float round-off (0.29 * 100)."""
        return min(batch_size, math.floor(self.M * batch_size + 1e-9))

    def switched_mask(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the samples that get OVR (the smallest margins)."""
        n = self.num_switched(logits.shape[0])
        mask = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
        if n == 0:
            return mask
        margins = logit_margin(logits.detach(), labels)
        return mask.index_fill_(0, margins.topk(n, largest=False, sorted=False).indices, True)

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, labels, reduction="none")
        if self.num_switched(logits.shape[0]) == 0:
            return ce
        ovr = _one_vs_rest(logits, labels)
        if self.ovr_weight != 1.0:
            ovr = self.ovr_weight * ovr
        return torch.where(self.switched_mask(logits, labels), ovr, ce)


LOSSES: Registry[type[Loss]] = Registry("loss", {
    "ce": CrossEntropy,
    "gce": GeneralizedCrossEntropy,
    "mae": MeanAbsoluteError,
    "drsl": DRSL,
    "isce": MarginCrossEntropy,
    "ovr": OneVsRest,
    "sovr": SwitchingOneVsRest,
})


def register_loss(name: str, cls: type[Loss] | None = None, *, replace: bool = False
                  ) -> Any:
    """Register a loss class of your own under ``name`` (``LOSSES.register``; also a
    decorator, ``@register_loss("focal")``), so that ``get_loss(name)`` and
    ``TrainConfig(loss=name)`` find it. Subclass :class:`Loss` and define
    ``per_sample``; a model trained with it is cached under a key that covers the
    class's source (``cache.user_fingerprint``)."""
    return LOSSES.register(name, cls, replace=replace)


def get_loss(name: str, **params: float | str) -> Loss:
    """Build the loss registered as ``name`` with keyword ``params``.

    Example: ``get_loss("drsl", tau=0.1, space="logit")``.

    Raises:
        UnknownNameError: unknown name (the message lists the registered ones) or
            unknown keyword (the message lists the loss's parameters); a ``ValueError``.
        ValueError: a bad parameter value (the message names the parameter and its
            allowed range).
    """
    return LOSSES.build(name, **params)
