"""AutoAttack reliability check: this engine's AutoAttack against the reference code.

The reference is Croce & Hein's AutoAttack as packaged on PyPI (``pyautoattack``, module
``pyautoattack``: ``AutoAttack(model, norm="Linf", eps=..., version="standard")`` and
``run_standard_evaluation``). On one small trained model and one fixed test subset it
runs, at each eps:

- ``drsl_utils.attacks`` ``autoattack`` version ``"standard"`` (APGD-CE, APGD-T, FAB-T,
  Square with 100 steps, 5000 queries, K-1 target classes) and ``"reduced"``;
- the reference standard AutoAttack;
- torchattacks' own ``AutoAttack(version="standard")`` with its defaults (10 steps), to
  show what the silent defaults cost.

It prints robust accuracies, their differences from the reference in percentage points,
per-sample agreement and wall times. The standard version must agree with the reference
within 1 pp (the exit status is 1 otherwise).

Model: the Fashion-MNIST MLP (``TrainConfig(dataset="fashion-mnist")``, trained or loaded
from the cache) when the data is present, else the digits MLP. Run:
``python benchmarks/autoattack_reference.py [--quick] [--n 500] [--eps 0.1 ...]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np
import pandas as pd
import torch
from _common import print_table

from drsl_utils import attacks as A
from drsl_utils.data import DatasetNotFoundError, load_dataset
from drsl_utils.runtime import preserve_rng
from drsl_utils.training import TrainConfig, TrainedModel, train

TOLERANCE_PP = 1.0


def _model_and_subset(n: int, dataset: str | None) -> tuple[TrainedModel, torch.Tensor,
                                                             torch.Tensor]:
    names = [dataset] if dataset else ["fashion-mnist", "digits"]
    for name in names:
        try:
            tm = train(TrainConfig(dataset=name), device="cpu", progress=False)
            test = load_dataset(name, "test").subset(n, seed=0)
            return tm, test.images, test.labels
        except DatasetNotFoundError:
            if name == names[-1]:
                raise
    raise AssertionError("unreachable")


def _robust(model: torch.nn.Module, adv: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return (model(adv).argmax(1) == labels).numpy()


def _reference(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
               eps: float, seed: int) -> torch.Tensor:
    from pyautoattack import AutoAttack

    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    adversary = AutoAttack(model, norm="Linf", eps=eps, version="standard", device="cpu",
                           seed=seed)
    with preserve_rng():  # the reference reseeds the global RNG too
        adv, _ = adversary.run_standard_evaluation(images, labels, batch_size=len(labels))
    return adv


def _torchattacks_default(model: torch.nn.Module, images: torch.Tensor,
                          labels: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    import torchattacks

    atk = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard",
                                  n_classes=10, seed=seed)
    with preserve_rng():
        return atk(images, labels)


def run(n: int = 500, eps: tuple[float, ...] = (0.1,), dataset: str | None = None,
        seed: int = 0, torchattacks_default: bool = True) -> pd.DataFrame:
    """Robust accuracy of each method at each eps, with differences to the reference."""
    tm, images, labels = _model_and_subset(n, dataset)
    model = tm.model.eval()
    y = labels.numpy()
    with torch.no_grad():
        clean = (model(images).argmax(1).numpy() == y)
    rows = []
    for e in eps:
        flags: dict[str, np.ndarray] = {}
        seconds: dict[str, float] = {}
        for version in ("standard", "reduced"):
            spec = A.AttackSpec("autoattack", {"version": version, "seed": seed}, eps=[e])
            start = time.perf_counter()
            result = A.evaluate([tm], [spec], images, labels, device="cpu", cache=False,
                                progress=False)
            seconds[spec.record_name] = time.perf_counter() - start
            rec = result.records
            flags[spec.record_name] = (rec["clean_correct"] & ~rec["success"]).to_numpy()
            assert float(rec["linf"].max()) <= e + 1e-6
        start = time.perf_counter()
        adv = _reference(model, images, labels, e, seed)
        seconds["reference (pyautoattack)"] = time.perf_counter() - start
        assert float((adv - images).abs().amax()) <= e + 1e-6
        flags["reference (pyautoattack)"] = _robust(model, adv, labels) & clean
        if torchattacks_default:
            start = time.perf_counter()
            adv = _torchattacks_default(model, images, labels, e, seed)
            seconds["torchattacks AutoAttack defaults"] = time.perf_counter() - start
            flags["torchattacks AutoAttack defaults"] = _robust(model, adv, labels) & clean
        ref = flags["reference (pyautoattack)"]
        for method, robust in flags.items():
            rows.append({
                "dataset": tm.config.dataset, "samples": n, "eps": e, "method": method,
                "clean_acc": float(clean.mean()),
                "robust_acc": float(robust.mean()),
                "diff_pp": 100 * float(robust.mean() - ref.mean()),
                "robust_only_here": int((robust & ~ref).sum()),
                "robust_only_in_ref": int((~robust & ref).sum()),
                "seconds": seconds[method],
            })
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="test samples (fixed subset)")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.1], help="Linf radii")
    parser.add_argument("--dataset", choices=("fashion-mnist", "digits"), default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="100 samples")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    table = run(n=100 if args.quick else args.n, eps=tuple(args.eps), dataset=args.dataset)
    print_table(table.to_dict("records"),
                "AutoAttack (Linf) robust accuracy vs the reference implementation")
    std = table[table["method"] == "autoattack-standard"]
    worst = float(std["diff_pp"].abs().max())
    ok = worst <= TOLERANCE_PP
    print(f"\nautoattack-standard vs reference: max |diff| = {worst:.2f} pp "
          f"({'PASS' if ok else 'FAIL'}, tolerance {TOLERANCE_PP} pp)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
