"""Do two runs of the main job agree on the verdicts? (Issue: verdicts that survive a
re-run.)

Reads the per-seed evidence that two runs recorded (``<figures dir>/meta/*.json``),
applies the one verdict rule of :mod:`drsl_utils.claims` to each, and prints the
verdicts side by side with each run's measured effect, the agreement and the share of
inconclusive rows.

Run: ``python benchmarks/verdict_stability.py FIGURES_A FIGURES_B [--labels A B]``
(e.g. the ``figures/`` of a fresh clone run with ``--jobs 2`` and one with ``--jobs 1``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from drsl_utils import claims as C
from drsl_utils.report import load_evidence


def verdicts(figures: Path) -> pd.DataFrame:
    table = C.assess(load_evidence(figures))
    return table.set_index("claim")[["primary", "n_seeds", "mean", "verdict"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--labels", nargs=2, default=["A", "B"])
    args = ap.parse_args(argv)
    la, lb = args.labels
    a, b = verdicts(args.a), verdicts(args.b)
    both = a.add_suffix(f" {la}").join(b.add_suffix(f" {lb}"), how="outer")
    both["agree"] = both[f"verdict {la}"] == both[f"verdict {lb}"]
    with pd.option_context("display.width", 200, "display.max_rows", 200,
                           "display.max_colwidth", 40):
        print(both[[f"primary {la}", f"n_seeds {la}", f"mean {la}", f"verdict {la}",
                    f"mean {lb}", f"verdict {lb}", "agree"]].to_string())
    n = len(both)
    for label, t in ((la, a), (lb, b)):
        counts = t["verdict"].value_counts().to_dict()
        print(f"{label}: {len(t)} claims, {counts}; inconclusive "
              f"{(t['verdict'] == 'inconclusive').mean():.0%}")
    print(f"agreement: {int(both['agree'].sum())} of {n} claims "
          f"({both['agree'].mean():.1%}); differ: "
          f"{', '.join(both.index[~both['agree']]) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
