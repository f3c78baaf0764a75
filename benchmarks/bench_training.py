"""One training epoch: the engine vs the textbook DataLoader loop vs the compute floor.

- textbook: torchvision ``FashionMNIST`` + ``ToTensor`` + ``DataLoader(batch_size=128,
  shuffle=True)``: per-sample PIL conversion and collation, as in most tutorials.
- engine: ``drsl_utils.training`` (in-memory tensors, one gather per batch).
- floor: the same forward, backward and Adam steps on pre-sliced contiguous batches, with
  no data handling at all.

All three use the same model architecture, batch size and optimiser, in one process,
interleaved, median of several repetitions. Run: ``python benchmarks/bench_training.py``.
"""

from __future__ import annotations

import argparse

import torch
from _common import ROOT, interleaved, max_rss_mb, median, print_table  # noqa: I001

from drsl_utils.data import load_dataset
from drsl_utils.losses import get_loss
from drsl_utils.runtime import seeded
from drsl_utils.training import TrainConfig, _fit, _make_optimizer, _new_model


def _textbook_epoch(model_name: str, root: str, n: int) -> None:
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms
    from torchvision.datasets import FashionMNIST

    ds = FashionMNIST(root, train=True, download=False, transform=transforms.ToTensor())
    if n < len(ds):
        ds = Subset(ds, range(n))
    loader = DataLoader(ds, batch_size=128, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    with seeded(0):
        model = _new_model(TrainConfig(model=model_name))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for xb, yb in loader:
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()


def _floor_epoch(model_name: str, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    config = TrainConfig(model=model_name)
    with seeded(0):
        model = _new_model(config)
    opt = _make_optimizer(config, model.parameters())  # the engine's optimiser
    loss_fn = get_loss("ce")
    model.train()
    for xb, yb in batches:
        loss = loss_fn.per_sample(model(xb), yb).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def run(models: tuple[str, ...] = ("mlp", "cnn"), repeats: int = 5, root: str = str(ROOT / "data"),
        cnn_size: int = 10000) -> list[dict]:
    """Time one epoch per contender; the CNN uses ``cnn_size`` samples to stay short."""
    full = load_dataset("fashion-mnist", "train", root=root)
    load_dataset("fashion-mnist", "test", root=root)  # torchvision wants all four files
    rows = []
    for name in models:
        n = len(full) if name == "mlp" else min(cnn_size, len(full))
        config = TrainConfig(model=name, epochs=1, train_size=n if n < len(full) else None)
        images = full.images[:n] if n < len(full) else full.images
        labels = full.labels[:n] if n < len(full) else full.labels
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        batches = [(images[perm[i:i + 128]].contiguous(), labels[perm[i:i + 128]].contiguous())
                   for i in range(0, n, 128)]
        fns = {
            "textbook": lambda name=name, n=n: _textbook_epoch(name, root, n),
            "engine": lambda config=config: _fit(config, torch.device("cpu"), root, False,
                                                  False, False, False),
            "floor": lambda name=name, b=batches: _floor_epoch(name, b),
        }
        times = interleaved(fns, repeats=repeats if name == "mlp" else max(2, repeats // 2))
        med = {k: median(v) for k, v in times.items()}
        rows.append({"model": name, "images": n, "textbook_s": med["textbook"],
                     "engine_s": med["engine"], "floor_s": med["floor"],
                     "textbook/engine": med["textbook"] / med["engine"],
                     "engine/floor": med["engine"] / med["floor"],
                     "max_rss_mb": max_rss_mb()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="MLP only, 3 repetitions")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = run(models=("mlp",) if args.quick else ("mlp", "cnn"),
               repeats=3 if args.quick else args.repeats)
    print_table(rows, "Training epoch on Fashion-MNIST (CPU, batch 128, Adam)")
    print("\ntargets: textbook/engine >= 4 (MLP); engine/floor <= 1.15")


if __name__ == "__main__":
    main()
