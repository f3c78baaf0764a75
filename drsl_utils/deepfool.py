"""DeepFool (Moosavi-Dezfooli et al. 2016), vectorised over the batch.

torchattacks implements DeepFool with a Python loop over samples and classes; here the K
per-class input gradients come from K backward passes over the whole batch (samples do
not interact in eval mode), with torchattacks' arithmetic: the overshoot is applied at
each step and the iterate is clipped to [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["deepfool"]


def deepfool(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int,
              overshoot: float, num_classes: int) -> torch.Tensor:
    """DeepFool as torchattacks implements it, vectorised over the batch.

    Per step, each still-correct sample moves to the linearised nearest decision
    boundary, scaled by ``1 + overshoot``, then clipped to [0, 1]; a sample stops once
    misclassified. torchattacks loops over samples and classes in Python; here the K
    per-class input gradients come from K backward passes over the whole batch (samples
    do not interact in eval mode).
    """
    x = images.clone()
    active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(steps):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        xa = x[idx].clone().requires_grad_(True)
        ya = labels[idx]
        logits = model(xa)
        rows = torch.arange(idx.numel(), device=x.device)
        fooled = logits.argmax(1) != ya
        grads = torch.stack([torch.autograd.grad(logits[:, k].sum(), xa,
                                                 retain_graph=k + 1 < num_classes)[0]
                             for k in range(num_classes)], dim=1)  # b x K x ...
        logits = logits.detach()
        f_prime = logits - logits[rows, ya].unsqueeze(1)
        w_prime = (grads - grads[rows, ya].unsqueeze(1)).flatten(2)
        w_norm = w_prime.norm(dim=2)
        ratio = f_prime.abs() / w_norm.clamp_min(1e-12)
        ratio[rows, ya] = float("inf")
        target = ratio.argmin(1)
        w_t = w_prime[rows, target]
        step = (f_prime[rows, target].abs() / w_norm[rows, target].clamp_min(1e-12) ** 2)
        delta = (step.unsqueeze(1) * w_t).view_as(xa)
        moved = (xa.detach() + (1 + overshoot) * delta).clamp(0.0, 1.0)
        keep = ~fooled
        x[idx[keep]] = moved[keep]
        active[idx[fooled]] = False
    return x


