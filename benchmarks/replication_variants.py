"""Can a replication forecast read >= 0.9 at a true effect of 3x the SESOI with 5 seeds
and stay calibrated? (Methods review 6, point 1; issue 21, item 3.)

An independent route, written from scratch with numpy and scipy (it does not call
``drsl_utils.claims``): one directional claim, its *holds* test a one-sided t-test at
the level ``0.05 / 13`` (about the level the committed family gives a member), per-seed
values N(effect, 1), SESOI 1.25. Each simulated run forecasts the probability that a
fresh run with the same seed count reads *holds*, three ways:

- ``posterior`` (the rule's measure, ``claims.fresh_run_probabilities``): sigma^2 drawn
  from its scaled-inverse-chi-square posterior, the fresh mean from today's mean plus
  both runs' noise, the fresh sd from sigma^2;
- ``plug-in``: the same with sigma fixed at the observed sd;
- ``median``: sigma^2 fixed at its posterior median.

It prints each forecast's mean at 3x the SESOI and at the effect where the true
replication probability is 0.5, and, over effects drawn uniformly from 0 to 4x the
SESOI, the mean forecast against the mean true probability in forecast bins (a
calibration table) and the Brier score against the true probability. Usage::

    .venv/bin/python benchmarks/replication_variants.py
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

SD, SESOI, RUNS, DRAWS, LEVEL = 1.0, 1.25, 3000, 3000, 0.05 / 13
VARIANTS = ("posterior", "plug-in", "median")


def forecast(rng: np.random.Generator, x: np.ndarray, variant: str, crit: float) -> np.ndarray:
    """Each row's forecast probability that a fresh run reads *holds*."""
    n = x.shape[1]
    m, s, dof, size = x.mean(1), x.std(1, ddof=1), n - 1, (x.shape[0], DRAWS)
    if variant == "posterior":
        sig2 = (s**2)[:, None] * dof / rng.chisquare(dof, size)
    elif variant == "plug-in":
        sig2 = np.broadcast_to((s**2)[:, None], size)
    else:
        sig2 = np.broadcast_to(((s**2) * dof / sps.chi2.median(dof))[:, None], size)
    fresh_mean = m[:, None] + np.sqrt(2 * sig2 / n) * rng.standard_normal(size)
    fresh_var = sig2 * rng.chisquare(dof, size) / dof
    return (fresh_mean > crit * np.sqrt(fresh_var / n)).mean(1)


def truth(effect: float, n: int, crit: float) -> float:
    return float(sps.nct.sf(crit, n - 1, effect * math.sqrt(n) / SD))


def main() -> None:
    rng = np.random.default_rng(1)
    for n in (5, 8):
        crit = sps.t.isf(LEVEL, n - 1)
        lo, hi = 0.0, 10.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if truth(mid, n, crit) < 0.5 else (lo, mid)
        for name, effect in (("3x SESOI", 3 * SESOI), ("power 0.5", (lo + hi) / 2)):
            x = rng.normal(effect, SD, (RUNS, n))
            means = "  ".join(f"{v} {forecast(rng, x, v, crit).mean():.3f}" for v in VARIANTS)
            print(f"n={n} {name:9s} truth {truth(effect, n, crit):.3f}  mean forecast: {means}")
        effects = rng.uniform(0, 4 * SESOI, RUNS)
        x = rng.normal(effects[:, None], SD, (RUNS, n))
        true_p = np.array([truth(e, n, crit) for e in effects])
        for v in VARIANTS:
            p = forecast(rng, x, v, crit)
            bins = np.digitize(p, [0.25, 0.5, 0.75, 0.9])
            cells = [f"{p[bins == b].mean():.2f}->{true_p[bins == b].mean():.2f}"
                     for b in range(5) if (bins == b).any()]
            print(f"n={n} {v:9s} forecast->truth by bin: {' '.join(cells)}  "
                  f"Brier {((p - true_p) ** 2).mean():.4f}")


if __name__ == "__main__":
    main()
