"""Adversarial training methods behind one registry: ``get_adversarial(name, **params)``.

Every method has the same call, used by the training engine once per step::

    loss, logits = method.loss(model, loss_fn, x, y, generator=gen)

It crafts adversarial inputs (``method.perturb``, L-inf, inside [0, 1]) and returns the
training loss to back-propagate and the logits used for the train accuracy.

While crafting, the attack

- puts the model in eval mode and restores the mode it found (also on error);
- draws its random start from ``generator`` only, never from the global torch RNG;
- differentiates with ``torch.autograd.grad`` with respect to the input alone, so no
  parameter ``.grad`` is touched;
- runs inside whatever autocast context the caller set (bf16 on CUDA in training), with
  the input kept in float32 and the objective computed on float32 logits, so the input
  gradient (of which PGD uses only the sign) is float32.

Registered names: ``pgd`` (PGD-AT, Madry et al. 2018) and ``trades`` (Zhang et al. 2019).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn

from .losses import Loss
from .registry import Registry

__all__ = [
    "ADVERSARIAL",
    "ATTACK_LOSSES",
    "AdversarialTraining",
    "PGDTraining",
    "TRADES",
    "get_adversarial",
    "pgd_linf",
]

ATTACK_LOSSES = ("ce", "train")


def _check_real(name: str, value: object, low: float, high: float, *, low_open: bool,
                allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name}={value!r} is not a number; it must be {allowed}")
    v = float(value)
    if math.isnan(v) or (v <= low if low_open else v < low) or v > high:
        raise ValueError(f"{name}={value!r} is out of range; it must be {allowed}")
    return v


def _check_steps(steps: object) -> int:
    if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 1:
        raise ValueError(f"steps={steps!r} is not valid; it must be an integer >= 1")
    return int(steps)


def _generator_for(x: torch.Tensor, generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        return torch.Generator(device=x.device).manual_seed(0)
    if generator.device.type != x.device.type:
        raise ValueError(f"generator is on {generator.device}, but the inputs are on "
                         f"{x.device}; pass a torch.Generator(device={str(x.device)!r})")
    return generator


def pgd_linf(model: nn.Module, objective: Callable[[torch.Tensor], torch.Tensor],
             x: torch.Tensor, x_start: torch.Tensor, eps: float, step_size: float,
             steps: int) -> torch.Tensor:
    """Projected sign-gradient ascent on ``objective(model(x_adv).float())``.

    Each step: ``x_adv += step_size * sign(grad)``, then projection onto the L-inf ball
    of radius ``eps`` around ``x`` and onto [0, 1] (``x_start`` is projected first).
    ``objective`` maps float32 logits to a scalar to *maximise*. The model's mode is
    left as it is (callers switch it); parameter gradients are not touched. Returns a
    detached tensor.
    """
    lower = (x - eps).clamp_(min=0.0)
    upper = (x + eps).clamp_(max=1.0)
    x_adv = torch.max(torch.min(x_start.detach(), upper), lower)
    with torch.enable_grad():  # also works when the caller runs under no_grad
        for _ in range(steps):
            x_adv.requires_grad_(True)
            value = objective(model(x_adv).float())
            (grad,) = torch.autograd.grad(value, x_adv)
            x_adv = torch.max(torch.min(x_adv.detach() + step_size * grad.sign(), upper),
                              lower)
    return x_adv.detach()


class AdversarialTraining:
    """Base class: an L-inf attack with ``eps``, ``step_size`` and ``steps``.

    Args:
        eps: L-inf radius in [0, 1] pixel units, in (0, 1]. Default 0.1 suits quick
            MLP runs on Fashion-MNIST/MNIST-like data; 0.3 is the MNIST convention
            and 8/255 the CIFAR-10 one.
        step_size: step of each iteration, > 0; default ``2.5 * eps / steps`` (the
            rule of Madry et al., so that the walk can cross the ball).
        steps: iterations, an integer >= 1 (default 7).
    """

    def __init__(self, eps: float = 0.1, step_size: float | None = None,
                 steps: int = 7) -> None:
        self.eps = _check_real("eps", eps, 0.0, 1.0, low_open=True, allowed="in (0, 1]")
        self.steps = _check_steps(steps)
        if step_size is None:
            step_size = 2.5 * self.eps / self.steps
        self.step_size = _check_real("step_size", step_size, 0.0, math.inf, low_open=True,
                                     allowed="> 0")

    def perturb(self, model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Adversarial inputs for ``(x, y)``, within ``eps`` of ``x`` and inside [0, 1].

        Crafted in eval mode; every submodule's mode is restored afterwards (also on
        error). The random start comes from ``generator`` (on ``x``'s device); ``None``
        means a fresh generator seeded with 0, never the global RNG.
        """
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            return self._perturb(model, loss_fn, x, y, _generator_for(x, generator))
        finally:
            for module, mode in modes:
                module.training = mode

    def _perturb(self, model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor, *,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(training loss, logits)`` for one batch; see the subclass."""
        raise NotImplementedError

    def __repr__(self) -> str:
        params = inspect.signature(type(self).__init__).parameters
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in params if p != "self")
        return f"{type(self).__name__}({args})"


class PGDTraining(AdversarialTraining):
    """PGD adversarial training (PGD-AT).

    ``min_theta E[ L(f(x_adv), y) ]`` with ``x_adv`` from L-inf PGD: a uniform random
    start in the eps ball (clipped to [0, 1]), then ``steps`` sign-gradient ascent
    steps of ``step_size``, each projected onto the eps ball and [0, 1]. The training
    loss is the configured loss on the adversarial logits,
    ``loss_fn.per_sample(model(x_adv), y).mean()``, with the model in the mode the
    caller set (train mode in the engine). So ``loss="sovr"`` gives SOVR inside PGD-AT,
    with the switch set chosen on the adversarial margins.

    Source: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models
    Resistant to Adversarial Attacks", ICLR 2018 (arXiv:1706.06083).

    Args:
        eps, step_size, steps: see :class:`AdversarialTraining`.
        attack_loss: what PGD maximises: ``"ce"`` (default; the usual choice, and what
            SOVR's authors attack with) or ``"train"`` (the configured training loss).

    Returns from :meth:`loss`: the batch-mean loss and the adversarial logits.
    """

    def __init__(self, eps: float = 0.1, step_size: float | None = None, steps: int = 7,
                 attack_loss: str = "ce") -> None:
        super().__init__(eps=eps, step_size=step_size, steps=steps)
        if attack_loss not in ATTACK_LOSSES:
            raise ValueError(f"attack_loss={attack_loss!r} is not valid; choose one of: "
                             f"{', '.join(repr(a) for a in ATTACK_LOSSES)}")
        self.attack_loss = attack_loss

    def _perturb(self, model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        start = x + (2.0 * noise - 1.0) * self.eps
        if self.attack_loss == "ce":
            def objective(logits: torch.Tensor) -> torch.Tensor:
                return F.cross_entropy(logits, y, reduction="sum")
        else:
            def objective(logits: torch.Tensor) -> torch.Tensor:
                return loss_fn.per_sample(logits, y).sum()
        return pgd_linf(model, objective, x, start, self.eps, self.step_size, self.steps)

    def loss(self, model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor, *,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x_adv = self.perturb(model, loss_fn, x, y, generator=generator)
        logits = model(x_adv)
        return loss_fn.per_sample(logits.float(), y).mean(), logits


class TRADES(AdversarialTraining):
    """TRADES: clean loss plus a KL term between clean and adversarial predictions.

    ``L = loss_fn(f(x), y) + beta * KL(softmax(f(x)) || softmax(f(x_adv)))``, both batch
    means, where ``x_adv`` maximises that KL: start at ``x + 0.001 * N(0, 1)``, then
    ``steps`` projected sign-gradient steps (eps ball and [0, 1]), the clean
    distribution fixed and computed in eval mode as in the reference code. With the
    default ``loss="ce"`` this is exactly TRADES; another configured loss replaces the
    clean CE term.

    Source: Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, "Theoretically Principled
    Trade-off between Robustness and Accuracy", ICML 2019 (arXiv:1901.08573).

    Args:
        eps, step_size, steps: see :class:`AdversarialTraining`.
        beta: weight of the KL term, >= 0 (default 6.0, the paper's CIFAR/MNIST choice).

    Returns from :meth:`loss`: the loss and the *clean* logits.
    """

    def __init__(self, eps: float = 0.1, step_size: float | None = None, steps: int = 7,
                 beta: float = 6.0) -> None:
        super().__init__(eps=eps, step_size=step_size, steps=steps)
        self.beta = _check_real("beta", beta, 0.0, math.inf, low_open=False, allowed=">= 0")

    def _perturb(self, model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            p_clean = model(x).float().softmax(1)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

        def objective(logits: torch.Tensor) -> torch.Tensor:
            return F.kl_div(logits.log_softmax(1), p_clean, reduction="sum")

        return pgd_linf(model, objective, x, x + 0.001 * noise, self.eps, self.step_size,
                        self.steps)

    def loss(self, model: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor, *,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x_adv = self.perturb(model, loss_fn, x, y, generator=generator)
        logits = model(x)
        clean = logits.float()
        natural = loss_fn.per_sample(clean, y).mean()
        if self.beta == 0.0:
            return natural, logits
        robust = F.kl_div(model(x_adv).float().log_softmax(1), clean.log_softmax(1),
                          reduction="batchmean", log_target=True)
        return natural + self.beta * robust, logits


ADVERSARIAL: Registry[type[AdversarialTraining]] = Registry("adversarial training", {
    "pgd": PGDTraining,
    "trades": TRADES,
})


def get_adversarial(name: str, **params: float | int | str | None) -> AdversarialTraining:
    """Build the adversarial training method registered as ``name``.

    Example: ``get_adversarial("pgd", eps=0.1, steps=7)``. A method of your own, a
    subclass of :class:`AdversarialTraining`, joins with
    ``ADVERSARIAL.register("name", cls)``.

    Raises:
        UnknownNameError: unknown name (the message lists the registered ones) or
            unknown keyword (the message lists the method's parameters); a
            ``ValueError``.
        ValueError: a bad value (the message names the parameter and the allowed
            range).
    """
    return ADVERSARIAL.build(name, **params)
