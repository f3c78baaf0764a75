"""How far a cheap attack overstates robust accuracy, per loss, against standard AutoAttack.

The claims report rests its robustness verdicts on attacks the time budget allows
(APGD-DLR, a reduced AutoAttack, PGD). How much each overstates robust accuracy depends
on the loss: a loss that bends the logits (DRSL, margins, one-vs-rest) can hide the
gradient from one attack and not from another, so the bias is not the same on the two
sides of a comparison. A *calibration* runs standard AutoAttack (Croce & Hein 2020:
APGD-CE, APGD-T, FAB-T and Square with 100 steps and 5,000 queries) beside the cheap
attacks on the same images and seeds, and measures:

- the **overstatement** of each cheap attack for each model: robust accuracy under the
  cheap attack minus robust accuracy under standard AutoAttack, on the same images
  (never negative for a sample that both attack: AutoAttack keeps the worst case of four
  attacks; it can be negative on the whole only by chance in the random starts);
- the **differential** of a comparison ``a - b``: how much of the cheap attack's
  ``a - b`` effect is the attack's bias, ``overstatement[a] - overstatement[b]``.

The unit is the seed, as everywhere in the report; the images are a fixed subset shared
by every seed, so each interval also carries the image-sampling variance of the subset
(the variance of the mean over images of the per-image differences, as in
:func:`claims.image_variance`).

**Degrees of freedom and sparse counts** (:func:`moments`, :func:`cell_moments`). The
t reference keeps ``df = n_seeds - 1``, as the claims rule does. Welch-Satterthwaite,
which credits the image term's hundreds of degrees of freedom, misses its nominal 95 %
upper bound 8.5 % of the time with two seeds when the seed term dominates (methods
review, M1); ``n - 1`` is conservative. The per-image overstatement is 0 or 1 (a cheap
attack that standard AutoAttack beats on an image, or not), often with few or no
discordant images: then the sample variances are 0 and a t-interval has zero width,
although 0 discordant images out of 300 is compatible with a true rate of about 3/300.
So the standard error has a floor from exact counts (:func:`count_se`): for the images
where the cheap attack says *robust* and the reference *fooled* (``n_up``) and the
reverse (``n_down``), the one-sided Clopper-Pearson 95 % upper bound of each rate, less
the rate, divided by ``z_0.95``: the standard error a *normal* bound needs to reach the
exact one, the two sides in quadrature. The floor is an image-level quantity from
exact counts, not a seed-level estimate, so it is never multiplied by a t quantile
(methods review 2, point 2: scaled by the 1-df quantile it made every interval about 9x
too wide). The rule is the larger of the two bounds at the floor's level: when
``z_0.95 * floor`` exceeds ``t_0.95,df * se`` (seed and image terms), the standard error
is the floor with a normal reference (``df`` infinite); else the t term with ``n - 1``.

**Bounds of the differential** (:meth:`Differential.bound`, :func:`exact_bound`). The
one-sided bound of a differential on either side is the wider of its t bound (seed and
image terms, ``n - 1`` df) and the exact bound of the discordant count on that side:
the differential ``(n_up - n_down) / cells`` is at most the rate of ``n_up``, so the
Clopper-Pearson upper bound of that rate bounds it from above (likewise ``-n_down``
from below). At zero discordant cells out of 300 it is 1.0 pp at 95 %, where the
normal floor gave 1.4 pp and the 1-df t gave 8 pp; so a calibration can come out *not
flagged*.

The rule that uses it (``claims.assess(..., calibrations=...)``): a calibrated robustness
row tests the effect under standard AutoAttack, the cheap attack's effect minus the
differential, with both standard errors (:meth:`Differential.moments`); a row whose
cheap attack standard AutoAttack beats on the claimed side by more than half the row's
smallest effect of interest (the differential's one-sided upper bound,
:meth:`Differential.bound`) is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = ["REFERENCE", "FLOOR_LEVEL", "Interval", "Differential", "moments", "count_se",
           "exact_bound", "cell_moments", "overstatement", "overstatement_table", "differential",
           "calibrated_bound", "beats_by_more_than", "summary_rows"]

#: The record name of the reference attack (:func:`attacks.build_attack`).
REFERENCE = "autoattack-standard"
#: The one-sided level of the exact (Clopper-Pearson) bounds behind the standard error's
#: floor for sparse discordant counts (:func:`count_se`).
FLOOR_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A per-seed mean with its two-sided t-interval (seeds, plus the image variance of
    a fixed subset), in the input's units.

    Attributes:
        mean: the mean over seeds.
        low, high: the interval at ``level``.
        n_seeds: seeds that entered; n_images: images per seed.
        level: the interval's coverage.
    """

    mean: float
    low: float
    high: float
    n_seeds: int
    n_images: int
    level: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _robust(records: pd.DataFrame) -> pd.Series:
    """Per-row robustness: clean-correct and not fooled (as ``stats.robust_accuracy``)."""
    cc = records["clean_correct"].astype(bool)
    return (cc & ~records["success"].astype(bool)).astype(float)


def _check(records: pd.DataFrame, attacks: Sequence[str], reference: str) -> None:
    missing = {"model", "seed", "attack", "eps", "sample", "clean_correct",
               "success"} - set(records.columns)
    if missing:
        raise ValueError(f"records lack the columns {sorted(missing)}: pass the records "
                         "of evaluation.evaluate")
    have = set(records["attack"])
    for name in (*attacks, reference):
        if name not in have:
            raise ValueError(f"attack={name!r} is not in the records; they hold "
                             f"{sorted(have)}")


def _per_sample(records: pd.DataFrame, attack: str, reference: str, eps: float
                ) -> pd.DataFrame:
    """One row per (model, seed, sample): robust under ``attack`` minus robust under the
    reference, on the images both attacked."""
    at_eps = records[np.isclose(records["eps"].astype(float), eps)]
    keys = ["model", "seed", "sample"]
    cheap = at_eps[at_eps["attack"] == attack].assign(r=_robust)[keys + ["r"]]
    ref = at_eps[at_eps["attack"] == reference].assign(r=_robust)[keys + ["r"]]
    both = cheap.merge(ref, on=keys, suffixes=("_cheap", "_ref"), validate="one_to_one")
    if both.empty:
        raise ValueError(f"no images were attacked by both {attack!r} and {reference!r} "
                         f"at eps={eps!r}")
    return both.assign(over=both["r_cheap"] - both["r_ref"])


def moments(per_seed: Sequence[float] | np.ndarray, image_var: float, n_images: int,
            *, floor_se: float = 0.0) -> tuple[float, float, float]:
    """``(mean, se, df)`` of a per-seed mean on a fixed image subset: ``se**2`` adds the
    image variance to the seed term, with ``df = n - 1`` (the seed term's; conservative:
    see the module docstring for why not Welch-Satterthwaite). ``floor_se`` is the
    exact-count floor (:func:`count_se`), on a normal scale: when its bound at
    :data:`FLOOR_LEVEL` is the wider, ``se`` is the floor and ``df`` infinite (never the
    floor times a t quantile). ``n_images`` is kept for the callers. NaN below two
    seeds."""
    x = np.asarray(per_seed, dtype=float)
    n = int(x.size)
    m = float(x.mean()) if n else math.nan
    if n < 2:
        return m, math.nan, math.nan
    se = math.sqrt(float(x.var(ddof=1)) / n + image_var)
    return (m, *_larger_bound(se, float(floor_se), float(n - 1)))


def _larger_bound(se: float, floor: float, df: float) -> tuple[float, float]:
    """``(se, df)``: the t term, or the normal floor where its bound at
    :data:`FLOOR_LEVEL` is the wider (the module docstring)."""
    if bool(_floor_wins(se, floor, df, FLOOR_LEVEL)):
        return floor, math.inf
    return se, df


def _floor_wins(se: np.ndarray | float, floor: np.ndarray | float, df: np.ndarray | float,
                level: float) -> np.ndarray:
    """Where the floor's normal bound at ``level`` is wider than the t term's (``df``
    below 1 counts as 1; the callers mask fewer than two seeds): the one switch of
    :func:`moments` and :func:`cell_moments`."""
    with np.errstate(invalid="ignore", divide="ignore"):
        t_q = sps.t.isf(1 - level, np.maximum(df, 1.0))
    return np.asarray(floor) * float(sps.norm.isf(1 - level)) > t_q * np.asarray(se)


def count_se(n_up: float, n_down: float, cells: int, level: float = FLOOR_LEVEL
             ) -> float:
    """The standard-error floor of a mean of per-cell values in {-1, 0, 1} from exact
    counts: ``n_up`` cells at +1 and ``n_down`` at -1 out of ``cells``.

    For each count, the one-sided Clopper-Pearson upper bound at ``level`` of its rate,
    ``1 - (1 - level)^(1/cells)`` at a zero count (about 3/cells at 95 %, the rule of
    three), less the observed rate, divided by ``z_level``: the standard error a normal
    bound needs to reach the exact one. The two sides add in quadrature. 0 when there
    are no cells.
    """
    return float(_count_se_array(n_up, n_down, cells, level))


def exact_bound(k: float, cells: int, level: float) -> float:
    """The one-sided Clopper-Pearson upper bound at ``level`` of a rate from ``k``
    events in ``cells`` (``1 - (1 - level)^(1/cells)`` at ``k = 0``; 1 at ``k = cells``,
    NaN without cells)."""
    if cells <= 0:
        return math.nan
    return float(_cp_upper(np.float64(k), np.float64(cells), level))


def _cp_upper(k: np.ndarray, total: np.ndarray, level: float) -> np.ndarray:
    """:func:`exact_bound`, elementwise, for ``total > 0`` (``k`` clipped to
    ``[0, total]``)."""
    k = np.clip(k, 0.0, total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k >= total, 1.0,
                        sps.beta.ppf(level, k + 1, np.maximum(total - k, 1e-300)))


def cell_moments(cells: np.ndarray, level: float = FLOOR_LEVEL
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, se, df)`` from per-cell values ``cells[..., seed, image]`` (the
    per-image overstatement or differential, NaN where a seed lacks an image),
    vectorised over any leading axes.

    ``mean``: over seeds of the per-seed means; ``se``: the seed term (their variance
    over ``n``) plus the image term (the variance of the per-image means over seeds,
    over the number of images), with ``df = n_seeds - 1``; or, where its bound at
    ``level`` is the wider, :func:`count_se` of the cells' signs with ``df`` infinite
    (as :func:`moments`). NaN below two seeds.
    """
    x = np.asarray(cells, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_seed = np.nanmean(x, axis=-1)
        n = np.isfinite(per_seed).sum(axis=-1)
        mean = np.nanmean(per_seed, axis=-1)
        v_seed = np.nanvar(per_seed, axis=-1, ddof=1) / n
        per_image = np.nanmean(x, axis=-2)
        k = np.isfinite(per_image).sum(axis=-1)
        v_img = np.where(k > 1, np.nanvar(per_image, axis=-1, ddof=1) / k, 0.0)
    total = np.isfinite(x).sum(axis=(-2, -1))
    up = np.where(np.isfinite(x), np.clip(x, 0, None), 0).sum(axis=(-2, -1))
    down = np.where(np.isfinite(x), np.clip(-x, 0, None), 0).sum(axis=(-2, -1))
    floor = _count_se_array(up, down, total, level)
    se_t = np.sqrt(v_seed + v_img)
    df_t = n - 1.0
    use_floor = _floor_wins(se_t, floor, df_t, level)
    se = np.where(n >= 2, np.where(use_floor, floor, se_t), np.nan)
    df = np.where(n >= 2, np.where(use_floor, np.inf, df_t), np.nan)
    return mean, se, df


def _count_se_array(up: np.ndarray, down: np.ndarray, total: np.ndarray,
                    level: float) -> np.ndarray:
    """:func:`count_se`, elementwise (the one implementation; 0 where there are no
    cells)."""
    up, down, total = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in
                                            (up, down, total)))
    z = float(sps.norm.ppf(level))
    with np.errstate(invalid="ignore", divide="ignore"):
        def side(k: np.ndarray) -> np.ndarray:
            upper = _cp_upper(k, total, level)
            return np.where(total > 0, np.maximum(upper - np.clip(k, 0.0, total) / total,
                                                  0.0) / z, 0.0)
        return np.hypot(side(up), side(down))


def _t(p: float, df: float) -> float:
    """The upper ``p`` quantile of a t variate (normal at infinite df)."""
    return float(sps.t.isf(p, df)) if math.isfinite(df) else float(sps.norm.isf(p))


def _side_bound(per_seed: np.ndarray, image_var: float, n_up: float | None,
                n_down: float | None, cells: int, side: str, level: float) -> float:
    """The one-sided bound at ``level`` of a per-seed mean of per-cell values in
    {-1, 0, 1}: the wider of the t bound (seed and image terms, ``n - 1`` df) and the
    exact bound of the discordant count on ``side`` (:func:`exact_bound`; skipped when
    the count is None). NaN below two seeds."""
    x = np.asarray(per_seed, dtype=float)
    n = int(x.size)
    if n < 2:
        return math.nan
    m = float(x.mean())
    half = _t(1 - level, n - 1) * math.sqrt(float(x.var(ddof=1)) / n + image_var)
    if side == "upper":
        return m + half if n_up is None else max(m + half, exact_bound(n_up, cells, level))
    return m - half if n_down is None else min(m - half, -exact_bound(n_down, cells, level))


def _interval(per_seed: np.ndarray, image_var: float, n_images: int, level: float,
              n_up: float | None = None, n_down: float | None = None) -> Interval:
    """Mean over seeds with a two-sided interval at ``level``: each end the one-sided
    :func:`_side_bound` at ``(1 + level) / 2``."""
    x = np.asarray(per_seed, dtype=float)
    p, cells = (1 + level) / 2, n_images * int(x.size)
    return Interval(float(x.mean()) if x.size else math.nan,
                    _side_bound(x, image_var, n_up, n_down, cells, "lower", p),
                    _side_bound(x, image_var, n_up, n_down, cells, "upper", p),
                    int(x.size), n_images, level)


def _image_var(per_sample: pd.DataFrame, value: str) -> tuple[float, int]:
    """Variance of the mean over images of the per-image mean over seeds."""
    per_image = per_sample.groupby("sample")[value].mean()
    k = int(per_image.size)
    return (float(per_image.var(ddof=1)) / k if k > 1 else 0.0), k


def _counts(per_sample: pd.DataFrame, value: str) -> tuple[float, float, int]:
    """``(n_up, n_down, cells)``: the discordant cells of :func:`count_se`."""
    v = per_sample[value].to_numpy(np.float64)
    return float(np.clip(v, 0, None).sum()), float(np.clip(-v, 0, None).sum()), int(v.size)


def overstatement(records: pd.DataFrame, attack: str, eps: float, *,
                  reference: str = REFERENCE) -> pd.DataFrame:
    """Per model and seed: robust accuracy under ``attack``, under the reference, and
    the overstatement (their difference), on the images both attacked at ``eps``.

    Returns:
        Columns ``model``, ``seed``, ``attack``, ``eps``, ``n_images``, ``robust_cheap``,
        ``robust_reference``, ``overstatement`` (fractions, not percentage points).
    """
    _check(records, [attack], reference)
    ps = _per_sample(records, attack, reference, eps)
    out = ps.groupby(["model", "seed"], sort=False).agg(
        n_images=("over", "size"), robust_cheap=("r_cheap", "mean"),
        robust_reference=("r_ref", "mean"), overstatement=("over", "mean")).reset_index()
    out.insert(2, "attack", attack)
    out.insert(3, "eps", float(eps))
    return out


def overstatement_table(records: pd.DataFrame, attacks: Sequence[str], eps: float, *,
                        reference: str = REFERENCE, level: float = 0.95) -> pd.DataFrame:
    """Each cheap attack's overstatement of the reference, per model, over seeds.

    Returns:
        One row per (model, attack): ``n_seeds``, ``n_images``, ``robust_cheap`` and
        ``robust_reference`` (means over seeds), ``overstatement`` with ``low``/``high``
        (the interval at ``level``: each end the wider of the t bound, seeds plus image
        variance on ``n_seeds - 1`` degrees of freedom, and the exact bound of the
        discordant count on that side, :func:`exact_bound`), all as fractions.
    """
    _check(records, attacks, reference)
    rows = []
    for attack in attacks:
        ps = _per_sample(records, attack, reference, eps)
        for model, sub in ps.groupby("model", sort=False):
            per_seed = sub.groupby("seed")["over"].mean().to_numpy()
            ivar, k = _image_var(sub, "over")
            up, down, _ = _counts(sub, "over")
            iv = _interval(per_seed, ivar, k, level, up, down)
            rows.append({"model": model, "attack": attack, "eps": float(eps),
                         "n_seeds": iv.n_seeds, "n_images": k,
                         "robust_cheap": float(sub["r_cheap"].mean()),
                         "robust_reference": float(sub["r_ref"].mean()),
                         "overstatement": iv.mean, "low": iv.low, "high": iv.high})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Differential:
    """The calibrated differential of one comparison ``a - b`` under one cheap attack.

    Attributes:
        attack: the cheap attack's record name; reference: the reference attack's.
        a, b: the compared models; eps: the radius.
        values: ``{seed: overstatement[a] - overstatement[b]}`` as fractions.
        image_var: the image-sampling variance of their mean (fractions squared).
        n_images: images per seed.
        n_up, n_down: the (seed, image) cells where the differential is positive and
            negative, weighted by its size (:func:`count_se`); None in a record written
            before they were kept (then the standard error has no exact-count floor).
    """

    attack: str
    reference: str
    a: str
    b: str
    eps: float
    values: dict[int, float]
    image_var: float
    n_images: int
    n_up: float | None = None
    n_down: float | None = None

    @property
    def floor_se(self) -> float:
        """The exact-count floor of the standard error (fractions; 0 if unknown)."""
        if self.n_up is None or self.n_down is None:
            return 0.0
        return count_se(self.n_up, self.n_down, self.n_images * len(self.values))

    def moments(self, scale: float = 1.0) -> tuple[float, float, float]:
        """``(mean, se, df)`` in units of ``scale`` (:func:`moments`: the t term with
        ``df = n_seeds - 1``, or the exact-count floor with ``df`` infinite)."""
        m, se, df = moments(np.array(list(self.values.values())) * scale,
                            self.image_var * scale**2, self.n_images,
                            floor_se=self.floor_se * abs(scale))
        return m, se, df

    def interval(self, level: float = 0.95) -> Interval:
        """The mean over seeds with its two-sided interval at ``level``: each end is
        :meth:`bound` at ``(1 + level) / 2``."""
        return _interval(np.array(list(self.values.values())), self.image_var,
                         self.n_images, level, self.n_up, self.n_down)

    def bound(self, side: str, level: float, scale: float = 1.0) -> float:
        """The one-sided bound at ``level`` on ``side`` (``"upper"`` or ``"lower"``), in
        units of ``scale``: the wider of the t bound (seed and image terms,
        ``n_seeds - 1`` df) and the exact Clopper-Pearson bound of the discordant count
        on that side (:func:`exact_bound`; none in a record without counts). NaN below
        two seeds."""
        if side not in ("upper", "lower"):
            raise ValueError(f"side={side!r} is not valid (allowed: 'upper', 'lower')")
        x = np.array(list(self.values.values()), dtype=float)
        b = _side_bound(x, self.image_var, self.n_up, self.n_down,
                        self.n_images * int(x.size), side, level)
        return b * scale

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["values"] = {str(k): v for k, v in sorted(self.values.items())}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Differential:
        fields = dict(data)
        fields["values"] = {int(k): float(v) for k, v in data["values"].items()}
        return cls(**fields)  # n_up / n_down default to None in older records


def differential(records: pd.DataFrame, attack: str, a: str, b: str, eps: float, *,
                 reference: str = REFERENCE) -> Differential:
    """The part of a cheap attack's ``a - b`` effect that is the attack's bias.

    Per seed: ``overstatement[a] - overstatement[b]`` on the same images (both models
    trained with that seed); the image variance is that of the per-image paired
    difference, averaged over seeds.

    Raises:
        ValueError: ``a`` or ``b`` is not in the records, or they share no seed.
    """
    _check(records, [attack], reference)
    for name in (a, b):
        if name not in set(records["model"]):
            raise ValueError(f"model={name!r} is not in the records; they hold "
                             f"{sorted(set(records['model']))}")
    ps = _per_sample(records, attack, reference, eps)
    wide = ps.pivot_table(index=["seed", "sample"], columns="model", values="over")
    wide = wide[[a, b]].dropna()
    if wide.empty:
        raise ValueError(f"models {a!r} and {b!r} share no seed and image")
    d = (wide[a] - wide[b]).rename("d").reset_index()
    per_seed = d.groupby("seed")["d"].mean()
    ivar, k = _image_var(d, "d")
    up, down, _ = _counts(d, "d")
    return Differential(attack, reference, a, b, float(eps),
                        {int(s): float(v) for s, v in per_seed.items()}, ivar, k, up, down)


def calibrated_bound(effect_bound: float, diff: Interval, direction: str
                     ) -> tuple[float, float]:
    """The effect's bound after the calibrated differential is taken out, and how far
    the cheap attack's answer moved.

    The claims rule no longer widens bounds this way (the calibration enters the tested
    quantity, ``claims.calibrate``); this stays for one release as a quick look.

    For a ``greater`` claim (a - b > 0) the worst case for the claim is the upper end of
    the differential (the cheap attack favours ``a`` by that much): the bound becomes
    ``effect_bound - diff.high``. For ``less`` it is ``effect_bound - diff.low``.

    Returns:
        ``(calibrated bound, shift)`` in the input's units.
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"direction={direction!r} is not valid for a robustness "
                         "calibration (allowed: 'greater', 'less')")
    shift = diff.high if direction == "greater" else diff.low
    return effect_bound - shift, shift


def beats_by_more_than(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Rows of :func:`overstatement_table` whose overstatement's upper bound exceeds
    ``threshold`` (e.g. half a claim's SESOI, as a fraction): the cheap attack that
    standard AutoAttack beats by more than that."""
    if not math.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold={threshold!r}: must be a positive number")
    return table[table["high"] > threshold]


def summary_rows(table: pd.DataFrame, *, scale: float = 100.0, digits: int = 1
                 ) -> list[dict[str, Any]]:
    """:func:`overstatement_table` as display rows (percentage points by default)."""
    from .claims import signed  # claims imports this module

    out = []
    for r in table.itertuples(index=False):
        f = lambda v: signed(v * scale, digits)  # noqa: E731
        out.append({"model": r.model, "attack": r.attack, "seeds": r.n_seeds,
                    "images": r.n_images,
                    "robust (cheap)": f"{r.robust_cheap * scale:.{digits}f}",
                    "robust (standard AA)": f"{r.robust_reference * scale:.{digits}f}",
                    "overstatement": f"{f(r.overstatement)} [{f(r.low)}, {f(r.high)}]"})
    return out
