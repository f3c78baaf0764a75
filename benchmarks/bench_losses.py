"""Time one full training step under every registered loss, against cross-entropy.

A step is forward, loss (the engine's hot-path call ``loss_fn.per_sample(logits,
y).mean()``), backward and an Adam step, on the Fashion-MNIST MLP
(``build_model("mlp", "fashion-mnist")``) with batch 128. Every loss and CE run in the
same process on the same batches, interleaved in rounds (the order alternates between
rounds, so slow drift of the machine hits both alike); the table shows the median
ms/step over rounds and the median of the per-round ratios loss/CE, for wall-clock
time and for process CPU time (the latter is steadier when other jobs share the
cores). It runs on one thread by default (``--threads``).

Run ``python benchmarks/bench_losses.py`` (``--quick`` for a short run), or import it and
call :func:`run`, which returns a DataFrame.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Sequence

import pandas as pd
import torch

from drsl_utils.data import DatasetNotFoundError, load_dataset
from drsl_utils.losses import LOSSES, get_loss
from drsl_utils.models import build_model
from drsl_utils.runtime import seeded, set_threads

BATCH_SIZE = 128
N_BATCHES = 64


def _batches(real: bool, seed: int = 0) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], str]:
    """``N_BATCHES`` fixed batches: real Fashion-MNIST if on disk (and asked), else random."""
    g = torch.Generator().manual_seed(seed)
    n = N_BATCHES * BATCH_SIZE
    source = "random"
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    if real:
        try:
            ds = load_dataset("fashion-mnist", "train")
            idx = torch.randperm(len(ds), generator=g)[:n]
            x, y, source = ds.images[idx], ds.labels[idx], "fashion-mnist"
        except DatasetNotFoundError:
            pass
    xs, ys = x.split(BATCH_SIZE), y.split(BATCH_SIZE)
    return list(zip(xs, ys)), source


class _Runner:
    """A model, an Adam optimizer and a loss, stepping through the fixed batches."""

    def __init__(self, model: torch.nn.Module, loss_name: str,
                 batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.model = copy.deepcopy(model).train()
        self.loss_fn = get_loss(loss_name)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.batches = batches
        self.i = 0

    def steps(self, n: int) -> tuple[float, float]:
        """Run ``n`` steps; return (wall, process CPU) time in ms per step."""
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            xb, yb = self.batches[self.i % len(self.batches)]
            self.i += 1
            logits = self.model(xb)
            loss = self.loss_fn.per_sample(logits, yb).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return (1e3 * (time.perf_counter() - start) / n,
                1e3 * (time.process_time() - cpu) / n)


def run(repeats: int = 15, steps: int = 50, losses: Sequence[str] | None = None,
        real_data: bool = True, seed: int = 0, threads: int | None = 1) -> pd.DataFrame:
    """Benchmark every loss in ``losses`` (default: all registered) against CE.

    Args:
        repeats: rounds; each round times ``steps`` steps of CE and of each loss.
        steps: training steps per timed block.
        losses: loss names (default every registered one except ``ce``).
        real_data: use Fashion-MNIST batches when the data is on disk.
        seed: seeds the model initialisation and the batches.
        threads: torch intra-op threads during the run (restored afterwards); ``None``
            uses every core available. Default 1: on the shared 2-core machines, two
            OpenMP threads competing with other jobs make steps several times slower
            and the timings meaningless.

    Returns:
        One row per loss: ``loss``, ``ms_per_step``, ``ce_ms_per_step`` (wall-clock
        medians over rounds), ``ratio`` (median over rounds of loss/CE), the same three
        for process CPU time (``cpu_ms_per_step``, ``ce_cpu_ms_per_step``,
        ``cpu_ratio``; steadier than wall time on a machine shared with other jobs),
        ``repeats``, ``steps``, ``batch_size``, ``data`` and ``threads``.
    """
    old_threads = torch.get_num_threads()
    set_threads(threads)
    try:
        return _run(repeats, steps, [n for n in (losses or LOSSES) if n != "ce"], real_data,
                    seed)
    finally:
        torch.set_num_threads(old_threads)


def _run(repeats: int, steps: int, names: list[str], real_data: bool,
         seed: int) -> pd.DataFrame:
    batches, source = _batches(real_data, seed)
    with seeded(seed):
        model = build_model("mlp", "fashion-mnist")
    ce = _Runner(model, "ce", batches)
    runners = {name: _Runner(model, name, batches) for name in names}
    for r in [ce, *runners.values()]:  # warm-up: allocator, Adam state, kernels
        r.steps(max(5, steps // 5))

    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    ce_times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name, runner in runners.items():
            if round_ % 2 == 0:
                ce_times[name].append(ce.steps(steps))
                times[name].append(runner.steps(steps))
            else:
                times[name].append(runner.steps(steps))
                ce_times[name].append(ce.steps(steps))

    def med(pairs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(p[i] for p in pairs)

    rows = []
    for name in names:
        ratio, cpu_ratio = ([a[i] / b[i] for a, b in zip(times[name], ce_times[name])]
                            for i in (0, 1))
        rows.append({"loss": name, "ms_per_step": med(times[name], 0),
                     "ce_ms_per_step": med(ce_times[name], 0),
                     "ratio": statistics.median(ratio),
                     "cpu_ms_per_step": med(times[name], 1),
                     "ce_cpu_ms_per_step": med(ce_times[name], 1),
                     "cpu_ratio": statistics.median(cpu_ratio),
                     "repeats": repeats, "steps": steps, "batch_size": BATCH_SIZE,
                     "data": source, "threads": torch.get_num_threads()})
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds of 20 steps")
    parser.add_argument("--repeats", type=int, default=15, help="rounds (default 15)")
    parser.add_argument("--steps", type=int, default=50, help="steps per block (default 50)")
    parser.add_argument("--losses", nargs="*", default=None, help="subset of loss names")
    parser.add_argument("--random-data", action="store_true", help="skip Fashion-MNIST")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1; 0: every core available)")
    args = parser.parse_args(argv)
    repeats, steps = (5, 20) if args.quick else (args.repeats, args.steps)
    table = run(repeats=repeats, steps=steps, losses=args.losses,
                real_data=not args.random_data, threads=args.threads or None)
    print(f"MLP 784-256-256-10, batch {BATCH_SIZE}, Adam, data={table['data'].iloc[0]}, "
          f"{table['threads'].iloc[0]} threads; median of {repeats} rounds x {steps} steps")
    print(table[["loss", "ms_per_step", "ce_ms_per_step", "ratio", "cpu_ms_per_step",
                 "ce_cpu_ms_per_step", "cpu_ratio"]]
          .to_markdown(index=False, floatfmt=".3f"))
    return table


if __name__ == "__main__":
    main()
