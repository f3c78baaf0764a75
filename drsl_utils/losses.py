"""Loss functions behind one registry: ``get_loss(name, **params)``.

Every loss is a module called as ``loss(logits, labels)`` that returns the batch mean.
Each docstring carries the formula and its source.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LOSSES", "Loss", "CrossEntropy", "get_loss"]


class Loss(nn.Module):
    """Base class: validates inputs, then calls :meth:`per_sample` and averages."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_inputs(logits, labels)
        return self.per_sample(logits, labels).mean()

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


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


class CrossEntropy(Loss):
    """Softmax cross-entropy.

    ``L(z, y) = -log softmax(z)_y = -z_y + logsumexp(z)``.
    """

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, reduction="none")


LOSSES: dict[str, type[Loss]] = {
    "ce": CrossEntropy,
}


def get_loss(name: str, **params: float | str) -> Loss:
    """Build the loss registered as ``name`` with keyword ``params``.

    Raises:
        ValueError: unknown name (the message lists the registered ones) or a bad
            parameter value (the message names the parameter and its allowed range).
    """
    if name not in LOSSES:
        raise ValueError(f"loss {name!r} is not registered; choose one of: "
                         f"{', '.join(sorted(LOSSES))}")
    try:
        return LOSSES[name](**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for loss {name!r}: {exc}") from exc
