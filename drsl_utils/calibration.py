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

The rule that uses it (:func:`calibrated_bound`): a robustness verdict decided by a cheap
attack must also hold when the upper bound of the calibrated differential is subtracted
from the effect; a row whose cheap attack standard AutoAttack beats by more than half the
row's smallest effect of interest (upper bound of the interval) is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = ["REFERENCE", "Interval", "Differential", "moments", "overstatement", "overstatement_table", "differential",
           "calibrated_bound", "beats_by_more_than", "summary_rows"]

#: The record name of the reference attack (:func:`attacks.build_attack`).
REFERENCE = "autoattack-standard"


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


def moments(per_seed: Sequence[float] | np.ndarray, image_var: float, n_images: int
            ) -> tuple[float, float, float]:
    """``(mean, se, df)`` of a per-seed mean on a fixed image subset: ``se**2`` adds the
    image variance to the seed term, and the degrees of freedom follow Welch and
    Satterthwaite (the image term is estimated from ``n_images - 1`` degrees of
    freedom, the seed term from ``n - 1``). With a handful of seeds and hundreds of
    images, ``n - 1`` alone would throw away what the images know; with no image term
    it is exactly ``n - 1``. NaN below two seeds."""
    x = np.asarray(per_seed, dtype=float)
    n = int(x.size)
    m = float(x.mean()) if n else math.nan
    if n < 2:
        return m, math.nan, math.nan
    v_seed = float(x.var(ddof=1)) / n
    se2 = v_seed + image_var
    denom = v_seed**2 / (n - 1) + image_var**2 / max(1, n_images - 1)
    df = se2**2 / denom if denom > 0 else math.inf
    return m, math.sqrt(se2), df


def _t(p: float, df: float) -> float:
    """The upper ``p`` quantile of a t variate (normal at infinite df)."""
    return float(sps.t.isf(p, df)) if math.isfinite(df) else float(sps.norm.isf(p))


def _interval(per_seed: np.ndarray, image_var: float, n_images: int,
              level: float) -> Interval:
    """Mean over seeds with a two-sided t-interval (:func:`moments`)."""
    m, se, df = moments(per_seed, image_var, n_images)
    n = int(np.asarray(per_seed).size)
    if not math.isfinite(se):
        return Interval(m, math.nan, math.nan, n, n_images, level)
    half = _t((1 - level) / 2, df) * se
    return Interval(m, m - half, m + half, n, n_images, level)


def _image_var(per_sample: pd.DataFrame, value: str) -> tuple[float, int]:
    """Variance of the mean over images of the per-image mean over seeds."""
    per_image = per_sample.groupby("sample")[value].mean()
    k = int(per_image.size)
    return (float(per_image.var(ddof=1)) / k if k > 1 else 0.0), k


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
        (the interval at ``level``, seeds plus image variance), all as fractions.
    """
    _check(records, attacks, reference)
    rows = []
    for attack in attacks:
        ps = _per_sample(records, attack, reference, eps)
        for model, sub in ps.groupby("model", sort=False):
            per_seed = sub.groupby("seed")["over"].mean().to_numpy()
            ivar, k = _image_var(sub, "over")
            iv = _interval(per_seed, ivar, k, level)
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
    """

    attack: str
    reference: str
    a: str
    b: str
    eps: float
    values: dict[int, float]
    image_var: float
    n_images: int

    def moments(self, scale: float = 1.0) -> tuple[float, float, float]:
        """``(mean, se, df)`` in units of ``scale`` (:func:`moments`)."""
        m, se, df = moments(np.array(list(self.values.values())) * scale,
                            self.image_var * scale**2, self.n_images)
        return m, se, df

    def interval(self, level: float = 0.95) -> Interval:
        """The mean over seeds with its two-sided interval at ``level``."""
        return _interval(np.array(list(self.values.values())), self.image_var,
                         self.n_images, level)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["values"] = {str(k): v for k, v in sorted(self.values.items())}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Differential:
        fields = dict(data)
        fields["values"] = {int(k): float(v) for k, v in data["values"].items()}
        return cls(**fields)


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
    return Differential(attack, reference, a, b, float(eps),
                        {int(s): float(v) for s, v in per_seed.items()}, ivar, k)


def calibrated_bound(effect_bound: float, diff: Interval, direction: str
                     ) -> tuple[float, float]:
    """The effect's bound after the calibrated differential is taken out, and how far
    the cheap attack's answer moved.

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
    out = []
    for r in table.itertuples(index=False):
        f = lambda v: f"{v * scale:+.{digits}f}"  # noqa: E731
        out.append({"model": r.model, "attack": r.attack, "seeds": r.n_seeds,
                    "images": r.n_images,
                    "robust (cheap)": f"{r.robust_cheap * scale:.{digits}f}",
                    "robust (standard AA)": f"{r.robust_reference * scale:.{digits}f}",
                    "overstatement": f"{f(r.overstatement)} [{f(r.low)}, {f(r.high)}]"})
    return out
