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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .runtime import check_choice

__all__ = ["DISTILL_VARIANTS", "transform_teacher_logits", "distillation_loss"]

DISTILL_VARIANTS = ("full", "permuted", "mean", "max-gap")


def transform_teacher_logits(logits: torch.Tensor, variant: str = "full",
                             seed: int = 0) -> torch.Tensor:
    """Apply a non-max-logit manipulation (see the module docstring) to ``[n, K]`` logits.

    The argmax class and the max logit are preserved by every variant.
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
    return out


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
