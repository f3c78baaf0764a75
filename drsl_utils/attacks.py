"""Adversarial attacks by name: one call shape for every attack, validated options.

:func:`build_attack` turns a name from :data:`ATTACKS` and its parameters into a
callable ``atk(images, labels) -> adv_images`` on top of torchattacks. Every call
attacks the model in eval mode, seeds the global RNG with the attack's ``seed`` inside
:func:`runtime.preserve_rng` (torchattacks' APGD, FAB and Square reseed the global RNG),
and restores the model's mode, its parameters' ``requires_grad`` and the caller's RNG
state afterwards. The result is always projected onto the eps ball of the attack's norm
and onto [0, 1], so ``||adv - x|| <= eps`` holds for every attack. :class:`AttackSpec`
names one attack with its parameters and eps grid.

Running attacks over models x eps on a test subset, with per-sample records and a
cache, is :mod:`drsl_utils.evaluation`; DeepFool's vectorised loop is
:mod:`drsl_utils.deepfool`.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .deepfool import deepfool
from .errors import (
    ShapeError,
    UnknownNameError,
    check_batch,
    check_input_shape,
    check_labels,
    check_pixels,
)
from .registry import Registry
from .runtime import check_choice, module_device, preserve_rng

__all__ = [
    "ATTACKS",
    "NORMS",
    "AUTOATTACK_VERSIONS",
    "Attack",
    "AttackSpec",
    "build_attack",
    "record_name",
]

NORMS = ("Linf", "L2")
AUTOATTACK_VERSIONS = ("standard", "reduced")


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
#: The attacks by name, each with what it accepts. Each is constructed by code of its
#: own (:func:`_torchattacks_attack`), so this table is closed: :func:`build_attack`
#: refuses a name registered here later.
ATTACKS: Registry[_Family] = Registry("attack", {
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
})
_FAMILIES = ATTACKS  # the name benchmarks/bench_attacks.py reads

_AA_STANDARD = {"steps": 100, "n_queries": 5000}
_AA_REDUCED = {"steps": 20, "n_queries": 1000, "n_target_classes": 3}

# ---------------------------------------------------------------------------------------
# Parameters and validation
# ---------------------------------------------------------------------------------------

def _check_positive_int(param: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{param}={value!r} is not valid: must be an integer >= 1")


def _canonical_norm(name: str, norm: str | None) -> str:
    family = ATTACKS.get(name)
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
    family = ATTACKS.get(name)
    if not ATTACKS.is_builtin(name):
        # Each attack's construction is code of its own (_torchattacks_attack); an
        # entry added to the table would fall through to the wrong one.
        raise ValueError(f"attack name={name!r} was registered in attacks.ATTACKS, but "
                         "build_attack constructs only the built-in attacks: "
                         f"{', '.join(repr(n) for n in ATTACKS.names() if ATTACKS.is_builtin(n))}")
    params: dict[str, Any] = {"name": name, "norm": _canonical_norm(name, norm)}
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed={seed!r} is not valid: must be an integer")
    params["seed"] = int(seed)

    unknown = sorted(set(options) - set(family.options))
    if unknown:
        allowed = ", ".join(family.options) or "none"
        raise UnknownNameError(f"unknown option(s) {unknown} for attack {name!r}; its own "
                               f"options are: {allowed} (besides steps, step_size, "
                               "restarts, norm and seed where they apply)")
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
    """Bring ``adv`` into the eps ball around ``x`` and into the box [0, 1].

    Linf: clamp each pixel of ``delta = adv - x`` to [-eps, eps], then clamp ``x + delta``
    to [0, 1]; both sets are boxes, so this is the nearest point of their intersection.
    L2: a radial shrink, ``delta * min(1, eps / ||delta||_2)`` per sample, then a clamp
    of ``x + delta`` to [0, 1]. That is not the nearest point of ball and box (which has
    no closed form), but it is cheap, leaves points already inside both unchanged, and
    stays in the ball: ``x`` lies in the box, so the clamp only moves a pixel towards
    ``x`` and ``||delta||`` can only shrink. This is the guarantee behind
    ``||adv - x|| <= eps`` for every attack; tests/test_attacks.py tests the operation
    itself with exact values.
    """
    delta = adv - x
    if norm == "Linf":
        delta = delta.clamp(-eps, eps)
    else:
        length = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        scale = (eps / length).clamp(max=1.0)
        delta = delta * scale.view(-1, *([1] * (delta.dim() - 1)))
    return (x + delta).clamp(0.0, 1.0)


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
        return lambda x, y: deepfool(model, x, y, p["steps"], p["overshoot"], num_classes)
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
        self._shapes: set[tuple[int, ...]] = set()  # image shapes the model took

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.items() if k != "name")
        return f"Attack({self.name!r}, eps={self.eps!r}, {shown})"

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial versions of ``images`` (in [0, 1]) for the true ``labels``.

        Returns a tensor on ``images``' device with ``||adv - images|| <= eps`` in the
        attack's norm and values in [0, 1]. With ``eps == 0`` the images are returned
        unchanged (a copy), without running the attack. Bad input raises before any
        work, a ``ValueError`` of :mod:`drsl_utils.errors`.

        Raises:
            ShapeError: images not ``N x ...`` with one label each, or of a shape the
                model cannot take (checked by running it on one image, once per shape).
            PixelRangeError: images outside [0, 1] (0-255 images, normalised ones).
            LabelRangeError: a label outside ``[0, num_classes)``.
        """
        self._check(images, labels)
        if self.eps == 0 or images.shape[0] == 0:
            return images.detach().clone()
        device = module_device(self.model)
        x = images.detach().to(device, torch.float32)
        y = labels.detach().to(device, torch.long)
        with _attack_mode(self.model), preserve_rng(device):
            torch.manual_seed(self.seed)
            adv = self._run(x, y)
        return _project(adv.detach(), x, self.eps, self.norm).to(images.device)

    def _check(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        check_batch(images, labels, allow_empty=True)
        _check_eps(self.eps, self.norm, dim=int(np.prod(images.shape[1:])))
        check_pixels(images)
        what = f"the model of attack {self.name!r}"
        check_labels(labels, self.num_classes, what)
        shape = tuple(images.shape[1:])
        if images.shape[0] and shape not in self._shapes:
            width = check_input_shape(self.model, images, what)
            if width != self.num_classes:
                raise ShapeError(f"{what} returns {width} logits, but the attack was built "
                                 f"for num_classes={self.num_classes}")
            self._shapes.add(shape)

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
        restarts: random restarts (``pgd``, ``pgd-l2``, ``apgd-*``, ``square``,
            ``fab``); 1 elsewhere.
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
        UnknownNameError: unknown name or option (a ``ValueError``).
        ValueError: eps out of range, steps or restarts < 1, a parameter the attack does
            not take; the message names the parameter, the value and what is allowed.
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



def record_name(params: Mapping[str, Any]) -> str:
    """The ``attack`` column of an attack's records (``AttackSpec.record_name``)."""
    return _record_name(params)
