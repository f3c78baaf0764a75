"""Logit distillation, and the manipulations of the teacher's non-max logits that test
what information robustness transfer depends on (Seguin et al., arXiv 2108.12001).

The student never sees an adversarial example: it is trained on the teacher's softened
outputs on clean training images,

    L = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y),

(Hinton et al., 2015), where ``t`` are the (possibly manipulated) teacher logits and
``s`` the student's. Variants of ``t`` (``DISTILL_VARIANTS``):

- ``full``: the teacher's logits as they are;
- ``permuted``: the non-max logits randomly permuted among the non-max classes
  (per sample, seeded): same values and gap, scrambled incorrect-class order;
- ``mean``: every non-max logit replaced by the mean of the non-max logits: the max and
  the mean of the rest survive, the order and spread of the rest do not;
- ``max-gap``: only the max and the gap survive: every non-max logit is set to the
  second-largest logit.
- ``matched``: the control for ``mean`` and ``max-gap``, which also change the teacher's
  top-1 probability and entropy. The non-max logits are replaced by uninformative ones
  (evenly spaced levels in a random class order, per sample) scaled so that, at the
  distillation temperature T, the teacher's top-1 probability *and* entropy are exactly
  those of the full logits. Only the information in the non-max entries is lost. (Where
  the random profile would outrank the max class, which needs a very flat top class, the
  permuted logits are used instead: they keep both quantities too.)

``permuted`` and ``matched`` keep the top-1 probability and the entropy of the softened
teacher; ``mean`` and ``max-gap`` do not, so they are secondary comparisons.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .runtime import check_choice

__all__ = ["DISTILL_VARIANTS", "transform_teacher_logits", "distillation_loss"]

DISTILL_VARIANTS = ("full", "permuted", "mean", "max-gap", "matched")


def transform_teacher_logits(logits: torch.Tensor, variant: str = "full",
                             seed: int = 0, temperature: float = 1.0) -> torch.Tensor:
    """Apply a non-max-logit manipulation (see the module docstring) to ``[n, K]`` logits.

    The argmax class and the max logit are preserved by every variant. ``temperature``
    is the T at which ``matched`` keeps the top-1 probability and the entropy.
    """
    check_choice("variant", variant, DISTILL_VARIANTS)
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be [n, K] with K >= 2, got {tuple(logits.shape)}")
    if variant == "full":
        return logits.clone()
    n, k = logits.shape
    top = logits.argmax(1, keepdim=True)
    is_max = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, top, True)
    out = logits.clone()
    if variant == "mean":
        rest_mean = logits.masked_fill(is_max, 0.0).sum(1, keepdim=True) / (k - 1)
        return torch.where(is_max, logits, rest_mean.expand_as(logits))
    if variant == "max-gap":
        second = logits.masked_fill(is_max, float("-inf")).max(1, keepdim=True).values
        return torch.where(is_max, logits, second.expand_as(logits))
    # permuted: shuffle the K-1 non-max values of each row among the non-max positions.
    g = torch.Generator().manual_seed(seed)
    rest_pos = (~is_max).nonzero()[:, 1].view(n, k - 1)          # non-max column indices
    rest_val = logits.gather(1, rest_pos)
    order = torch.rand(n, k - 1, generator=g).argsort(1)
    out.scatter_(1, rest_pos, rest_val.gather(1, order.to(logits.device)))
    if variant == "permuted":
        return out
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r}: must be > 0")
    return _entropy_matched(logits, out, rest_pos, temperature, g)


def _entropy(log_p: torch.Tensor) -> torch.Tensor:
    return -(log_p.exp() * log_p).sum(1)


def _entropy_matched(logits: torch.Tensor, permuted: torch.Tensor, rest_pos: torch.Tensor,
                     temperature: float, generator: torch.Generator) -> torch.Tensor:
    """Non-max logits ``c + T * beta * r`` with a random-order profile ``r``: ``beta`` matches
    the entropy of the renormalised non-max softmax at temperature T, ``c`` the non-max
    mass, so the top-1 probability and the full entropy stay exactly the same."""
    n, k = logits.shape
    # float64 on the CPU: Apple's MPS has no float64, and this is a few thousand rows.
    device = logits.device
    logits, permuted, rest_pos = logits.cpu(), permuted.cpu(), rest_pos.cpu()
    z = logits.double() / temperature
    rest = z.gather(1, rest_pos)                                   # [n, K-1]
    target = _entropy(torch.log_softmax(rest, dim=1))              # in [0, log(K-1)]
    # Evenly spaced levels in a random order: among profiles of a given entropy this
    # keeps the largest non-max entry low, so it rarely outranks the max class.
    levels = torch.linspace(-1.0, 1.0, k - 1, dtype=torch.float64)
    order = torch.rand(n, k - 1, generator=generator).argsort(1)
    r = levels[order].to(z.device)
    # The entropy of softmax(beta * r) falls monotonically from log(K-1) at beta = 0.
    lo = torch.zeros(n, 1, dtype=torch.float64, device=z.device)
    hi = torch.full((n, 1), 64.0, dtype=torch.float64, device=z.device)
    for _ in range(60):
        mid = (lo + hi) / 2
        too_flat = _entropy(torch.log_softmax(mid * r, dim=1)) > target
        lo = torch.where(too_flat.unsqueeze(1), mid, lo)
        hi = torch.where(too_flat.unsqueeze(1), hi, mid)
    profile = (lo + hi) / 2 * r
    mass = torch.logsumexp(rest, dim=1, keepdim=True)              # log non-max mass
    new_rest = profile - torch.logsumexp(profile, dim=1, keepdim=True) + mass
    top = z.max(1, keepdim=True).values
    ok = (new_rest.max(1, keepdim=True).values < top).squeeze(1)
    out = z.clone()
    out.scatter_(1, rest_pos, new_rest)
    out = (out * temperature).to(logits.dtype)
    return torch.where(ok.unsqueeze(1), out, permuted).to(device)


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor,
                      labels: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    """Batch-mean ``alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * CE`` (module docstring);
    ``teacher_probs`` is ``softmax(t / T)``, precomputed once."""
    log_ps = F.log_softmax(student_logits / temperature, dim=1)
    kl = (teacher_probs * (teacher_probs.clamp_min(1e-12).log() - log_ps)).sum(1)
    loss = alpha * temperature**2 * kl
    if alpha < 1.0:
        loss = loss + (1.0 - alpha) * F.cross_entropy(student_logits, labels, reduction="none")
    return loss.mean()
