"""Named exceptions for bad input at the package's public entry points.

Every class derives from :class:`InputError`, itself a ``ValueError``, so an existing
``except ValueError`` keeps catching them, and a caller who wants one kind catches that
class alone. :class:`ModelTypeError` is also a ``TypeError``. Each message names the
parameter, the value given and what is allowed.

The checks (:func:`check_batch`, :func:`check_pixels`, :func:`check_labels`,
:func:`check_input_shape`) run once, at the boundary (``evaluation.evaluate``, ``attacks.Attack``'s
call, ``training.train`` and ``train_many``, ``runtime.resolve_device``), before any
work; code inside the package trusts what passed them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "InputError",
    "ShapeError",
    "LabelRangeError",
    "PixelRangeError",
    "DeviceError",
    "UnknownNameError",
    "DuplicateNameError",
    "FeatureSourceError",
    "ModelTypeError",
    "check_batch",
    "check_pixels",
    "check_labels",
    "check_input_shape",
]


class InputError(ValueError):
    """A value given to a public function is not valid; the base of the classes below."""


class ShapeError(InputError):
    """Images of the wrong shape: not ``N x C x H x W``, a batch size that differs from
    the labels', or a per-image shape the model cannot take (3x32x32 into a 28x28
    model)."""


class LabelRangeError(InputError):
    """A label outside ``[0, n_classes)`` of the model it is measured against."""


class PixelRangeError(InputError):
    """Images outside ``[0, 1]`` (0-255 images, or normalised ones): the eps of every
    attack is measured in ``[0, 1]`` pixel units, and normalisation belongs inside the
    model."""


class DeviceError(InputError):
    """A device string that is not one of ``'auto'``, ``'cpu'``, ``'cuda'``,
    ``'cuda:<index>'``, ``'mps'``, or a device this machine does not have."""


class UnknownNameError(InputError):
    """A name that is not among the allowed ones (a registered loss, model, dataset or
    attack, an option's value, a layer of a model); the message lists the allowed
    names."""


class DuplicateNameError(InputError):
    """A name that is already registered for another object (a loss, a model, a
    dataset); pass ``replace=True`` to replace it."""


class FeatureSourceError(InputError):
    """Features (for UMAP or the explorers) were asked of a model without a feature
    source: give one with ``evaluation.foreign(model, features=...)``."""


class ModelTypeError(InputError, TypeError):
    """Something that is not a model where a model is expected (an ``nn.Module``,
    ``evaluation.ForeignModel`` or ``training.TrainedModel``)."""


# ---------------------------------------------------------------------------- checks
# One helper per condition, used by every entry point, so a condition has one message.


def check_batch(images: torch.Tensor, labels: torch.Tensor, *, allow_empty: bool = False
                ) -> None:
    """Images ``N x C x H x W`` (any ``N x ...`` of at least two dimensions) and labels
    ``N``: one label per image."""
    if images.dim() < 2 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
        raise ShapeError(f"images of shape {tuple(images.shape)} and labels of shape "
                         f"{tuple(labels.shape)} do not match: expected images N x C x H "
                         "x W and labels N (one label per image)")
    if not allow_empty and images.shape[0] == 0:
        raise ShapeError("images is empty (N=0): give at least one sample")


def check_pixels(images: torch.Tensor) -> None:
    """Every pixel finite and in ``[0, 1]``: the unit of every eps."""
    if images.numel() == 0:
        return
    lo, hi = float(images.min()), float(images.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):  # min/max propagate NaN
        raise PixelRangeError("images contain NaN or infinite values: they must lie in "
                              "[0, 1]")
    if lo < 0.0 or hi > 1.0:
        # The eps guarantee is stated for [0, 1] inputs: 0-255 images would be clamped
        # to [0, 1] by an attack's projection and land up to 254 away from the input.
        raise PixelRangeError(f"images must lie in [0, 1] (got [{lo:.4g}, {hi:.4g}]); "
                              "scale them (e.g. / 255) and put any normalisation inside "
                              "the model")


def check_labels(labels: torch.Tensor, n_classes: int | None = None,
                 model: str = "the model") -> None:
    """Integer labels, in ``[0, n_classes)`` when ``n_classes`` is given."""
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise LabelRangeError(f"labels of dtype {labels.dtype} are not valid: give integer "
                              "class indices (e.g. labels.long())")
    if n_classes is None or labels.numel() == 0:
        return
    bad = ((labels < 0) | (labels >= n_classes)).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        raise LabelRangeError(f"label {int(labels[i])} at index {i} is not valid for {model} "
                              f"with n_classes={n_classes}: labels must lie in "
                              f"[0, {n_classes - 1}] ({bad.shape[0]} of {labels.numel()} "
                              "are outside)")


def check_input_shape(model: nn.Module, images: torch.Tensor, name: str = "the model"
                      ) -> int:
    """Run ``model`` on the first image alone (eval mode, no gradients, on the model's
    device) and return the width of its logits; raise :class:`ShapeError` when that one
    image does not fit, before a batch's worth of work starts.

    A dry run rather than a declared shape: a plain ``nn.Module`` declares none, and the
    model itself is the only authority on what it accepts."""
    params = next(iter(model.parameters()), None)
    device = params.device if params is not None else torch.device("cpu")
    one = images[:1].to(device, torch.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(one)
    except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as exc:
        raise ShapeError(f"images of shape {tuple(images.shape)} (a batch of "
                         f"{images.shape[0]} images of shape {tuple(images.shape[1:])}) "
                         f"do not fit {name}: running it on one image of that shape "
                         f"failed with: {exc}") from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeError(f"{name} returned {shape} for one image of shape "
                         f"{tuple(images.shape[1:])}: expected logits of shape "
                         "(1, n_classes)")
    return int(out.shape[1])
