"""Can a replication forecast read >= 0.9 at a true effect of 3x the SESOI with 5 seeds
and stay calibrated? (Methods review 6, point 1; issue 21, item 3.)

An independent route, written from scratch with numpy and scipy (it does not call
``drsl_utils.claims``): one directional claim, its *holds* test a one-sided t-test at
the level ``0.05 / 13`` (about the level the committed family gives a member), per-seed
values N(effect, 1), SESOI 1.25. Each simulated run (n seeds, mean m, sd s) forecasts
the probability that a fresh run with the same seed count reads *holds*: draw sigma^2,
then a fresh mean ``m + sqrt(k sigma^2 / n) Z`` and a fresh variance
``sigma^2 chi2_{n-1} / (n-1)``, and count how often the fresh t-statistic clears the
critical value. The variants differ only in where sigma^2 comes from and in k:

- ``posterior`` (the rule's measure, ``claims.fresh_run_probabilities``): sigma^2 drawn
  from its scaled-inverse-chi-square posterior ``s^2 (n-1) / chi2_{n-1}``; k = 2 (the
  effect estimate's uncertainty plus the fresh run's noise: a posterior predictive);
- ``plug-in``: sigma^2 fixed at s^2; k = 2;
- ``median``: sigma^2 fixed at its posterior median ``s^2 (n-1) / median(chi2_{n-1})``;
  k = 2;
- ``power-posterior``, ``power-plug-in``, ``power-median``: the same three sigma
  sources with k = 1, i.e. the power of the test at the observed effect rather than a
  predictive (``power-plug-in`` is the classical "observed power");
- ``prior-4df``, ``prior-16df``: the posterior predictive (k = 2) with an informative
  sigma^2 prior from an independent earlier run: ``s0^2 = sd^2 chi2_{nu0} / nu0`` is
  drawn per simulated run (that run's variance estimate, nu0 = 4 or 16 degrees of
  freedom at the true sd), and sigma^2 is drawn as ``pooled nu / chi2_nu`` with
  ``nu = (n-1) + nu0`` and ``pooled = ((n-1) s^2 + nu0 s0^2) / nu``;
- ``power-prior-16df``: the 16-df prior with k = 1.

It prints each forecast's mean at 3x the SESOI and at the effect where the true
replication probability is 0.5, and, over effects drawn uniformly from 0 to 4x the
SESOI, the mean forecast against the mean true probability in forecast bins (bin edges
0.25, 0.5, 0.75, 0.9: a calibration table) and the Brier score against the true
probability. A last line per n names the variants that (a) average >= 0.9 at 3x the
SESOI, (b) average 0.5 +- 0.1 at the power-0.5 effect, (c) forecast within 0.05 of the
truth in the top bin (forecasts >= 0.9). Every variant uses 3000 runs and 3000 draws
per run (about a minute in all). The first three variants draw from the same generator,
in the same order, as the script's first version did, so their lines are unchanged; the
added variants draw from a second generator.

What it shows: at n = 5 no variant that uses only the run's own seeds meets (a) and
(c) together. The plug-in variants reach about 0.91 (``plug-in`` 0.906,
``power-plug-in`` 0.916) at 3x the SESOI only by forecasting about 0.98 where the truth
is about 0.89; the posterior and median variants, with or without the effect
uncertainty, stay at 0.81 to 0.88. Only an informative prior on sigma meets both: with
16 df of exact prior information (an earlier run of 17 seeds at the true sd) the
predictive averages 0.900 (at the threshold: 0.900 to 0.901 over other seeds, Monte
Carlo se 0.002) and the power at the estimate 0.91 to 0.92, calibrated in the top bin
(0.96 forecast, 0.96 truth); 4 df gives 0.86. Even then the mean stays well below the
truth (0.964), because at 5 seeds the effect estimate's own uncertainty
(se = sd / sqrt 5) under a concave power curve pulls the mean forecast down. Every
variant meets (b). At n = 8 every variant averages above 0.97 at 3x the SESOI (the
rule's ``posterior`` 0.976) and meets all three. More seeds (today's, or an earlier
run's pooled into the variance), not another forecast of today's 5, meet the target.

Usage::

    .venv/bin/python benchmarks/replication_variants.py
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

SD, SESOI, RUNS, DRAWS, LEVEL = 1.0, 1.25, 3000, 3000, 0.05 / 13
BIN_EDGES = [0.25, 0.5, 0.75, 0.9]


@dataclass(frozen=True)
class Variant:
    """How a variant forecasts: where sigma^2 comes from and the fresh mean's spread.

    ``sigma``: ``"posterior"`` draws sigma^2 from its scaled-inverse-chi-square
    posterior, ``"plug-in"`` fixes it at the (pooled) sample variance, ``"median"`` at
    the posterior median. ``prior_df``: degrees of freedom of an independent earlier
    run's variance estimate pooled in (0: none). ``spread``: k in the fresh mean's
    variance ``k sigma^2 / n`` (2: predictive, effect uncertainty plus the fresh run's
    noise; 1: power at the observed effect).
    """

    sigma: Literal["posterior", "plug-in", "median"]
    spread: float
    prior_df: int = 0


VARIANTS: dict[str, Variant] = {
    "posterior": Variant("posterior", 2.0),
    "plug-in": Variant("plug-in", 2.0),
    "median": Variant("median", 2.0),
    "power-posterior": Variant("posterior", 1.0),
    "power-plug-in": Variant("plug-in", 1.0),
    "power-median": Variant("median", 1.0),
    "prior-4df": Variant("posterior", 2.0, prior_df=4),
    "prior-16df": Variant("posterior", 2.0, prior_df=16),
    "power-prior-16df": Variant("posterior", 1.0, prior_df=16),
}
FIRST = ("posterior", "plug-in", "median")  # the script's first version, same stream
WIDTH = max(map(len, VARIANTS))


def forecast(rng: np.random.Generator, x: np.ndarray, variant: Variant,
             crit: float) -> np.ndarray:
    """Each row's forecast probability that a fresh run reads *holds*."""
    rows, n = x.shape
    m, s2, dof, size = x.mean(1), x.std(1, ddof=1) ** 2, n - 1, (rows, DRAWS)
    nu, pooled = dof, s2
    if variant.prior_df:
        s0_2 = SD**2 * rng.chisquare(variant.prior_df, rows) / variant.prior_df
        nu = dof + variant.prior_df
        pooled = (dof * s2 + variant.prior_df * s0_2) / nu
    if variant.sigma == "posterior":
        sig2 = pooled[:, None] * nu / rng.chisquare(nu, size)
    else:
        fixed = pooled if variant.sigma == "plug-in" else pooled * nu / sps.chi2.median(nu)
        sig2 = np.broadcast_to(fixed[:, None], size)
    fresh_mean = m[:, None] + np.sqrt(variant.spread * sig2 / n) * rng.standard_normal(size)
    fresh_var = sig2 * rng.chisquare(dof, size) / dof
    return (fresh_mean > crit * np.sqrt(fresh_var / n)).mean(1)


def truth(effect: float, n: int, crit: float) -> float:
    return float(sps.nct.sf(crit, n - 1, effect * math.sqrt(n) / SD))


def main() -> None:
    rng, rng_added = np.random.default_rng(1), np.random.default_rng(2)

    def gen(name: str) -> np.random.Generator:
        return rng if name in FIRST else rng_added

    for n in (5, 8):
        crit = sps.t.isf(LEVEL, n - 1)
        lo, hi = 0.0, 10.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if truth(mid, n, crit) < 0.5 else (lo, mid)
        scenario_means: dict[str, dict[str, float]] = {}
        for label, effect in (("3x SESOI", 3 * SESOI), ("power 0.5", (lo + hi) / 2)):
            x = rng.normal(effect, SD, (RUNS, n))
            scenario_means[label] = {v: float(forecast(gen(v), x, spec, crit).mean())
                                     for v, spec in VARIANTS.items()}
            means = "  ".join(f"{v} {p:.3f}" for v, p in scenario_means[label].items())
            print(f"n={n} {label:9s} truth {truth(effect, n, crit):.3f}  mean forecast: {means}")
        effects = rng.uniform(0, 4 * SESOI, RUNS)
        x = rng.normal(effects[:, None], SD, (RUNS, n))
        true_p = np.array([truth(e, n, crit) for e in effects])
        top_gap: dict[str, float] = {}
        for v, spec in VARIANTS.items():
            p = forecast(gen(v), x, spec, crit)
            bins = np.digitize(p, BIN_EDGES)
            cells = [f"{p[bins == b].mean():.2f}->{true_p[bins == b].mean():.2f}"
                     for b in range(len(BIN_EDGES) + 1) if (bins == b).any()]
            top = bins == len(BIN_EDGES)
            top_gap[v] = abs(p[top].mean() - true_p[top].mean()) if top.any() else math.inf
            print(f"n={n} {v:{WIDTH}s} forecast->truth by bin: {' '.join(cells)}  "
                  f"Brier {((p - true_p) ** 2).mean():.4f}")
        meets = {
            "(a) mean >= 0.9 at 3x SESOI": [
                v for v in VARIANTS if scenario_means["3x SESOI"][v] >= 0.9],
            "(b) 0.5 +- 0.1 at power 0.5": [
                v for v in VARIANTS if abs(scenario_means["power 0.5"][v] - 0.5) <= 0.1],
            "(c) top bin within 0.05": [v for v in VARIANTS if top_gap[v] <= 0.05],
        }
        all_three = [v for v in VARIANTS if all(v in names for names in meets.values())]
        parts = [f"{test}: {', '.join(names) or 'none'}" for test, names in meets.items()]
        print(f"n={n} summary: {'; '.join(parts)}; all three: {', '.join(all_three) or 'none'}")


if __name__ == "__main__":
    main()
