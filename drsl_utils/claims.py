"""Every verdict in the project, drawn by one rule.

A *claim* is a finding of one of the papers, restated as an **estimand** that can be
measured once per training seed (a paired difference between two models trained with
the same seed, or one model's statistic against a fixed reference), a **direction**
(``greater``, ``less``, or ``equivalent`` for "the same within a margin") and a
**smallest effect of interest** (SESOI) in the estimand's own units, with one line that
justifies it. The claims live in :data:`CLAIMS`; notebooks measure the per-seed values
and hand them over (``Report.claim(id, values)``); nothing else decides.

The rule (the same for every claim)
-----------------------------------
The unit of replication is the seed. Over the ``n`` per-seed values ``x_s`` a one-sample
t statistic gives two one-sided p-values:

- ``p_holds``: against "no effect in the claimed direction" (H0: theta <= 0 for
  ``greater``); for ``equivalent`` the TOST p-value against "|theta| >= SESOI";
- ``p_not``: against "an effect at least as large as the SESOI" (H0: theta >= SESOI for
  ``greater``); for ``equivalent``, against "inside the margin".

Primary claims form one family: Holm's step-down procedure adjusts ``p_holds`` across
the family (and, separately, ``p_not``), keeping the family-wise error rate of each kind
of verdict at ``alpha = 0.05``. Then

- **holds** when the adjusted ``p_holds < alpha`` (the interval excludes zero in the
  claimed direction; for ``equivalent``, the interval lies inside the margin);
- **does not hold** when the adjusted ``p_not < alpha`` (the interval rules out an
  effect as large as the SESOI in the claimed direction, or lies on the other side);
- **inconclusive** otherwise; the row then says what the 95 % interval rules out and
  roughly how many seeds a decision would need at the observed spread.

Secondary rows (other attacks, other variants of a primary claim) use the same tests
without the family adjustment and are labelled as such. With fewer than two seeds
nothing is decided.

Stability: :func:`stability` recomputes every verdict (Holm included) on resamples of
the seeds: leaving each seed out, and random halves. The share of resamples that agree
with the reported verdict goes into the report's ``stability`` column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from .runtime import check_choice

__all__ = [
    "ALPHA",
    "DIRECTIONS",
    "VERDICTS",
    "Claim",
    "Evidence",
    "CLAIMS",
    "get_claim",
    "t_test",
    "holm",
    "assess",
    "stability",
    "seeds_needed",
    "paired",
    "per_seed",
    "describe",
]

ALPHA = 0.05
DIRECTIONS = ("greater", "less", "equivalent")
VERDICTS = ("holds", "does not hold", "inconclusive")


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
        primary: in the Holm family (one primary test per claim); secondary rows are
            other attacks or variants of a primary claim.
        unit: the unit of replication, as shown in the report.
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

    def __post_init__(self) -> None:
        check_choice("direction", self.direction, DIRECTIONS)
        if not (math.isfinite(self.sesoi) and self.sesoi > 0):
            raise ValueError(f"sesoi={self.sesoi!r} for claim {self.id!r}: must be > 0")
        if not self.why.strip():
            raise ValueError(f"claim {self.id!r} needs a one-line justification of its SESOI")

    def fmt(self, value: float, sign: bool = True) -> str:
        """A display-unit number with the claim's digits and units."""
        if value is None or not math.isfinite(value):
            return "nan"
        text = f"{value:+.{self.digits}f}" if sign else f"{value:.{self.digits}f}"
        return f"{text} {self.units}".rstrip() if self.units else text


@dataclass
class Evidence:
    """The per-seed values a notebook measured for one claim.

    Attributes:
        claim: the claim's id (a key of :data:`CLAIMS`).
        values: ``{seed: estimand}`` in raw units (before ``Claim.scale``).
        detail: the context a reader needs, computed by the notebook (means per model,
            pooled rates, the attack and eps), as text.
        notebook, profile: where and under which profile it was measured.
    """

    claim: str
    values: dict[int, float]
    detail: str = ""
    notebook: str = ""
    profile: str = ""

    def __post_init__(self) -> None:
        get_claim(self.claim)
        self.values = {int(k): float(v) for k, v in dict(self.values).items()}

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["values"] = {str(k): v for k, v in sorted(self.values.items())}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        return cls(data["claim"], {int(k): v for k, v in data["values"].items()},
                   data.get("detail", ""), data.get("notebook", ""), data.get("profile", ""))


# ----------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class TestResult:
    """What one claim's per-seed values say, before any family adjustment.

    ``mean``, ``sd``, ``low`` and ``high`` (the 95 % t-interval) are in display units;
    ``n`` counts the seeds that entered.
    """

    n: int
    mean: float
    sd: float
    low: float
    high: float
    p_holds: float
    p_not: float


def _t_sf(t: float, df: int) -> float:
    """P(T >= t), with the degenerate cases of a zero standard error handled."""
    if math.isnan(t):
        return 0.5
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    return float(sps.t.sf(t, df))


def _ratio(num: float, se: float) -> float:
    if se > 0:
        return num / se
    if num == 0:
        return math.nan
    return math.copysign(math.inf, num)


def t_test(values: Iterable[float], direction: str, sesoi: float,
           level: float = 0.95) -> TestResult:
    """The two one-sided t-tests of the rule on per-seed values (display units).

    Args:
        values: one estimand per seed (NaNs are dropped).
        direction: ``greater``, ``less`` or ``equivalent``.
        sesoi: the smallest effect of interest (> 0).
        level: coverage of the reported two-sided interval.

    Returns:
        A :class:`TestResult`; p-values are NaN with fewer than two values.
    """
    check_choice("direction", direction, DIRECTIONS)
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return TestResult(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    m = float(x.mean())
    if n < 2:
        return TestResult(1, m, math.nan, math.nan, math.nan, math.nan, math.nan)
    sd = float(x.std(ddof=1))
    # Values equal up to rounding (e.g. identical models) have no spread at all.
    if sd <= 1e-12 * max(1.0, abs(m)):
        sd = 0.0
    se = sd / math.sqrt(n)
    df = n - 1
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    if direction == "equivalent":
        p_upper = 1.0 - _t_sf(_ratio(m - sesoi, se), df)    # H0: theta >= +sesoi
        p_lower = _t_sf(_ratio(m + sesoi, se), df)          # H0: theta <= -sesoi
        p_holds = max(p_upper, p_lower)
        p_not = min(_t_sf(_ratio(m - sesoi, se), df),       # H0: theta <= +sesoi
                    1.0 - _t_sf(_ratio(m + sesoi, se), df))  # H0: theta >= -sesoi
    else:
        sign = 1.0 if direction == "greater" else -1.0
        d = sign * m
        p_holds = _t_sf(_ratio(d, se), df)                   # H0: theta <= 0
        p_not = 1.0 - _t_sf(_ratio(d - sesoi, se), df)       # H0: theta >= sesoi
    return TestResult(n, m, sd, m - half, m + half, float(p_holds), float(p_not))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaNs stay NaN and do not count in the family).

    ``adj_(j) = max_{k <= j} min(1, (m - k + 1) p_(k))`` over the sorted finite p-values.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out


def seeds_needed(mean: float, sd: float, sesoi: float, direction: str,
                 alpha: float = ALPHA, power: float = 0.8, max_n: int = 10_000) -> int | None:
    """Roughly how many seeds would decide the claim if the observed mean and spread
    were the truth: the smallest ``n`` whose one-sided t-test at ``alpha`` reaches
    ``power`` (normal approximation to the noncentral t) for the nearer decision
    (*holds* or *does not hold*). None when neither is in reach (the mean sits right at
    a boundary, or the spread is unknown)."""
    check_choice("direction", direction, DIRECTIONS)
    if not (math.isfinite(mean) and math.isfinite(sd)):
        return None
    if direction == "equivalent":
        distances = [sesoi - abs(mean), abs(mean) - sesoi]
    else:
        d = mean if direction == "greater" else -mean
        distances = [d, sesoi - d]
    distance = max(distances)
    if distance <= 0:
        return None
    if sd == 0:
        return 2
    z_power = float(sps.norm.ppf(power))
    for n in range(2, max_n + 1):
        crit = float(sps.t.ppf(1 - alpha, n - 1))
        if distance * math.sqrt(n) / sd >= crit + z_power:
            return n
    return None


# --------------------------------------------------------------------------- verdicts


def _decide(p_holds_adj: float, p_not_adj: float, alpha: float) -> str:
    if math.isfinite(p_holds_adj) and p_holds_adj < alpha:
        return "holds"
    if math.isfinite(p_not_adj) and p_not_adj < alpha:
        return "does not hold"
    return "inconclusive"


def _scaled(claim: Claim, values: Mapping[int, float]) -> list[float]:
    return [v * claim.scale for _, v in sorted(values.items())]


def _verdicts(evidence: Sequence[Evidence], alpha: float,
              values: Sequence[Mapping[int, float]] | None = None
              ) -> tuple[list[TestResult], np.ndarray, np.ndarray, list[str]]:
    """Tests, adjusted p-values and verdicts of a family of evidence (primary claims
    Holm-adjusted together, secondary rows unadjusted)."""
    values = values if values is not None else [e.values for e in evidence]
    claims = [get_claim(e.claim) for e in evidence]
    tests = [t_test(_scaled(c, v), c.direction, c.sesoi) for c, v in zip(claims, values)]
    primary = np.array([c.primary for c in claims], dtype=bool)
    p_h = np.array([t.p_holds for t in tests])
    p_n = np.array([t.p_not for t in tests])
    adj_h, adj_n = p_h.copy(), p_n.copy()
    if primary.any():
        adj_h[primary] = holm(p_h[primary])
        adj_n[primary] = holm(p_n[primary])
    verdicts = [_decide(h, n, alpha) for h, n in zip(adj_h, adj_n)]
    return tests, adj_h, adj_n, verdicts


def assess(evidence: Sequence[Evidence], alpha: float = ALPHA) -> pd.DataFrame:
    """The verdict of every claim in ``evidence`` (one report: one family).

    Returns:
        One row per evidence, in order: ``claim``, ``notebook``, ``primary``, ``n_seeds``,
        ``mean``, ``sd``, ``ci_low``, ``ci_high`` (95 % t-interval, display units),
        ``p_holds``, ``p_not`` (one-sided), ``p_holds_adj``, ``p_not_adj`` (Holm over the
        primary claims; equal to the raw p for secondary rows), ``verdict``,
        ``measured`` (the numbers as text), ``note`` (what an inconclusive row ruled
        out, or that a holding effect is below the SESOI) and ``seeds_needed``.
    """
    ids = [e.claim for e in evidence]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"evidence holds the claim(s) {dup} more than once")
    tests, adj_h, adj_n, verdicts = _verdicts(evidence, alpha)
    rows = []
    m_primary = sum(get_claim(e.claim).primary for e in evidence)
    for e, t, ah, an, v in zip(evidence, tests, adj_h, adj_n, verdicts):
        c = get_claim(e.claim)
        level = alpha / max(1, m_primary) if c.primary else alpha
        needed = seeds_needed(t.mean, t.sd, c.sesoi, c.direction, alpha=level) \
            if v == "inconclusive" else None
        rows.append({"claim": c.id, "notebook": e.notebook or c.notebook,
                     "primary": c.primary, "n_seeds": t.n, "mean": t.mean, "sd": t.sd,
                     "ci_low": t.low, "ci_high": t.high, "p_holds": t.p_holds,
                     "p_not": t.p_not, "p_holds_adj": ah, "p_not_adj": an, "verdict": v,
                     "measured": describe(c, t), "note": _note(c, t, v, ah, an, alpha, needed),
                     "seeds_needed": needed})
    return pd.DataFrame(rows)


def describe(claim: Claim, t: TestResult) -> str:
    """``+6.1 pp ± 2.9 (95 % CI [-1.2, +13.4])``: the per-seed estimand as text."""
    if t.n == 0:
        return "no data"
    if t.n == 1:
        return f"{claim.fmt(t.mean)} (one seed)"
    sd = f"{t.sd:.{claim.digits}f}"
    return (f"{claim.fmt(t.mean)} ± {sd} (95% CI [{t.low:+.{claim.digits}f}, "
            f"{t.high:+.{claim.digits}f}])")


def _note(claim: Claim, t: TestResult, verdict: str, p_holds_adj: float, p_not_adj: float,
          alpha: float, needed: int | None) -> str:
    if t.n < 2:
        return "fewer than two seeds: nothing is decided"
    f = claim.fmt
    if verdict == "holds":
        if math.isfinite(p_not_adj) and p_not_adj < alpha and claim.direction != "equivalent":
            return f"real but smaller than the smallest effect of interest ({f(claim.sesoi, False)})"
        return ""
    if verdict == "does not hold":
        return ""
    note = f"the 95% CI rules out effects below {f(t.low)} and above {f(t.high)}"
    if claim.primary and t.p_holds < alpha <= p_holds_adj:
        note = "clears zero on its own but not after Holm's adjustment; " + note
    if needed is not None:
        note += f"; about {needed} seeds would decide it at this spread"
    else:
        note += "; the estimate sits at a decision boundary, more seeds may not decide it"
    return note


# -------------------------------------------------------------------------- stability


def stability(evidence: Sequence[Evidence], n_halves: int = 20, seed: int = 0,
              alpha: float = ALPHA) -> pd.DataFrame:
    """How often the verdicts survive resampling the seeds.

    Every verdict, Holm adjustment included, is recomputed on

    - *leave one seed out*: for each seed, that seed is dropped from every claim; a
      claim counts this resample only if it had that seed;
    - *random halves*: ``n_halves`` times, a random order of all seeds is drawn and
      every claim keeps the first half (rounded up) of its own seeds in that order, so
      claims over the same seeds keep the same ones.

    Returns:
        One row per evidence: ``claim``, ``verdict`` (on all seeds), ``loso_agree``,
        ``loso_n``, ``halves_agree``, ``halves_n`` and ``stability`` (the share of all
        counted resamples that agree with the verdict).
    """
    _, _, _, full = _verdicts(evidence, alpha)
    all_seeds = sorted({s for e in evidence for s in e.values})
    agree = {"loso": np.zeros(len(evidence)), "halves": np.zeros(len(evidence))}
    count = {"loso": np.zeros(len(evidence)), "halves": np.zeros(len(evidence))}
    for s in all_seeds:
        subsets = [{k: v for k, v in e.values.items() if k != s} for e in evidence]
        _, _, _, verdicts = _verdicts(evidence, alpha, subsets)
        for i, e in enumerate(evidence):
            if s in e.values:
                count["loso"][i] += 1
                agree["loso"][i] += verdicts[i] == full[i]
    rng = np.random.default_rng(seed)
    for _ in range(n_halves):
        rank = {s: r for r, s in enumerate(rng.permutation(all_seeds))}
        subsets = []
        for e in evidence:
            keep = sorted(e.values, key=lambda k: rank[k])[:math.ceil(len(e.values) / 2)]
            subsets.append({k: e.values[k] for k in keep})
        _, _, _, verdicts = _verdicts(evidence, alpha, subsets)
        for i in range(len(evidence)):
            count["halves"][i] += 1
            agree["halves"][i] += verdicts[i] == full[i]
    total = count["loso"] + count["halves"]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (agree["loso"] + agree["halves"]) / total
    return pd.DataFrame({"claim": [e.claim for e in evidence], "verdict": full,
                         "loso_agree": agree["loso"].astype(int),
                         "loso_n": count["loso"].astype(int),
                         "halves_agree": agree["halves"].astype(int),
                         "halves_n": count["halves"].astype(int), "stability": share})


# ---------------------------------------------------------------------- data helpers


def paired(df: pd.DataFrame, value: str, a: str, b: str, *, by: str = "model",
           seed_col: str = "seed") -> dict[int, float]:
    """Per-seed paired differences ``value[a] - value[b]`` between two models trained
    with the same seed (rows are averaged within each (model, seed) first); seeds that
    only one of them has are left out.

    Raises:
        ValueError: ``a`` or ``b`` is not in ``df[by]``.
    """
    for name in (a, b):
        if name not in set(df[by]):
            raise ValueError(f"{by}={name!r} is not in the data; it has "
                             f"{sorted(set(df[by]))}")
    wide = df.groupby([by, seed_col])[value].mean().unstack(by)
    diff = (wide[a] - wide[b]).dropna()
    return {int(s): float(v) for s, v in diff.items()}


def per_seed(df: pd.DataFrame, value: str, *, reference: float = 0.0,
             seed_col: str = "seed") -> dict[int, float]:
    """Per-seed means of ``value`` minus a fixed ``reference`` (rows are averaged
    within each seed first, e.g. over the models of a pooled comparison)."""
    means = df.groupby(seed_col)[value].mean().dropna()
    return {int(s): float(v) - reference for s, v in means.items()}


# ------------------------------------------------------------------------ the claims

_PP = {"scale": 100.0, "units": "pp", "digits": 1}
_DLR_SESOI = ("2 pp of robust accuracy is the smallest gain that would change which loss "
              "a practitioner picks; the papers report gains of 10-60 pp")


def _claims() -> list[Claim]:
    c: list[Claim] = []
    # 00 · the tour (digits): a demonstration, not part of the family.
    c += [
        Claim("tour-drsl-harder", "00_tour", "DRSL slides (finding 4), on 8x8 digits",
              "On the tour's digits, DRSL is more robust than CE under PGD at the middle eps.",
              "PGD robust accuracy, DRSL - CE", "greater", 2.0, _DLR_SESOI,
              primary=False, **_PP),
        Claim("tour-second-class", "00_tour", "DRSL slides (finding 1), on 8x8 digits",
              "On the tour's digits, a successful PGD attack usually (> 50 %) lands on the "
              "clean second class.",
              "fraction of successes that land on the clean second class, minus 0.5",
              "greater", 10.0, "'usually' means a clear majority: 60 % rather than a coin "
              "flip", primary=False, unit="seed (CE and DRSL pooled)", **_PP),
    ]
    # 01 · clean accuracy and the mechanism.
    same = ("the slides call 0.3 pp 'the same precision level' (their run-to-run std is "
            "0.12-0.24 pp)")
    c += [
        Claim("drsl-same-accuracy-gce", "01_train_models", "DRSL slides (table)",
              "GCE reaches the same clean accuracy as CE (within 0.3 pp).",
              "full-test clean accuracy, GCE - CE", "equivalent", 0.3, same,
              scale=100.0, units="pp", digits=2),
        Claim("drsl-same-accuracy-drsl", "01_train_models", "DRSL slides (table)",
              "DRSL reaches the same clean accuracy as CE (within 0.3 pp).",
              "full-test clean accuracy, DRSL - CE", "equivalent", 0.3, same,
              scale=100.0, units="pp", digits=2),
        Claim("drsl-mechanism-entropy", "01_train_models", "DRSL paper (loss design)",
              "DRSL makes the non-true softmax entries more uniform (higher entropy) than CE.",
              "mean entropy of the renormalised non-true softmax (test set), DRSL - CE",
              "greater", 0.1, "0.1 nats is 5 % of the largest possible entropy over 9 "
              "classes (2.2 nats)", units="nats", digits=3),
        Claim("drsl-mechanism-p2", "01_train_models", "DRSL paper (loss design)",
              "DRSL lowers the second-largest softmax probability p2 compared with CE.",
              "mean clean p2 (test set), DRSL - CE", "less", 0.005,
              "half a percentage point of probability mass on the runner-up",
              digits=4, primary=False),
    ]
    # 02 · attacks.
    c += [
        Claim("drsl-second-class", "02_attacks", "DRSL slides (finding 1)",
              "After an attack, the adversarial label is usually (> 50 %) the clean second "
              "class.",
              "fraction of PGD successes (middle eps, full test set) that land on the clean "
              "second class, minus 0.5", "greater", 10.0,
              "'usually' means a clear majority: 60 % rather than a coin flip",
              unit="seed (CE, GCE, DRSL pooled)", **_PP),
        Claim("drsl-harder-dlr", "02_attacks", "DRSL slides (finding 4)",
              "At the same clean accuracy, DRSL is more robust than CE (APGD-DLR, a margin "
              "attack that softmax saturation cannot mask).",
              "APGD-DLR robust accuracy at the middle eps, DRSL - CE", "greater", 2.0, _DLR_SESOI,
              **_PP),
        Claim("drsl-harder-pgd", "02_attacks", "DRSL slides (finding 4)",
              "DRSL is more robust than CE under PGD (secondary: PGD attacks cross-entropy, "
              "which a saturated softmax can mask).",
              "PGD robust accuracy at the middle eps (full test set), DRSL - CE", "greater", 2.0,
              _DLR_SESOI, primary=False, **_PP),
        Claim("drsl-harder-autoattack", "02_attacks", "DRSL slides (finding 4)",
              "DRSL is more robust than CE under AutoAttack (secondary).",
              "AutoAttack robust accuracy at the middle eps, DRSL - CE", "greater", 2.0,
              _DLR_SESOI, primary=False, **_PP),
        Claim("drsl-harder-square", "02_attacks", "DRSL slides (finding 4)",
              "DRSL is more robust than CE under the gradient-free Square attack "
              "(secondary).",
              "Square robust accuracy at the middle eps, DRSL - CE", "greater", 2.0, _DLR_SESOI,
              primary=False, **_PP),
        Claim("isce-harder-dlr", "02_attacks", "I-SCE paper",
              "The I-SCE-style margin loss is more robust than softmax CE (APGD-DLR; our "
              "margin reading, the published constants are not reproduced).",
              "APGD-DLR robust accuracy at the middle eps, I-SCE - CE", "greater", 2.0,
              _DLR_SESOI, **_PP),
        Claim("isce-harder-pgd", "02_attacks", "I-SCE paper",
              "The I-SCE-style margin loss is more robust than CE under PGD (secondary; the "
              "paper's own attack).",
              "PGD robust accuracy at the middle eps (full test set), I-SCE - CE", "greater",
              2.0, _DLR_SESOI, primary=False, **_PP),
    ]
    # 03 · the second-largest softmax.
    c += [
        Claim("drsl-p2-predicts-success", "03_second_softmax", "DRSL slides (finding 2)",
              "The smaller the clean second-largest softmax p2, the harder the attack "
              "(success rises with p2).",
              "AUC of PGD success (middle eps) against the clean p2, computed per model and "
              "seed and averaged over the models, minus 0.5", "greater", 0.05,
              "an AUC of 0.55 is the usual floor of a weak but useful predictor",
              unit="seed (CE, GCE, DRSL, DRSL-prob averaged)", digits=3),
        Claim("drsl-p2-vs-gap", "03_second_softmax", "DRSL slides (finding 2), our check",
              "p2 predicts attack success better than the logit gap does.",
              "AUC(p2) - AUC(small logit gap) on the same samples, per model and seed, "
              "averaged over the models", "greater", 0.01,
              "a hundredth of AUC is the smallest gap in ranking quality worth a sentence",
              unit="seed (paired on samples)", digits=4),
    ]
    # 04 · logits under adversarial training (against a CE control on the AT data).
    c += [
        Claim("seguin-max-logit", "04_logit_gaps_and_margins", "Seguin et al. 2021",
              "Adversarial training lowers the max logit (PGD-AT vs a CE control trained on "
              "the same images and epochs).",
              "mean max logit on the test set, PGD-AT - CE (AT data)", "less", 0.5,
              "half a logit changes the odds of the top class by a factor of 1.6",
              digits=2),
        Claim("seguin-logit-gap", "04_logit_gaps_and_margins", "Seguin et al. 2021",
              "Adversarial training lowers the logit gap (max minus runner-up; PGD-AT vs "
              "the CE control).",
              "mean logit gap on the test set, PGD-AT - CE (AT data)", "less", 0.5,
              "half a logit changes the odds of the top class against the runner-up by a "
              "factor of 1.6", digits=2),
        Claim("seguin-confidence-disagree", "04_logit_gaps_and_margins", "Seguin et al. 2021",
              "AT and standard models disagree on which samples are confident.",
              "Spearman correlation of the top-class probability: CE (AT data) vs another "
              "CE seed, minus CE (AT data) vs PGD-AT of the same seed", "greater", 0.05,
              "0.05 of rank correlation is a visible change in which samples are confident",
              digits=3),
        Claim("sovr-two-peaks", "04_logit_gaps_and_margins", "Kanai et al. (SOVR)",
              "Under adversarial training the logit-margin histogram has two peaks.",
              "Hartigan's dip statistic of PGD-AT's test-set margins, minus its 5 % "
              "critical value under a unimodal null at the same n", "greater", 0.005,
              "a dip 0.005 above its 5 % critical value (0.0054 at n = 10,000) is twice "
              "that value: a second peak any histogram would show", unit="seed", digits=4),
        Claim("sovr-raises-margins", "04_logit_gaps_and_margins", "Kanai et al. (SOVR)",
              "SOVR moves mass away from small logit margins compared with PGD-AT.",
              "share of test samples with logit margin < 1, SOVR-AT - PGD-AT", "less", 2.0,
              "2 % of the test set is the smallest shift of the margin histogram the "
              "paper's figures would show", **_PP),
    ]
    # 05 · UMAP.
    c += [
        Claim("drsl-umap-tips", "05_umap_adversarial_clusters", "DRSL slides (finding 5)",
              "DRSL's adversarial examples sit at the tips of class clusters, CE's spread "
              "out (closer to the adversarial-class cluster).",
              "mean distance of successful PGD examples to their adversarial-class "
              "centroid in the UMAP, in RMS cluster radii, DRSL - CE", "less", 0.2,
              "a fifth of a cluster radius is the smallest shift visible in the panels",
              units="radii", digits=2),
        Claim("drsl-umap-purity", "05_umap_adversarial_clusters", "DRSL slides (finding 5)",
              "DRSL's adversarial examples have purer adversarial-class neighbourhoods than "
              "CE's (secondary).",
              "kNN purity of the adversarial class around successful PGD examples, "
              "DRSL - CE", "greater", 0.05,
              "5 % of the neighbours changing class", digits=3, primary=False),
    ]
    # 06 · label noise.
    noise = ("1 pp of clean accuracy under noise is the smallest gain worth choosing a "
             "loss for; noise-robust losses report 5-20 pp")
    c += [
        Claim("drsl-noise-symmetric", "06_label_noise", "DRSL slides (finding 4)",
              "DRSL is more robust to symmetric label noise than CE (40 % noise).",
              "clean test accuracy after training with 40 % symmetric noise, DRSL - CE",
              "greater", 1.0, noise, **_PP),
        Claim("drsl-noise-pair", "06_label_noise", "DRSL slides (finding 4)",
              "DRSL is more robust to pair-flip label noise than CE (40 % noise).",
              "clean test accuracy after training with 40 % pair-flip noise, DRSL - CE",
              "greater", 1.0, noise, **_PP),
        Claim("gce-memorises-less", "06_label_noise",
              "Zhang & Sabuncu 2018 (GCE), as cited on the DRSL slides",
              "GCE memorises fewer noisy labels than CE (40 % symmetric noise).",
              "share of flipped training labels the model predicts, GCE - CE", "less", 2.0,
              "2 % of the flipped labels", **_PP),
    ]
    # 07 · tau sweep.
    c += [
        Claim("drsl-matched-precision", "07_tau_sweep", "DRSL slides (finding 4)",
              "At matched clean accuracy, DRSL is more robust than CE (tau chosen on a "
              "held-out split, APGD-DLR).",
              "APGD-DLR robust accuracy at the middle eps, DRSL (tau chosen on held-out data) - CE",
              "greater", 2.0, _DLR_SESOI, **_PP),
        Claim("drsl-matched-precision-pgd", "07_tau_sweep", "DRSL slides (finding 4)",
              "At matched clean accuracy, DRSL is more robust than CE under PGD "
              "(secondary).",
              "PGD robust accuracy at the middle eps (full test set), DRSL (tau chosen on held-out "
              "data) - CE", "greater", 2.0, _DLR_SESOI, primary=False, **_PP),
        Claim("drsl-tau-entropy", "07_tau_sweep", "DRSL paper (loss design)",
              "A larger tau makes the non-true softmax entries more uniform (higher "
              "entropy).",
              "mean non-true entropy, largest minus smallest tau (logit reading)", "greater",
              0.1, "0.1 nats is 5 % of the largest possible entropy over 9 classes",
              units="nats", digits=3),
    ]
    # 08 · adversarial training.
    c += [
        Claim("at-sanity", "08_adversarial_training", "Madry et al. 2018 (sanity check)",
              "PGD-AT is more robust than standard CE (trained on the same images) under "
              "AutoAttack.",
              "AutoAttack robust accuracy at the training eps, PGD-AT - CE (AT data)",
              "greater", 5.0,
              "adversarial training that gains less than 5 pp at its own eps has failed",
              **_PP),
        Claim("sovr-autoattack", "08_adversarial_training", "Kanai et al. (SOVR)",
              "SOVR inside PGD-AT beats plain PGD-AT under AutoAttack.",
              "AutoAttack robust accuracy at the training eps, SOVR-AT - PGD-AT", "greater",
              1.0, "Kanai et al. report gains of 1-2 pp under AutoAttack; 1 pp is the "
              "smallest they would claim", **_PP),
        Claim("sovr-pgd-overstates", "08_adversarial_training", "Kanai et al. (SOVR), our check",
              "Robust accuracy under PGD overstates AutoAttack robust accuracy for an AT "
              "model.",
              "PGD minus AutoAttack robust accuracy of PGD-AT at the training eps",
              "greater", 0.5, "half a point is the precision robust accuracy is usually "
              "reported with", **_PP),
    ]
    # 09 · distillation.
    c += [
        Claim("seguin-distill-transfer", "09_distillation", "Seguin et al. 2021",
              "Distilling an AT teacher (clean inputs only) transfers some robustness.",
              "APGD-DLR robust accuracy at the training eps, full-logit student - CE student",
              "greater", 2.0, _DLR_SESOI, **_PP),
        Claim("seguin-distill-permuted", "09_distillation", "Seguin et al. 2021",
              "Scrambling the order of the teacher's non-max logits (same top-1 probability "
              "and entropy) lowers the student's robustness.",
              "APGD-DLR robust accuracy at the training eps, permuted - full student", "less", 2.0,
              _DLR_SESOI, **_PP),
        Claim("seguin-distill-matched", "09_distillation", "Seguin et al. 2021",
              "Replacing the teacher's non-max logits by uninformative ones with the same "
              "top-1 probability and entropy lowers the student's robustness.",
              "APGD-DLR robust accuracy at the training eps, entropy-matched - full student", "less",
              2.0, _DLR_SESOI, **_PP),
        Claim("seguin-distill-mean", "09_distillation", "Seguin et al. 2021",
              "Replacing the non-max logits by their mean lowers the student's robustness "
              "(secondary: this also raises the teacher's entropy).",
              "APGD-DLR robust accuracy at the training eps, mean - full student", "less", 2.0,
              _DLR_SESOI, primary=False, **_PP),
        Claim("seguin-distill-max-gap", "09_distillation", "Seguin et al. 2021",
              "Keeping only the max and the gap lowers the student's robustness (secondary: "
              "this also lowers the teacher's top-1 probability).",
              "APGD-DLR robust accuracy at the training eps, max-gap - full student", "less", 2.0,
              _DLR_SESOI, primary=False, **_PP),
        Claim("seguin-distill-transfer-pgd", "09_distillation", "Seguin et al. 2021",
              "Distillation transfers robustness under PGD (secondary).",
              "PGD robust accuracy at the training eps (full test set), full-logit student - CE "
              "student", "greater", 2.0, _DLR_SESOI, primary=False, **_PP),
    ]
    # 10 · more models.
    c += [
        Claim("drsl-more-models-cnn", "10_more_models", "DRSL slides (conclusion)",
              "DRSL's robustness gain over CE carries over to a CNN (APGD-DLR).",
              "APGD-DLR robust accuracy at the middle eps, DRSL - CE, CNN", "greater", 2.0,
              _DLR_SESOI, **_PP),
        Claim("drsl-more-models-cnn-pgd", "10_more_models", "DRSL slides (conclusion)",
              "DRSL's robustness gain over CE carries over to a CNN under PGD (secondary).",
              "PGD robust accuracy at the middle eps, DRSL - CE, CNN", "greater",
              2.0, _DLR_SESOI, primary=False, **_PP),
        Claim("drsl-more-models-resnet18", "10_more_models", "DRSL slides (conclusion)",
              "DRSL's robustness gain over CE carries over to ResNet-18 (APGD-DLR; paper "
              "profile only).",
              "APGD-DLR robust accuracy at the middle eps, DRSL - CE, ResNet-18", "greater", 2.0,
              _DLR_SESOI, **_PP),
        Claim("drsl-more-models-resnet18-pgd", "10_more_models", "DRSL slides (conclusion)",
              "DRSL's robustness gain over CE carries over to ResNet-18 under PGD "
              "(secondary; paper profile only).",
              "PGD robust accuracy at the middle eps, DRSL - CE, ResNet-18", "greater", 2.0,
              _DLR_SESOI, primary=False, **_PP),
    ]
    return c


CLAIMS: dict[str, Claim] = {c.id: c for c in _claims()}


def get_claim(claim_id: str) -> Claim:
    """The declared claim ``claim_id``; a ``ValueError`` lists the known ones."""
    if claim_id not in CLAIMS:
        raise ValueError(f"claim={claim_id!r} is not declared in drsl_utils.claims.CLAIMS; "
                         f"known: {', '.join(CLAIMS)}")
    return CLAIMS[claim_id]


def claims_for(notebook: str) -> list[Claim]:
    """The claims a notebook measures, in declaration order."""
    return [c for c in CLAIMS.values() if c.notebook == notebook]


def evidence_frame(evidence: Sequence[Evidence], n_halves: int = 20,
                   alpha: float = ALPHA) -> pd.DataFrame:
    """:func:`assess` and :func:`stability` side by side, with each claim's text."""
    table = assess(evidence, alpha)
    stab = stability(evidence, n_halves=n_halves, alpha=alpha)
    table = table.merge(stab[["claim", "loso_agree", "loso_n", "halves_agree", "halves_n",
                              "stability"]], on="claim", how="left")
    table["detail"] = [e.detail for e in evidence]
    table["statement"] = [get_claim(e.claim).statement for e in evidence]
    table["source"] = [get_claim(e.claim).source for e in evidence]
    return table


def defined_ids(notebooks: Iterable[str] | None = None) -> list[str]:
    """Claim ids, optionally only those of some notebooks."""
    wanted = set(notebooks) if notebooks is not None else None
    return [c.id for c in CLAIMS.values() if wanted is None or c.notebook in wanted]

