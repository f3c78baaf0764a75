"""The benchmark suite: every row is a ratio measured side by side in one process against
a baseline (interleaved, median of several repetitions), with peak memory.

    python benchmarks/run_all.py            # what `make bench` runs
    python benchmarks/run_all.py --quick    # fewer repetitions
    python benchmarks/run_all.py --main-job quick   # also time `make figures` cold/warm

Rows:
1. training epoch, MLP and CNN on Fashion-MNIST: engine vs the textbook torchvision
   DataLoader loop, and vs the compute floor (pre-sliced batches, no data handling);
2. training step of every loss vs CE (the DRSL paper claims no significant extra cost);
3. PGD-k evaluation: ``evaluation.evaluate`` vs torchattacks batch by batch via DataLoader;
4. the main job with cold vs warm caches (smoke profile by default; ``--main-job quick``
   runs the real thing, about ten minutes cold).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_attacks
import bench_losses
import bench_training
import pandas as pd
from _common import ROOT, max_rss_mb


def main_job(profile: str) -> dict:
    """Run the main job twice in fresh processes on an empty cache: cold, then warm."""
    cache = Path(tempfile.mkdtemp(prefix="drsl-bench-cache-"))
    figs = Path(tempfile.mkdtemp(prefix="drsl-bench-figs-"))
    env = os.environ | {"DRSL_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "drsl_utils.suite", "--profile", profile,
           "--figures-dir", str(figs)]
    times = []
    try:
        for _ in range(2):
            start = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(figs, ignore_errors=True)
    return {"benchmark": f"main job ({profile})", "baseline": "cold caches",
            "ours": "warm caches", "baseline_s": times[0], "ours_s": times[1],
            "ratio": times[0] / times[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--main-job", default="smoke", choices=("smoke", "quick", "none"),
                        help="profile of the cold/warm main-job row (default smoke)")
    args = parser.parse_args()
    reps = 3 if args.quick else 5
    rows: list[dict] = []

    for r in bench_training.run(models=("mlp", "cnn"), repeats=reps):
        rows.append({"benchmark": f"training epoch, {r['model']} ({r['images']} images)",
                     "baseline": "textbook DataLoader", "ours": "engine",
                     "baseline_s": r["textbook_s"], "ours_s": r["engine_s"],
                     "ratio": r["textbook/engine"], "peak_rss_mb": r["max_rss_mb"]})
        rows.append({"benchmark": f"training epoch, {r['model']}: engine vs compute floor",
                     "baseline": "floor (pre-sliced)", "ours": "engine",
                     "baseline_s": r["floor_s"], "ours_s": r["engine_s"],
                     "ratio": r["floor_s"] / r["engine_s"], "peak_rss_mb": r["max_rss_mb"]})

    losses = bench_losses.run(repeats=7 if args.quick else 15, steps=30 if args.quick else 50,
                              threads=None)
    for r in losses.to_dict("records"):
        rows.append({"benchmark": f"training step, {r['loss']} vs CE", "baseline": "ce",
                     "ours": r["loss"], "baseline_s": r["ce_ms_per_step"] / 1e3,
                     "ours_s": r["ms_per_step"] / 1e3, "ratio": r["ce_ms_per_step"]
                     / r["ms_per_step"], "peak_rss_mb": max_rss_mb()})

    pgd = bench_attacks.run(repeats=reps, quick=True).iloc[0]
    rows.append({"benchmark": f"{pgd['attack']} evaluation, {pgd['images']} images",
                 "baseline": "torchattacks via DataLoader", "ours": "evaluation.evaluate",
                 "baseline_s": pgd["textbook_s"], "ours_s": pgd["engine_s"],
                 "ratio": pgd["textbook/engine"],
                 "peak_rss_mb": pgd.get("engine_peak_mb", float("nan"))})

    if args.main_job != "none":
        rows.append(main_job(args.main_job) | {"peak_rss_mb": float("nan")})

    table = pd.DataFrame(rows).rename(columns={"ratio": "speedup"})
    table.insert(table.columns.get_loc("speedup") + 1, "cost", 1 / table["speedup"])
    print("\n# Benchmark suite\n\nspeedup = baseline time / our time (> 1: we are faster); "
          "cost = its inverse (for the loss rows: loss step time / CE step time).\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
