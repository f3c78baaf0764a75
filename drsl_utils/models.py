"""Classifiers that take inputs in [0, 1] and normalise them inside.

Every model is a :class:`Classifier`: ``features(x)`` gives the penultimate
representation (used for UMAP views) and ``forward(x) = head(features(x))`` the logits.
Because normalisation is the model's first layer, attacks operate in [0, 1] pixel space
as torchattacks expects.
"""

from __future__ import annotations

import torch
from torch import nn

from .data import dataset_info
from .runtime import check_choice

__all__ = ["MODELS", "Classifier", "Normalize", "build_model", "predict_logits"]

MODELS = ("mlp", "cnn", "resnet18")


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


def build_model(name: str, dataset: str = "fashion-mnist", **kwargs: int) -> Classifier:
    """Build an untrained classifier for ``dataset``'s input shape and classes.

    Args:
        name: ``"mlp"`` (784-256-256-K for 28x28 inputs), ``"cnn"`` (two 3x3 conv
            layers of ``width`` and ``2*width`` channels, each followed by 2x2 max-pool,
            then a ``hidden``-unit layer) or ``"resnet18"`` (torchvision's, with a
            small-input stem).
        dataset: a name from ``data.DATASETS``; gives shape, classes and normalisation.
        **kwargs: size options: ``hidden`` for mlp; ``width`` and ``hidden`` for cnn.

    Returns:
        A :class:`Classifier` in train mode on the CPU. Initialise it under a seeded RNG
        (``runtime.seeded``) for reproducible weights.
    """
    check_choice("name", name, MODELS)
    info = dataset_info(dataset)
    if name == "mlp":
        body, dim = _mlp(info.shape, **kwargs)
    elif name == "cnn":
        body, dim = _cnn(info.shape, **kwargs)
    else:
        if kwargs:
            raise ValueError(f"resnet18 takes no size options, got {sorted(kwargs)}")
        body, dim = _resnet18(info.shape)
    return Classifier(Normalize(info.mean, info.std), body, nn.Linear(dim, info.num_classes))


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 2048,
                   device: torch.device | str | None = None,
                   features: bool = False) -> torch.Tensor:
    """Logits (or penultimate features) of ``images``, computed in eval mode in batches.

    The model's train/eval mode is restored afterwards. The result is a float32 CPU
    tensor. ``device`` defaults to the model's own device.
    """
    if device is None:
        device = next(model.parameters()).device
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
