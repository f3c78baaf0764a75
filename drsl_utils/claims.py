"""Every verdict in the project, drawn by one rule.

A *claim* is a finding of one of the papers, restated as an **estimand** that can be
measured once per training seed (a paired difference between two models trained with
the same seed, or one model's statistic against a fixed reference), a **direction**
(``greater``, ``less``, or ``equivalent`` for "the same within a margin") and a
**smallest effect of interest** (SESOI) in the estimand's own units, with one line that
justifies it. Each claim has a **role**: a paper ``finding``, a project ``check`` (a
sanity or control check) or a ``demo`` (the tour). The claims live in :data:`CLAIMS`
(declared in :mod:`.claim_table`); notebooks measure the per-seed values and hand them
over (``Report.claim(id, values)``); nothing else decides.

The rule (the same for every claim)
-----------------------------------
The unit of replication is the seed. Over the ``n`` per-seed values (display units) the
mean ``m`` has the standard error ``se = sqrt(sd^2 / n + v_img)``, where ``v_img`` is
the image-sampling variance of the mean for rows measured on a fixed image subset
(:func:`image_variance`; 0 otherwise). The image population is the dataset's test set:
a row measured on the whole test set has no image term, and a row on a subset of it
carries the subset's sampling variance with the finite-population correction (methods
review S5). The t reference keeps ``df = n - 1``, the seed
term's: conservative, since the image term is estimated from hundreds of images.
Welch-Satterthwaite (``se^4 / ((sd^2/n)^2 / (n-1))``, the image term taken as known)
would give more, and could make a row look *more* significant with the image term
than without it (t = 11 on 4 df is weaker evidence than t = 6.4 on 36 df). Writing ``d`` for the effect signed so that the
claimed direction is positive, three one-sided t-tests:

- ``p_holds``: H0 ``d <= 0`` (for ``equivalent``: TOST, H0 ``|theta| >= SESOI``, the
  larger of the two one-sided p-values);
- ``p_not``: H0 ``d >= SESOI`` (for ``equivalent``: H0 ``|theta| <= SESOI``, the
  Bonferroni union ``min(1, 2 min(p_above, p_below))``, whose size is at most alpha
  at the margin, where the uncorrected minimum reached 0.059 at alpha 0.05);
- reversal, H0 ``d >= 0`` (``p_rev = 1 - p_holds``), with its own Holm multipliers
  over the family's ``p_rev`` (a *reversed* verdict also needs ``p_not`` rejected).

**One family.** The Holm family is the *declared* set of primary findings
(:func:`declared_family`), not what happens to be on record: a declared primary with
no evidence is reported as **not run** and still counts (its p-values are 1), as does
one with fewer than two seeds. Checks and demos are never in it. Holm's step-down
procedure adjusts ``p_holds`` across the family, and separately ``p_not`` and ``p_rev``;
each test is one-sided at ``alpha = 0.05``. A row identical by construction (no spread
over seeds and no image term, e.g. two statistics that rank samples the same) is not
t-tested: its value is known exactly and read against 0 and the SESOI; in the family it
counts with p = 1.

**Bounds that match the decision.** Holm rejects a hypothesis when
``p < alpha / k``, where ``k`` (the row's *multiplier*, :func:`holm_multipliers`) is
``p_adj / p`` before the cap at 1: ``m - j + 1`` at step ``j``, or more when the
procedure stopped earlier. Every printed bound is the one-sided t-bound at confidence
``1 - alpha / k`` of its own test, so a bound excludes a value exactly when the
Holm-adjusted test rejects it: the lower bound (``m - t_{1-alpha/k_h} se``, claimed
direction) clears zero exactly when the row holds, the upper bound
(``m + t_{1-alpha/k_n} se``) falls below the SESOI exactly when it does not hold. Rows
outside the family use ``k = 1``: a two-sided 90 % interval. Equivalence rows print the
TOST interval (each side at ``1 - alpha/k``) unless they are *not equivalent*, which
prints the interval at ``1 - alpha/(2k)`` each side that lies wholly outside the
margin. A *reversed* row prints its opposite-side bound at ``1 - alpha / k_rev``. These
bounds invert the tests at zero and at the SESOI only (they are not simultaneous
confidence bounds), so notes on inconclusive rows say "zero is not excluded, and the
SESOI is not excluded" and quote no range.

**Verdicts** (:data:`VERDICTS`), from the two bounds ``L`` and ``U`` (claimed
direction positive):

- ``holds``: ``L > 0`` and ``U >= SESOI`` (shown in the claimed direction, not shown
  to be below the SESOI); its ``size`` says whether the effect is also shown to be at
  least the SESOI (the minimal-effect test, H0 ``d <= SESOI``, with Holm over the
  family's own p-values: "holds, at least the SESOI") or only its direction ("holds in
  direction, size open"), since a +0.1 pp effect can "hold" a claim of 10-60 pp;
- ``negligible``: ``L > 0`` and ``U < SESOI`` (real, but shown smaller than the SESOI);
- ``does not hold``: ``U < SESOI``, ``L <= 0`` and ``U >= 0``;
- ``reversed``: ``U < 0`` (shown on the opposite side);
- ``inconclusive``: ``L <= 0 < SESOI <= U``;
- equivalence claims: ``equivalent`` (TOST interval inside the margin),
  ``not equivalent`` (interval wholly outside it), ``inconclusive``;
- ``not run``: a declared primary with no evidence.

The family-wise error of each kind of wrong verdict is at most alpha: a *holds* (or
*negligible*, or *equivalent*) where the truth is no effect needs a false rejection in
the ``p_holds`` family; a *does not hold* / *negligible* / *reversed* / *not
equivalent* where the effect is at least the SESOI needs one in the ``p_not`` family.
A *reversed* verdict where ``0 <= d < SESOI`` needs one in the ``p_rev`` family. So the
chance of **any** wrong primary verdict in a report is at most ``2 alpha = 0.10`` for
the two decisions a reader acts on (a false *holds*/*equivalent*, a false "below the
SESOI"), at most ``3 alpha`` counting a false *reversed* where "below the SESOI" was
right, and ``4 alpha`` counting a false "at least the SESOI" (the size label's own
family). Every rate assumes normal per-seed values. Each family runs at alpha rather
than alpha/2 or alpha/3 by choice: the families
answer different questions (is there an effect; is it smaller than what matters; is it
the other way), each statement is exact on its own, and the primaries' power at the
SESOI is already low; a reader who needs one report-wide rate reads the bound above.

**Attack calibration** (:func:`calibrate`): a robustness row decided by a cheap attack
and calibrated against standard AutoAttack tests the effect under standard AutoAttack,
``theta* = m - m_d`` (the cheap attack's effect minus its measured differential), with
``se* = sqrt(se^2 + se_d^2)`` and the smaller of the two ``n - 1`` degrees of freedom
(the differential's is infinite where its exact-count floor decides: the floor is an
image-level bound, never scaled by a t quantile; :func:`calibration.moments`).
Its p-values are the ones Holm's procedure sees, so the statements above cover
calibrated verdicts; with few calibration seeds the row pays for them in ``df``, which
is why ``quick`` calibrates on 5 seeds x 60 images rather than 2 x 200 (the same cost;
a 1-df differential left those rows unable to leave *inconclusive*).

**Replication** (:func:`fresh_run_probabilities`): the predictive probability that a
fresh run with the same seed count, at the same family standing (the same multipliers),
reads each verdict, by Monte Carlo (10^4 seeded draws per row): the seed variance is
drawn from its scaled-inverse-chi-square posterior, then the fresh mean and the fresh
sd, and the rule decides each draw. The fresh run reuses the image subset and the
calibration. The report's **replication** is the probability of a fresh *holds*
(*equivalent*). The posterior pools today's per-seed variance with the **variance
history** of the earlier confirmatory runs (:func:`variance_prior`, rule v10): each
trained its own unseen seeds, so each is an independent estimate of the same per-seed
variance, and five runs of 5 seeds add 20 degrees of freedom to today's 4 (of 8 seeds,
35 to 7). That the variance stayed the same is an assumption, checked row by row: where
a two-sided F test of today's variance against the history's gives p < 0.05, the
history is dropped for that row and the report says so (:func:`pool_history`; methods
review 7, M1). On today's 4
alone the forecast averaged only 0.87 at three times the SESOI (5 seeds, the committed
family, the plan's SESOI of 1.25 per-seed sd; the truth 0.99): the posterior of a
variance on 4 degrees of freedom has twice the observed variance as its mean, and the
forecasts that reach 0.9 without more information (a plug-in sd) forecast 0.98 where
0.89 comes true (``benchmarks/replication_variants.py``). With the history it averages
at least 0.9 there at 5 and 8 seeds, 0.5 (within 0.1) at the effect where the power is
0.5, and stays calibrated (``tests/test_claims.py``). It is an exploratory indicator,
not an error rate: it holds the family standing fixed, assumes a flat prior on the
effect, and assumes the per-seed variance did not change between runs. The report also
prints the predictive probability of the row's *own* verdict (``same``); it cannot fall
below about 0.5 near a boundary, since the verdict is chosen by the same data, so read
``same < 0.9`` as "a fresh run may well disagree". Leave-one-seed-out
(:func:`loso_agreement`) flags a verdict carried by one seed: how many resamples keep
the verdict, and how many of their estimates stay on the claimed side.

**Power** (:func:`design_power`, :func:`seeds_needed`): the probability that the
*holds* (*equivalent*) test rejects when the true effect is the SESOI (zero for
equivalence), at the observed sd and a pre-specified level, ``alpha / m`` for the
``m`` members of the family (Bonferroni: conservative, and unlike the row's observed
Holm multiplier it does not depend on today's p-values), ``alpha`` outside it; a
primary row is *underpowered* below 0.8 at the observed sd. The power and the seeds
needed for 0.8 also come as a range, from the ends of the 95 % chi-square interval of
the sd (with 5 seeds the 95 % interval of the need runs from about 0.4x to 8x the
point value). Directional power is P(the *holds* test rejects), which includes
*negligible* outcomes; equivalence power treats ``se`` as known (optimistic at 5-8
seeds).

Secondary findings, checks and demos use the same tests without the family adjustment.
With fewer than two seeds nothing is decided.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from .calibration import Differential, exact_bound
from .registry import Registry
from .runtime import check_choice

__all__ = [
    "USER_CLAIMS_ENV",
    "load_user_claims",
    "ALPHA",
    "POWER_TARGET",
    "DIRECTIONS",
    "ROLES",
    "DIRECTIONAL_VERDICTS",
    "EQUIVALENCE_VERDICTS",
    "POSITIVE_VERDICTS",
    "VERDICTS",
    "DETECTION_LABELS",
    "SIZE_LABELS",
    "verdict_label",
    "Claim",
    "Evidence",
    "TestResult",
    "CLAIMS",
    "register",
    "get_claim",
    "claims_for",
    "defined_ids",
    "declared_family",
    "t_test",
    "holm",
    "holm_multipliers",
    "decide",
    "bounds",
    "fresh_run_probabilities",
    "REPLICATION_DRAWS",
    "design_power",
    "effect_for_power",
    "seeds_needed",
    "assess",
    "loso_agreement",
    "variance_prior",
    "pool_history",
    "evidence_frame",
    "calibrate",
    "paired",
    "per_seed",
    "image_variance",
    "describe",
    "signed",
    "RULE",
    "declaration",
    "declaration_hash",
    "protocol",
    "confirmatory_status",
]

#: One-sided error level of every test (and of each bound before Holm's adjustment).
ALPHA = 0.05
#: A primary claim whose design power at its SESOI is below this is underpowered.
POWER_TARGET = 0.8
DIRECTIONS = ("greater", "less", "equivalent")
#: ``finding``: a paper's finding (primary rows form the Holm family); ``check``: a
#: project sanity or control check; ``demo``: the tour. Only findings are counted in the
#: report's headline.
ROLES = ("finding", "check", "demo")
DIRECTIONAL_VERDICTS = ("holds", "negligible", "does not hold", "reversed", "inconclusive")
EQUIVALENCE_VERDICTS = ("equivalent", "not equivalent", "inconclusive")
#: How a *holds* reads its size (methods review S2): ``True`` when the minimal-effect
#: test (H0 ``d <= SESOI``, Holm over the family's own p-values) rejects, i.e. the effect
#: is shown to be at least the SESOI; ``False`` when only its direction is shown.
SIZE_LABELS = {True: "at least the SESOI", False: "size open"}
#: The verdict a replication is counted on, per direction kind.
POSITIVE_VERDICTS = {"directional": "holds", "equivalent": "equivalent"}
#: Every label the rule can print, in report order ("not run": a declared primary
#: finding without evidence; it still counts in Holm's family).
VERDICTS = ("holds", "equivalent", "negligible", "does not hold", "not equivalent",
            "reversed", "inconclusive", "detected", "not detected", "not run")
#: How a *detection* claim (``Claim.detection``: a test that may find something, where
#: failing to find it is no evidence of its absence) reads the directional verdicts.
DETECTION_LABELS = {"holds": "detected", "negligible": "detected",
                    "does not hold": "not detected", "reversed": "not detected",
                    "inconclusive": "not detected"}

#: Every declared claim by id, in the package's one registry shape
#: (:class:`~drsl_utils.registry.Registry`, as losses, models, datasets and attacks).
#: The project's own declarations live in :mod:`drsl_utils.claim_table` (data, apart
#: from the rule); a user adds one with :func:`register` and removes it with
#: ``CLAIMS.unregister(id)``.
CLAIMS: Registry[Claim] = Registry("claim")


@dataclass(frozen=True)
class Claim:
    """One claim and how it is tested.

    Attributes:
        id: stable identifier, e.g. ``"drsl-harder-dlr"``.
        notebook: the notebook that measures it.
        source: where the claim comes from.
        statement: the claim in one sentence.
        estimand: what one seed contributes, e.g. ``"APGD-DLR robust accuracy, DRSL - CE"``.
        direction: ``greater`` (the estimand is positive if the claim is right), ``less``,
            or ``equivalent`` (the estimand lies within +-``sesoi``).
        sesoi: the smallest effect of interest (the equivalence margin for
            ``equivalent``), in display units (after ``scale``).
        why: one line that justifies the SESOI.
        scale: display units per raw unit (100 turns fractions into percentage points).
        units: the display units, e.g. ``"pp"``.
        digits: decimals shown.
        primary: in the Holm family (one primary row per paper finding); secondary rows
            are other attacks or variants. Only a ``finding`` can be primary.
        unit: the unit of replication, as shown in the report.
        role: ``finding`` (a paper's finding), ``check`` (a project sanity or control
            check: never in the family nor in the headline counts) or ``demo`` (the
            tour).
        detection: a detection claim (e.g. "the dip test detects a second peak"): the
            tests are the same, but the verdict reads ``detected`` or ``not detected``
            (:data:`DETECTION_LABELS`), since a test that fails to find an effect does
            not show its absence. Directional claims only.
    """

    id: str
    notebook: str
    source: str
    statement: str
    estimand: str
    direction: str
    sesoi: float
    why: str
    scale: float = 1.0
    units: str = ""
    digits: int = 2
    primary: bool = True
    unit: str = "seed (paired)"
    role: str = "finding"
    detection: bool = False

    def __post_init__(self) -> None:
        if self.detection and self.direction == "equivalent":
            raise ValueError(f"detection=True for claim {self.id!r} with direction "
                             "'equivalent': a detection claim is directional")
        check_choice("direction", self.direction, DIRECTIONS)
        check_choice("role", self.role, ROLES)
        if not (math.isfinite(self.sesoi) and self.sesoi > 0):
            raise ValueError(f"sesoi={self.sesoi!r} for claim {self.id!r}: must be > 0")
        if not self.why.strip():
            raise ValueError(f"claim {self.id!r} needs a one-line justification of its SESOI")
        if self.primary and self.role != "finding":
            raise ValueError(f"primary=True for claim {self.id!r} with role={self.role!r}: "
                             "only role 'finding' can be primary")

    @property
    def in_family(self) -> bool:
        """Whether the claim belongs to the Holm family (a primary finding)."""
        return self.primary and self.role == "finding"

    def printed(self, verdict: str) -> str:
        """The label the report prints for the rule's ``verdict``: a detection claim's
        coarser one (:data:`DETECTION_LABELS`), else the verdict itself."""
        return DETECTION_LABELS.get(verdict, verdict) if self.detection else verdict

    def fmt(self, value: float, sign: bool = True) -> str:
        """A display-unit number with the claim's digits and units (signed through
        :func:`signed`: never "-0.0" or "+0.0")."""
        if value is None or not math.isfinite(value):
            return "nan"
        text = signed(value, self.digits) if sign else f"{value:.{self.digits}f}"
        return f"{text} {self.units}".rstrip() if self.units else text


#: Below this magnitude a value is read as an exact zero (floating-point noise, e.g. a
#: differential of identical per-seed values), printed unsigned.
_ZERO_TOL = 1e-12


def signed(value: float, digits: int) -> str:
    """``value`` with a sign and ``digits`` decimals, honest about its sign (methods
    review 4): an exact zero (below :data:`_ZERO_TOL`) prints unsigned, ``0.0``; a
    nonzero value that would round to zero at ``digits`` gets as many more decimals as
    show its first nonzero digit (``-0.049`` at one decimal prints ``-0.05``, not
    ``-0.0``). Other values print as ``f"{value:+.{digits}f}"``; so do NaN and inf."""
    v, d = float(value), max(int(digits), 0)
    if not math.isfinite(v):
        return f"{v:+.{d}f}"
    if abs(v) < _ZERO_TOL:
        return f"{0.0:.{d}f}"
    while float(f"{abs(v):.{d}f}") == 0.0:
        d += 1
    return f"{v:+.{d}f}"


@dataclass
class Evidence:
    """The per-seed values a notebook measured for one claim.

    Attributes:
        claim: the claim's id (a key of :data:`CLAIMS`).
        values: ``{seed: estimand}`` in raw units (before ``Claim.scale``).
        detail: the context a reader needs, computed by the notebook (means per model,
            pooled rates, the attack and eps), as text.
        notebook, profile: where and under which profile it was measured.
        image_var: the variance (raw units squared) of the across-seed mean that comes
            from a fixed image subset shared by all seeds (:func:`image_variance`); 0
            for rows on the full test set or with no image sampling.
        alt_power: for a detection claim (``Claim.detection``), the test's power against
            the stated alternative the notebook computed (e.g. the dip test's power
            against a stated two-peaked mixture); None where not given. The report's
            power column and its underpowered count use it for a detection row
            (methods review 5, 4a; rule v9).
        alternative: that alternative, as text (e.g. ``"0.7 N(0,1) + 0.3 N(3.5,1)"``).
        alt_effect: for a detection claim, the alternative's population value of the
            estimand (raw units), e.g. the dip's mean excess under the mixture
            (:func:`stats.dip_excess`). Given, the row's **own** test's power at that
            effect (:func:`design_power` at the observed sd, the row's seeds and the
            family level) replaces ``alt_power`` (methods review 6, point 3; rule v10):
            the row is decided over seeds, not by one sample's test.
    """

    claim: str
    values: dict[int, float]
    detail: str = ""
    notebook: str = ""
    profile: str = ""
    image_var: float = 0.0
    alt_power: float | None = None
    alternative: str = ""
    alt_effect: float | None = None

    def __post_init__(self) -> None:
        get_claim(self.claim)
        self.values = {int(k): float(v) for k, v in dict(self.values).items()}
        self.image_var = float(self.image_var)
        if not (math.isfinite(self.image_var) and self.image_var >= 0):
            raise ValueError(f"image_var={self.image_var!r} for claim {self.claim!r}: must "
                             "be a finite number >= 0")
        if self.alt_power is not None:
            self.alt_power = float(self.alt_power)
            if not (math.isfinite(self.alt_power) and 0.0 <= self.alt_power <= 1.0):
                raise ValueError(f"alt_power={self.alt_power!r} for claim {self.claim!r}: "
                                 "must be a probability or None")
        self.alternative = str(self.alternative or "")
        if self.alt_effect is not None:
            self.alt_effect = float(self.alt_effect)
            if not math.isfinite(self.alt_effect):
                raise ValueError(f"alt_effect={self.alt_effect!r} for claim "
                                 f"{self.claim!r}: must be a finite number or None")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["values"] = {str(k): v for k, v in sorted(self.values.items())}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        return cls(data["claim"], {int(k): v for k, v in data["values"].items()},
                   data.get("detail", ""), data.get("notebook", ""), data.get("profile", ""),
                   data.get("image_var", 0.0), data.get("alt_power"),
                   data.get("alternative", ""), data.get("alt_effect"))


# ----------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class TestResult:
    """What one claim's per-seed values say, before any family adjustment.

    ``mean``, ``sd`` and ``se`` are in display units; ``se`` includes the image term;
    ``df`` its degrees of freedom; ``n`` counts the seeds that entered. ``p_holds``,
    ``p_not`` and ``p_rev`` are the one-sided p-values of the rule (see the module).
    """

    n: int
    mean: float
    sd: float
    se: float
    df: float
    p_holds: float
    p_not: float
    p_rev: float


def _t_sf(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """P(T >= t) elementwise; NaN (0/0: no spread and no effect) gives 0.5."""
    t, df = np.broadcast_arrays(np.asarray(t, np.float64), np.asarray(df, np.float64))
    shape = t.shape
    t, df = t.reshape(-1), df.reshape(-1)
    out = np.full(t.shape, 0.5)
    ok = ~np.isnan(t) & ~np.isnan(df)
    out[ok] = sps.t.sf(t[ok], df[ok])
    out[np.isnan(df)] = np.nan
    return out.reshape(shape)


def _ratio(num: np.ndarray, se: np.ndarray) -> np.ndarray:
    """``num / se`` with ``se = 0`` read as an infinitely precise estimate."""
    num, se = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(se, np.float64))
    shape = num.shape
    num, se = num.reshape(-1), se.reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / se
    zero = se == 0
    out[zero] = np.where(num[zero] == 0, np.nan, np.copysign(np.inf, num[zero]))
    return out.reshape(shape)


def _pvalues(mean: np.ndarray, se: np.ndarray, df: np.ndarray, direction: str,
             sesoi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p_holds, p_not, p_rev)`` of the rule, elementwise (see the module)."""
    if direction == "equivalent":
        p_above = 1.0 - _t_sf(_ratio(mean - sesoi, se), df)   # H0 theta >= +sesoi
        p_below = _t_sf(_ratio(mean + sesoi, se), df)         # H0 theta <= -sesoi
        p_holds = np.maximum(p_above, p_below)
        q_above = _t_sf(_ratio(mean - sesoi, se), df)         # H0 theta <= +sesoi
        q_below = 1.0 - _t_sf(_ratio(mean + sesoi, se), df)   # H0 theta >= -sesoi
        p_not = np.minimum(1.0, 2.0 * np.minimum(q_above, q_below))
        return p_holds, p_not, np.full(p_holds.shape, np.nan)
    d = mean if direction == "greater" else -mean
    p_holds = _t_sf(_ratio(d, se), df)                        # H0 d <= 0
    p_not = 1.0 - _t_sf(_ratio(d - sesoi, se), df)            # H0 d >= sesoi
    return p_holds, p_not, 1.0 - p_holds                      # reversal: H0 d >= 0


def _se_df(sd: np.ndarray, n: np.ndarray, image_var: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Standard error with the image term, and its degrees of freedom: ``n - 1``
    always (see the module docstring for why not Welch-Satterthwaite)."""
    se = np.sqrt(sd**2 / n + image_var)
    df = np.where(n >= 2, n - 1.0, np.nan)
    return se, df


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise ``(n, mean, sd)`` of a 2-D array, NaNs dropped; sd 0 when the values
    agree up to rounding (identical models have no spread at all)."""
    ok = np.isfinite(x)
    n = ok.sum(axis=1).astype(np.float64)
    xs = np.where(ok, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xs.sum(axis=1) / n
        var = (np.where(ok, x - mean[:, None], 0.0) ** 2).sum(axis=1) / (n - 1)
    sd = np.sqrt(var)
    sd = np.where(sd <= 1e-12 * np.maximum(1.0, np.abs(mean)), 0.0, sd)
    sd = np.where(n >= 2, sd, np.nan)
    return n, mean, sd


def t_test(values: Iterable[float] | np.ndarray, direction: str, sesoi: float, *,
           image_var: float = 0.0) -> TestResult | list[TestResult]:
    """The one-sided t-tests of the rule on per-seed values (display units).

    Args:
        values: one estimand per seed (NaNs are dropped); a 2-D array is read as one
            replication per row and gives a list (the simulations use it).
        direction: ``greater``, ``less`` or ``equivalent``.
        sesoi: the smallest effect of interest (> 0).
        image_var: image-sampling variance of the mean, in display units squared.

    Returns:
        A :class:`TestResult` (a list of them for 2-D input); p-values are NaN with
        fewer than two values.
    """
    check_choice("direction", direction, DIRECTIONS)
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values,
                   dtype=np.float64)
    flat = x.ndim == 1
    x = x.reshape(1, -1) if flat else x
    arr = _test_arrays(x, direction, sesoi, image_var)
    out = [TestResult(int(n), float(m), float(sd), float(se), float(df), float(ph),
                      float(pn), float(pr))
           for n, m, sd, se, df, ph, pn, pr in zip(*(arr[k] for k in (
               "n", "mean", "sd", "se", "df", "p_holds", "p_not", "p_rev")))]
    return out[0] if flat else out


def _test_arrays(x: np.ndarray, direction: str, sesoi: float,
                 image_var: float | np.ndarray = 0.0) -> dict[str, np.ndarray]:
    n, mean, sd = _moments(x)
    se, df = _se_df(sd, n, np.broadcast_to(np.asarray(image_var, np.float64), n.shape))
    p_h, p_n, p_r = (np.where(n >= 2, p, np.nan)
                     for p in _pvalues(mean, se, df, direction, sesoi))
    return {"n": n, "mean": mean, "sd": sd, "se": se, "df": df, "p_holds": p_h,
            "p_not": p_n, "p_rev": p_r}


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaNs stay NaN and do not count; a 2-D array
    is one family per row).

    ``adj_(j) = min(1, max_{k <= j} (m - k + 1) p_(k))`` over the sorted finite p-values.
    To count a member that has no p-value (a primary not run), pass 1 for it.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    return np.minimum(1.0, p * holm_multipliers(p))


def holm_multipliers(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Each member's Holm multiplier ``k = p_adj / p`` before the cap at 1, so that the
    member is rejected at family-wise level alpha exactly when ``p < alpha / k``; its
    matching one-sided bound has confidence ``1 - alpha / k``. ``k = m - j + 1`` at
    step ``j`` unless the procedure stopped earlier (then larger). A zero p-value gets
    its step's ``m - j + 1``. NaNs give NaN. A 2-D array is one family per row."""
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.ndim == 1
    p2 = p.reshape(1, -1) if flat else p
    out = np.full(p2.shape, np.nan)
    finite = np.isfinite(p2)
    m = finite.sum(axis=1, keepdims=True)
    order = np.argsort(np.where(finite, p2, np.inf), axis=1, kind="stable")
    ps = np.take_along_axis(p2, order, axis=1)
    step = np.arange(p2.shape[1])[None, :]
    factor = (m - step).astype(np.float64)
    running = np.maximum.accumulate(np.where(np.isfinite(ps), factor * ps, -np.inf), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mult = np.where(ps > 0, running / ps, factor)
    mult = np.where(np.isfinite(ps), np.maximum(mult, factor), np.nan)
    np.put_along_axis(out, order, mult, axis=1)
    return out[0] if flat else out


def _crit(level: np.ndarray, df: np.ndarray) -> np.ndarray:
    """The one-sided t critical value ``t_{1 - level, df}`` (NaN where unknown)."""
    level, df = np.broadcast_arrays(np.asarray(level, np.float64), np.asarray(df, np.float64))
    shape = level.shape
    level, df = level.reshape(-1), df.reshape(-1)
    out = np.full(level.shape, np.nan)
    ok = np.isfinite(level) & ~np.isnan(df) & (level > 0)
    out[ok] = sps.t.isf(level[ok], df[ok])
    return out.reshape(shape)


def decide(p_holds: np.ndarray, p_not: np.ndarray, p_rev: np.ndarray, direction: str,
           k_holds: np.ndarray | float = 1.0, k_not: np.ndarray | float = 1.0,
           alpha: float = ALPHA, k_rev: np.ndarray | float | None = None) -> np.ndarray:
    """The verdicts of the rule from the raw one-sided p-values and each row's Holm
    multipliers (1 outside the family): a test rejects when ``p * k < alpha``. The
    reversal test has its own multipliers ``k_rev`` (Holm over the family's ``p_rev``;
    default ``k_not``, the old rule).

    Returns:
        An array of labels from :data:`DIRECTIONAL_VERDICTS` or
        :data:`EQUIVALENCE_VERDICTS`; NaN p-values (fewer than two seeds) read
        *inconclusive*.
    """
    check_choice("direction", direction, DIRECTIONS)
    k_rev = k_not if k_rev is None else k_rev
    p_h, p_n, p_r, k_h, k_n, k_r = np.broadcast_arrays(
        *(np.asarray(a, np.float64) for a in (p_holds, p_not, p_rev, k_holds, k_not, k_rev)))
    with np.errstate(invalid="ignore"):
        h = p_h * k_h < alpha
        nt = p_n * k_n < alpha
        if direction == "equivalent":
            return np.select([h, nt], ["equivalent", "not equivalent"], "inconclusive")
        r = nt & (p_r * k_r < alpha)
    return np.select([h & ~nt, h & nt, r, nt],
                     ["holds", "negligible", "reversed", "does not hold"], "inconclusive")


def bounds(mean: np.ndarray, se: np.ndarray, df: np.ndarray, direction: str,
           k_holds: np.ndarray | float = 1.0, k_not: np.ndarray | float = 1.0,
           alpha: float = ALPHA, not_equivalent: np.ndarray | bool = False,
           k_rev: np.ndarray | float | None = None, is_reversed: np.ndarray | bool = False
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The bounds that match the decision, in the estimand's own sign.

    A row that reads *reversed* prints its opposite-side bound at ``1 - alpha / k_rev``
    instead (the reversal's own Holm level: it lies beyond zero exactly then).

    Directional: the bound on the claimed side of the estimate has confidence
    ``1 - alpha / k_holds`` (it clears zero exactly when the row holds), the other
    ``1 - alpha / k_not`` (it falls below the SESOI exactly when the row does not hold).
    Equivalence: the TOST interval (``1 - alpha / k_holds`` each side), or for rows that
    are ``not_equivalent`` the interval at ``1 - alpha / (2 k_not)`` each side.

    Returns:
        ``(low, high, conf_low, conf_high)``: the bounds and each one's one-sided
        confidence.
    """
    k_rev = k_not if k_rev is None else k_rev
    mean, se, df, k_h, k_n, ne, k_r, rv = np.broadcast_arrays(
        *(np.asarray(a, np.float64) for a in (mean, se, df, k_holds, k_not, not_equivalent,
                                              k_rev, is_reversed)))
    a_h, a_n = alpha / k_h, np.where(rv > 0, alpha / k_r, alpha / k_n)
    if direction == "equivalent":
        a = np.where(ne > 0, a_n / 2, a_h)
        half = _crit(a, df) * se
        return mean - half, mean + half, 1 - a, 1 - a
    lo_a, hi_a = (a_h, a_n) if direction == "greater" else (a_n, a_h)
    return (mean - _crit(lo_a, df) * se, mean + _crit(hi_a, df) * se, 1 - lo_a, 1 - hi_a)


#: Monte Carlo draws per row of :func:`fresh_run_probabilities`.
REPLICATION_DRAWS = 10_000
#: The variance history is dropped for a row whose own variance differs from it at this
#: two-sided level (F test; methods review 7, M1; rule v10).
HISTORY_CONFLICT = 0.05


def fresh_run_probabilities(mean: np.ndarray, sd: np.ndarray, n: np.ndarray,
                            direction: str, sesoi: float, k_holds: np.ndarray | float = 1.0,
                            k_not: np.ndarray | float = 1.0, alpha: float = ALPHA, *,
                            fixed_var: np.ndarray | float = 0.0,
                            df: np.ndarray | float | None = None,
                            k_rev: np.ndarray | float | None = None,
                            cal_var: np.ndarray | float = 0.0,
                            cal_df: np.ndarray | float = np.nan,
                            prior_var: np.ndarray | float = 0.0,
                            prior_df: np.ndarray | float = 0.0,
                            draws: int = REPLICATION_DRAWS, seed: int = 0
                            ) -> dict[str, np.ndarray]:
    """The predictive probability of each verdict in a fresh run with the same seed
    count and the same multipliers, by Monte Carlo (methods review S1).

    Under a flat prior on the effect and ``p(sigma^2) ~ 1 / sigma^2``, per draw:
    ``sigma^2 = (n-1) sd^2 / chi2_{n-1}`` (its scaled-inverse-chi-square posterior);
    the fresh mean ``m' = m + sqrt(2 sigma^2 / n) Z`` (today's estimate's uncertainty
    plus the fresh run's own); the fresh sd ``sd'^2 = sigma^2 chi2'_{n-1} / (n-1)``;
    ``se' = sqrt(sd'^2 / n + fixed_var)``; then the rule's tests at the row's
    multipliers and ``df`` (default ``n - 1``) decide, exactly as :func:`decide` does.
    The fresh run **reuses the image subset** (fixed by the profile), so its variance
    ``fixed_var`` enters each fresh standard error but does not move ``m'``. A
    calibrated row's fresh run **re-measures the calibration's differential** on its own
    models (methods review 5, 8; rule v9): with ``cal_var`` (``se_d^2``) and ``cal_df``
    (``n_cal - 1``), per draw ``sigma_d^2 = cal_df se_d^2 / chi2_{cal_df}``, the fresh
    estimate moves by ``- sqrt(2 sigma_d^2) Z_d`` (the differential is subtracted) and
    its fresh ``se_d'^2 = sigma_d^2 chi2'_{cal_df} / cal_df`` enters ``se'`` (an upper
    case: the calibration's images stay fixed). These draws come from a stream of their
    own (``seed`` and 1), so rows without a calibration (``cal_var`` 0 or ``cal_df``
    not finite) get exactly the numbers they got before. With a **variance history**
    (rule v10; methods review 6, point 1): ``prior_var`` ``s0^2`` on ``prior_df``
    ``nu0`` degrees of freedom, the per-seed variance pooled over earlier independent
    runs of the same estimand (:func:`variance_prior`), ``sigma^2`` is drawn from the
    posterior that combines both, ``nu s_p^2 / chi2_nu`` with ``nu = n - 1 + nu0`` and
    ``s_p^2 = ((n - 1) sd^2 + nu0 s0^2) / nu`` (a scaled-inverse-chi-square prior from
    the earlier runs, updated by today's); ``nu0 = 0`` is the flat-prior case. Treating the fresh sd as today's (the old closed form) made
    the number overconfident where a small observed sd both raised it and was the
    reason for it. Seeded: the same inputs give the same numbers.

    Returns:
        ``{verdict: probability}`` arrays (the labels of :func:`decide`); NaN where the
        spread is unknown (fewer than two seeds).
    """
    check_choice("direction", direction, DIRECTIONS)
    arrays = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (
        mean, sd, n, k_holds, k_not, fixed_var, np.nan if df is None else df,
        k_not if k_rev is None else k_rev, cal_var, cal_df, prior_var, prior_df)))
    shape = arrays[0].shape
    m, sd_, n_, k_h, k_n, fv, df_, k_r, cv, cdf, pv, pdf = (a.reshape(-1).copy()
                                                          for a in arrays)
    pdf = np.where(np.isfinite(pv) & (pv >= 0) & np.isfinite(pdf) & (pdf > 0), pdf, 0.0)
    pv = np.where(pdf > 0, pv, 0.0)
    redraw = np.isfinite(cv) & (cv > 0) & np.isfinite(cdf) & (cdf >= 1)
    # Without a re-drawn calibration, its variance (if any) is a fixed term.
    fv = np.where(redraw | ~np.isfinite(cv), fv, fv + cv)
    cv = np.where(redraw, cv, 0.0)
    if df is None:
        df_ = n_ - 1.0
    labels = (EQUIVALENCE_VERDICTS if direction == "equivalent"
              else DIRECTIONAL_VERDICTS)
    out = {v: np.full(m.shape, np.nan) for v in labels}
    ok = np.flatnonzero(np.isfinite(m) & np.isfinite(sd_) & (n_ >= 2) & ~np.isnan(df_))
    rng = np.random.default_rng(seed)
    rng_cal = np.random.default_rng([seed, 1])
    chunk = max(1, 2_000_000 // max(1, draws))
    for start in range(0, ok.size, chunk):
        idx = ok[start:start + chunk]
        probs = _fresh_draws(rng, m[idx], sd_[idx], n_[idx], k_h[idx], k_n[idx],
                             k_r[idx], fv[idx], df_[idx], direction, sesoi, alpha, draws,
                             rng_cal=rng_cal, cal_var=cv[idx], cal_df=cdf[idx],
                             prior_var=pv[idx], prior_df=pdf[idx])
        for v in labels:
            out[v][idx] = probs[v]
    return {v: a.reshape(shape) for v, a in out.items()}


def variance_prior(claim_id: str) -> tuple[float, float]:
    """The per-seed variance of a claim pooled over the earlier confirmatory runs
    (:mod:`drsl_utils.seed_history`), in display units: ``(s0^2, nu0)`` with
    ``nu0 = sum_r (n_r - 1)`` and ``s0^2 = sum_r (n_r - 1) s_r^2 / nu0`` over the runs
    with at least two seeds; ``(nan, 0.0)`` for a claim with no history (a user's own,
    say), which leaves its replication on the flat prior.

    Each earlier run trained its own unseen seeds, so these are independent estimates
    of the same per-seed variance (the runs are kept only where the estimand was
    worded as today); the replication forecast pools them with today's
    (:func:`fresh_run_probabilities`, rule v10): at 5 seeds and 4 degrees of freedom
    the flat-prior forecast could not average 0.9 at three times the SESOI while staying
    calibrated (``benchmarks/replication_variants.py``). Power and seeds needed stay on
    today's sd, as their range says.
    """
    from .seed_history import VALUES

    runs = VALUES.get(claim_id, {})
    scale = get_claim(claim_id).scale if claim_id in CLAIMS else 1.0
    num, dof = 0.0, 0.0
    for values in runs.values():
        x = np.asarray(list(values.values()), np.float64) * scale
        if x.size >= 2 and np.isfinite(x).all():
            num += float(((x - x.mean()) ** 2).sum())
            dof += x.size - 1.0
    return (num / dof, dof) if dof > 0 else (math.nan, 0.0)


def pool_history(sd: np.ndarray | float, n: np.ndarray | float,
                 prior_var: np.ndarray | float, prior_df: np.ndarray | float,
                 level: float = HISTORY_CONFLICT) -> dict[str, np.ndarray]:
    """Which rows may pool their variance history (rule v10; methods review 7, M1).

    The history assumes today's per-seed variance is the earlier runs'. Where today's
    ``sd^2`` (``n - 1`` df) and the history's ``s0^2`` (``nu0`` df) differ at two-sided
    level ``level`` by the F test, ``p = 2 min(F_cdf, F_sf)`` of ``sd^2 / s0^2``, the
    history is dropped for that row (its forecast falls back to today's variance alone)
    and the report says so. Vectorised.

    Returns:
        ``prior_var`` and ``prior_df`` to pass to :func:`fresh_run_probabilities` (0 df
        where dropped or absent), ``p`` (the F test's p-value, NaN without a history)
        and ``dropped`` (bool).
    """
    sd_, n_, pv, pdf = np.broadcast_arrays(*(np.asarray(a, np.float64)
                                              for a in (sd, n, prior_var, prior_df)))
    have = np.isfinite(pv) & (pv > 0) & np.isfinite(pdf) & (pdf > 0) & (n_ >= 2) \
        & np.isfinite(sd_)
    p = np.full(sd_.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(have, sd_**2 / np.where(have, pv, 1.0), np.nan)
        d1, d2 = np.where(have, n_ - 1.0, 1.0), np.where(have, pdf, 1.0)
        p = np.where(have, np.minimum(1.0, 2.0 * np.minimum(sps.f.cdf(ratio, d1, d2),
                                                             sps.f.sf(ratio, d1, d2))),
                     np.nan)
    dropped = have & (p < level)
    use = have & ~dropped
    return {"prior_var": np.where(use, pv, 0.0), "prior_df": np.where(use, pdf, 0.0),
            "p": p, "dropped": dropped}


def _fresh_draws(rng: np.random.Generator, m: np.ndarray, sd: np.ndarray, n: np.ndarray,
                 k_h: np.ndarray, k_n: np.ndarray, k_r: np.ndarray, fixed_var: np.ndarray,
                 df: np.ndarray,
                 direction: str, sesoi: float, alpha: float, draws: int, *,
                 rng_cal: np.random.Generator | None = None,
                 cal_var: np.ndarray | None = None, cal_df: np.ndarray | None = None,
                 prior_var: np.ndarray | None = None, prior_df: np.ndarray | None = None
                 ) -> dict[str, np.ndarray]:
    """One chunk of rows of :func:`fresh_run_probabilities` (rows x draws)."""
    col = (lambda a: a[:, None])  # noqa: E731
    dof = col(n - 1.0)
    size = (m.size, draws)
    nu0 = np.zeros_like(n) if prior_df is None else prior_df
    s0 = np.zeros_like(n) if prior_var is None else prior_var
    # The variance history pools in (rule v10); nu0 = 0 gives the flat-prior draw.
    nu = col(n - 1.0 + nu0)
    pooled = col(((n - 1.0) * sd**2 + nu0 * s0) / (n - 1.0 + nu0))
    sigma2 = pooled * nu / rng.chisquare(np.broadcast_to(nu, size))
    fresh_mean = col(m) + np.sqrt(2.0 * sigma2 / col(n)) * rng.standard_normal(size)
    fresh_var = sigma2 * rng.chisquare(np.broadcast_to(dof, size)) / dof
    se2 = fresh_var / col(n) + col(fixed_var)
    redo = (np.flatnonzero(cal_var > 0) if cal_var is not None and rng_cal is not None
            else np.array([], dtype=int))
    if redo.size:
        # The calibrated rows' fresh differential (methods review 5, 8; rule v9).
        cdof = col(cal_df[redo])
        csize = (redo.size, draws)
        sig_d2 = col(cal_var[redo]) * cdof / rng_cal.chisquare(np.broadcast_to(cdof, csize))
        fresh_mean[redo] -= np.sqrt(2.0 * sig_d2) * rng_cal.standard_normal(csize)
        se2[redo] += sig_d2 * rng_cal.chisquare(np.broadcast_to(cdof, csize)) / cdof
    se = np.sqrt(se2)
    c_h = col(_crit(alpha / k_h, df))
    if direction == "equivalent":
        c_ne = col(_crit(alpha / (2 * k_n), df))
        eq = (fresh_mean + sesoi > c_h * se) & (sesoi - fresh_mean > c_h * se)
        ne = (fresh_mean - sesoi > c_ne * se) | (-sesoi - fresh_mean > c_ne * se)
        masks = {"equivalent": eq, "not equivalent": ne & ~eq}
    else:
        c_n = col(_crit(alpha / k_n, df))
        d = fresh_mean if direction == "greater" else -fresh_mean
        h = d > c_h * se
        nt = d - sesoi < -c_n * se
        rev = nt & (d < -col(_crit(alpha / k_r, df)) * se)
        masks = {"holds": h & ~nt, "negligible": h & nt, "reversed": rev & ~h,
                 "does not hold": nt & ~h & ~rev}
    out = {v: mask.mean(axis=1) for v, mask in masks.items()}
    out["inconclusive"] = np.clip(1.0 - sum(out.values()), 0.0, 1.0)
    return out


def design_power(sd: float, n: float, sesoi: float, direction: str, *,
                 alpha: float = ALPHA, image_var: float = 0.0,
                 df_cap: float = math.inf) -> float:
    """The probability that the positive verdict's test rejects at one-sided level
    ``alpha`` (pass ``ALPHA / k_holds`` for a primary row) when the true effect is the
    SESOI (zero for an equivalence claim) and the spread is ``sd``, with ``n`` seeds.

    Directional: ``P(T'(df, ncp) > t_{1-alpha, df})`` with ``ncp = SESOI / se``
    (noncentral t). Equivalence (TOST at a true zero):
    ``max(0, 2 F_t(SESOI / se - t_{1-alpha, df}) - 1)``, the usual approximation that
    treats ``se`` as known. ``image_var`` is any variance of the mean that more seeds
    do not reduce (the image term; for a calibrated row also the differential's), and
    ``df_cap`` caps the degrees of freedom (a calibrated row's ``df`` is at most the
    calibration's). NaN when ``sd`` is unknown.
    """
    check_choice("direction", direction, DIRECTIONS)
    if not (math.isfinite(sd) and n >= 2):
        return math.nan
    se, df = _se_df(np.float64(sd), np.float64(n), np.float64(image_var))
    se, df = float(se), min(float(df), float(df_cap))
    if se == 0:
        return 1.0
    crit = float(sps.t.isf(alpha, df))
    if direction == "equivalent":
        return max(0.0, 2.0 * float(sps.t.cdf(sesoi / se - crit, df)) - 1.0)
    return float(sps.nct.sf(crit, df, sesoi / se)) if math.isfinite(df) else \
        float(sps.norm.sf(crit - sesoi / se))


def effect_for_power(sd: float, n: float, direction: str, *, target: float = POWER_TARGET,
                     alpha: float = ALPHA, image_var: float = 0.0,
                     df_cap: float = math.inf) -> float:
    """The smallest true effect (display units, as a magnitude) that the positive
    verdict's test detects with power ``target`` at this design (:func:`design_power`
    with the effect in place of the SESOI): what a row can decide at all, e.g. a
    calibrated row whose differential's variance more seeds do not reduce (methods
    review 3, A8). NaN for an equivalence claim or an unknown sd."""
    if direction == "equivalent" or not (math.isfinite(sd) and n >= 2):
        return math.nan
    power = lambda e: design_power(sd, n, e, direction, alpha=alpha,  # noqa: E731
                                   image_var=image_var, df_cap=df_cap)
    hi = max(sd, math.sqrt(image_var), 1e-12)
    for _ in range(200):
        if power(hi) >= target:
            break
        hi *= 2
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if power(mid) < target else (lo, mid)
    return hi


def _sd_interval(sd: float, n: int, conf: float = 0.95) -> tuple[float, float]:
    """The ``conf`` chi-square interval of a normal sd estimated from ``n`` values."""
    if not (math.isfinite(sd) and n >= 2):
        return math.nan, math.nan
    dfree = n - 1
    return (sd * math.sqrt(dfree / sps.chi2.ppf((1 + conf) / 2, dfree)),
            sd * math.sqrt(dfree / sps.chi2.ppf((1 - conf) / 2, dfree)))


def seeds_needed(sd: float, n: int, sesoi: float, direction: str, *, alpha: float = ALPHA,
                 image_var: float = 0.0, power: float = POWER_TARGET, conf: float = 0.95,
                 max_n: int = 100_000, df_cap: float = math.inf
                 ) -> tuple[int | None, int | None, int | None]:
    """Seeds for :func:`design_power` to reach ``power``, as a range.

    The observed ``sd`` over ``n`` seeds is uncertain: its ``conf`` chi-square interval
    ``sd * sqrt((n-1) / chi2_{(1+conf)/2, n-1})`` to ``sd * sqrt((n-1) /
    chi2_{(1-conf)/2, n-1})`` gives the low and high ends; the middle value uses the
    observed ``sd``. None where the power cannot be reached (the image term alone is too
    large) or the spread is unknown.

    Returns:
        ``(low, point, high)`` seed counts.
    """
    check_choice("direction", direction, DIRECTIONS)
    if not (math.isfinite(sd) and n >= 2):
        return None, None, None
    lo_sd, hi_sd = _sd_interval(sd, n, conf)
    sds = (lo_sd, sd, hi_sd)

    def need(s: float) -> int | None:
        def ok(k: int) -> bool:
            return design_power(s, k, sesoi, direction, alpha=alpha,
                                image_var=image_var, df_cap=df_cap) >= power
        if ok(2):
            return 2
        if not ok(max_n):
            return None
        lo, hi = 2, max_n  # ok(lo) is False, ok(hi) is True; power grows with n
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        return hi

    low, point, high = (need(s) for s in sds)
    return low, point, high


# --------------------------------------------------------------------------- verdicts


def declared_family() -> list[str]:
    """The Holm family: every declared primary finding, in declaration order."""
    return [c.id for c in CLAIMS.values() if c.in_family]


def _scaled(claim: Claim, values: Mapping[int, float]) -> np.ndarray:
    return np.asarray([v * claim.scale for _, v in sorted(values.items())], np.float64)


def _evaluate(evidence: Sequence[Evidence], alpha: float,
              family: Sequence[str] | None,
              calibrations: Mapping[str, Differential] | None = None) -> dict[str, Any]:
    """Tests, Holm multipliers and verdicts of one report (the evidence, then any
    family member without evidence, as *not run*). A calibrated row is tested on the
    standard-AutoAttack effect (:func:`_calibrated_moments`) before Holm's procedure
    sees its p-values."""
    ids = [e.claim for e in evidence]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"evidence holds the claim(s) {dup} more than once")
    fam = declared_family() if family is None else list(family)
    for cid in fam:
        if not get_claim(cid).in_family:
            raise ValueError(f"family member {cid!r} is not a primary finding")
    for e in evidence:
        if get_claim(e.claim).in_family and e.claim not in fam:
            raise ValueError(f"claim {e.claim!r} is a primary finding but not in "
                             f"family={fam!r}")
    calibrations = dict(calibrations or {})
    for cid in calibrations:
        c = get_claim(cid)  # a typo raises; a claim not on record is simply not calibrated
        if c.direction == "equivalent" or c.detection:
            raise ValueError(f"claim {c.id!r} is an equivalence or detection claim: a "
                             "robustness calibration applies to 'greater' or 'less' "
                             "claims only")
    claims = [get_claim(i) for i in ids] + [get_claim(i) for i in fam if i not in ids]
    rows = []
    for i, c in enumerate(claims):
        if i < len(evidence):
            x = _scaled(c, evidence[i].values)[None, :]
            v = evidence[i].image_var * c.scale**2
        else:
            x, v = np.full((1, 0), np.nan), 0.0
        t = _test_arrays(x, c.direction, c.sesoi, v)
        row = {k: float(a[0]) for k, a in t.items()} | {"image_var": v, "cal": None}
        diff = calibrations.get(c.id) if i < len(evidence) else None
        if row["n"] >= 2 and row["sd"] == 0 and v == 0 and diff is None:
            # Identical by construction (methods review m2): not t-tested; in the
            # family it counts with p = 1, like a member without evidence.
            row.update(exact=True, p_holds=math.nan, p_not=math.nan, p_rev=math.nan)
        if diff is not None and row["n"] >= 2:
            row = _calibrated_moments(c, row, diff)
        rows.append(row)
    n_rows = len(claims)
    in_fam = np.array([c.id in fam for c in claims], bool)
    k_h, k_n = np.ones(n_rows), np.ones(n_rows)
    k_r, k_m = np.ones(n_rows), np.ones(n_rows)
    p_m = np.array([_p_min(r, c) for r, c in zip(rows, claims)])
    p_h = np.array([r["p_holds"] for r in rows])
    p_n = np.array([r["p_not"] for r in rows])
    p_r = np.array([r["p_rev"] for r in rows])
    if in_fam.any():  # a member without a p-value counts with p = 1
        k_h[in_fam] = holm_multipliers(np.nan_to_num(p_h[in_fam], nan=1.0))
        k_n[in_fam] = holm_multipliers(np.nan_to_num(p_n[in_fam], nan=1.0))
        k_r[in_fam] = holm_multipliers(np.nan_to_num(p_r[in_fam], nan=1.0))
        k_m[in_fam] = holm_multipliers(np.nan_to_num(p_m[in_fam], nan=1.0))
    verdicts = []
    for i, (c, r) in enumerate(zip(claims, rows)):
        if i >= len(evidence):
            verdicts.append("not run")
        elif r.get("exact"):
            verdicts.append(_exact_verdict(r["mean"], c))
        else:
            verdicts.append(str(decide(r["p_holds"], r["p_not"], r["p_rev"], c.direction,
                                       k_h[i], k_n[i], alpha, k_r[i])))
    size = []
    for i, (r, v) in enumerate(zip(rows, verdicts)):
        if v != "holds":
            size.append("")
        elif r.get("exact"):
            size.append(SIZE_LABELS[True])  # read exactly: holds means d >= SESOI
        else:
            size.append(SIZE_LABELS[bool(p_m[i] * k_m[i] < alpha)])
    return {"claims": claims, "rows": rows, "in_family": in_fam, "k_holds": k_h,
            "k_not": k_n, "k_rev": k_r, "k_min": k_m, "p_min": p_m, "size": size,
            "verdicts": verdicts, "n_evidence": len(evidence)}


def _p_min(row: Mapping[str, Any], claim: Claim) -> float:
    """The minimal-effect test's p-value, H0 ``d <= SESOI`` (``1 - p_not`` for a
    directional claim; NaN for equivalence)."""
    if claim.direction == "equivalent":
        return math.nan
    return 1.0 - row["p_not"]


def _exact_verdict(mean: float, claim: Claim) -> str:
    """The verdict of a row that is identical by construction (no spread over seeds
    and no image term): the value is known exactly, so it is read, not t-tested."""
    if claim.direction == "equivalent":
        return "equivalent" if abs(mean) < claim.sesoi else "not equivalent"
    d = mean if claim.direction == "greater" else -mean
    return _verdict_from_bounds(d, d, claim.sesoi)


def _verdict_from_bounds(low: float, high: float, sesoi: float) -> str:
    """The directional verdict that bounds ``(low, high)`` on the claimed-positive
    effect imply (the same cut points as :func:`decide` applies to the tests)."""
    if low > 0:
        return "holds" if high >= sesoi else "negligible"
    if high < 0:
        return "reversed"
    if high < sesoi:
        return "does not hold"
    return "inconclusive"


def _calibrated_moments(claim: Claim, row: dict[str, Any], diff: Differential
                        ) -> dict[str, Any]:
    """A row's test moved onto the standard-AutoAttack effect (methods review M2).

    The cheap attack's effect ``m`` (over the row's seeds) minus the calibrated
    differential ``m_d`` (:func:`calibration.differential`, the same ``a - b``, in
    display units) estimates the effect under standard AutoAttack:
    ``theta* = m - m_d``, ``se* = sqrt(se^2 + se_d^2)``,
    ``df* = min(n - 1, n_cal - 1)`` (the smaller is conservative, where
    Welch-Satterthwaite with a few-df component is not). ``df*`` keeps the calibration's
    ``n_cal - 1`` also where its exact-count floor decides ``se_d``
    (:func:`calibration.moments`, which reads that floor on a normal reference): the
    switch is made at 95 %, not at the row's Holm level, and with ``df* = n - 1`` the
    calibrated bound could come out up to about 6 % narrower than the t term it replaced
    (methods review 3, A4; rule v7). The two are treated as independent; when the calibration's
    seeds are among the row's, both carry the cheap attack's own effect on the shared
    models; their covariance is assumed not to be negative (then the sum of variances
    is conservative), not shown: its sign depends on whether the attack's bias moves
    with the effect across seeds (methods review 3, A5). The
    p-values, and from them Holm's step-down, the bounds, the verdict, the replication
    and the power all use ``theta*``. The cheap attack's own numbers stay under
    ``cheap``."""
    m_d, se_d, df_d = diff.moments(claim.scale)
    out = dict(row)
    out["cheap"] = {k: row[k] for k in ("mean", "se", "df", "p_holds", "p_not", "p_rev")}
    out["cal"] = {"diff": diff, "mean": m_d, "se": se_d, "df": df_d}
    if not math.isfinite(se_d):
        # Fewer than two calibration seeds: the target effect is not estimable.
        out.update(mean=row["mean"] - m_d, se=math.nan, df=math.nan, p_holds=math.nan,
                   p_not=math.nan, p_rev=math.nan)
        return out
    mean = row["mean"] - m_d
    se = math.sqrt(row["se"] ** 2 + se_d**2)
    df = min(row["df"], len(diff.values) - 1.0)
    p_h, p_n, p_r = (float(a) for a in _pvalues(np.float64(mean), np.float64(se),
                                                np.float64(df), claim.direction,
                                                claim.sesoi))
    out.update(mean=mean, se=se, df=df, p_holds=p_h, p_not=p_n, p_rev=p_r)
    return out


def _calibrated_df_cap(cal: Mapping[str, Any]) -> float:
    """The degrees of freedom a calibration caps a row at: ``n_cal - 1``, the same cap
    :func:`_calibrated_moments` puts on the test, whether the differential's se is the
    seed + image t term or the exact-count floor (on a normal reference, ``df`` infinite;
    methods review 3, A4, rule v7). Power, seeds needed and the detectable effect use it
    (methods review 4, rule v8: they used the floor's infinite df, i.e. the row's
    ``n - 1``). With fewer than two calibration seeds, the calibration's own df (NaN)."""
    n_cal = len(cal["diff"].values)
    return n_cal - 1.0 if n_cal >= 2 else float(cal["df"])


def assess(evidence: Sequence[Evidence], alpha: float = ALPHA,
           family: Sequence[str] | None = None,
           calibrations: Mapping[str, Differential] | None = None) -> pd.DataFrame:
    """The verdict of every claim in ``evidence`` (one report: one family).

    Args:
        evidence: the per-seed evidence on record, at most one per claim.
        alpha: one-sided level of every test (family-wise for the primary findings).
        family: the Holm family's claim ids; default :func:`declared_family`. A member
            without evidence gets a *not run* row and still counts.
        calibrations: ``{claim id: calibrated differential}`` (the attack calibration,
            :func:`calibration.differential`): those rows are tested on the effect
            under standard AutoAttack, inside Holm's family (:func:`calibrate`).

    Returns:
        One row per evidence, in order, then one per family member not run. Columns:
        ``claim``, ``notebook``, ``role``, ``primary``, ``in_family``, ``n_seeds``,
        ``mean`` (for a calibrated row, the standard-AutoAttack effect), ``sd``, ``se``
        (with the image term and, calibrated, the differential's), ``df``, ``image_sd``
        (the image term's standard error), ``low``, ``high`` (the bounds that match the
        decision), ``conf_low``, ``conf_high`` (each bound's one-sided confidence),
        ``p_holds``, ``p_not`` (raw, one-sided), ``p_holds_adj``, ``p_not_adj``
        (Holm-adjusted in the family, raw outside it), ``k_holds``, ``k_not`` (Holm
        multipliers), ``verdict``, ``size`` (for *holds*: ``at least the SESOI`` or
        ``size open``, :data:`SIZE_LABELS`; :func:`verdict_label` joins the two),
        ``p_min``, ``k_min`` (the minimal-effect test, H0 ``d <= SESOI``, and its Holm
        multiplier), ``replication`` (predictive probability of a fresh
        *holds* / *equivalent*), ``same_verdict`` (of a fresh run reading this verdict),
        ``power`` (design power at the SESOI), ``seeds_needed_low``, ``seeds_needed``,
        ``seeds_needed_high`` (for power 0.8), ``effect_for_power`` (a family member's
        smallest effect detected with power 0.8 at this design,
        :func:`effect_for_power`), ``alt_power``, ``alternative`` (a detection
        claim's power against the stated alternative its evidence gives, NaN and empty
        otherwise), ``underpowered`` (a family member below 0.8: ``alt_power`` where a
        detection row has it, else ``power``), ``measured``, ``interval`` and
        ``note`` (as text, all units display units), and the calibration's columns (NaN, 0 or empty without one):
        ``decided_by`` (the cheap attack), ``cheap_mean``, ``cheap_low``,
        ``cheap_high``, ``cheap_verdict`` (the cheap attack's numbers alone, in a
        family where no row is calibrated), ``cal_mean``, ``cal_low``, ``cal_high``
        (the differential and its one-sided ``1 - alpha`` bounds, estimand's sign),
        ``cal_seeds``, ``cal_images``, ``calibrated_low``, ``calibrated_high`` (the
        row's bounds, kept under these names for the report), ``cal_flag`` (standard
        AutoAttack beats the cheap attack on the claimed side by more than half the
        SESOI, upper bound), ``cal_clearable`` (False where the design cannot clear the
        flag: the exact bound at zero discordant cells already exceeds SESOI / 2),
        ``cal_se`` (the differential's standard error), ``cal_cells`` (seeds x
        images), ``cal_clear_max`` (the most discordant cells on the claimed side at
        which the flag can still read no; -1 where it cannot),
        ``cal_estimate_verdict`` (the calibrated estimate read on the cheap attack's
        own se, df and Holm multipliers), ``cal_moved_by`` (why the calibrated verdict
        differs from the cheap attack's: ``differential``, ``variance``, ``differential
        and variance``, or empty where they agree; wording only) and ``calibration``
        (as text).
    """
    ev = _evaluate(evidence, alpha, family, calibrations)
    cheap = _evaluate(evidence, alpha, family) if calibrations else ev
    out = []
    m_family = int(ev["in_family"].sum())
    for i, (c, r) in enumerate(zip(ev["claims"], ev["rows"])):
        v, kh, kn, kr = (ev["verdicts"][i], ev["k_holds"][i], ev["k_not"][i],
                         ev["k_rev"][i])
        low, high, cl, ch = (float(a) for a in bounds(
            r["mean"], r["se"], r["df"], c.direction, kh, kn, alpha,
            v == "not equivalent", kr, v == "reversed"))
        if r.get("exact"):
            low = high = r["mean"]
            cl = ch = 1.0
        positive = POSITIVE_VERDICTS["equivalent" if c.direction == "equivalent"
                                     else "directional"]
        n = int(r["n"])
        in_fam = bool(ev["in_family"][i])
        # Design power at a pre-specified level (methods review S6): alpha / m in the
        # family (Bonferroni, conservative), not the row's observed Holm multiplier.
        level = alpha / m_family if in_fam else alpha
        cal = r["cal"]
        extra = r["image_var"] + (cal["se"] ** 2 if cal and math.isfinite(cal["se"]) else 0.0)
        # The same df cap as the test (rule v7's df* = min(n - 1, n_cal - 1), kept also
        # where the exact-count floor decides se_d and cal["df"] is infinite): power,
        # seeds needed and the detectable effect use it too (methods review 4; rule v8).
        df_cap = _calibrated_df_cap(cal) if cal else math.inf
        # A fresh run re-measures the calibration's differential on its own models: its
        # estimate and se are re-drawn (df n_cal - 1), not held fixed (methods review 5,
        # 8; rule v9).
        cal_var = cal["se"] ** 2 if cal and math.isfinite(cal["se"]) else 0.0
        n_cal = len(cal["diff"].values) if cal else 0
        # The per-seed variance's history from the earlier confirmatory runs (rule v10);
        # not for a row identical by construction, whose zero spread is exact, and
        # dropped where today's variance contradicts it (methods review 7, M1).
        hist_var, hist_df = ((math.nan, 0.0) if r.get("exact") or not r["sd"] > 0
                             else variance_prior(c.id))
        pooled = pool_history(r["sd"], n, hist_var, hist_df)
        prior_var, prior_df = float(pooled["prior_var"]), float(pooled["prior_df"])
        fresh = fresh_run_probabilities(r["mean"], r["sd"], n, c.direction, c.sesoi, kh, kn,
                                        alpha, fixed_var=r["image_var"], df=r["df"],
                                        k_rev=kr, cal_var=cal_var,
                                        cal_df=n_cal - 1.0 if n_cal >= 2 else math.nan,
                                        prior_var=prior_var, prior_df=prior_df)
        power = design_power(r["sd"], n, c.sesoi, c.direction, alpha=level,
                             image_var=extra, df_cap=df_cap)
        # The range: the sd's 95 % chi-square interval and, for a calibrated row, the
        # differential's se over its own (n_cal - 1 df), the ends taken together
        # (methods review 5, 4b; rule v9).
        se_d_ends = (_sd_interval(math.sqrt(cal_var), n_cal) if cal_var > 0 and n_cal >= 2
                     else (0.0, 0.0))
        power_range = [design_power(sd_end, n, c.sesoi, c.direction, alpha=level,
                                    image_var=r["image_var"] + sed_end**2
                                    if cal_var > 0 and n_cal >= 2 else extra,
                                    df_cap=df_cap)
                       for sd_end, sed_end in zip(_sd_interval(r["sd"], n), se_d_ends)]
        # A detection claim's power against the alternative its notebook states
        # (methods review 5, 4a; rule v9): the underpowered count uses it.
        src = evidence[i] if i < ev["n_evidence"] else None
        alt_power = (src.alt_power if c.detection and src is not None
                     and src.alt_power is not None else math.nan)
        if c.detection and src is not None and src.alt_effect is not None:
            # The row's own test at the alternative's effect (methods review 6, point 3;
            # rule v10), not the single-sample power the notebook may also print.
            alt_power = design_power(r["sd"], n, src.alt_effect * c.scale, c.direction,
                                     alpha=level, image_var=extra, df_cap=df_cap)
        alternative = src.alternative if src is not None and c.detection else ""
        test_power = alt_power if math.isfinite(alt_power) else power
        needed = seeds_needed(r["sd"], n, c.sesoi, c.direction, alpha=level,
                              image_var=extra, df_cap=df_cap)
        decidable = (effect_for_power(r["sd"], n, c.direction, alpha=level, image_var=extra,
                                      df_cap=df_cap) if in_fam else math.nan)
        t = TestResult(n, r["mean"], r["sd"], r["se"], r["df"], r["p_holds"], r["p_not"],
                       r["p_rev"])
        row = {
            "claim": c.id, "notebook": (evidence[i].notebook if i < ev["n_evidence"]
                                        else "") or c.notebook,
            "role": c.role, "primary": c.primary, "in_family": in_fam, "n_seeds": n,
            "mean": r["mean"], "sd": r["sd"], "se": r["se"], "df": r["df"],
            "image_sd": math.sqrt(r["image_var"]), "low": low, "high": high,
            "conf_low": cl, "conf_high": ch, "p_holds": r["p_holds"], "p_not": r["p_not"],
            "p_holds_adj": min(1.0, r["p_holds"] * kh) if in_fam else r["p_holds"],
            "p_not_adj": min(1.0, r["p_not"] * kn) if in_fam else r["p_not"],
            "p_rev": r["p_rev"],
            "p_rev_adj": min(1.0, r["p_rev"] * kr) if in_fam else r["p_rev"],
            "k_holds": kh, "k_not": kn, "k_rev": kr,
            "verdict": c.printed(v),
            "size": "" if c.detection else ev["size"][i],
            "p_min": ev["p_min"][i], "k_min": ev["k_min"][i],
            "replication": float(fresh[positive]) if v != "not run" else math.nan,
            "history_sd": math.sqrt(hist_var) if hist_df > 0 else math.nan,
            "history_df": hist_df, "history_p": float(pooled["p"]),
            "history_dropped": bool(pooled["dropped"]),
            # A detection claim prints a coarser label (detected / not detected), so a
            # fresh run "agrees" whenever its verdict maps to the same printed label.
            "same_verdict": (sum(float(p) for u, p in fresh.items()
                                 if c.printed(u) == c.printed(v))
                             if v in fresh else math.nan),
            "power": power, "power_low": power_range[1], "power_high": power_range[0],
            "seeds_needed_low": needed[0], "seeds_needed": needed[1],
            "seeds_needed_high": needed[2], "effect_for_power": decidable,
            "alt_power": alt_power, "alternative": alternative,
            "underpowered": bool(in_fam and math.isfinite(test_power)
                                 and test_power < POWER_TARGET),
            "measured": describe(c, t, math.sqrt(r["image_var"])),
            "interval": ("identical by construction" if r.get("exact") else
                         _interval_text(c, low, high, cl, ch) if n >= 2 else ""),
            "note": _note(c, t, v, low, high, in_fam, alpha, bool(r.get("exact")))}
        extra_note = _label_bound_note(c, r, v, ev["size"][i], ev["k_min"][i], kr, kn,
                                       alpha, low, high)
        if c.detection and n >= 2 and not r.get("exact"):
            extra_note = "; ".join(x for x in (extra_note, _detection_note(
                c, v, low, high, alt_power, alternative,
                src.alt_effect if src is not None else None)) if x)
        if extra_note:
            row["note"] = f"{row['note']}; {extra_note}" if row["note"] else extra_note
        row |= _calibration_columns(c, r, v, row, cheap, i, alpha)
        out.append(row)
    return pd.DataFrame(out)


def _label_bound_note(c: Claim, r: Mapping[str, Any], verdict: str, size: str,
                      k_min: float, k_rev: float, k_not: float, alpha: float,
                      low: float, high: float) -> str:
    """The bound behind a label the printed bounds do not decide (methods review 2,
    point 4). The printed bounds invert the *holds* test (at ``k_holds``) and the
    *below the SESOI* test (at ``k_not``); the size label and *reversed* have Holm
    multipliers of their own, so a printed bound can sit on the other side of the SESOI
    or of zero than the label. A *holds* row gets the size test's own bound; a *does
    not hold* row whose printed bound lies beyond zero says that the reversal test, at
    its own level, does not reject."""
    if c.direction == "equivalent" or c.detection or r.get("exact") or int(r["n"]) < 2:
        return ""
    sign = 1.0 if c.direction == "greater" else -1.0
    se, df, mean = r["se"], r["df"], r["mean"]
    if verdict == "holds" and math.isfinite(k_min):
        b = mean - sign * float(_crit(np.float64(alpha / k_min), np.float64(df))) * se
        return f"the size test's own bound {c.fmt(b)} (one-sided {_conf(1 - alpha / k_min)})"
    opposite = high if sign > 0 else low
    if verdict == "does not hold" and sign * opposite < 0 and math.isfinite(k_rev):
        b = mean + sign * float(_crit(np.float64(alpha / max(k_rev, k_not)),
                                      np.float64(df))) * se
        return (f"the printed bound lies beyond zero at the SESOI test's level, but the "
                f"reversal test at its own Holm level (one-sided "
                f"{_conf(1 - alpha / max(k_rev, k_not))}: {c.fmt(b)}) does not reject")
    return ""


def _detection_note(c: Claim, verdict: str, low: float, high: float, alt_power: float,
                    alternative: str, alt_effect: float | None = None) -> str:
    """A *not detected* row whose printed bound lies beyond zero, on the side opposite
    to the claim (methods review 5, 8; rule v9): read naively, "shown below zero" looks
    like evidence of absence. It is not: a detection test that finds nothing does not
    show that there is nothing; the test's power against the stated alternative says how
    much the miss means. Where the bound also excludes the named alternative's effect
    (``alt_effect``, raw units), the note says that this alternative is ruled out, and
    only it (methods review 7, S1)."""
    if c.printed(verdict) != "not detected":
        return ""
    bound = high if c.direction == "greater" else low
    ruled_out = ""
    if alt_effect is not None and math.isfinite(bound):
        target = alt_effect * c.scale
        if (bound < target) if c.direction == "greater" else (bound > target):
            named = alternative or "the named alternative"
            ruled_out = (f"the bound {c.fmt(bound)} rules out {named} (its effect "
                         f"{c.fmt(target)}), not every second peak: a smaller one is not "
                         "excluded, so this is not evidence of one peak")
    opposite = high if c.direction == "greater" else low
    beyond = opposite < 0 if c.direction == "greater" else opposite > 0
    if not (math.isfinite(opposite) and beyond):
        return ruled_out
    side = "below" if c.direction == "greater" else "above"
    text = (f"the bound {side} zero is not evidence of no effect (for a detection claim, "
            "of absence): a test that finds nothing does not show that there is nothing")
    if math.isfinite(alt_power):
        alt = f" ({alternative})" if alternative else ""
        text += f"; the test's power against the stated alternative{alt} is {alt_power:.2f}"
    return f"{text}; {ruled_out}" if ruled_out else text


def _is_robustness(claim: Claim) -> bool:
    """A robustness finding: its estimand is a robust accuracy under some attack (the
    claim table has no attack field yet; its estimands all say "robust accuracy")."""
    return claim.role == "finding" and "robust accuracy" in claim.estimand


def _calibration_columns(c: Claim, r: Mapping[str, Any], verdict: str,
                         row: dict[str, Any], cheap: Mapping[str, Any], i: int,
                         alpha: float) -> dict[str, Any]:
    """The calibration's columns of one :func:`assess` row (and its note and measured
    text, rewritten in ``row``)."""
    cols: dict[str, Any] = {
        "decided_by": "", "cheap_mean": math.nan, "cheap_low": math.nan,
        "cheap_high": math.nan, "cheap_verdict": "", "cal_mean": math.nan,
        "cal_low": math.nan, "cal_high": math.nan, "cal_seeds": 0, "cal_images": 0,
        "calibrated_low": math.nan, "calibrated_high": math.nan, "cal_flag": False,
        "cal_clearable": True, "cal_se": math.nan, "cal_cells": 0, "cal_clear_max": -1,
        "cal_estimate_verdict": "", "cal_moved_by": "", "calibration": ""}
    cal = r.get("cal")
    if cal is None:
        if _is_robustness(c) and verdict != "not run":
            tag = "uncalibrated (cheap attack)"
            row["note"] = f"{tag}; {row['note']}" if row["note"] else tag
        return cols
    diff, m_d = cal["diff"], cal["mean"]
    ch_row, kh, kn = cheap["rows"][i], cheap["k_holds"][i], cheap["k_not"][i]
    c_low, c_high, _, _ = (float(a) for a in bounds(
        ch_row["mean"], ch_row["se"], ch_row["df"], c.direction, kh, kn, alpha))
    # The differential's own one-sided bounds (calibration.Differential.bound: the wider
    # of the t bound and the exact bound of the discordant count on that side), in
    # display units; the flag reads the one on the claimed side.
    ends = (diff.bound("lower", 1 - alpha, c.scale), diff.bound("upper", 1 - alpha, c.scale))
    lo, hi = min(ends), max(ends)
    sign = 1.0 if c.direction == "greater" else -1.0
    u_claimed = hi if sign > 0 else -lo  # the bias in the claim's favour, upper bound
    flag = bool(math.isfinite(u_claimed) and u_claimed > c.sesoi / 2)
    # The design's own limit (methods review 3, A1): the exact bound at zero discordant
    # cells is the smallest claimed-side bound any data can give; below it, the flag
    # cannot read "no" whatever the calibration shows.
    cells = diff.n_images * len(diff.values)
    floor_u = exact_bound(0, cells, 1 - alpha) * abs(c.scale)
    clearable = bool(not math.isfinite(floor_u) or floor_u <= c.sesoi / 2)
    clear_max = _clear_max(cells, abs(c.scale), c.sesoi / 2, 1 - alpha)
    cheap_v = cheap["verdicts"][i]
    cheap_v = c.printed(cheap_v)
    # Why the calibrated verdict differs from the cheap attack's (methods review 4): the
    # estimate theta* read on the cheap attack's own precision (its se, df and Holm
    # multipliers). Reading as the cheap attack did, the differential's variance (and
    # the calibration's df) moved the verdict; reading as the calibrated row does, the
    # differential itself (the attack's bias) did. Wording only: no verdict uses it.
    if ch_row.get("exact"):
        est_v = _exact_verdict(r["mean"], c)
    elif int(r["n"]) >= 2 and math.isfinite(ch_row["se"]):
        p_h, p_n, p_r = _pvalues(np.float64(r["mean"]), np.float64(ch_row["se"]),
                                 np.float64(ch_row["df"]), c.direction, c.sesoi)
        est_v = str(decide(p_h, p_n, p_r, c.direction, kh, kn, alpha, cheap["k_rev"][i]))
    else:
        est_v = cheap["verdicts"][i]
    est_v = c.printed(est_v)
    moved_by = ("" if cheap_v == row["verdict"] else "variance" if est_v == cheap_v
                else "differential" if est_v == row["verdict"]
                else "differential and variance")
    d = c.digits
    text = (f"decided by {diff.attack} calibrated against standard AutoAttack "
            f"({diff.n_images} images x {len(diff.values)} seeds): the cheap attack's "
            f"{c.fmt(ch_row['mean'])} minus its differential {c.fmt(m_d)} "
            f"[{signed(lo, d)}, {signed(hi, d)}] (one-sided {_conf(1 - alpha)} each; "
            f"these bounds serve the flag, not the test) is tested, {c.fmt(r['mean'])} "
            f"on {_df_text(r['df'])}")
    if flag:
        text += (f"; flagged: standard AutoAttack beats {diff.attack} on the claimed "
                 f"side by up to {c.fmt(u_claimed, False)}, more than half the SESOI")
        if not clearable:
            text += (f" (at {cells} cells no calibration can clear it: zero discordant "
                     f"cells still bound it at {c.fmt(floor_u, False)})")
    if cheap_v != row["verdict"]:
        text += f"; the cheap attack alone read '{cheap_v}'"
    cheap_t = TestResult(int(r["n"]), ch_row["mean"], r["sd"], ch_row["se"], ch_row["df"],
                         math.nan, math.nan, math.nan)
    # Nothing measured the effect under standard AutoAttack on the row's seeds and
    # images: it is the cheap attack's measurement minus a differential estimated on
    # the calibration's seeds and images (methods review 2, point 9).
    row["measured"] = (f"{diff.attack} measured {describe(c, cheap_t, math.sqrt(r['image_var']))}"
                       f"; estimated under standard AutoAttack {c.fmt(r['mean'])} (minus "
                       f"the differential {c.fmt(m_d)} from {len(diff.values)} seeds x "
                       f"{diff.n_images} images)")
    cols.update({"decided_by": diff.attack, "cheap_mean": ch_row["mean"],
                 "cheap_low": c_low, "cheap_high": c_high, "cheap_verdict": cheap_v,
                 "cal_mean": m_d, "cal_low": lo, "cal_high": hi,
                 "cal_seeds": len(diff.values), "cal_images": diff.n_images,
                 "calibrated_low": row["low"], "calibrated_high": row["high"],
                 "cal_flag": flag, "cal_clearable": clearable, "cal_se": cal["se"],
                 "cal_cells": cells, "cal_clear_max": clear_max,
                 "cal_estimate_verdict": est_v, "cal_moved_by": moved_by,
                 "calibration": text})
    return cols


def _clear_max(cells: int, scale: float, limit: float, level: float) -> int:
    """The most discordant cells on the claimed side at which the exact bound (display
    units) stays at or below ``limit`` (SESOI / 2): above it the flag fires whatever
    the t bound reads. -1 where even zero cells exceed it (the flag cannot clear), or
    without cells."""
    if cells <= 0:
        return -1
    ok = lambda k: exact_bound(k, cells, level) * scale <= limit  # noqa: E731
    if not ok(0):
        return -1
    lo, hi = 0, cells  # ok(lo); the bound grows with k
    if ok(hi):
        return cells
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _df_text(df: float) -> str:
    """Degrees of freedom as printed: ``"4 df"``, or ``"a normal reference"`` where the
    exact-count floor of a calibration decided (:func:`calibration.moments`)."""
    return f"{df:.0f} df" if math.isfinite(df) else "a normal reference (exact-count floor)"


def verdict_label(verdict: str, size: str = "") -> str:
    """The verdict as the report may print it: *holds* split by its size
    (:data:`SIZE_LABELS`) into "holds, at least the SESOI" and "holds in direction,
    size open"; every other verdict as it is."""
    if verdict != "holds" or not size:
        return verdict
    return ("holds, at least the SESOI" if size == SIZE_LABELS[True]
            else "holds in direction, size open")


def describe(claim: Claim, t: TestResult, image_sd: float = 0.0) -> str:
    """``+6.1 pp (sd 2.9 over 8 seeds)``: the per-seed estimand as text (with the image
    term's standard error when there is one)."""
    if t.n == 0:
        return "no data"
    if t.n == 1:
        return f"{claim.fmt(t.mean)} (one seed)"
    text = f"{claim.fmt(t.mean)} (sd {t.sd:.{claim.digits}f} over {t.n} seeds"
    if image_sd > 0:
        text += f"; image se {image_sd:.{claim.digits}f}"
    return text + ")"


def _conf(c: float) -> str:
    text = f"{100 * c:.2f}".rstrip("0").rstrip(".")
    return f"{text} %"


def _interval_text(claim: Claim, low: float, high: float, cl: float, ch: float) -> str:
    """``[+5.6, +8.3] (one-sided 99.55 % / 99.74 %)``, or ``(90 % two-sided)`` when the
    two bounds share a level."""
    d = claim.digits
    span = f"[{signed(low, d)}, {signed(high, d)}]"
    if abs(cl - ch) < 1e-12:
        return f"{span} ({_conf(2 * cl - 1)} two-sided)"
    return f"{span} (one-sided {_conf(cl)} / {_conf(ch)})"


def _note(claim: Claim, t: TestResult, verdict: str, low: float, high: float,
          in_family: bool, alpha: float, exact: bool = False) -> str:
    """What a row's verdict rests on, in words. An inconclusive note says which
    hypotheses the adjusted tests could not reject (zero, the SESOI); it quotes no
    range, since the Holm-consistent bounds invert the tests at those two values only
    (methods review S3)."""
    f = claim.fmt
    if verdict == "not run":
        return "declared primary finding with no evidence in this run; it counts in Holm's family"
    if t.n < 2:
        return "fewer than two seeds: nothing is decided"
    if exact:
        return (f"identical by construction: every seed gives {f(t.mean)} exactly, so the "
                "value is read, not t-tested" + ("; it counts in Holm's family with p = 1"
                                                 if in_family else ""))
    if verdict == "negligible":
        return (f"real, but shown smaller than the smallest effect of interest "
                f"({f(claim.sesoi, False)})")
    if verdict != "inconclusive":
        return ""
    after = " after Holm's adjustment" if in_family else ""
    if claim.direction == "equivalent":
        note = (f"neither a difference within the margin ({f(claim.sesoi, False)}) nor "
                f"one beyond it is shown{after}")
    else:
        note = (f"zero is not excluded, and the SESOI ({f(claim.sesoi, False)}) is not "
                f"excluded{after}")
    if in_family and t.p_holds < alpha:
        note = "clears its test on its own but not after Holm's adjustment; " + note
    return note


# ------------------------------------------------------------------------ replication


def loso_agreement(evidence: Sequence[Evidence], alpha: float = ALPHA,
                   family: Sequence[str] | None = None, *,
                   calibrations: Mapping[str, Differential] | None = None) -> pd.DataFrame:
    """Leave-one-seed-out: every verdict, Holm included, recomputed with each seed
    dropped from every claim that has it; a claim counts the resample only if it had
    that seed. A verdict that one seed carries shows fewer agreements than seeds.
    Calibrations (:func:`calibrate`) apply whole to every resample.

    The verdict agreement also counts the power a resample loses with its degree of
    freedom (at 5 seeds, 4 df become 3), so it is low for rows near a boundary even
    when no seed carries them (methods review 6, point 4). The estimates say which:
    ``loso_side`` counts the resamples whose estimate (the row's tested estimate,
    calibrated where the row is) lies on the claimed side (the claimed direction; for
    an equivalence claim, inside the margin), and ``loso_low`` / ``loso_high`` give
    their range in display units.

    Returns:
        One row per evidence: ``claim``, ``loso_agree``, ``loso_n``, ``loso_side``,
        ``loso_low``, ``loso_high``.
    """
    full = _evaluate(evidence, alpha, family, calibrations)["verdicts"][:len(evidence)]
    agree, count = np.zeros(len(evidence), int), np.zeros(len(evidence), int)
    side = np.zeros(len(evidence), int)
    low, high = np.full(len(evidence), np.inf), np.full(len(evidence), -np.inf)
    for s in sorted({s for e in evidence for s in e.values}):
        subsets = [Evidence(e.claim, {k: v for k, v in e.values.items() if k != s},
                            e.detail, e.notebook, e.profile, e.image_var) for e in evidence]
        result = _evaluate(subsets, alpha, family, calibrations)
        for i, e in enumerate(evidence):
            if s in e.values:
                count[i] += 1
                printed = CLAIMS[e.claim].printed  # agreement on the printed label
                agree[i] += printed(result["verdicts"][i]) == printed(full[i])
                est = float(result["rows"][i]["mean"])
                if math.isfinite(est):
                    side[i] += _on_claimed_side(CLAIMS[e.claim], est)
                    low[i], high[i] = min(low[i], est), max(high[i], est)
    finite = np.isfinite(low)
    return pd.DataFrame({"claim": [e.claim for e in evidence], "loso_agree": agree,
                         "loso_n": count, "loso_side": side,
                         "loso_low": np.where(finite, low, np.nan),
                         "loso_high": np.where(finite, high, np.nan)})


def _on_claimed_side(claim: Claim, estimate: float) -> bool:
    """Whether an estimate (display units) lies on the claim's side: in the claimed
    direction, or inside the margin for an equivalence claim."""
    if claim.direction == "equivalent":
        return abs(estimate) < claim.sesoi
    return estimate > 0 if claim.direction == "greater" else estimate < 0


def evidence_frame(evidence: Sequence[Evidence], alpha: float = ALPHA,
                   family: Sequence[str] | None = None, *,
                   calibrations: Mapping[str, Differential] | None = None,
                   n_halves: int | None = None) -> pd.DataFrame:
    """:func:`assess` (and :func:`calibrate`, given ``calibrations``) with
    leave-one-seed-out agreement and each claim's text.

    ``n_halves`` is accepted and ignored for one release: the random-halves stability
    score it sized is gone (it could not flag instability; see ``replication``).
    """
    table = assess(evidence, alpha, family, calibrations or {})
    loso = loso_agreement(evidence, alpha, family, calibrations=calibrations)
    table = table.merge(loso, on="claim", how="left")
    details = {e.claim: e.detail for e in evidence}
    table["detail"] = [details.get(c, "") for c in table["claim"]]
    table["statement"] = [get_claim(c).statement for c in table["claim"]]
    table["source"] = [get_claim(c).source for c in table["claim"]]
    return table


# ------------------------------------------------------------------------ calibration


def calibrate(evidence: Sequence[Evidence], calibrations: Mapping[str, Differential],
              alpha: float = ALPHA, family: Sequence[str] | None = None) -> pd.DataFrame:
    """Robustness rows decided against standard AutoAttack (issue 26's rule, folded
    into the tested quantity: methods review M2).

    A row decided by a cheap attack carries a calibration: the per-seed *differential*
    ``overstatement[a] - overstatement[b]`` of that attack against standard AutoAttack
    on the same images (:func:`calibration.differential`). The row then tests the
    effect under standard AutoAttack, ``theta* = m - m_d`` with
    ``se* = sqrt(se^2 + se_d^2)`` and the smaller of the two ``n - 1`` degrees of
    freedom, the differential's infinite where its exact-count floor decides
    (:func:`_calibrated_moments`). Those p-values, not the cheap attack's,
    enter Holm's step-down, so the family-wise error statements of the module hold for
    the calibrated verdicts too, and the bounds, verdict, replication and power all
    describe ``theta*``. The verdict can move either way: a cheap attack's bias in the
    claim's favour is taken out (a *holds* may become *inconclusive*), one against it
    is put back (an *inconclusive* may become *holds*), and the wider ``se*`` can turn
    a *negligible* into *holds* or *inconclusive*. The cheap attack's own reading stays
    in ``cheap_verdict``.

    This is :func:`assess` with ``calibrations`` (a shim for the old call,
    ``calibrate(table, calibrations)`` on an assessed table, raises: the calibration
    has to enter before Holm's procedure).
    """
    if isinstance(evidence, pd.DataFrame):
        raise TypeError("calibrate(table, ...) no longer re-decides an assessed table: "
                        "the calibrated p-values must enter Holm's procedure. Pass the "
                        "evidence: calibrate(evidence, calibrations) or "
                        "assess(evidence, calibrations=calibrations)")
    return assess(evidence, alpha, family, calibrations)


# ---------------------------------------------------------------------- data helpers


def paired(df: pd.DataFrame, value: str, a: str, b: str, *, by: str = "model",
           seed_col: str = "seed") -> dict[int, float]:
    """Per-seed paired differences ``value[a] - value[b]`` between two models trained
    with the same seed (rows are averaged within each (model, seed) first); seeds that
    only one of them has are left out.

    Raises:
        ValueError: ``a`` or ``b`` is not in ``df[by]``.
    """
    _check_models(df, by, (a, b))
    wide = df.groupby([by, seed_col])[value].mean().unstack(by)
    diff = (wide[a] - wide[b]).dropna()
    return {int(s): float(v) for s, v in diff.items()}


def per_seed(df: pd.DataFrame, value: str, *, reference: float = 0.0,
             seed_col: str = "seed") -> dict[int, float]:
    """Per-seed means of ``value`` minus a fixed ``reference`` (rows are averaged
    within each seed first, e.g. over the models of a pooled comparison)."""
    means = df.groupby(seed_col)[value].mean().dropna()
    return {int(s): float(v) - reference for s, v in means.items()}


def image_variance(df: pd.DataFrame, value: str, a: str, b: str | None = None, *,
                   by: str = "model", seed_col: str = "seed",
                   sample_col: str = "sample", population: int | None = None) -> float:
    """The image-sampling variance of the across-seed mean, for a row measured on a
    fixed image subset shared by every seed (raw units squared; pass it to
    ``Report.claim(..., image_var=...)``).

    With per-sample records ``x[s, i]`` (for a paired comparison ``a - b``, the paired
    difference on sample ``i`` for seed ``s``; for one model, ``a``'s value), the
    across-seed mean is ``mean_i xbar_i`` with ``xbar_i = mean_s x[s, i]``. Drawing the
    ``N`` images afresh would move it by ``Var_i(xbar_i) / N`` (ddof 1), the
    one-level image bootstrap's variance of the mean. This slightly double-counts the
    seed-by-image interaction, which the seed spread already carries (it enters with
    weight ``1/(S N)``), so it errs on the cautious side. A sample that some seed lacks
    is averaged over the seeds that have it.

    ``population``: the size of the image population the estimand is defined on. The
    claims report's estimands are defined on the dataset's whole test set (methods
    review S5: rows measured on the whole test set then carry no image term, and rows
    on a subset of it carry this one), so the subset is a draw without replacement from
    that finite population and the variance takes the finite-population correction
    ``1 - N / population`` (0.9 for 1,000 of Fashion-MNIST's 10,000 test images). None
    treats the images as drawn from an infinite population (no correction).

    Raises:
        ValueError: a model is not in ``df[by]``, fewer than two samples remain, or
            ``population`` is smaller than the number of samples.
    """
    names = (a,) if b is None else (a, b)
    _check_models(df, by, names)
    sub = df[df[by].isin(names)]
    wide = sub.groupby([sample_col, seed_col, by])[value].mean().unstack(by)
    x = wide[a] if b is None else wide[a] - wide[b]
    # Each sample's mean over the seeds that measured it (a seed may lack the pair on
    # some samples, e.g. records of the whole test set stacked with the subset's).
    xbar = x.unstack(seed_col).mean(axis=1, skipna=True).dropna().to_numpy(np.float64)
    if xbar.size < 2:
        raise ValueError(f"image_variance needs at least two samples measured for both "
                         f"models; got {xbar.size}")
    fpc = 1.0
    if population is not None:
        if int(population) < xbar.size:
            raise ValueError(f"population={population!r} is smaller than the {xbar.size} "
                             "samples measured: give the size of the split the subset "
                             "was drawn from (e.g. experiments.test_population(profile))")
        fpc = 1.0 - xbar.size / int(population)
    return float(fpc * xbar.var(ddof=1) / xbar.size)


def _check_models(df: pd.DataFrame, by: str, names: Iterable[str]) -> None:
    have = set(df[by])
    for name in names:
        if name not in have:
            raise ValueError(f"{by}={name!r} is not in the data; it has {sorted(have)}")


# ----------------------------------------------------------------- pre-registration

#: The rule's choices, as data: they enter the declaration's hash, so a change to how a
#: verdict is decided changes the hash like a change to a claim does.
RULE: dict[str, Any] = {
    "version": 10,
    "alpha": ALPHA,
    "power_target": POWER_TARGET,
    "tests": "one-sample t over per-seed values, df n - 1, se^2 = sd^2/n + image_var",
    "population": "the dataset's test set: whole-test-set rows image_var 0; subset rows "
                  "Var_i(xbar_i)/N (1 - N/N_test); calibration subsets uncorrected",
    "sides": "one-sided: holds (d <= 0), not (d >= SESOI), reversed (d >= 0, own Holm "
             "multipliers over p_rev, and not rejected)",
    "exact": "zero spread and no image term: not t-tested, read from the exact value, "
             "p = 1 in the family",
    "equivalence": "TOST; not equivalent: min(1, 2 min(p_above, p_below))",
    "calibration": "robustness rows with a calibration test theta* = m - m_d (cheap "
                   "effect minus the calibrated differential), se* = sqrt(se^2 + se_d^2), "
                   "df min(n - 1, n_cal - 1) (also where the floor decides); se_d the "
                   "seed + image t term, or where its one-sided 95 % bound is the wider "
                   "the exact-count floor (Clopper-Pearson 95 % bounds of the discordant "
                   "counts / z, never times a t quantile); theta*'s p-values enter Holm; "
                   "flagged when the differential's one-sided 1 - alpha upper bound on "
                   "the claimed side (the wider of its t bound and the exact "
                   "Clopper-Pearson bound of the discordant count on that side) > SESOI / 2",
    "detection": "detection claims read detected (holds, negligible) or not detected",
    "size": "holds splits into 'at least the SESOI' (minimal-effect test H0 d <= SESOI, "
            "own Holm family) and 'size open'",
    "family": "Holm over the declared primary findings, not-run members at p = 1",
    "confirmatory": "every declared primary uses exactly its declared seeds of the block, "
                    "from the recorded profile, and the run's code (drsl_utils, notebooks) "
                    "is the freeze commit's; the hash covers the recorded profile's "
                    "protocol only",
    "bounds": "one-sided at 1 - alpha/k, k = Holm multiplier of the bound's own test "
              "(k_rev for a reversed row's opposite-side bound)",
    "power": "design power at the SESOI at alpha / m in the family (alpha outside), "
             "range from the sd's 95 % chi-square interval (a calibrated row's se_d over "
             "its own, n_cal - 1 df, with it); a calibrated row's df capped at the test's "
             "n_cal - 1 (also where the floor decides); a detection row's power is its "
             "own test's at the named alternative's population value of the estimand "
             "(Evidence.alt_effect; else a stated power, Evidence.alt_power), and that "
             "power decides underpowered",
    "final": "a declaration may declare its confirmatory run final before it runs "
             "(claims.FINAL, hashed with the declaration): its verdicts are the project's answer "
             "whatever a later review finds; the report states it and prints the earlier "
             "confirmatory runs' primary verdicts beside this run's",
    "verdicts": list(VERDICTS),
    "replication": "Monte Carlo predictive (10^4 draws, seed 0): sigma^2 from its scaled "
                   "inverse chi-square posterior given today's sd and the earlier "
                   "confirmatory runs' pooled variance (seed_history; nu = n - 1 + nu0), "
                   "the history dropped for a row where a two-sided F test of today's "
                   "variance against it gives p < 0.05, "
                   "fresh mean m + sqrt(2 sigma^2/n) Z, fresh sd from "
                   "chi-square; image subset reused; a calibrated row's differential "
                   "re-drawn (sigma_d^2 scaled inverse chi-square on n_cal - 1 df, fresh "
                   "estimate - sqrt(2 sigma_d^2) Z_d, fresh se_d from chi-square; own "
                   "stream); same multipliers",
    "seeds_needed": "power 0.8 at the SESOI, sd from its 95 % chi-square interval",
    "changes": "v10 (methods review 6 of the fifth confirmatory report): the "
               "replication forecast's variance posterior pools the earlier confirmatory "
               "runs' per-seed variance (seed_history, frozen in the declaration), so at 5 "
               "seeds it averages 0.9 at three times the SESOI and stays calibrated; a detection "
               "claim's power is its own 5-seed test's at the alternative's population "
               "value (sovr-two-peaks: 0.7 N(0,1) + 0.3 N(3.5,1), mean dip excess about "
               "the SESOI at n = 10,000, replacing 0.7 N(0,1) + 0.3 N(3,1), whose excess "
               "is negative, and one sample's dip power); seguin-distill-mean and "
               "-max-gap are calibrated against standard AutoAttack like the other "
               "students; leave-one-seed-out also reports how many resample estimates lie "
               "on the claimed side and their range, and the headline's fragile positives "
               "show those instead of the verdict count; the headline splits the "
               "underpowered count by what the rows showed, and states the detectable "
               "effect in SESOI multiples only; the p column adds the size test's p "
               "beside a holds; calibrated notes say the differential's bounds serve the "
               "flag; the confirm profile sizes 256 seeds; a record may be declared final, "
               "and the report prints the verdict history of earlier confirmatory runs. "
               "v9 (methods review 5 of the fourth confirmatory report): a calibrated "
               "row's replication and same-verdict re-draw the calibration's differential "
               "(estimate and se, n_cal - 1 df) in each Monte Carlo draw instead of "
               "holding it fixed; a calibrated row's power range varies the "
               "differential's se over its 95 % chi-square interval with the row's sd; a "
               "detection claim's evidence may carry its power against a stated "
               "alternative (Evidence.alt_power), which the power column shows and the "
               "underpowered count uses; the rest is presentation: the header says what "
               "the p column shows and that leave-one-seed-out keeps the calibration "
               "whole, a not-detected row with a bound beyond zero gets a note, the "
               "headline prints the detectable effect's SESOI multiples with one "
               "decimal, and drsl-umap-tips's statement is labelled our reading. No "
               "verdict moves; only the calibrated rows' printed replication and "
               "same-verdict numbers, power ranges and the underpowered count can. "
               "v8 (methods review 4 of the third confirmatory report): power, seeds "
               "needed and the detectable effect of a calibrated row use the test's df* "
               "= min(n - 1, n_cal - 1) also where the exact-count floor decides the "
               "differential's se (they used n - 1); the rest is presentation: signed "
               "numbers never print -0.0 or +0.0 for a nonzero value (more decimals) and "
               "an exact zero prints 0.0; the headline's fragile positives show their "
               "leave-one-seed-out agreement; the headline words a calibrated reading "
               "that differs from the cheap attack's by cause (the differential moved the "
               "estimate, or only the calibration's variance undecided it); calibrated "
               "rows' estimand says the verdict is on the effect estimated under standard "
               "AutoAttack; a note under the calibration table counts the flag and says, "
               "from the data, when its size makes it fire on every calibrated row. No "
               "verdict moves; only power text can",
}

#: Declared before this declaration's confirmatory run (rule v10; methods review 6,
#: point 6, and 7, M3): its verdicts are the project's answer to the declaration,
#: whatever a later review finds; a later change is reported beside them, not run again
#: in their place. Part of the declaration, so the hash (and the code check) freezes it:
#: it cannot be set after the verdicts are seen.
FINAL: bool = True

_DECLARED_FIELDS = ("id", "notebook", "statement", "estimand", "direction", "sesoi",
                    "scale", "role", "primary", "unit", "detection")


def protocol(profile: str | None = None) -> dict[str, Any]:
    """The measurement protocol a verdict rests on, as data: a profile's constants
    (:data:`experiments.PROFILES`: seeds and seeds per comparison, eps grid, subset and
    calibration sizes, seeds and the subsets' seed, training settings) and the attacks
    it runs with their steps and eps (``attack_suite``, ``dlr_spec``, ``pgd_spec``, the
    reduced and the standard AutoAttack at the middle eps); every profile's when
    ``profile`` is None. These define each estimand as much as the SESOI does (methods
    review M3), so they enter :func:`declaration_hash`. Derived from the code, not
    listed: a new profile field or attack setting enters by itself. The subsets' image
    ids follow from ``eval_size``/``calibration_size`` and ``subset_seed``
    (``experiments.eval_subset``), so those stand for them."""
    import dataclasses

    from . import experiments as ex  # lazily: experiments imports report, which imports this

    def spec(a: Any) -> dict[str, Any]:
        return {"name": a.name, "params": dict(a.params),
                "eps": list(a.eps) if a.eps is not None else None, "label": a.label}

    if profile is not None:
        ex.get_profile(profile)  # validates the name
    out = {}
    for name, prof in sorted(ex.PROFILES.items()):
        if profile is not None and name != profile:
            continue
        mid = [prof.eps_mid]
        out[name] = {
            "profile": dataclasses.asdict(prof),
            "seeds_other": list(prof.seeds_other),
            "calibration_seeds": list(ex.calibration_seeds(prof)),
            "attacks": [spec(a) for a in ex.attack_suite(prof)],
            "dlr": spec(ex.dlr_spec(prof)), "pgd": spec(ex.pgd_spec(prof)),
            "autoattack": spec(ex.autoattack_spec(prof, mid)),
            "reference": spec(ex.standard_autoattack_spec(mid))}
    # JSON's view (tuples become lists), so the hash does not depend on container types.
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def declaration(profile: str | None = None) -> dict[str, Any]:
    """What a confirmatory run is pre-registered against: every declared claim's id,
    statement, estimand, direction, SESOI, scale, role, primary and detection flags,
    the rule's choices (:data:`RULE`) and the measurement protocol of ``profile``
    (:func:`protocol`; every profile's when None). A confirmatory record hashes its own
    profile's only, so an edit to another profile (``confirm``, say) leaves a finished
    ``quick`` run confirmatory (methods review 2, point 15). A user's own registered
    claims are part of it."""
    claims = [{k: getattr(c, k) for k in _DECLARED_FIELDS}
              for c in sorted(CLAIMS.values(), key=lambda c: c.id)]
    # The variance history the replication forecast pools (rule v10), frozen with the
    # rest: a run appended after the freeze changes the hash.
    history = {c["id"]: [float(f"{v:.12g}"), d] for c in claims
               for v, d in [variance_prior(c["id"])] if d > 0}
    return {"rule": RULE, "claims": claims, "protocol": protocol(profile),
            "variance_history": history, "final": FINAL}


def declaration_hash(decl: Mapping[str, Any] | None = None, *,
                     profile: str | None = None) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of :func:`declaration`
    (of ``profile``'s protocol, every profile's when None)."""
    decl = declaration(profile) if decl is None else decl
    text = json.dumps(decl, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def confirmatory_status(record: Mapping[str, Any] | None, seeds: Iterable[int],
                        *, evidence: Sequence[Evidence] | None = None,
                        code: tuple[bool | None, str] | None = None) -> tuple[str, str]:
    """Is a report confirmatory? ``record`` is the committed note of the confirmatory
    run (``{"declaration": hash, "commit": sha, "profile": name, "seeds": [...]}``,
    optionally ``"claim_seeds": {claim id: [...]}`` for primaries declared on part of
    the block; None when there was none), ``seeds`` the seeds the report's evidence
    uses, ``evidence`` the evidence itself, and ``code`` whether the run's code was the
    freeze commit's (``provenance.code_since``: True, False, or None when it cannot be
    told, with the reason).

    Returns:
        ``("confirmatory", text)`` when the current declaration of the recorded profile
        has the recorded hash, every seed lies in the recorded block (unseen by any
        committed report when it was frozen), every declared primary finding's evidence
        uses exactly its declared seeds (its ``claim_seeds`` entry, else the whole
        block), no fewer and no more, from the recorded profile (a run that dropped
        seeds, stopped early, added seeds or left a primary unrun is not confirmatory:
        methods review M3), and the code did not change since the freeze (when ``code``
        cannot tell, the text says so). Else ``("exploratory", text)`` saying why; also
        when ``evidence`` is not given, since the per-claim seeds cannot then be
        checked.
    """
    profile = record.get("profile") if record else None
    now = declaration_hash(profile=profile)
    if not record:
        return "exploratory", "no confirmatory run is recorded"
    frozen = str(record.get("declaration", ""))
    commit = str(record.get("commit", "?"))
    if frozen != now:
        return "exploratory", (f"the declaration changed after its confirmatory run "
                               f"(frozen {frozen} at commit {commit}; now {now})")
    block = {int(s) for s in record.get("seeds", [])}
    outside = sorted({int(s) for s in seeds} - block)
    if outside:
        return "exploratory", (f"seeds {outside} lie outside the confirmatory block of "
                               f"declaration {now}")
    if evidence is None:
        return "exploratory", ("the evidence was not given, so whether each primary "
                               "finding used its whole seed block is unchecked")
    others = sorted({str(e.profile) for e in evidence if profile and e.profile != profile})
    if others:
        return "exploratory", (f"evidence from profile(s) {others}, not the recorded "
                               f"{profile!r}")
    declared = {str(k): {int(s) for s in v}
                for k, v in dict(record.get("claim_seeds", {})).items()}
    have = {e.claim: set(e.values) for e in evidence}
    for cid in declared_family():
        if cid not in have:
            return "exploratory", f"the declared primary {cid!r} was not run"
        want = declared.get(cid, block)
        missing, extra = sorted(want - have[cid]), sorted(have[cid] - want)
        if missing:
            return "exploratory", (f"seeds {missing} of the block missing from the "
                                   f"declared primary {cid!r}")
        if extra:  # more seeds than declared: optional stopping inside the block
            return "exploratory", (f"the declared primary {cid!r} used seeds {extra} "
                                   "beyond its declared ones")
    same_code, why = code if code is not None else (None, "no provenance was given")
    if same_code is False:
        return "exploratory", why
    span = f"{min(block)}-{max(block)}" if block else "none"
    text = (f"declaration {now}, frozen at commit {commit}; the seeds ({span}) were "
            "unseen by any committed report when it was frozen, and every primary "
            "finding used all of its declared seeds")
    text += ("; " + why if same_code else
             f"; whether the code changed since the freeze is unchecked: {why}")
    if FINAL:
        # Declared before the run (methods review 6, point 6; rule v10), in the hashed
        # declaration (methods review 7, M3): no further confirmatory run of a revised
        # declaration replaces this one's verdicts.
        text += ("; declared final before the run: these verdicts are the project's "
                 "answer to this declaration, whatever a later review finds (a later "
                 "change is reported beside them, not run again in their place)")
    return "confirmatory", text


# -------------------------------------------------------------------------- registry


def register(claim: Claim, *, replace: bool = False) -> Claim:
    """Declare ``claim`` so that notebooks and :func:`assess` can use its id.

    Declaring an equal claim again is a no-op (a notebook cell run twice).

    Raises:
        DuplicateNameError: another claim is declared under the id (a ``ValueError``;
            pass ``replace=True`` to redeclare it).
    """
    if not isinstance(claim, Claim):
        raise TypeError(f"claim={claim!r}: expected a claims.Claim")
    return CLAIMS.register(claim.id, claim, replace=replace)


def get_claim(claim_id: str) -> Claim:
    """The declared claim ``claim_id``; an ``UnknownNameError`` (a ``ValueError``) lists
    the declared ones."""
    return CLAIMS.get(claim_id, param="id")


def claims_for(notebook: str) -> list[Claim]:
    """The claims a notebook measures, in declaration order."""
    return [c for c in CLAIMS.values() if c.notebook == notebook]


def defined_ids(notebooks: Iterable[str] | None = None) -> list[str]:
    """Claim ids, optionally only those of some notebooks."""
    wanted = set(notebooks) if notebooks is not None else None
    return [c.id for c in CLAIMS.values() if wanted is None or c.notebook in wanted]


#: The environment variable naming a user's modules of :func:`register` calls
#: (comma-separated import names), imported with the project's declarations in every
#: process: the notebooks' kernels and the suite that writes the report. A claim
#: registered only in a notebook's kernel is unknown to the suite's report, which
#: names such evidence instead of using it (methods review 2, point 11).
USER_CLAIMS_ENV = "DRSL_CLAIMS"


def load_user_claims(names: str | None = None) -> list[str]:
    """Import the modules named in ``names`` (default: ``$DRSL_CLAIMS``), each of which
    declares claims with :func:`register`; returns the module names imported. Their
    claims are then part of :func:`declaration` and of the suite's report.

    Raises:
        ImportError: a named module cannot be imported (with the variable's name).
    """
    import importlib
    import os

    raw = os.environ.get(USER_CLAIMS_ENV, "") if names is None else names
    loaded = []
    for name in (n.strip() for n in raw.split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ImportError(f"${USER_CLAIMS_ENV} names the module {name!r}, which "
                              f"cannot be imported: {e}. Put it on the Python path (or "
                              f"unset {USER_CLAIMS_ENV}).") from e
        loaded.append(name)
    return loaded


# The project's declarations register themselves (imported last: they need Claim), then
# the user's (``$DRSL_CLAIMS``).
from . import claim_table as _claim_table  # noqa: E402,F401

load_user_claims()
