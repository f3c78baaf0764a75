"""PGD evaluation: the attack engine vs the textbook DataLoader loop, and seconds per attack.

- textbook: ``DataLoader(TensorDataset(images, labels), batch_size=128)``, then
  ``torchattacks.PGD`` batch by batch and the predictions on the adversarial batch, as in
  most tutorials.
- engine: ``drsl_utils.evaluation.evaluate`` (one call, batches of ``--batch-size``, cache
  off), which also computes clean logits, features of clean and adversarial inputs, the
  perturbation norms and the per-sample records.

Both run PGD-k (same eps, steps and step size 2.5 * eps / k) on the same Fashion-MNIST
MLP (``TrainConfig(dataset="fashion-mnist", epochs=2)``, trained or loaded from the
cache; random weights on random images when the dataset is absent), in one process,
interleaved, median of several repetitions. Peak memory is the growth of the resident set
size while one run executes in a fresh child process: the kernel's peak-RSS mark is reset
after setup and a warm-up run on 8 images (``/proc/self/clear_refs``), and ``VmHWM - VmRSS`` is read afterwards (falls
back to ``ru_maxrss`` growth where the reset is unavailable); tracemalloc would miss
torch's tensor buffers.

Then every attack of ``attacks.ATTACKS`` runs once on ``--per-attack-n`` samples with its
default (full) budget, and the table gives its seconds and robust accuracy.

Run: ``python benchmarks/bench_attacks.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from _common import interleaved, median, print_table

from drsl_utils import attacks as A
from drsl_utils import stats
from drsl_utils.data import DatasetNotFoundError, load_dataset
from drsl_utils.evaluation import evaluate
from drsl_utils.models import build_model
from drsl_utils.runtime import seeded
from drsl_utils.training import TrainConfig, TrainedModel, train


def _model_and_data(n: int) -> tuple[TrainedModel, torch.Tensor, torch.Tensor, str]:
    """The Fashion-MNIST MLP and a fixed test subset; random stand-ins without data."""
    config = TrainConfig(dataset="fashion-mnist", epochs=2)
    try:
        tm = train(config, device="cpu", progress=False)
        test = load_dataset("fashion-mnist", "test").subset(n, seed=0)
        return tm, test.images, test.labels, "fashion-mnist"
    except DatasetNotFoundError:
        with seeded(0):
            model = build_model("mlp", "fashion-mnist").eval()
            images = torch.rand(n, 1, 28, 28)
            labels = torch.randint(0, 10, (n,))
        tm = TrainedModel(config, model, config.key, {}, float("nan"), 0.0, False)
        return tm, images, labels, "random (fashion-mnist absent)"


def _textbook(tm: TrainedModel, images: torch.Tensor, labels: torch.Tensor, eps: float,
              steps: int) -> float:
    import torchattacks
    from torch.utils.data import DataLoader, TensorDataset

    model = tm.model.eval()
    atk = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps)
    loader = DataLoader(TensorDataset(images, labels), batch_size=128)
    correct = 0
    for xb, yb in loader:
        adv = atk(xb, yb)
        with torch.no_grad():
            correct += int((model(adv).argmax(1) == yb).sum())
    return correct / len(labels)


def _engine(tm: TrainedModel, images: torch.Tensor, labels: torch.Tensor, eps: float,
            steps: int, batch_size: int) -> float:
    result = evaluate([tm], [("pgd", {"steps": steps})], images, labels, eps_grid=[eps],
                        device="cpu", batch_size=batch_size, cache=False, progress=False)
    return float(stats.robust_accuracy(result.records)["robust_accuracy"].iloc[0])


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _probe(method: str, n: int, eps: float, steps: int, batch_size: int) -> None:
    """Child-process entry: print the peak-RSS growth of one run, in MB, as JSON."""
    tm, images, labels, _ = _model_and_data(n)

    def fn(k: int) -> None:
        if method == "textbook":
            _textbook(tm, images[:k], labels[:k], eps, steps)
        else:
            _engine(tm, images[:k], labels[:k], eps, steps, batch_size)

    fn(8)  # warm-up on 8 images: torch's one-off allocations belong to neither method
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark
        base = _status_kb("VmRSS")
        fn(n)
        growth = _status_kb("VmHWM") - base
    except OSError:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn(n)
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(json.dumps({"peak_rss_growth_mb": growth / 1024}))


def _peak_mb(method: str, n: int, eps: float, steps: int, batch_size: int) -> float:
    cmd = [sys.executable, __file__, "--probe", method, "--n", str(n), "--eps", str(eps),
           "--steps", str(steps), "--batch-size", str(batch_size),
           "--threads", str(torch.get_num_threads())]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_rss_growth_mb"])


PER_ATTACK_EPS = {"Linf": 0.1, "L2": 1.0}


def per_attack_times(tm: TrainedModel, images: torch.Tensor, labels: torch.Tensor,
                     quick: bool = False) -> pd.DataFrame:
    """Seconds of one ``evaluate`` unit per attack, each with its default budget."""
    specs = [A.AttackSpec(name, eps=[PER_ATTACK_EPS[A._FAMILIES[name].norms[0]]])
             for name in A.ATTACKS]
    specs.append(A.AttackSpec("autoattack", {"version": "reduced"}, eps=[0.1]))
    if quick:
        specs = [s for s in specs if s.record_name != "autoattack-standard"]
    rows = []
    for spec in specs:
        result = evaluate([tm], [spec], images, labels, device="cpu", cache=False,
                            progress=False)
        acc = stats.robust_accuracy(result.records).iloc[0]
        rows.append({"attack": spec.record_name, "norm": spec.norm, "eps": spec.eps[0],
                     "samples": len(labels), "seconds": float(result.units["seconds"].iloc[0]),
                     "clean_acc": float(acc["clean_accuracy"]),
                     "robust_acc": float(acc["robust_accuracy"])})
    return pd.DataFrame(rows)


def run(n: int = 2000, eps: float = 0.1, steps: int = 10, repeats: int = 5,
        batch_size: int = 1000, per_attack_n: int = 1000, memory: bool = True,
        quick: bool = False, threads: int | None = None) -> pd.DataFrame:
    """Engine vs textbook PGD evaluation (interleaved medians); prints the per-attack
    table too and returns the comparison as a one-row DataFrame. ``threads``: torch
    intra-op threads (None: torch's default); on a loaded shared machine 1 thread gives
    far steadier timings, because spinning OpenMP threads suffer most from contention."""
    if threads is not None:
        torch.set_num_threads(threads)
    tm, images, labels, source = _model_and_data(max(n, per_attack_n))
    x, y = images[:n], labels[:n]
    accs = {}

    def textbook() -> None:
        accs["textbook"] = _textbook(tm, x, y, eps, steps)

    def engine() -> None:
        accs["engine"] = _engine(tm, x, y, eps, steps, batch_size)

    times = interleaved({"textbook": textbook, "engine": engine}, repeats=repeats)
    med = {k: median(v) for k, v in times.items()}
    row = {"data": source, "images": n, "attack": f"PGD-{steps} Linf eps={eps}",
           "textbook_s": med["textbook"], "engine_s": med["engine"],
           "textbook/engine": med["textbook"] / med["engine"],
           "textbook_acc": accs["textbook"], "engine_acc": accs["engine"]}
    if memory:
        row["textbook_peak_mb"] = _peak_mb("textbook", n, eps, steps, batch_size)
        row["engine_peak_mb"] = _peak_mb("engine", n, eps, steps, batch_size)
    comparison = pd.DataFrame([row])
    print_table(comparison.to_dict("records"),
                f"PGD evaluation, CPU, {torch.get_num_threads()} threads, median of "
                f"{repeats} (engine batch {batch_size}, textbook batch 128)")
    print("\npeak_mb: growth of the peak RSS during one run, in a fresh process")

    per = per_attack_times(tm, images[:per_attack_n], labels[:per_attack_n], quick=quick)
    print_table(per.to_dict("records"), f"Seconds per attack on {per_attack_n} samples (CPU, "
                "default budgets, one evaluate unit each)")
    return comparison


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="500 images, 3 repetitions, 200 per attack, no standard AutoAttack")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--per-attack-n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own choice)")
    parser.add_argument("--probe", choices=("textbook", "engine"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        _probe(args.probe, args.n, args.eps, args.steps, args.batch_size)
        return
    if args.quick:
        run(n=500, eps=args.eps, steps=args.steps, repeats=3, batch_size=args.batch_size,
            per_attack_n=200, quick=True, threads=args.threads)
    else:
        run(n=args.n, eps=args.eps, steps=args.steps, repeats=args.repeats,
            batch_size=args.batch_size, per_attack_n=args.per_attack_n,
            threads=args.threads)


if __name__ == "__main__":
    main()
