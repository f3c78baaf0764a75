"""Adversarial attacks by name, one evaluation call, per-sample records and their summaries.

Three layers, each usable on its own:

1. :func:`build_attack` turns a name from :data:`ATTACKS` and its parameters into a
   callable ``atk(images, labels) -> adv_images`` on top of torchattacks. Every call
   attacks the model in eval mode, seeds the global RNG with the attack's ``seed``
   inside :func:`runtime.preserve_rng` (torchattacks' APGD, FAB and Square reseed the
   global RNG), and restores the model's mode, its parameters' ``requires_grad`` and the
   caller's RNG state afterwards. The result is always projected onto the eps ball of
   the attack's norm and onto [0, 1], so ``||adv - x|| <= eps`` holds for every attack.
2. :func:`evaluate` runs models x attacks x eps on one fixed test subset in large
   batches, with one progress bar, and caches every (model, attack, eps) unit on disk.
   It returns an :class:`AttackResult`: a tidy ``records`` DataFrame with one row per
   (model, attack, eps, sample) (columns in :data:`RECORD_COLUMNS`), plus the full
   clean/adversarial logits and penultimate features.
3. :func:`robust_accuracy`, :func:`success_rate` and :func:`second_class_fraction`
   summarise ``records`` into tidy DataFrames.

How eps applies to each attack (``norm`` is the norm of the eps ball):

============  =======  ==================================================================
name          norm     what runs
============  =======  ==================================================================
fgsm          Linf     one signed-gradient step of size eps (Goodfellow et al. 2015)
pgd           Linf     PGD on cross-entropy, random start (Madry et al. 2018)
pgd-l2        L2       the same in the L2 ball
cw            L2       Carlini-Wagner L2 (fixed ``c``, no binary search), a *minimal*-
                       perturbation attack with no eps; its result is then projected
                       onto the L2 ball of radius eps (the perturbation is scaled down
                       when longer than eps). A CW example with ``||delta|| <= eps`` is
                       kept as is; a longer one usually stops being adversarial once
                       shortened, which is the usual "success iff minimal norm <= eps"
                       reading, while every recorded input is a legal point of the ball.
deepfool      L2       DeepFool (Moosavi-Dezfooli et al. 2016, torchattacks' variant with
                       overshoot applied at each step, here vectorised over the batch);
                       minimal-perturbation like CW, projected onto the L2 eps ball the
                       same way.
apgd-ce       Linf/L2  APGD on cross-entropy (Croce & Hein 2020)
apgd-dlr      Linf/L2  APGD on the DLR margin loss
square        Linf/L2  Square Attack, score-based black box (Andriushchenko et al. 2020);
                       ``steps`` is its query budget
fab           Linf/L2  FAB (Croce & Hein 2020); ``targeted=True`` runs FAB-T
autoattack    Linf/L2  APGD-CE, APGD-T, FAB-T, Square in sequence (torchattacks
                       ``MultiAttack``), see below
============  =======  ==================================================================

AutoAttack comes in two versions, and the version is part of its record name:

- ``version="standard"`` (record name ``"autoattack-standard"``): Croce & Hein's
  standard set, with their constants set explicitly (torchattacks' own ``AutoAttack``
  silently runs 10 steps and assumes 10 classes): APGD-CE (100 steps, 1 restart),
  APGD-T (100 steps, 1 restart, K-1 target classes), FAB-T (100 steps, 1 restart, K-1
  target classes), Square (5000 queries, 1 restart, p_init 0.8, no schedule rescaling).
  These are fixed; asking for other steps raises.
- ``version="reduced"`` (``"autoattack-reduced"``): the same four attacks with 20 steps,
  1000 Square queries and min(3, K-1) target classes (all adjustable with ``steps``,
  ``n_queries`` and ``n_target_classes``); roughly ten times faster, and an upper bound
  on the standard robust accuracy.

K, the number of classes, is always read from the model (``model.num_classes``), never
torchattacks' default of 10.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .cache import atomic_write, default_cache_dir, stable_hash, tensor_fingerprint
from .runtime import check_choice, preserve_rng, resolve_device

__all__ = [
    "ATTACKS",
    "NORMS",
    "AUTOATTACK_VERSIONS",
    "RECORD_COLUMNS",
    "Attack",
    "AttackSpec",
    "AttackResult",
    "build_attack",
    "evaluate",
    "robust_accuracy",
    "success_rate",
    "second_class_fraction",
]

NORMS = ("Linf", "L2")
AUTOATTACK_VERSIONS = ("standard", "reduced")

# Bump when a change here alters what a cached unit contains.
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class _Family:
    """What an attack name accepts: its norms (the first is the default), the default
    number of steps (None: takes no steps), whether it takes a step size and restarts,
    and its own keyword options with their defaults."""

    norms: tuple[str, ...]
    steps: int | None
    step_size: bool
    restarts: bool
    options: Mapping[str, Any]


_APGD_OPTIONS = {"rho": 0.75, "eot_iter": 1}
_FAMILIES: dict[str, _Family] = {
    "fgsm": _Family(("Linf",), None, False, False, {}),
    "pgd": _Family(("Linf",), 10, True, True, {"random_start": True}),
    "pgd-l2": _Family(("L2",), 10, True, True, {"random_start": True}),
    "cw": _Family(("L2",), 100, False, False, {"c": 1.0, "kappa": 0.0, "lr": 0.01}),
    "deepfool": _Family(("L2",), 50, False, False, {"overshoot": 0.02}),
    "apgd-ce": _Family(NORMS, 100, False, True, _APGD_OPTIONS),
    "apgd-dlr": _Family(NORMS, 100, False, True, _APGD_OPTIONS),
    "square": _Family(NORMS, 5000, False, True,
                      {"p_init": 0.8, "loss": "margin", "resc_schedule": True}),
    "fab": _Family(NORMS, 100, False, True,
                   {"targeted": False, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9}),
    "autoattack": _Family(NORMS, None, False, False,
                          {"version": "standard", "n_queries": None, "n_target_classes": None}),
}
ATTACKS = tuple(_FAMILIES)

_AA_STANDARD = {"steps": 100, "n_queries": 5000}
_AA_REDUCED = {"steps": 20, "n_queries": 1000, "n_target_classes": 3}

RECORD_COLUMNS = (
    "model", "model_key", "loss", "seed", "attack", "eps", "sample", "label",
    "clean_pred", "adv_pred", "clean_second",
    "clean_p_true", "clean_p_top", "clean_p_second",
    "adv_p_true", "adv_p_top", "adv_p_second",
    "clean_gap", "adv_gap", "linf", "l2",
    "clean_correct", "success", "adv_is_clean_second",
)


# ---------------------------------------------------------------------------------------
# Parameters and validation
# ---------------------------------------------------------------------------------------

def _check_positive_int(param: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{param}={value!r} is not valid: must be an integer >= 1")


def _canonical_norm(name: str, norm: str | None) -> str:
    family = _FAMILIES[name]
    if norm is None:
        return family.norms[0]
    aliases = {"linf": "Linf", "inf": "Linf", "l2": "L2"}
    canonical = aliases.get(str(norm).lower(), norm)
    check_choice("norm", canonical if canonical in family.norms else norm, family.norms)
    return canonical


def _check_eps(eps: Any, norm: str, dim: int | None = None) -> float:
    """``eps`` as a float; it must lie in [0, 1] for Linf and [0, sqrt(d)] for L2 (the
    largest distances inside the [0, 1] input box)."""
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps={eps!r} is not valid: must be a number") from None
    if norm == "Linf":
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"eps={eps!r} is not valid for norm='Linf': must be in [0, 1] "
                             "(inputs live in [0, 1])")
    else:
        if not value >= 0.0 or not math.isfinite(value):
            raise ValueError(f"eps={eps!r} is not valid for norm='L2': must be >= 0")
        if dim is not None and value > math.sqrt(dim) * (1 + 1e-9):
            raise ValueError(f"eps={eps!r} is not valid for norm='L2' on inputs of "
                             f"dimension d={dim}: must be in [0, sqrt(d)] = "
                             f"[0, {math.sqrt(dim):.4g}]")
    return value


def _resolve(name: str, *, steps: int | None = None, step_size: float | None = None,
             restarts: int = 1, norm: str | None = None, seed: int = 0,
             **options: Any) -> dict[str, Any]:
    """Every effective parameter of attack ``name``, defaults filled in and validated.

    The result is what identifies the attack in cache keys and in
    ``AttackResult.attacks``. ``step_size=None`` for PGD means ``2.5 * eps / steps``.
    """
    check_choice("name", name, ATTACKS)
    family = _FAMILIES[name]
    params: dict[str, Any] = {"name": name, "norm": _canonical_norm(name, norm)}
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed={seed!r} is not valid: must be an integer")
    params["seed"] = int(seed)

    unknown = sorted(set(options) - set(family.options))
    if unknown:
        allowed = ", ".join(family.options) or "none"
        raise ValueError(f"unknown option(s) {unknown} for attack {name!r}; its own "
                         f"options are: {allowed} (besides steps, step_size, restarts, "
                         "norm and seed where they apply)")
    params.update(family.options)
    params.update(options)

    if name == "autoattack":
        return _resolve_autoattack(params, steps, step_size, restarts)

    if family.steps is None:
        if steps is not None:
            raise ValueError(f"steps={steps!r} is not valid for attack {name!r}: it takes "
                             "no steps (allowed: None)")
    else:
        steps = family.steps if steps is None else steps
        _check_positive_int("steps", steps)
        params["steps"] = int(steps)
    if step_size is not None:
        if not family.step_size:
            raise ValueError(f"step_size={step_size!r} is not valid for attack {name!r}: "
                             "it sets its own step size (allowed: None)")
        if not float(step_size) > 0:
            raise ValueError(f"step_size={step_size!r} is not valid: must be > 0 "
                             "(or None for 2.5 * eps / steps)")
        step_size = float(step_size)
    if family.step_size:
        params["step_size"] = step_size
    _check_positive_int("restarts", restarts)
    if not family.restarts and restarts != 1:
        raise ValueError(f"restarts={restarts!r} is not valid for attack {name!r}: it "
                         "has no restarts (allowed: 1)")
    if family.restarts:
        params["restarts"] = int(restarts)
    _check_options(params)
    return params


# Allowed values of the attacks' own options: (test, description of what is allowed).
_OPTION_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "random_start": (lambda v: isinstance(v, bool), "True or False"),
    "targeted": (lambda v: isinstance(v, bool), "True or False"),
    "resc_schedule": (lambda v: isinstance(v, bool), "True or False"),
    "c": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "lr": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "kappa": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "overshoot": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "p_init": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "rho": (lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)"),
    "alpha_max": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "eta": (lambda v: _is_number(v) and v >= 1, "a number >= 1"),
    "beta": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "eot_iter": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                 "an integer >= 1"),
}


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool) and math.isfinite(float(value)))


def _check_options(params: Mapping[str, Any]) -> None:
    for key, (ok, allowed) in _OPTION_RULES.items():
        if key in params and not ok(params[key]):
            raise ValueError(f"{key}={params[key]!r} is not valid for attack "
                             f"{params['name']!r}: must be {allowed}")
    if params["name"] == "square":
        check_choice("loss", params["loss"], ("margin", "ce"))


def _resolve_autoattack(params: dict[str, Any], steps: int | None, step_size: float | None,
                        restarts: int) -> dict[str, Any]:
    check_choice("version", params["version"], AUTOATTACK_VERSIONS)
    if step_size is not None:
        raise ValueError(f"step_size={step_size!r} is not valid for attack 'autoattack': "
                         "its attacks set their own step sizes (allowed: None)")
    _check_positive_int("restarts", restarts)
    if restarts != 1:
        raise ValueError(f"restarts={restarts!r} is not valid for attack 'autoattack': "
                         "each of its attacks runs once, as in Croce & Hein (allowed: 1)")
    if params["version"] == "standard":
        given = {"steps": steps, "n_queries": params["n_queries"],
                 "n_target_classes": params["n_target_classes"]}
        for key, value in given.items():
            fixed = _AA_STANDARD.get(key)
            if value is not None and value != fixed:
                raise ValueError(
                    f"{key}={value!r} is not valid for autoattack version='standard', "
                    f"whose constants are fixed (allowed: None{f' or {fixed}' if fixed else ''}); "
                    "use version='reduced' to change them")
        params.update(_AA_STANDARD)
        params["n_target_classes"] = None  # K - 1, from the model
    else:
        params["steps"] = _AA_REDUCED["steps"] if steps is None else steps
        for key in ("n_queries", "n_target_classes"):
            if params[key] is None:
                params[key] = _AA_REDUCED[key]
        for key in ("steps", "n_queries", "n_target_classes"):
            _check_positive_int(key, params[key])
            params[key] = int(params[key])
    return params


def _record_name(params: Mapping[str, Any]) -> str:
    if params["name"] == "autoattack":
        return f"autoattack-{params['version']}"
    return str(params["name"])


def _num_classes(model: nn.Module, n_classes: int | None) -> int:
    own = getattr(model, "num_classes", None)
    if n_classes is None:
        if own is None:
            raise ValueError("n_classes=None is not valid for a model without a "
                             "`num_classes` attribute: pass the number of classes")
        return int(own)
    _check_positive_int("n_classes", n_classes)
    if own is not None and int(own) != int(n_classes):
        raise ValueError(f"n_classes={n_classes!r} is not valid: the model has "
                         f"num_classes={own} (allowed: None or {own})")
    return int(n_classes)


# ---------------------------------------------------------------------------------------
# Building attacks
# ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def _attack_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters for the attack; both restored afterwards.

    Freezing the parameters keeps CW and DeepFool (which call ``backward``) from leaving
    gradients in the model's ``.grad`` and saves the parameter-gradient work.
    """
    was_training = model.training
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        model.train(was_training)


def _project(adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Closest point to ``adv`` (for Linf; the radial shrink for L2) within the eps ball
    around ``x`` and inside [0, 1]. Clamping to the box after the ball keeps it in the
    ball because ``x`` itself lies in the box."""
    delta = adv - x
    if norm == "Linf":
        delta = delta.clamp(-eps, eps)
    else:
        length = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        scale = (eps / length).clamp(max=1.0)
        delta = delta * scale.view(-1, *([1] * (delta.dim() - 1)))
    return (x + delta).clamp(0.0, 1.0)


def _deepfool(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int,
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


def _torchattacks_attack(model: nn.Module, eps: float, p: Mapping[str, Any],
                         num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    import torchattacks as ta

    name, norm, seed = p["name"], p["norm"], p["seed"]
    if name == "fgsm":
        return ta.FGSM(model, eps=eps)
    if name in ("pgd", "pgd-l2"):
        alpha = p["step_size"] if p["step_size"] is not None else 2.5 * eps / p["steps"]
        cls = ta.PGD if name == "pgd" else ta.PGDL2
        return cls(model, eps=eps, alpha=alpha, steps=p["steps"],
                   random_start=p["random_start"])
    if name == "cw":
        return ta.CW(model, c=p["c"], kappa=p["kappa"], steps=p["steps"], lr=p["lr"])
    if name == "deepfool":
        return lambda x, y: _deepfool(model, x, y, p["steps"], p["overshoot"], num_classes)
    if name in ("apgd-ce", "apgd-dlr"):
        return ta.APGD(model, norm=norm, eps=eps, steps=p["steps"], n_restarts=p["restarts"],
                       seed=seed, loss=name.split("-")[1], eot_iter=p["eot_iter"],
                       rho=p["rho"])
    if name == "square":
        return ta.Square(model, norm=norm, eps=eps, n_queries=p["steps"],
                         n_restarts=p["restarts"], p_init=p["p_init"], loss=p["loss"],
                         resc_schedule=p["resc_schedule"], seed=seed)
    if name == "fab":
        atk = ta.FAB(model, norm=norm, eps=eps, steps=p["steps"], n_restarts=p["restarts"],
                     alpha_max=p["alpha_max"], eta=p["eta"], beta=p["beta"], seed=seed,
                     multi_targeted=p["targeted"], n_classes=num_classes)
        return atk
    return _autoattack(model, eps, p, num_classes)


def _autoattack(model: nn.Module, eps: float, p: Mapping[str, Any], num_classes: int) -> Any:
    import torchattacks as ta

    norm, seed, steps = p["norm"], p["seed"], p["steps"]
    targets = num_classes - 1 if p["n_target_classes"] is None else p["n_target_classes"]
    if not 1 <= targets <= num_classes - 1:
        raise ValueError(f"n_target_classes={targets!r} is not valid for a model with "
                         f"{num_classes} classes: must be in [1, {num_classes - 1}]")
    apgd = ta.APGD(model, norm=norm, eps=eps, steps=steps, n_restarts=1, seed=seed,
                   loss="ce", rho=0.75)
    apgdt = ta.APGDT(model, norm=norm, eps=eps, steps=steps, n_restarts=1, seed=seed,
                     rho=0.75, n_classes=num_classes)
    fabt = ta.FAB(model, norm=norm, eps=eps, steps=steps, n_restarts=1, seed=seed,
                  multi_targeted=True, n_classes=num_classes)
    # Croce & Hein's Square in AutoAttack keeps the schedule of p for 10k queries
    # (resc_schedule=False); torchattacks' Square rescales it by default.
    square = ta.Square(model, norm=norm, eps=eps, n_queries=p["n_queries"], n_restarts=1,
                       p_init=0.8, loss="margin", resc_schedule=False, seed=seed)
    apgdt.n_target_classes = targets
    fabt.n_target_classes = targets
    return ta.MultiAttack([apgd, apgdt, fabt, square])


class Attack:
    """A configured attack: ``atk(images, labels) -> adv_images``.

    Built by :func:`build_attack`. Attributes: ``name`` (the record name, e.g. ``"pgd"``
    or ``"autoattack-standard"``), ``eps``, ``norm``, ``seed``, ``num_classes`` and
    ``params`` (every effective parameter). ``inner`` is the underlying torchattacks
    object (a plain function for DeepFool).
    """

    def __init__(self, model: nn.Module, eps: float, params: dict[str, Any],
                 num_classes: int) -> None:
        self.model = model
        self.eps = eps
        self.params = params
        self.num_classes = num_classes
        self.norm: str = params["norm"]
        self.seed: int = params["seed"]
        self.name = _record_name(params)
        self.inner = _torchattacks_attack(model, eps, params, num_classes)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.items() if k != "name")
        return f"Attack({self.name!r}, eps={self.eps!r}, {shown})"

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial versions of ``images`` (in [0, 1]) for the true ``labels``.

        Returns a tensor on ``images``' device with ``||adv - images|| <= eps`` in the
        attack's norm and values in [0, 1]. With ``eps == 0`` the images are returned
        unchanged (a copy), without running the attack.
        """
        if images.shape[:1] != labels.shape or labels.dim() != 1:
            raise ValueError(f"images of shape {tuple(images.shape)} and labels of shape "
                             f"{tuple(labels.shape)} do not match: expected N x ... and N")
        _check_eps(self.eps, self.norm, dim=int(np.prod(images.shape[1:])))
        if self.eps == 0 or images.shape[0] == 0:
            return images.detach().clone()
        device = next(self.model.parameters()).device
        x = images.detach().to(device, torch.float32)
        y = labels.detach().to(device, torch.long)
        with _attack_mode(self.model), preserve_rng(device):
            torch.manual_seed(self.seed)
            adv = self._run(x, y)
        return _project(adv.detach(), x, self.eps, self.norm).to(images.device)

    def _run(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        adv = self.inner(x, y)
        restarts = self.params.get("restarts", 1)
        if restarts == 1 or self.params["name"] not in ("pgd", "pgd-l2"):
            return adv  # APGD, FAB and Square restart on their own
        # PGD restarts: later runs (new random starts) only on the samples not yet fooled.
        adv = adv.clone()
        with torch.no_grad():
            fooled = self.model(adv).argmax(1) != y
        for _ in range(restarts - 1):
            todo = (~fooled).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            new = self.inner(x[todo], y[todo])
            adv[todo] = new
            with torch.no_grad():
                fooled[todo] = self.model(new).argmax(1) != y[todo]
        return adv


def build_attack(name: str, model: nn.Module, eps: float, *, steps: int | None = None,
                 step_size: float | None = None, restarts: int = 1, norm: str | None = None,
                 seed: int = 0, n_classes: int | None = None, **kw: Any) -> Attack:
    """Build attack ``name`` against ``model`` with radius ``eps``.

    Args:
        name: one of :data:`ATTACKS` (see the module docstring for what each runs and
            how eps applies to the minimal-perturbation attacks ``cw`` and ``deepfool``).
        model: a classifier taking inputs in [0, 1]; attacked in eval mode.
        eps: radius of the ball in ``norm``; in [0, 1] for Linf, in [0, sqrt(d)] for L2
            (d = input dimension, checked at call time).
        steps: iterations (queries for ``square``); None: the attack's default (pgd 10,
            cw 100, deepfool 50, apgd/fab 100, square 5000; fgsm takes none;
            autoattack: fixed 100 for ``"standard"``, 20 for ``"reduced"``).
        step_size: PGD step; None: ``2.5 * eps / steps`` (Madry et al.'s rule). Other
            attacks take none.
        restarts: random restarts (pgd, pgd-l2, apgd-*, square, fab); 1 elsewhere.
        norm: ``"Linf"`` or ``"L2"``; None: the attack's own (see the table).
        seed: seeds the global RNG (and torchattacks' own seeds) on every call; the
            caller's RNG state is restored afterwards.
        n_classes: must equal ``model.num_classes`` when the model has one; needed only
            for models without it.
        **kw: the attack's own options: pgd ``random_start``; cw ``c``, ``kappa``,
            ``lr``; deepfool ``overshoot``; apgd ``rho``, ``eot_iter``; square
            ``p_init``, ``loss``, ``resc_schedule``; fab ``targeted``, ``alpha_max``,
            ``eta``, ``beta``; autoattack ``version`` (``"standard"``/``"reduced"``),
            and for ``"reduced"`` ``n_queries`` and ``n_target_classes``.

    Returns:
        An :class:`Attack`, called as ``atk(images, labels) -> adv_images``.

    Raises:
        ValueError: unknown name or option, eps out of range, steps or restarts < 1, a
            parameter the attack does not take; the message names the parameter, the
            value and what is allowed.
    """
    params = _resolve(name, steps=steps, step_size=step_size, restarts=restarts, norm=norm,
                      seed=seed, **kw)
    eps = _check_eps(eps, params["norm"])
    return Attack(model, eps, params, _num_classes(model, n_classes))


# ---------------------------------------------------------------------------------------
# Attack specifications
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AttackSpec:
    """One attack to evaluate: a name, its parameters and optionally its own eps grid.

    Attributes:
        name: one of :data:`ATTACKS`.
        params: keyword parameters of :func:`build_attack` (``steps``, ``step_size``,
            ``restarts``, ``norm``, ``seed`` and the attack's own options); not eps.
        eps: the eps grid for this attack; None: ``evaluate``'s ``eps_grid``.
        label: the name in the records; None: ``name`` (``"autoattack-standard"`` /
            ``"autoattack-reduced"`` for AutoAttack). Give one when the same attack runs
            with two parameter sets.

    ``evaluate`` also accepts a bare name, ``(name, params)`` or ``(name, params, eps)``.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    eps: tuple[float, ...] | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if "eps" in self.params:
            raise ValueError("params={'eps': ...} is not valid: give the eps grid as "
                             "AttackSpec(eps=[...]) or evaluate(eps_grid=[...])")
        object.__setattr__(self, "params", dict(self.params))
        resolved = self.resolved  # validates name and parameters now
        if self.eps is not None:
            grid = [self.eps] if np.isscalar(self.eps) else list(self.eps)
            values = tuple(dict.fromkeys(_check_eps(e, resolved["norm"]) for e in grid))
            if not values:
                raise ValueError("eps=() is not valid: give at least one eps")
            object.__setattr__(self, "eps", values)

    @property
    def resolved(self) -> dict[str, Any]:
        """Every effective parameter (defaults filled in)."""
        return _resolve(self.name, **self.params)

    @property
    def norm(self) -> str:
        return self.resolved["norm"]

    @property
    def record_name(self) -> str:
        """The value of the ``attack`` column for this spec."""
        return self.label if self.label is not None else _record_name(self.resolved)

    @classmethod
    def coerce(cls, obj: AttackSpec | str | Sequence[Any]) -> AttackSpec:
        """An :class:`AttackSpec` from a spec, a name, ``(name, params)`` or
        ``(name, params, eps)``."""
        if isinstance(obj, AttackSpec):
            return obj
        if isinstance(obj, str):
            return cls(obj)
        if isinstance(obj, Sequence) and 1 <= len(obj) <= 3:
            return cls(*obj)
        raise ValueError(f"attack={obj!r} is not valid: give an AttackSpec, a name, "
                         "(name, params) or (name, params, eps)")


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------

@dataclass
class AttackResult:
    """What :func:`evaluate` returns.

    Attributes:
        records: one row per (model, attack, eps, sample), columns :data:`RECORD_COLUMNS`.
        labels: the subset's labels (int64, length n).
        models: one row per model: ``model``, ``model_key``, ``loss``, ``seed``,
            ``num_classes``.
        attacks: record name -> every effective parameter of that attack, plus ``eps``
            (its grid).
        units: one row per (model, attack, eps): ``seconds`` spent (0 when cached),
            ``from_cache`` and the cache ``path``.
    """

    records: pd.DataFrame
    labels: np.ndarray
    models: pd.DataFrame
    attacks: dict[str, dict[str, Any]]
    units: pd.DataFrame
    _clean: dict[str, dict[str, np.ndarray]] = field(repr=False, default_factory=dict)
    _adv: dict[tuple[str, str, float], dict[str, np.ndarray]] = field(repr=False,
                                                                       default_factory=dict)

    def _key(self, model: str) -> str:
        keys = list(self.models["model_key"])
        if model in keys:
            return model
        match = self.models.loc[self.models["model"] == model, "model_key"].tolist()
        if len(match) == 1:
            return match[0]
        detail = "is ambiguous (several models share that name)" if match else "is unknown"
        raise KeyError(f"model {model!r} {detail}; model keys: {keys}")

    def _unit(self, model: str, attack: str, eps: float) -> dict[str, np.ndarray]:
        key = self._key(model)
        for (k, a, e), arrays in self._adv.items():
            if k == key and a == attack and math.isclose(e, float(eps), rel_tol=1e-9,
                                                         abs_tol=1e-12):
                return arrays
        have = sorted({(a, e) for k, a, e in self._adv if k == key})
        raise KeyError(f"no unit ({attack!r}, eps={eps!r}) for model {model!r}; "
                       f"available: {have}")

    def clean_logits(self, model: str) -> np.ndarray:
        """Clean logits ``[n, K]`` of a model (its key, or its name when unique)."""
        return self._clean[self._key(model)]["logits"]

    def clean_features(self, model: str) -> np.ndarray:
        """Clean penultimate features ``[n, F]`` (``model.features``)."""
        return self._clean[self._key(model)]["features"]

    def adv_logits(self, model: str, attack: str, eps: float) -> np.ndarray:
        """Logits ``[n, K]`` on the adversarial inputs of ``attack`` at ``eps``."""
        return self._unit(model, attack, eps)["logits"]

    def adv_features(self, model: str, attack: str, eps: float) -> np.ndarray:
        """Penultimate features ``[n, F]`` of the adversarial inputs."""
        return self._unit(model, attack, eps)["features"]


def _forward(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, features); features are ``[n, 0]`` for a model without ``features``."""
    features_fn = getattr(model, "features", None)
    head = getattr(model, "head", None)
    if callable(features_fn) and isinstance(head, nn.Module):
        feats = features_fn(x)
        return head(feats), feats.flatten(1)
    logits = model(x)
    return logits, logits.new_zeros(x.shape[0], 0)


def _save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a handle, so numpy does not append ".npz"
            np.savez(fh, **arrays)

    atomic_write(path, write)


def _load_npz(path: Path, names: Sequence[str]) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path) as blob:
            return {k: blob[k] for k in names}
    except (OSError, ValueError, KeyError):  # unreadable: recompute and overwrite
        return None


def _top2(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Prediction, runner-up, softmax of the true/top/second class and logit gap."""
    z = torch.from_numpy(logits).double()
    top = z.topk(2, dim=1)
    probs = z.softmax(dim=1)
    rows = torch.arange(z.shape[0])
    y = torch.from_numpy(labels)
    return {
        "pred": top.indices[:, 0].numpy(),
        "second": top.indices[:, 1].numpy(),
        "p_true": probs[rows, y].numpy(),
        "p_top": probs[rows, top.indices[:, 0]].numpy(),
        "p_second": probs[rows, top.indices[:, 1]].numpy(),
        "gap": (top.values[:, 0] - top.values[:, 1]).numpy(),
    }


def _unit_records(meta: Mapping[str, Any], attack: str, eps: float, labels: np.ndarray,
                  clean: Mapping[str, np.ndarray], adv: Mapping[str, np.ndarray],
                  linf: np.ndarray, l2: np.ndarray) -> pd.DataFrame:
    correct = clean["pred"] == labels
    frame = pd.DataFrame({
        "model": meta["model"], "model_key": meta["model_key"], "loss": meta["loss"],
        "seed": np.int64(meta["seed"]), "attack": attack, "eps": float(eps),
        "sample": np.arange(labels.shape[0], dtype=np.int64),
        "label": labels,
        "clean_pred": clean["pred"], "adv_pred": adv["pred"],
        "clean_second": clean["second"],
        "clean_p_true": clean["p_true"], "clean_p_top": clean["p_top"],
        "clean_p_second": clean["p_second"],
        "adv_p_true": adv["p_true"], "adv_p_top": adv["p_top"],
        "adv_p_second": adv["p_second"],
        "clean_gap": clean["gap"], "adv_gap": adv["gap"],
        "linf": linf.astype(np.float64), "l2": l2.astype(np.float64),
        "clean_correct": correct,
        "success": correct & (adv["pred"] != labels),
        "adv_is_clean_second": adv["pred"] == clean["second"],
    })
    return frame


def _as_models(models: Any) -> list[Any]:
    from .training import TrainedModel

    if isinstance(models, TrainedModel):
        return [models]
    out = list(models)
    for tm in out:
        if not isinstance(tm, TrainedModel):
            raise ValueError(f"models contains {type(tm).__name__}: expected "
                             "training.TrainedModel objects (from training.train)")
    return out


def evaluate(models: Any, attacks: Sequence[AttackSpec | str | Sequence[Any]],
             images: torch.Tensor, labels: torch.Tensor, *,
             eps_grid: Sequence[float] | None = None, device: str | torch.device = "auto",
             batch_size: int = 1000, cache_dir: str | Path | None = None, cache: bool = True,
             progress: bool = True, names: Sequence[str] | None = None) -> AttackResult:
    """Attack every model with every attack at every eps, on one fixed test subset.

    Args:
        models: ``training.TrainedModel`` objects (or one). Each is attacked in eval
            mode on ``device`` and put back on its own device and mode afterwards.
        attacks: :class:`AttackSpec` objects, names, ``(name, params)`` or
            ``(name, params, eps)`` tuples, e.g. ``[("pgd", {"steps": 10}), "fgsm"]``.
            Record names (``AttackSpec.record_name``) must be distinct.
        images, labels: the subset, e.g. ``load_dataset(...).subset(n, seed=0)``'s
            ``images`` (float in [0, 1], N x C x H x W) and ``labels`` (int, N).
        eps_grid: eps values for every attack without its own ``AttackSpec.eps``.
        device: ``"auto"`` (GPU if present), ``"cpu"`` or ``"cuda"``.
        batch_size: samples per attack call; large batches are far faster than 128.
            Random starts are drawn per batch, so results depend on it (and on the
            device); cached units are reused whatever the batch size and device.
        cache_dir: cache root (default ``cache.default_cache_dir()``); units go to
            ``cache_dir/attacks/<model_key>/``.
        cache: read and write the cache; False recomputes everything and writes nothing.
        progress: one tqdm bar over models x attacks x eps x batches.
        names: model names for the records; default ``tm.config.label``.

    Returns:
        An :class:`AttackResult`. Each (model, attack, eps) unit and each model's clean
        pass is cached as soon as it finishes (keyed by the model key, every attack
        parameter, eps and the fingerprint of ``images`` and ``labels``), so a warm
        re-run takes seconds and a killed run loses at most the unit in progress.
    """
    from tqdm.auto import tqdm

    tms = _as_models(models)
    if not tms:
        raise ValueError("models is empty: give at least one TrainedModel")
    keys = [tm.key for tm in tms]
    if len(set(keys)) != len(keys):
        raise ValueError("models contains the same model twice (equal model keys)")
    if names is None:
        names = [tm.config.label for tm in tms]
    names = [str(n) for n in names]
    if len(names) != len(tms):
        raise ValueError(f"names has {len(names)} entries for {len(tms)} models")
    specs = [AttackSpec.coerce(a) for a in attacks]
    if not specs:
        raise ValueError("attacks is empty: give at least one attack")
    record_names = [s.record_name for s in specs]
    if len(set(record_names)) != len(record_names):
        raise ValueError(f"attacks have repeated record names {record_names}: give each "
                         "AttackSpec a distinct label")
    _check_positive_int("batch_size", batch_size)
    images, labels = _check_subset(images, labels)
    dim = int(np.prod(images.shape[1:]))
    grids = []
    for spec in specs:
        grid = spec.eps if spec.eps is not None else eps_grid
        if grid is None:
            raise ValueError(f"attack {spec.record_name!r} has no eps grid: give "
                             "AttackSpec(eps=[...]) or evaluate(eps_grid=[...])")
        grid = [grid] if np.isscalar(grid) else list(grid)
        grids.append(tuple(dict.fromkeys(_check_eps(e, spec.norm, dim) for e in grid)))

    dev = resolve_device(device)
    root = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "attacks"
    subset = stable_hash("subset", tensor_fingerprint(images), tensor_fingerprint(labels))
    y_np = labels.numpy()
    n = int(labels.shape[0])
    n_batches = max(1, math.ceil(n / batch_size))
    total = len(tms) * sum(len(g) for g in grids) * n_batches
    bar = tqdm(total=total, desc="attacks", disable=not progress, mininterval=0.5)

    frames: list[pd.DataFrame] = []
    clean_arrays: dict[str, dict[str, np.ndarray]] = {}
    adv_arrays: dict[tuple[str, str, float], dict[str, np.ndarray]] = {}
    unit_rows: list[dict[str, Any]] = []
    model_rows: list[dict[str, Any]] = []
    x_dev, y_dev = images.to(dev), labels.to(dev)
    try:
        for tm, name in zip(tms, names):
            model = tm.model
            meta = {"model": name, "model_key": tm.key, "loss": tm.config.loss,
                    "seed": int(tm.config.seed)}
            k = _num_classes(model, None)
            model_rows.append({**meta, "num_classes": k})
            home = next(model.parameters()).device
            model.to(dev)
            try:
                folder = root / tm.key
                clean_path = folder / f"clean_{stable_hash('clean', tm.key, subset, _CACHE_FORMAT)}.npz"
                clean = _load_npz(clean_path, ("logits", "features")) if cache else None
                if clean is None:
                    clean = _predict(model, x_dev, batch_size)
                    if cache:
                        _save_npz(clean_path, clean)
                clean_arrays[tm.key] = clean
                clean_stats = _top2(clean["logits"], y_np)
                for spec, record_name, grid in zip(specs, record_names, grids):
                    resolved = spec.resolved
                    for eps in grid:
                        bar.set_postfix_str(f"{name} s{meta['seed']} {record_name} eps={eps:g}")
                        unit_key = stable_hash("attack-unit", tm.key, resolved, eps, subset,
                                               _torchattacks_version(), _CACHE_FORMAT)
                        path = folder / f"{_record_name(resolved)}_eps{eps:.6g}_{unit_key}.npz"
                        start = time.perf_counter()
                        arrays = (_load_npz(path, ("logits", "features", "linf", "l2"))
                                  if cache else None)
                        from_cache = arrays is not None
                        if arrays is None:
                            atk = build_attack(spec.name, model, eps, **spec.params)
                            arrays = _attack_unit(atk, model, x_dev, y_dev, batch_size, bar)
                            if cache:
                                _save_npz(path, arrays)
                        else:
                            bar.update(n_batches)
                        unit_rows.append({"model": name, "model_key": tm.key,
                                          "attack": record_name, "eps": eps,
                                          "seconds": 0.0 if from_cache else
                                          time.perf_counter() - start,
                                          "from_cache": from_cache,
                                          "path": str(path) if cache else None})
                        adv_arrays[(tm.key, record_name, eps)] = arrays
                        frames.append(_unit_records(meta, record_name, eps, y_np, clean_stats,
                                                    _top2(arrays["logits"], y_np),
                                                    arrays["linf"], arrays["l2"]))
            finally:
                model.to(home)
    finally:
        bar.close()

    records = pd.concat(frames, ignore_index=True)[list(RECORD_COLUMNS)]
    models_df = pd.DataFrame(model_rows)
    if models_df["num_classes"].nunique() == 1:
        records.attrs["num_classes"] = int(models_df["num_classes"].iloc[0])
    attack_params = {rn: {**spec.resolved, "eps": grid}
                     for spec, rn, grid in zip(specs, record_names, grids)}
    return AttackResult(records, y_np.copy(), models_df, attack_params,
                        pd.DataFrame(unit_rows), clean_arrays, adv_arrays)


def _torchattacks_version() -> str:
    import torchattacks

    return str(getattr(torchattacks, "__version__", "unknown"))


def _check_subset(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.as_tensor(images).detach().cpu()
    labels = torch.as_tensor(labels).detach().cpu()
    if images.dim() < 2 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"images of shape {tuple(images.shape)} and labels of shape "
                         f"{tuple(labels.shape)} do not match: expected N x C x H x W and N")
    if images.shape[0] == 0:
        raise ValueError("images is empty: give at least one sample")
    images = images.float()
    if float(images.min()) < 0.0 or float(images.max()) > 1.0:
        raise ValueError(f"images must lie in [0, 1] (got [{float(images.min()):.4g}, "
                         f"{float(images.max()):.4g}]); normalisation belongs in the model")
    return images.contiguous(), labels.long().contiguous()


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> dict[str, np.ndarray]:
    was_training = model.training
    model.eval()
    try:
        logits, feats = zip(*(_forward(model, x[s:s + batch_size])
                              for s in range(0, x.shape[0], batch_size)))
    finally:
        model.train(was_training)
    return {"logits": torch.cat(logits).float().cpu().numpy(),
            "features": torch.cat(feats).float().cpu().numpy()}


def _attack_unit(atk: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 batch_size: int, bar: Any) -> dict[str, np.ndarray]:
    parts: dict[str, list[torch.Tensor]] = {"logits": [], "features": [], "linf": [], "l2": []}
    for s in range(0, x.shape[0], batch_size):
        xb, yb = x[s:s + batch_size], y[s:s + batch_size]
        adv = atk(xb, yb)
        clean = _predict(model, adv, batch_size)
        delta = (adv - xb).flatten(1)
        parts["logits"].append(torch.from_numpy(clean["logits"]))
        parts["features"].append(torch.from_numpy(clean["features"]))
        parts["linf"].append(delta.abs().amax(1).cpu())
        parts["l2"].append(delta.norm(dim=1).cpu())
        bar.update(1)
    return {k: torch.cat(v).numpy() for k, v in parts.items()}


# ---------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------

_GROUP = ["model", "model_key", "loss", "seed", "attack", "eps"]


def _grouped(records: pd.DataFrame) -> Any:
    missing = sorted(set(_GROUP) - set(records.columns))
    if missing:
        raise ValueError(f"records lack the columns {missing}; pass AttackResult.records")
    return records.groupby(_GROUP, sort=False, observed=True)


def robust_accuracy(records: pd.DataFrame) -> pd.DataFrame:
    """Robust accuracy per (model, seed, attack, eps), with clean accuracy beside it.

    Robust accuracy is the fraction of *all* samples still classified correctly after
    the attack; a sample misclassified when clean counts as an error.

    Returns:
        Columns ``model, model_key, loss, seed, attack, eps, n, clean_accuracy,
        robust_accuracy``.
    """
    df = records.assign(_robust=records["clean_correct"] & ~records["success"])
    out = _grouped(df).agg(n=("sample", "size"), clean_accuracy=("clean_correct", "mean"),
                           robust_accuracy=("_robust", "mean"))
    return out.reset_index()


def success_rate(records: pd.DataFrame) -> pd.DataFrame:
    """Attack success rate over the samples classified correctly when clean.

    Returns:
        Columns ``model, model_key, loss, seed, attack, eps, n_clean_correct,
        n_success, success_rate`` (NaN where no sample was clean-correct).
    """
    out = _grouped(records).agg(n_clean_correct=("clean_correct", "sum"),
                                n_success=("success", "sum")).reset_index()
    out["success_rate"] = out["n_success"] / out["n_clean_correct"].where(
        out["n_clean_correct"] > 0)
    return out


def second_class_fraction(records: pd.DataFrame,
                          num_classes: int | None = None) -> pd.DataFrame:
    """Among successful attacks, how often the adversarial label is the class with the
    second-largest clean softmax (DRSL slides, finding 1), next to chance 1/(K-1).

    Args:
        records: ``AttackResult.records``.
        num_classes: K; default ``records.attrs["num_classes"]`` (set by ``evaluate``),
            else one more than the largest class index in the records.

    Returns:
        Columns ``model, model_key, loss, seed, attack, eps, n_success, n_second,
        second_fraction, chance`` (NaN fraction where nothing succeeded).
    """
    if num_classes is None:
        num_classes = records.attrs.get("num_classes")
    if num_classes is None:
        cols = ["label", "clean_pred", "adv_pred", "clean_second"]
        num_classes = int(records[cols].to_numpy().max()) + 1
    _check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} is not valid: must be >= 2")
    df = records.assign(_second=records["success"] & records["adv_is_clean_second"])
    out = _grouped(df).agg(n_success=("success", "sum"),
                           n_second=("_second", "sum")).reset_index()
    out["second_fraction"] = out["n_second"] / out["n_success"].where(out["n_success"] > 0)
    out["chance"] = 1.0 / (num_classes - 1)
    return out
