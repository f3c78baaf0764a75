"""Shared helpers for the benchmarks: interleaved timing, medians, peak memory, tables."""

from __future__ import annotations

import gc
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def interleaved(fns: dict[str, Callable[[], object]], repeats: int = 5,
                warmup: int = 1) -> dict[str, list[float]]:
    """Time each function ``repeats`` times, alternating between them (ABAB...), so
    that drifting machine load hits every contender alike. Returns seconds per call."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def peak_python_mb(fn: Callable[[], object]) -> float:
    """Peak memory allocated through Python's allocator during ``fn`` (tracemalloc), in MB.

    Torch's own tensor buffers are not seen by tracemalloc; ``max_rss_mb`` covers them.
    """
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def max_rss_mb() -> float:
    """The process's peak resident set size so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(rows: list[dict], title: str) -> None:
    import pandas as pd

    print(f"\n## {title}\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))
