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
    "register",
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

#: Every declared claim by id. The project's own declarations live in
#: :mod:`drsl_utils.claim_table` (data, apart from the rule); a user adds one with
#: :func:`register`.
CLAIMS: dict[str, "Claim"] = {}


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





def register(claim: Claim, *, replace: bool = False) -> Claim:
    """Declare ``claim`` so that notebooks and :func:`assess` can use its id.

    Raises:
        ValueError: the id is already declared (pass ``replace=True`` to redeclare it).
    """
    if not isinstance(claim, Claim):
        raise TypeError(f"claim={claim!r}: expected a claims.Claim")
    if claim.id in CLAIMS and not replace and CLAIMS[claim.id] != claim:
        raise ValueError(f"claim={claim.id!r} is already declared; pass replace=True "
                         "to redeclare it")
    CLAIMS[claim.id] = claim
    return claim


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


# The project's declarations register themselves (imported last: they need Claim).
from . import claim_table as _claim_table  # noqa: E402,F401
