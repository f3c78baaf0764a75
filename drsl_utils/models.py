"""Classifiers that take inputs in [0, 1] and normalise them inside.

Every built-in model is a :class:`Classifier`: ``features(x)`` gives the penultimate
representation (used for UMAP views) and ``forward(x) = head(features(x))`` the logits.
Because normalisation is the model's first layer, attacks operate in [0, 1] pixel space
as torchattacks expects. Architectures are looked up by name in :data:`MODELS`; an
architecture of your own joins them with :func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .data import DatasetInfo, dataset_info
from .errors import ModelTypeError
from .registry import Registry
from .runtime import module_device

__all__ = ["MODELS", "Classifier", "Normalize", "build_model", "register_model",
           "predict_logits"]


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with the statistics held as buffers."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``normalize -> body -> head``; ``features`` returns the body's output."""

    def __init__(self, normalize: Normalize, body: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.normalize = normalize
        self.body = body
        self.head = head

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features of inputs in [0, 1]."""
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _mlp(shape: tuple[int, int, int], hidden: int = 256) -> tuple[nn.Module, int]:
    c, h, w = shape
    body = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU())
    return body, hidden


def _cnn(shape: tuple[int, int, int], width: int = 32, hidden: int = 128) -> tuple[nn.Module, int]:
    c, h, w = shape
    body = nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * (h // 4) * (w // 4), hidden), nn.ReLU(),
    )
    return body, hidden


def _resnet18(shape: tuple[int, int, int]) -> tuple[nn.Module, int]:
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    # Small inputs (28x28, 32x32): a 3x3 stride-1 stem and no max-pool, as is usual
    # for CIFAR-sized images; the ImageNet stem would shrink them to 1x1 too early.
    net.conv1 = nn.Conv2d(shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net, 512


def _mlp_model(info: DatasetInfo, hidden: int = 256) -> Classifier:
    body, dim = _mlp(info.shape, hidden)
    return _classifier(info, body, dim)


def _cnn_model(info: DatasetInfo, width: int = 32, hidden: int = 128) -> Classifier:
    body, dim = _cnn(info.shape, width, hidden)
    return _classifier(info, body, dim)


def _resnet18_model(info: DatasetInfo) -> Classifier:
    body, dim = _resnet18(info.shape)
    return _classifier(info, body, dim)


def _classifier(info: DatasetInfo, body: nn.Module, dim: int) -> Classifier:
    # The head is made after the body, as it always was: the same seed gives the same
    # initial weights.
    return Classifier(Normalize(info.mean, info.std), body, nn.Linear(dim, info.num_classes))


#: Model factories by name: ``factory(info, **model_params) -> nn.Module``, where
#: ``info`` is the dataset's :class:`~drsl_utils.data.DatasetInfo` (input shape, classes,
#: normalisation statistics). Add your own with :func:`register_model`.
MODELS: Registry[Callable[..., nn.Module]] = Registry("model", {
    "mlp": _mlp_model,
    "cnn": _cnn_model,
    "resnet18": _resnet18_model,
})


def register_model(name: str, factory: Callable[..., nn.Module] | None = None, *,
                   replace: bool = False) -> Any:
    """Register an architecture of your own under ``name`` (``MODELS.register``; also
    a decorator, ``@register_model("mynet")``), so that ``build_model(name, dataset)``
    and ``training.TrainConfig(model=name)`` train, cache and attack it like the
    built-in ones.

    ``factory(info, **model_params)`` returns an untrained ``nn.Module`` mapping images
    in [0, 1] of shape ``info.shape`` to ``info.num_classes`` logits; ``info`` is the
    dataset's :class:`~drsl_utils.data.DatasetInfo`. Put any normalisation inside the
    model (``info.mean``, ``info.std``; :class:`Normalize` does it), because attacks
    work in [0, 1]. Initialise weights from torch's global RNG only: the engine seeds
    it, so a seed gives the same model. A trained model's cache key covers the
    factory's source, the source of the classes in the module it builds, that module's
    layout and its initial weights (``cache.user_fingerprint``), so two different
    factories under one name never share an entry.
    """
    return MODELS.register(name, factory, replace=replace)


def build_model(name: str, dataset: str = "fashion-mnist", **kwargs: Any) -> nn.Module:
    """Build an untrained classifier for ``dataset``'s input shape and classes.

    Args:
        name: a name from :data:`MODELS`: ``"mlp"`` (784-256-256-K for 28x28 inputs),
            ``"cnn"`` (two 3x3 conv layers of ``width`` and ``2*width`` channels, each
            followed by 2x2 max-pool, then a ``hidden``-unit layer), ``"resnet18"``
            (torchvision's, with a small-input stem), or one registered with
            :func:`register_model`.
        dataset: a name from ``data.DATASETS``; gives shape, classes and normalisation.
        **kwargs: the factory's options: ``hidden`` for mlp; ``width`` and ``hidden``
            for cnn; none for resnet18.

    Returns:
        The built-in ones give a :class:`Classifier` in train mode on the CPU; a
        registered factory gives its module, with a ``num_classes`` attribute (set to
        the dataset's when the module has none, so attacks can read it). Initialise it
        under a seeded RNG (``runtime.seeded``) for reproducible weights.

    Raises:
        UnknownNameError: unknown ``name``, ``dataset`` or option (a ``ValueError``).
        ModelTypeError: a registered factory returned something other than an
            ``nn.Module``.
    """
    MODELS.get(name)  # the model's name is checked first, as it always was
    info = dataset_info(dataset)
    model = MODELS.build(name, info, **kwargs)
    if not isinstance(model, nn.Module):
        raise ModelTypeError(f"model {name!r}: its factory returned "
                             f"{type(model).__name__}, expected a torch.nn.Module")
    if getattr(model, "num_classes", None) is None:
        model.num_classes = info.num_classes
    return model


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 2048,
                   device: torch.device | str | None = None,
                   features: bool = False) -> torch.Tensor:
    """Logits (or penultimate features) of ``images``, computed in eval mode in batches.

    The model's train/eval mode is restored afterwards. The result is a float32 CPU
    tensor. ``device`` defaults to the model's own device.
    """
    if device is None:
        device = module_device(model)
    was_training = model.training
    model.eval()
    try:
        outs = []
        for start in range(0, images.shape[0], batch_size):
            xb = images[start:start + batch_size].to(device, non_blocking=True)
            out = model.features(xb) if features else model(xb)
            outs.append(out.float().cpu())
        if not outs:
            return torch.empty(0)
        return torch.cat(outs)
    finally:
        model.train(was_training)
