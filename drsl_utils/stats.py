"""Softmax and logit statistics, attack-outcome statistics, and seed tables.

Three layers, all pure functions on arrays and DataFrames:

- **Per sample**: :func:`softmax_stats` turns logits ``[n, K]`` and labels ``[n]`` into
  one row per sample (top-1/top-2/true-class probabilities, max logit, logit gap and
  margin, and the spread of the non-true softmax entries that DRSL restrains).
  :func:`stack_stats` stacks several models into one tidy frame.
- **Per model** (reading the attack ``records``, one row per (model, attack, eps,
  sample)): :func:`second_class_fraction_ci` (is the adversarial label the clean
  second class?), :func:`success_vs_p2` (attack success binned by the clean
  second-largest softmax), :func:`success_association` (AUC / point-biserial r between
  success and a statistic) and :func:`robust_accuracy`.
- **Across seeds**: :func:`seed_table` (mean, std and seed count), rendered by
  :func:`format_seed_table`, :func:`to_markdown` and :func:`to_latex` in the paper's
  ``0.953 ± 0.0013`` format.
- **A user's comparison**: :func:`compare` pairs two models (or groups) seed by seed on
  one metric and hands the per-seed differences to the claims rule
  (:mod:`drsl_utils.claims`), returning its verdict row, marked exploratory (outside the
  report's declared Holm family). :func:`with_margins` adds the logit margin before and
  after the attack to the records.

Where the records carry a model's identity (:data:`evaluation.MODEL_COLUMNS`: loss and
its parameters, training regime, architecture), every per-model table carries it too,
after ``model`` (:func:`with_identity` adds it to a table you built); nothing here reads a
model's display name for what it is.

Confidence intervals come from :func:`wilson_ci` and :func:`bootstrap_ci`. A group
without the samples a statistic needs (no successful attacks, say) gives NaN and a
count of 0, never an exception. Groups come out in the order they first appear in the
records (the experiment's model order), not alphabetically.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from .evaluation import IDENTITY_COLUMNS, MODEL_COLUMNS
from .runtime import check_choice

__all__ = [
    "softmax_stats",
    "stack_stats",
    "with_identity",
    "wilson_ci",
    "bootstrap_ci",
    "second_class_fraction_ci",
    "success_vs_p2",
    "success_association",
    "robust_accuracy",
    "seed_table",
    "format_mean_std",
    "format_seed_table",
    "to_markdown",
    "to_latex",
    "DEFAULT_P2_BINS",
    "ATTACK_GROUP",
    "paired_auc_difference",
    "paired_auc",
    "dip_test",
    "dip_power",
    "dip_excess",
    "dip_table",
    "rank_agreement_by_seed",
    "describe_means",
    "attack_difference",
    "with_margins",
    "COMPARE_METRICS",
    "EXPLORATORY_NOTE",
    "compare",
]

#: Default bin edges for the clean second-largest softmax probability. For a correctly
#: classified sample p2 <= 0.5, and trained networks put it anywhere from 1e-8 up.
DEFAULT_P2_BINS: tuple[float, ...] = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.5)

#: The columns that identify one attack setting in the records.
ATTACK_GROUP: tuple[str, ...] = ("model", "attack", "eps")

# ---------------------------------------------------------------------- per sample


def _as_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} must be an array or tensor, got {type(x).__name__}") from exc


def _check_logits_labels(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    z = _as_numpy(logits, "logits")
    y = _as_numpy(labels, "labels")
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (samples x classes), got shape {z.shape}")
    n, k = z.shape
    if k < 2:
        raise ValueError(f"logits must have at least 2 classes, got {k}")
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must be 1-D with {n} entries, got shape {y.shape}")
    if n and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be integer class indices")
    y = y.astype(np.int64)
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels out of range: every label must lie in [0, {k - 1}]")
    z = z.astype(np.float64)
    if not np.all(np.isfinite(z)):
        raise ValueError("logits contain NaN or infinite values")
    return z, y


def softmax_stats(logits: Any, labels: Any) -> pd.DataFrame:
    """Per-sample softmax and logit statistics.

    Args:
        logits: ``[n, K]`` numpy array or torch tensor (any float dtype; computed in
            float64).
        labels: ``[n]`` integer true labels.

    Returns:
        One row per sample with columns

        - ``sample`` (row index), ``label``, ``pred`` (argmax), ``second`` (class of the
          second-largest logit), ``correct``;
        - ``p_true``, ``p_top1``, ``p_top2``: softmax of the true, top and second class;
        - ``max_logit``; ``logit_gap`` = max - second max (Seguin et al.);
          ``logit_margin`` = ``z_y - max_{k != y} z_k`` (Kanai et al.; > 0 iff correct);
        - ``nontrue_var``: variance (ddof 0) of the K-1 non-true softmax entries;
          ``nontrue_logit_var``: the same on logits (the DRSL penalty divided by K-1);
        - ``nontrue_entropy``: entropy (nats) of the non-true softmax entries
          renormalised to sum 1, in ``[0, log(K-1)]``; high = spread evenly;
        - ``nontrue_max_over_mean``: largest non-true probability over their mean, in
          ``[1, K-1]``; 1 = flat, K-1 = one class takes all the non-true mass.

        The renormalised quantities are computed from logits (``log q_k = z_k -
        logsumexp_{j != y} z_j``), so they stay exact when ``1 - p_y`` underflows.
        Ties between logits resolve to the lower class index.
    """
    z, y = _check_logits_labels(logits, labels)
    n, k = z.shape
    rows = np.arange(n)
    m = z.max(axis=1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    p = np.exp(logp)

    pred = z.argmax(axis=1)
    masked = z.copy()
    masked[rows, pred] = -np.inf
    second = masked.argmax(axis=1)

    true_mask = np.zeros_like(z, dtype=bool)
    true_mask[rows, y] = True
    z_other = np.where(true_mask, -np.inf, z)
    best_other = z_other.max(axis=1)

    # Renormalised non-true distribution q, in log space.
    mo = best_other[:, None]
    log_norm = mo + np.log(np.exp(z_other - mo).sum(axis=1, keepdims=True))
    logq = z_other - log_norm
    q = np.where(true_mask, 0.0, np.exp(logq))
    entropy = -(q * np.where(true_mask, 0.0, logq)).sum(axis=1)

    p_other = np.where(true_mask, np.nan, p)
    z_nan = np.where(true_mask, np.nan, z)
    nontrue_var = np.nanvar(p_other, axis=1) if k > 2 else np.zeros(n)
    nontrue_logit_var = np.nanvar(z_nan, axis=1) if k > 2 else np.zeros(n)

    return pd.DataFrame({
        "sample": rows,
        "label": y,
        "pred": pred,
        "second": second,
        "correct": pred == y,
        "p_true": p[rows, y],
        "p_top1": p[rows, pred],
        "p_top2": p[rows, second],
        "max_logit": z[rows, pred],
        "logit_gap": z[rows, pred] - z[rows, second],
        "logit_margin": z[rows, y] - best_other,
        "nontrue_var": nontrue_var,
        "nontrue_logit_var": nontrue_logit_var,
        "nontrue_entropy": np.maximum(entropy, 0.0),
        "nontrue_max_over_mean": (k - 1) * q.max(axis=1),
    })


def stack_stats(runs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Stack :func:`softmax_stats` of several models into one tidy frame.

    Args:
        runs: one mapping per (model, seed) with ``"logits"``, ``"labels"`` and a
            ``"model"`` name; ``"seed"`` (default 0) is optional, and every other key
            becomes a constant column. Give the model's identity as data, e.g.
            ``{**evaluation.model_identity(tm, name).columns(), "logits": ...,
            "labels": ...}``: figures read a model's loss and training regime from
            those columns (:data:`evaluation.IDENTITY_COLUMNS`), never from its name.

    Returns:
        The per-sample statistics with leading columns ``model``, the identity columns
        given (in :data:`evaluation.IDENTITY_COLUMNS` order) and ``seed``, then any
        other keys (``"dataset"``, ``"split"``, ...), then the statistics.
    """
    frames = []
    for i, run in enumerate(runs):
        if "logits" not in run or "labels" not in run or "model" not in run:
            raise ValueError(f"runs[{i}] must have 'model', 'logits' and 'labels' keys, "
                             f"got {sorted(run)}")
        meta: dict[str, Any] = {c: run[c] for c in IDENTITY_COLUMNS if c in run}
        meta["model"] = str(run["model"])
        meta["seed"] = int(run.get("seed", 0))
        meta = {c: meta[c] for c in IDENTITY_COLUMNS if c in meta}
        meta.update({k: v for k, v in run.items() if k not in meta and k not in
                     ("logits", "labels")})
        df = softmax_stats(run["logits"], run["labels"])
        frames.append(pd.concat([pd.DataFrame(meta, index=df.index), df], axis=1))
    if not frames:
        raise ValueError("runs is empty: pass at least one run")
    return pd.concat(frames, ignore_index=True)


def with_identity(frame: pd.DataFrame, source: pd.DataFrame, *, on: str = "model"
                  ) -> pd.DataFrame:
    """``frame`` with the model columns of ``source`` (:data:`evaluation.MODEL_COLUMNS`:
    architecture, loss and its parameters, training regime) added after ``on``, for a
    frame that names models but does not carry what they are (a table you built, a
    calibration table), so that plots colour and facet it by identity.

    Args:
        frame: any frame with an ``on`` column.
        source: records or ``AttackResult.models`` (or several concatenated): any frame
            with ``on`` and some of the model columns. A model's first row counts (the
            model columns are the same for every seed of one model).
        on: the column naming the models in both.

    Columns ``frame`` already has are kept as they are; a model missing from ``source``
    gets missing values (NaN), which plots draw by its label alone.
    """
    for name, df in (("frame", frame), ("source", source)):
        if not isinstance(df, pd.DataFrame) or on not in df.columns:
            raise ValueError(f"{name} must be a DataFrame with a {on!r} column, got "
                             f"{type(df).__name__}"
                             + (f" with columns {list(df.columns)}"
                                if isinstance(df, pd.DataFrame) else ""))
    cols = [c for c in MODEL_COLUMNS if c in source.columns and c not in frame.columns]
    if not cols:
        return frame
    lookup = source.loc[~source[on].duplicated(), [on, *cols]].set_index(on)
    out = frame.copy()
    at = list(out.columns).index(on) + 1
    for i, c in enumerate(cols):
        out.insert(at + i, c, out[on].map(lookup[c]).to_numpy())
    return out


# ---------------------------------------------------------------- intervals


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r}: must lie strictly between 0 and 1")
    return float(sps.norm.ppf(0.5 + level / 2))


def wilson_ci(k: Any, n: Any, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion ``k / n`` (vectorised).

    Returns ``(low, high)`` arrays (0-d for scalar input); NaN where ``n == 0``.
    """
    z = _z(level)
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if np.any(n < 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError("k and n must satisfy 0 <= k <= n")
    with np.errstate(invalid="ignore", divide="ignore"):
        phat = k / n
        denom = 1 + z**2 / n
        centre = (phat + z**2 / (2 * n)) / denom
        half = z * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2)) / denom
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


def _percentile_ci(samples: np.ndarray, level: float, axis: int = -1
                   ) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1 - level) / 2
    with np.errstate(invalid="ignore"):
        lo, hi = np.nanquantile(samples, [alpha, 1 - alpha], axis=axis)
    return lo, hi


def bootstrap_ci(values: Any, stat_fn: Callable[..., Any] = np.mean, n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95, vectorized: bool = True
                 ) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of ``stat_fn(values)``.

    Args:
        values: the sample (resampled along its first axis, so rows of a 2-D array
            stay together, e.g. paired ``(x, y)`` columns).
        stat_fn: the statistic. With ``vectorized=True`` it is called once as
            ``stat_fn(resamples, axis=1)`` on an ``[n_boot, n, ...]`` array (numpy
            reductions such as ``np.mean``/``np.median`` work); otherwise once per
            replicate on an ``[n, ...]`` array.
        n_boot: number of bootstrap replicates (>= 1).
        seed: seed of the resampling generator.
        level: coverage of the interval.

    Returns:
        ``(estimate, low, high)``; all NaN for an empty sample.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r}: must be >= 1")
    _z(level)
    x = _as_numpy(values, "values")
    if x.ndim == 0:
        raise ValueError("values must be at least 1-D")
    n = x.shape[0]
    if n == 0:
        return math.nan, math.nan, math.nan
    estimate = float(stat_fn(x))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    if vectorized:
        reps = np.asarray(stat_fn(x[idx], axis=1), dtype=np.float64)
    else:
        reps = np.array([stat_fn(x[i]) for i in idx], dtype=np.float64)
    lo, hi = _percentile_ci(reps, level)
    return estimate, float(lo), float(hi)


def _group_rng(seed: int, key: Any) -> np.random.Generator:
    """A generator for one group, independent of which other groups exist."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _binomial_bootstrap(k: np.ndarray, n: np.ndarray, n_boot: int, seed: int, level: float,
                        keys: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap CI of a proportion: resampling n 0/1 values with k ones is exactly
    drawing Binomial(n, k/n), so no per-sample resampling is needed."""
    lows = np.full(len(k), np.nan)
    highs = np.full(len(k), np.nan)
    for i, (ki, ni, key) in enumerate(zip(k, n, keys)):
        if ni > 0:
            draws = _group_rng(seed, key).binomial(int(ni), ki / ni, size=n_boot) / ni
            lows[i], highs[i] = _percentile_ci(draws, level)
    return lows, highs


# ---------------------------------------------------------------- record statistics

def _check_records(records: pd.DataFrame, needed: Iterable[str]) -> None:
    if not isinstance(records, pd.DataFrame):
        raise ValueError(f"records must be a pandas DataFrame, got {type(records).__name__}")
    missing = [c for c in needed if c not in records.columns]
    if missing:
        raise ValueError(f"records lack the column(s) {missing}; they have "
                         f"{list(records.columns)}")


def _group_cols(records: pd.DataFrame, by: Sequence[str], pool_seeds: bool) -> list[str]:
    cols = list(by)
    if not pool_seeds and "seed" in records.columns and "seed" not in cols:
        cols.insert(1 if cols and cols[0] == "model" else 0, "seed")
    _check_records(records, cols)
    return cols


def _with_model_columns(out: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """The model columns of the records (:func:`with_identity`: ``loss``, its
    parameters, the training regime, ...) after ``model``, where the output has one."""
    return with_identity(out, records) if "model" in out.columns else out


def _infer_num_classes(records: pd.DataFrame) -> int:
    if records.attrs.get("num_classes"):  # set by evaluation.evaluate
        return int(records.attrs["num_classes"])
    cols = [c for c in ("label", "clean_pred", "adv_pred", "clean_second") if c in
            records.columns]
    if not cols or records.empty:
        raise ValueError("cannot infer num_classes from empty records; pass num_classes")
    return int(records[cols].to_numpy().max()) + 1


def second_class_fraction_ci(records: pd.DataFrame, level: float = 0.95, *,
                             num_classes: int | None = None,
                             by: Sequence[str] = ATTACK_GROUP, pool_seeds: bool = True
                             ) -> pd.DataFrame:
    """How often a successful attack lands on the clean second class (DRSL finding 1).

    Among successful attacks (``success``: clean-correct and flipped), the fraction
    whose adversarial label is the class with the second-largest clean logit, with a
    Wilson score interval (never the degenerate ``[1, 1]`` of a bootstrap at k = n).
    The interval treats successes as independent; verdicts use the seed as the unit
    instead (``claims``).

    Args:
        records: attack records (needs ``success``, ``adv_is_clean_second`` and the
            ``by`` columns).
        level: coverage of the interval.
        num_classes: K; if None, ``records.attrs["num_classes"]`` (set by
            ``evaluation.evaluate``), else one more than the largest class index seen.
        by: grouping columns (default model, attack, eps).
        pool_seeds: pool all seeds of a model (default); if False, one row per seed.

    Returns:
        One row per group: the ``by`` columns, the model columns (``loss``, ...), ``n_seeds``, ``n_success``,
        ``n_second``, ``fraction``, ``ci_low``, ``ci_high``, ``chance`` (= 1/(K-1):
        the adversarial label is one of the K-1 other classes) and ``p_value``
        (one-sided binomial test of ``fraction > chance``). A group without
        successes has ``n_success = 0`` and NaN fraction, interval and p-value.
    """
    cols = _group_cols(records, by, pool_seeds)
    _check_records(records, ("success", "adv_is_clean_second"))
    k_classes = num_classes if num_classes is not None else _infer_num_classes(records)
    if k_classes < 2:
        raise ValueError(f"num_classes={k_classes!r}: must be >= 2")
    df = records.assign(_succ=records["success"].astype(bool),
                        _second=records["success"].astype(bool)
                        & records["adv_is_clean_second"].astype(bool))
    g = df.groupby(cols, sort=False, dropna=False)
    out = g.agg(n_success=("_succ", "sum"), n_second=("_second", "sum")).reset_index()
    out.insert(len(cols), "n_seeds", g["seed"].nunique().to_numpy() if "seed" in df else 1)
    k = out["n_second"].to_numpy(dtype=np.float64)
    n = out["n_success"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["fraction"] = np.where(n > 0, k / n, np.nan)
    out["ci_low"], out["ci_high"] = wilson_ci(k, n, level)
    chance = 1.0 / (k_classes - 1)
    out["chance"] = chance
    out["p_value"] = [sps.binomtest(int(ki), int(ni), chance, alternative="greater").pvalue
                      if ni > 0 else np.nan for ki, ni in zip(k, n)]
    out["n_success"] = out["n_success"].astype(int)
    out["n_second"] = out["n_second"].astype(int)
    return _with_model_columns(out, records)


def success_vs_p2(records: pd.DataFrame, bins: Sequence[float] | int = DEFAULT_P2_BINS, *,
                  stat: str = "clean_p_second", ci: str = "wilson", level: float = 0.95,
                  n_boot: int = 1000, seed: int = 0, by: Sequence[str] = ATTACK_GROUP,
                  pool_seeds: bool = True) -> pd.DataFrame:
    """Attack success rate among clean-correct samples, binned by the clean p2.

    DRSL finding 2: the smaller the second-largest clean softmax, the harder the attack.

    Args:
        records: attack records (needs ``clean_correct``, ``success``, ``stat`` and the
            ``by`` columns).
        bins: increasing bin edges (right-closed, the first bin includes its left
            edge), or an int for that many equal-count (quantile) bins per group.
        stat: the column to bin (default ``clean_p_second``).
        ci: ``"wilson"`` or ``"bootstrap"`` (exact binomial resampling).
        level, n_boot, seed: interval settings.
        by, pool_seeds: grouping, as in :func:`second_class_fraction_ci`.

    Returns:
        One row per (group, bin), empty bins included (``n = 0``, NaN rate): the
        ``by`` columns, the model columns, ``bin`` (0-based), ``bin_low``, ``bin_high``,
        ``stat_median`` (median of ``stat`` in the bin, for plotting), ``n``,
        ``n_success``, ``success_rate``, ``ci_low``, ``ci_high``.
    """
    check_choice("ci", ci, ("wilson", "bootstrap"))
    cols = _group_cols(records, by, pool_seeds)
    _check_records(records, ("clean_correct", "success", stat))
    df = records.loc[records["clean_correct"].astype(bool), cols + [stat, "success"]].copy()
    df["success"] = df["success"].astype(bool)
    x = df[stat].to_numpy(dtype=np.float64)

    if isinstance(bins, int | np.integer):
        if bins < 1:
            raise ValueError(f"bins={bins!r}: must be >= 1 or a sequence of edges")
        # Equal-count bins within each group: rank / size gives the quantile bin.
        pct = df.groupby(cols, sort=False)[stat].rank(method="first", pct=True).to_numpy()
        df["bin"] = np.clip(np.ceil(pct * bins).astype(int) - 1, 0, bins - 1)
        n_bins = int(bins)
        edges = None
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bins={list(bins)!r}: need at least two strictly increasing "
                             "edges")
        n_bins = len(edges) - 1
        idx = np.searchsorted(edges, x, side="left") - 1
        idx[x == edges[0]] = 0
        df["bin"] = np.where((x >= edges[0]) & (x <= edges[-1]), idx, -1)
        df = df[df["bin"] >= 0]

    g = df.groupby(cols + ["bin"], sort=True)
    agg = g.agg(n=("success", "size"), n_success=("success", "sum"),
                stat_median=(stat, "median"), stat_min=(stat, "min"), stat_max=(stat, "max"))
    groups = records[cols].drop_duplicates()
    full = pd.MultiIndex.from_frame(groups.merge(pd.DataFrame({"bin": range(n_bins)}),
                                                 how="cross"))
    out = agg.reindex(full).reset_index()
    out["n"] = out["n"].fillna(0).astype(int)
    out["n_success"] = out["n_success"].fillna(0).astype(int)
    if edges is not None:
        out["bin_low"] = edges[out["bin"].to_numpy()]
        out["bin_high"] = edges[out["bin"].to_numpy() + 1]
    else:
        out["bin_low"], out["bin_high"] = out["stat_min"], out["stat_max"]
    out = out.drop(columns=["stat_min", "stat_max"])
    k = out["n_success"].to_numpy(dtype=np.float64)
    n = out["n"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["success_rate"] = np.where(n > 0, k / n, np.nan)
    if ci == "wilson":
        out["ci_low"], out["ci_high"] = wilson_ci(k, n, level)
    else:
        keys = [tuple(r) for r in out[cols + ["bin"]].itertuples(index=False)]
        out["ci_low"], out["ci_high"] = _binomial_bootstrap(k, n, n_boot, seed, level, keys)
    order = cols + ["bin", "bin_low", "bin_high", "stat_median", "n", "n_success",
                    "success_rate", "ci_low", "ci_high"]
    return _with_model_columns(out[order], records)


def _auc_and_r(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUC of ``x`` for separating ``y`` (1) from 0, and Pearson r, along the last axis.

    ``x``: [..., n] scores, ``y``: [..., n] 0/1 (both classes present in each row).
    """
    ranks = sps.rankdata(x, axis=-1)  # average ranks handle ties (counts them 1/2)
    n1 = y.sum(axis=-1)
    n0 = y.shape[-1] - n1
    auc = ((ranks * y).sum(axis=-1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=-1) / np.sqrt((xc**2).sum(axis=-1) * (yc**2).sum(axis=-1))
    return auc, r


def success_association(records: pd.DataFrame, stat: str = "clean_p_second", *,
                        n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                        log_stat: bool = False, by: Sequence[str] = ATTACK_GROUP,
                        pool_seeds: bool = True, max_batch: int = 2_000_000
                        ) -> pd.DataFrame:
    """How well a clean statistic predicts attack success, among clean-correct samples.

    Args:
        records: attack records (needs ``clean_correct``, ``success``, ``stat``).
        stat: the column (default ``clean_p_second``).
        n_boot, seed, level: a stratified bootstrap (successes and failures resampled
            separately, so every replicate has both); ``n_boot=0`` skips it (NaN
            intervals), for per-seed point estimates.
        log_stat: use ``log10(stat)`` (floored at 1e-300) for the point-biserial r; the
            AUC is unchanged by any increasing transform.
        by, pool_seeds: grouping, as in :func:`second_class_fraction_ci`.
        max_batch: bootstrap replicates are ranked in chunks of about this many values
            to bound memory.

    Returns:
        One row per group: the model columns, ``n``, ``n_success``, ``auc`` (probability that a
        successfully attacked sample has a larger ``stat`` than a surviving one; 0.5 =
        no association, ties count 1/2) with ``auc_low``/``auc_high``, and the
        point-biserial ``r`` with ``r_low``/``r_high``. NaN where a group lacks
        successes or failures.
    """
    cols = _group_cols(records, by, pool_seeds)
    _check_records(records, ("clean_correct", "success", stat))
    if n_boot < 0:
        raise ValueError(f"n_boot={n_boot!r}: must be >= 0")
    _z(level)
    df = records.loc[records["clean_correct"].astype(bool), cols + [stat, "success"]]
    rows = []
    groups = records[cols].drop_duplicates()
    grouped = {k if isinstance(k, tuple) else (k,): v
               for k, v in df.groupby(cols, sort=True)}
    for key in groups.itertuples(index=False):
        key = tuple(key)
        sub = grouped.get(key)
        row: dict[str, Any] = dict(zip(cols, key))
        x = np.asarray(sub[stat], dtype=np.float64) if sub is not None else np.empty(0)
        y = np.asarray(sub["success"], dtype=np.float64) if sub is not None else np.empty(0)
        if log_stat:
            x = np.log10(np.maximum(x, 1e-300))
        n1 = int(y.sum())
        n0 = len(y) - n1
        row.update(n=len(y), n_success=n1)
        if n1 == 0 or n0 == 0:
            row.update(auc=np.nan, auc_low=np.nan, auc_high=np.nan, r=np.nan, r_low=np.nan,
                       r_high=np.nan)
            rows.append(row)
            continue
        auc, r = _auc_and_r(x, y)
        if n_boot == 0:
            row.update(auc=float(auc), auc_low=np.nan, auc_high=np.nan, r=float(r),
                       r_low=np.nan, r_high=np.nan)
            rows.append(row)
            continue
        rng = _group_rng(seed, key)
        pos, neg = x[y == 1], x[y == 0]
        yb = np.concatenate([np.ones(n1), np.zeros(n0)])
        chunk = max(1, max_batch // len(y))
        aucs, rs = [], []
        for start in range(0, n_boot, chunk):
            b = min(chunk, n_boot - start)
            xb = np.concatenate([pos[rng.integers(0, n1, (b, n1))],
                                 neg[rng.integers(0, n0, (b, n0))]], axis=1)
            a_b, r_b = _auc_and_r(xb, np.broadcast_to(yb, xb.shape))
            aucs.append(a_b)
            rs.append(r_b)
        alo, ahi = _percentile_ci(np.concatenate(aucs), level)
        rlo, rhi = _percentile_ci(np.concatenate(rs), level)
        row.update(auc=float(auc), auc_low=float(alo), auc_high=float(ahi), r=float(r),
                   r_low=float(rlo), r_high=float(rhi))
        rows.append(row)
    out = pd.DataFrame(rows, columns=cols + ["n", "n_success", "auc", "auc_low", "auc_high",
                                             "r", "r_low", "r_high"])
    return _with_model_columns(out, records)


def robust_accuracy(records: pd.DataFrame, *, by: Sequence[str] = ATTACK_GROUP
                    ) -> pd.DataFrame:
    """Clean and robust accuracy and attack success rate per (model, seed, attack, eps).

    A sample counts as robust when it is classified correctly both clean and under
    attack (``clean_correct and not success``). The success rate is over clean-correct
    samples only.

    Returns:
        One row per group and seed: the ``by`` columns, the model columns, ``seed``, ``n``,
        ``clean_accuracy``, ``robust_accuracy``, ``success_rate`` (NaN if no sample
        was clean-correct). Feed it to :func:`seed_table` for mean ± std.
    """
    cols = _group_cols(records, by, pool_seeds=False)
    _check_records(records, ("clean_correct", "success"))
    cc = records["clean_correct"].astype(bool)
    df = records.assign(_cc=cc, _rob=cc & ~records["success"].astype(bool),
                        _succ=records["success"].astype(bool) & cc)
    g = df.groupby(cols, sort=False)
    out = g.agg(n=("_cc", "size"), clean_accuracy=("_cc", "mean"),
                robust_accuracy=("_rob", "mean"), _n_cc=("_cc", "sum"),
                _n_succ=("_succ", "sum")).reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["success_rate"] = np.where(out["_n_cc"] > 0, out["_n_succ"] / out["_n_cc"], np.nan)
    out = out.drop(columns=["_n_cc", "_n_succ"])
    if "seed" not in out.columns:
        out.insert(1, "seed", 0)
    return _with_model_columns(out, records)


# --------------------------------------------------------------------- seed tables


def seed_table(df: pd.DataFrame, group_cols: Sequence[str], value_cols: Sequence[str], *,
               seed_col: str = "seed", sort: bool = False) -> pd.DataFrame:
    """Mean ± std over seeds, tidy.

    Rows are first averaged within each (group, seed), so per-sample records work as
    well as one row per run; then the per-seed values are summarised.

    Args:
        df: the data.
        group_cols: columns that define one table cell row (e.g. ``["model"]``).
        value_cols: numeric (or boolean) columns to summarise.
        seed_col: the column holding the seed (absent: every row is seed 0).
        sort: sort the groups; by default they keep their order of first appearance
            (the experiment's model order, say).

    Returns:
        One row per (group, quantity), quantities in the order of ``value_cols``:
        ``group_cols``, ``quantity``, ``mean``, ``std`` (sample std, ddof 1: NaN for a
        single seed) and ``n_seeds``.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    group_cols, value_cols = list(group_cols), list(value_cols)
    if not value_cols:
        raise ValueError("value_cols is empty: name at least one column")
    missing = [c for c in group_cols + value_cols if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks the column(s) {missing}; it has {list(df.columns)}")
    data = df if seed_col in df.columns else df.assign(**{seed_col: 0})
    data = data[group_cols + [seed_col] + value_cols].copy()
    data[value_cols] = data[value_cols].astype(np.float64)
    per_seed = data.groupby(group_cols + [seed_col], sort=sort)[value_cols].mean()
    long = per_seed.reset_index().melt(id_vars=group_cols + [seed_col], var_name="quantity",
                                       value_name="value").dropna(subset=["value"])
    out = long.groupby(group_cols + ["quantity"], sort=False)["value"].agg(
        mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan,
        n_seeds="count").reset_index()
    # Group order as first seen (or sorted), quantities in the order given.
    group_rank = out.groupby(group_cols, sort=False).ngroup()
    q_rank = out["quantity"].map({q: i for i, q in enumerate(value_cols)})
    out = out.assign(_g=group_rank, _q=q_rank).sort_values(["_g", "_q"], kind="stable")
    out = out.drop(columns=["_g", "_q"])
    out["n_seeds"] = out["n_seeds"].astype(int)
    return out.reset_index(drop=True)


def format_mean_std(mean: float, std: float, *, digits: int = 3, std_sig: int = 2,
                    pm: str = " ± ") -> str:
    """Format one cell in the paper's style: ``0.953 ± 0.0013``.

    The mean gets ``digits`` decimals; the std gets ``std_sig`` significant digits
    (at least ``digits`` decimals). A NaN std (one seed) prints the mean alone; a NaN
    mean prints ``"–"``.
    """
    if mean is None or not np.isfinite(mean):
        return "–"
    text = f"{mean:.{digits}f}"
    if std is None or not np.isfinite(std):
        return text
    if std == 0:
        return f"{text}{pm}{0:.{digits}f}"
    decimals = max(digits, std_sig - 1 - int(math.floor(math.log10(abs(std)))))
    return f"{text}{pm}{std:.{decimals}f}"


def format_seed_table(table: pd.DataFrame, *, index: Sequence[str] | str | None = None,
                      digits: int = 3, std_sig: int = 2, pm: str = " ± ",
                      seeds_column: bool = True) -> pd.DataFrame:
    """Pivot :func:`seed_table` output to a wide table of ``mean ± std`` strings.

    Args:
        table: output of :func:`seed_table`.
        index: the columns forming the row index (default: all group columns).
        digits, std_sig, pm: see :func:`format_mean_std`.
        seeds_column: add a ``seeds`` column with the seed count (``"2–3"`` if the
            quantities of a row differ).

    Returns:
        Rows = groups, columns = quantities (in their original order), string cells.
    """
    needed = ("quantity", "mean", "std", "n_seeds")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks {missing}: pass the output of seed_table")
    group_cols = [c for c in table.columns if c not in needed]
    if index is None:
        index = group_cols
    index = [index] if isinstance(index, str) else list(index)
    cells = table.assign(cell=[format_mean_std(m, s, digits=digits, std_sig=std_sig, pm=pm)
                               for m, s in zip(table["mean"], table["std"])])
    quantities = list(dict.fromkeys(table["quantity"]))
    wide = cells.pivot_table(index=index, columns="quantity", values="cell", aggfunc="first",
                             sort=False)
    wide = wide.reindex(columns=quantities).fillna("–")
    wide.columns.name = None
    if seeds_column:
        counts = cells.groupby(index, sort=False)["n_seeds"].agg(["min", "max"])
        wide["seeds"] = [str(lo) if lo == hi else f"{lo}–{hi}" for lo, hi in
                         counts.reindex(wide.index).itertuples(index=False)]
    return wide


def _flat(df: pd.DataFrame, index: bool) -> pd.DataFrame:
    """The index as ordinary leading columns (one per level), or dropped."""
    if not index:
        return df.reset_index(drop=True)
    if isinstance(df.index, pd.MultiIndex) or df.index.name is not None:
        return df.reset_index()
    return df


def _alignment(frame: pd.DataFrame) -> list[str]:
    """Text columns flush left; numbers, counts and ``mean ± std`` cells flush right."""
    def numeric(col: pd.Series) -> bool:
        if pd.api.types.is_numeric_dtype(col):
            return True
        text = col.astype(str)
        return bool(text.str.contains("±").any() or text.str.fullmatch(r"[\d.–\- ]+").all())
    return ["right" if numeric(frame[c]) else "left" for c in frame.columns]


def to_markdown(df: pd.DataFrame, *, index: bool = True) -> str:
    """Render a (formatted) table as GitHub Markdown (via ``tabulate``).

    A named or multi-level index becomes leading columns, one per level.
    """
    frame = _flat(df, index)
    return frame.to_markdown(index=False, colalign=_alignment(frame))


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def _latex_cell(value: Any) -> str:
    text = str(value)
    if " ± " in text:
        mean, std = text.split(" ± ", 1)
        return f"${mean} \\pm {std}$"
    text = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    return text.replace("–", "--")


def to_latex(df: pd.DataFrame, *, index: bool = True, caption: str | None = None,
             label: str | None = None) -> str:
    """Render a (formatted) table as a LaTeX ``booktabs`` tabular.

    Cells written ``a ± b`` become ``$a \\pm b$``; other text is escaped; a named or
    multi-level index becomes leading columns. Wrapped in a ``table`` environment
    when a ``caption`` or ``label`` is given.
    """
    frame = _flat(df, index)
    header = [_latex_cell(c) for c in frame.columns]
    spec = "".join(a[0] for a in _alignment(frame))
    lines = [f"\\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(header) + r" \\",
             r"\midrule"]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(_latex_cell(v) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    body = "\n".join(lines)
    if caption is None and label is None:
        return body + "\n"
    parts = [r"\begin{table}[t]", r"\centering"]
    if caption is not None:
        parts.append(f"\\caption{{{_latex_cell(caption)}}}")
    if label is not None:
        parts.append(f"\\label{{{label}}}")
    parts += [body, r"\end{table}"]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------ paired AUCs and the dip test


def paired_auc_difference(y: Any, score_a: Any, score_b: Any, *, n_boot: int = 1000,
                          seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """AUC(a) - AUC(b) for separating ``y == 1`` from ``y == 0``, on the same samples,
    with a paired percentile bootstrap: each replicate resamples successes and failures
    (stratified) and computes both AUCs on the same resample, so what the two scores
    share cancels.

    Returns:
        ``(difference, low, high)``; NaN when one class is missing. Identical scores give
        exactly ``(0, 0, 0)``.
    """
    y = np.asarray(y, dtype=np.float64)
    a = np.asarray(score_a, dtype=np.float64)
    b = np.asarray(score_b, dtype=np.float64)
    if not (y.shape == a.shape == b.shape and y.ndim == 1):
        raise ValueError(f"y, score_a and score_b must be 1-D of equal length, got "
                         f"{y.shape}, {a.shape}, {b.shape}")
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return math.nan, math.nan, math.nan
    diff = float(_auc_and_r(a, y)[0] - _auc_and_r(b, y)[0])
    if n_boot == 0:
        return diff, math.nan, math.nan
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    yb = np.concatenate([np.ones(n1), np.zeros(n0)])
    chunk = max(1, 2_000_000 // y.size)
    reps = []
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        idx = np.concatenate([pos[rng.integers(0, n1, (m, n1))],
                              neg[rng.integers(0, n0, (m, n0))]], axis=1)
        yy = np.broadcast_to(yb, idx.shape)
        reps.append(_auc_and_r(a[idx], yy)[0] - _auc_and_r(b[idx], yy)[0])
    lo, hi = _percentile_ci(np.concatenate(reps), level)
    return diff, float(lo), float(hi)


def paired_auc(records: pd.DataFrame, a: str = "clean_p_second", b: str = "clean_gap", *,
               sign_b: float = -1.0, by: Sequence[str] = ("model", "seed", "attack", "eps"),
               n_boot: int = 200, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per group (by default each model and seed), how well two clean statistics predict
    attack success among clean-correct samples, and their paired difference.

    ``sign_b=-1`` scores ``b`` reversed (a *small* logit gap predicts success).

    Returns:
        One row per group: the ``by`` columns, ``n``, ``n_success``, ``auc_a``,
        ``auc_b``, ``diff`` (= ``auc_a - auc_b``) with ``diff_low``/``diff_high`` from
        :func:`paired_auc_difference`.
    """
    _check_records(records, (*by, "clean_correct", "success", a, b))
    df = records[records["clean_correct"].astype(bool)]
    rows = []
    for key, sub in df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        y = sub["success"].to_numpy(np.float64)
        xa = sub[a].to_numpy(np.float64)
        xb = sign_b * sub[b].to_numpy(np.float64)
        row = dict(zip(by, key), n=len(y), n_success=int(y.sum()))
        if 0 < y.sum() < len(y):
            row["auc_a"] = float(_auc_and_r(xa, y)[0])
            row["auc_b"] = float(_auc_and_r(xb, y)[0])
            d, lo, hi = paired_auc_difference(y, xa, xb, n_boot=n_boot,
                                              seed=int(_group_rng(seed, key).integers(2**31)),
                                              level=level)
        else:
            row["auc_a"] = row["auc_b"] = np.nan
            d = lo = hi = np.nan
        row.update(diff=d, diff_low=lo, diff_high=hi)
        rows.append(row)
    return pd.DataFrame(rows)


def _dip_pvalue(n: int, dip: float) -> float:
    import warnings

    from diptest.consts import Consts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(Consts.compute_pval_interpolation(n, dip))


def dip_test(x: Any, level: float = 0.95) -> tuple[float, float, float]:
    """Hartigan & Hartigan's dip test of unimodality (the ``diptest`` package).

    Returns:
        ``(dip, p_value, critical)``: the dip statistic, its p-value against the
        uniform (least favourable unimodal) null, and the null's ``level`` quantile at
        this sample size, so ``dip > critical`` rejects unimodality at ``1 - level``.
    """
    from diptest import dipstat

    values = np.asarray(x, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = values.size
    if n < 4:
        return math.nan, math.nan, math.nan
    dip = float(dipstat(values))
    p = _dip_pvalue(n, dip)
    lo, hi = 0.0, 0.5  # the dip lies in [0, 1/4]; p falls as the dip grows
    for _ in range(60):
        mid = (lo + hi) / 2
        if _dip_pvalue(n, mid) > 1 - level:
            lo = mid
        else:
            hi = mid
    return dip, p, hi


def _dip_draws(n: int, weights: Sequence[float], means: Sequence[float],
               sds: Sequence[float], level: float, n_sim: int,
               seed: int) -> tuple[np.ndarray, float]:
    """``n_sim`` dip statistics of samples of size ``n`` from a Gaussian mixture, and
    the ``level`` critical value at ``n`` (shared by :func:`dip_power` and
    :func:`dip_excess`)."""
    from diptest import dipstat

    w = np.asarray(weights, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    sd = np.asarray(sds, dtype=np.float64)
    if not (w.shape == mu.shape == sd.shape and w.ndim == 1 and w.size >= 1):
        raise ValueError(f"weights, means and sds must be 1-D of one length; got {w.shape}, "
                         f"{mu.shape}, {sd.shape}")
    if (w < 0).any() or not math.isclose(w.sum(), 1.0) or (sd <= 0).any():
        raise ValueError(f"weights={tuple(weights)} must be >= 0 and sum to 1, and "
                         f"sds={tuple(sds)} must be > 0")
    if n < 4 or n_sim < 1:
        raise ValueError(f"n={n!r} must be >= 4 and n_sim={n_sim!r} >= 1")
    rng = np.random.default_rng(seed)
    critical = dip_test(rng.normal(size=n), level)[2]  # depends on n and level only
    dips = np.empty(n_sim)
    for i in range(n_sim):
        component = rng.choice(w.size, size=n, p=w)
        dips[i] = float(dipstat(rng.normal(mu[component], sd[component])))
    return dips, critical


def dip_power(n: int = 10_000, *, weights: Sequence[float] = (0.7, 0.3),
              means: Sequence[float] = (0.0, 3.0), sds: Sequence[float] = (1.0, 1.0),
              level: float = 0.95, n_sim: int = 200, seed: int = 0) -> float:
    """The power of :func:`dip_test` on **one** sample against a Gaussian mixture, by
    simulation.

    Draws ``n_sim`` samples of size ``n`` from ``sum_i weights[i] * N(means[i], sds[i]^2)``
    and returns the share whose dip exceeds the ``level`` critical value at ``n``. The dip
    is invariant to shifts and scales, so a mixture in standard units stands for any
    data on the same shape. The default, ``0.7 N(0, 1) + 0.3 N(3, 1)``, has two peaks
    (its density dips about 10 % below the smaller one between them), and at
    ``n = 10,000`` the test rejects it well under 5 % of the time: a dip test that does
    not reject has not shown one peak. A claim decided over seeds by the mean excess
    (``sovr-two-peaks``) has the power of its own test at the alternative's
    :func:`dip_excess`, not this single-sample power (methods review 6, point 3).
    """
    dips, critical = _dip_draws(n, weights, means, sds, level, n_sim, seed)
    return float((dips > critical).mean())


def dip_excess(n: int = 10_000, *, weights: Sequence[float] = (0.7, 0.3),
               means: Sequence[float] = (0.0, 3.5), sds: Sequence[float] = (1.0, 1.0),
               level: float = 0.95, n_sim: int = 200, seed: int = 0) -> float:
    """The population value, at sample size ``n``, of the dip's excess over its
    ``level`` critical value (``dip - critical``, as :func:`dip_table` reports it) under
    a Gaussian mixture: the mean over ``n_sim`` simulated samples.

    This is the effect a claim tested on the per-seed excess sees when the margins
    follow that mixture: ``0.7 N(0,1) + 0.3 N(3.5,1)`` gives about +0.005 at
    ``n = 10,000`` (two separate peaks), ``0.7 N(0,1) + 0.3 N(3,1)`` about -0.002 (two
    peaks with a shallow trough, below the critical value on average).
    """
    dips, critical = _dip_draws(n, weights, means, sds, level, n_sim, seed)
    return float(dips.mean() - critical)


def dip_table(stats_df: pd.DataFrame, column: str = "logit_margin", *,
              by: Sequence[str] = ("model", "seed")) -> pd.DataFrame:
    """:func:`dip_test` per group: ``n``, ``dip``, ``p_value``, ``critical`` and
    ``excess`` (= dip - critical; positive rejects unimodality at 5 %)."""
    _check_records(stats_df, (column, *by))
    rows = []
    for key, sub in stats_df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        dip, p, crit = dip_test(sub[column])
        rows.append(dict(zip(by, key), n=len(sub), dip=dip, p_value=p, critical=crit,
                         excess=dip - crit))
    return pd.DataFrame(rows)


def rank_agreement_by_seed(stats_df: pd.DataFrame, reference: str, others: Sequence[str], *,
                           value: str = "p_top1") -> pd.DataFrame:
    """Do two models agree on which samples are confident? (Seguin et al. 2021)

    Spearman rank correlation of ``value`` over the same samples between ``reference``
    and each model in ``others``, per seed: one row per (other model, reference seed)
    with ``partner_seed`` and ``spearman``. For ``reference`` itself, seed ``s`` is
    paired with the next seed (cyclically): the agreement of two independently trained
    copies."""
    _check_records(stats_df, ("model", "seed", "sample", value))
    wide = stats_df.pivot_table(index="sample", columns=["model", "seed"], values=value)
    ref_seeds = sorted(wide[reference].columns)
    rows = []
    for other in others:
        for i, s in enumerate(ref_seeds):
            if other == reference:
                if len(ref_seeds) < 2:
                    break
                t = ref_seeds[(i + 1) % len(ref_seeds)]
            elif s in wide[other].columns:
                t = s
            else:
                continue
            rho = sps.spearmanr(wide[(reference, s)], wide[(other, t)]).statistic
            rows.append({"other": other, "seed": int(s), "partner_seed": int(t),
                         "spearman": float(rho)})
    return pd.DataFrame(rows, columns=["other", "seed", "partner_seed", "spearman"])


def describe_means(df: pd.DataFrame, value: str, names: Sequence[str] | None = None, *,
                   by: str = "model", digits: int = 3, scale: float = 1.0,
                   unit: str = "") -> str:
    """``"CE 0.880, GCE 0.868, DRSL 0.879"``: the mean over seeds of ``value`` per model
    (rows are averaged within each seed first), for a claim's context."""
    _check_records(df, (by, value))
    cols = [by, "seed"] if "seed" in df.columns else [by]
    means = df.groupby(cols, sort=False)[value].mean().groupby(level=0, sort=False).mean()
    names = list(means.index) if names is None else list(names)
    suffix = f" {unit}" if unit else ""
    return ", ".join(f"{n} {means[n] * scale:.{digits}f}{suffix}" for n in names
                     if n in means.index)


def attack_difference(robust: pd.DataFrame, a: str, b: str, *,
                      value: str = "robust_accuracy") -> pd.DataFrame:
    """``value`` under attack ``a`` minus under attack ``b``, per model and seed (same
    samples, e.g. PGD vs AutoAttack on the fixed subset at one eps).

    Returns:
        Columns ``model``, ``seed``, ``difference`` (models and seeds that have both).
    """
    _check_records(robust, ("model", "seed", "attack", value))
    wide = robust.pivot_table(index=["model", "seed"], columns="attack", values=value,
                              sort=False)
    for name in (a, b):
        if name not in wide.columns:
            raise ValueError(f"attack={name!r} is not in the data; it has {list(wide.columns)}")
    out = (wide[a] - wide[b]).dropna().rename("difference").reset_index()
    return out


# --------------------------------------------------------------------- margins


def with_margins(records: pd.DataFrame) -> pd.DataFrame:
    """The records with ``clean_margin`` and ``adv_margin``: the logit margin
    ``z_y - max_{k != y} z_k`` before and after the attack.

    The records keep the softmax, not the logits, but the margin follows exactly: where
    the prediction is the true class the margin is the logit gap (top1 - top2), and
    elsewhere it is ``log p_y - log p_top`` (the log-sum-exp cancels). A true-class
    probability that underflowed to 0 (a logit deficit above about 745) gives ``-inf``;
    plots drop non-finite values.
    """
    needed = ["label"] + [f"{s}_{c}" for s in ("clean", "adv")
                          for c in ("pred", "gap", "p_true", "p_top")]
    _check_records(records, needed)
    out = {}
    y = records["label"].to_numpy()
    for side in ("clean", "adv"):
        right = records[f"{side}_pred"].to_numpy() == y
        with np.errstate(divide="ignore"):
            wrong = (np.log(records[f"{side}_p_true"].to_numpy(np.float64))
                     - np.log(records[f"{side}_p_top"].to_numpy(np.float64)))
        out[f"{side}_margin"] = np.where(right, records[f"{side}_gap"].to_numpy(np.float64),
                                         wrong)
    return records.assign(**out)


# --------------------------------------------------------------------- compare

#: The metrics :func:`compare` accepts: each seed's value is the mean of a per-sample
#: indicator over the selected records (fractions; shown times ``scale``).
COMPARE_METRICS: dict[str, str] = {
    "robust_accuracy": "classified correctly both clean and under the attack, over all "
                       "attacked samples (needs attack and eps)",
    "success_rate": "the attack flips a clean-correct sample, over the clean-correct "
                    "samples (needs attack and eps)",
    "clean_accuracy": "classified correctly on the clean input (attack and eps optional: "
                      "every attack row repeats the clean prediction)",
}

#: What :func:`compare` says about the family of every row it returns.
EXPLORATORY_NOTE = ("exploratory: a comparison outside the report's declared Holm family; "
                    "its bounds are not adjusted for multiplicity (k = 1)")


def _selection(records: pd.DataFrame, which: str | Mapping[str, Any], by: str, name: str
               ) -> tuple[pd.Series, str]:
    """Rows of one side of a comparison (a value of ``by``, or ``{column: value}``)."""
    spec = dict(which) if isinstance(which, Mapping) else {by: which}
    if not spec:
        raise ValueError(f"{name}={which!r}: give a value of {by!r} or a non-empty "
                         "{column: value} selection")
    _check_records(records, spec)
    mask = pd.Series(True, index=records.index)
    for col, value in spec.items():
        mask &= records[col] == value
    if not mask.any():
        absent = [(c, v) for c, v in spec.items() if not (records[c] == v).any()]
        if absent:
            col, value = absent[0]
            have = ", ".join(repr(v) for v in dict.fromkeys(records[col]))
            raise ValueError(f"{name}={which!r}: {col}={value!r} is not in the records; "
                             f"{col} has {have}")
        raise ValueError(f"{name}={which!r} selects no records: no row has all of {spec}")
    label = (str(which) if not isinstance(which, Mapping)
             else ", ".join(f"{c}={v}" for c, v in spec.items()))
    return mask, label


def _metric_rows(records: pd.DataFrame, metric: str) -> pd.Series:
    """The per-sample indicator behind ``metric`` (NaN where it is undefined)."""
    cc = records["clean_correct"].astype(bool)
    if metric == "clean_accuracy":
        return cc.astype(float)
    success = records["success"].astype(bool)
    if metric == "robust_accuracy":
        return (cc & ~success).astype(float)
    return (success & cc).astype(float).where(cc)


def _seed_means(values: pd.DataFrame, seed_col: str) -> dict[int, float]:
    means = values.groupby(seed_col)["_value"].mean().dropna()
    return {int(s): float(v) for s, v in means.items()}


def compare(records: pd.DataFrame, a: str | Mapping[str, Any], b: str | Mapping[str, Any],
            *, sesoi: float, metric: str = "robust_accuracy", attack: str | None = None,
            eps: float | None = None, direction: str = "greater", by: str = "model",
            seed_col: str = "seed", why: str = "chosen by the user for this comparison", scale: float = 100.0,
            units: str = "pp", digits: int = 2, image_var: bool = True,
            alpha: float | None = None) -> pd.DataFrame:
    """A paired comparison of two models (or groups) on one metric, judged by the claims
    rule: the same tests, bounds and verdicts as every row of the claims report.

    The unit of replication is the seed: each seed contributes ``metric(a) - metric(b)``
    measured on the records of that seed (models trained with the same seed are paired,
    and rows of several models on one side are averaged within the seed). With
    ``image_var`` the image-sampling variance of a fixed attacked subset enters the
    standard error, as in the report (:func:`claims.image_variance`).

    The row is **exploratory**: it stands outside the report's declared Holm family
    (its bounds are not adjusted for the family), and it is not added to the
    declaration, so it cannot change the declaration's hash or make a confirmatory
    report exploratory. To make it part of a report, declare a :class:`claims.Claim`
    with :func:`claims.register` before the run.

    Args:
        records: attack records (``AttackResult.records``): ``seed``, ``clean_correct``,
            ``success``, the columns of the selections, and ``attack``/``eps`` when given.
        a, b: the two sides: a value of ``by`` (a model name), or a selection
            ``{column: value}`` such as ``{"loss": "drsl", "seed_group": 1}``.
        sesoi: the smallest effect of interest in display units (percentage points with
            the default ``scale``); for ``direction="equivalent"`` the margin.
        metric: one of :data:`COMPARE_METRICS`.
        attack, eps: the attack setting (eps matched up to float rounding); needed for
            ``robust_accuracy`` and ``success_rate``.
        direction: ``"greater"`` (a exceeds b), ``"less"`` or ``"equivalent"``.
        by: the column ``a`` and ``b`` name values of.
        seed_col: the column that pairs the two sides. Models evaluated with
            ``evaluation.foreign`` carry seed -1; give each copy's training seed in a
            column of your own (``records.assign(run=...)``) and name it here.
        why: one line that justifies the SESOI (kept in the row's claim).
        scale, units, digits: display units per fraction, their name, decimals.
        image_var: add the image-sampling variance of the shared subset.
        alpha: one-sided level (default :data:`claims.ALPHA`).

    Returns:
        One row of :func:`claims.evidence_frame` (``verdict``, ``mean``, ``low``,
        ``high``, ``p_holds``, ``replication``, ``power``, ``note`` ...) with ``a``,
        ``b``, ``metric``, ``attack``, ``eps`` and ``exploratory`` (always True) in
        front; ``note`` starts with :data:`EXPLORATORY_NOTE`.

    Raises:
        ValueError: an unknown metric or direction, a selection without records, an
            attack or eps that was not run, seeds that do not pair (one side has seeds
            the other lacks), or fewer than two paired seeds.
    """
    from . import claims

    check_choice("metric", metric, tuple(COMPARE_METRICS))
    check_choice("direction", direction, claims.DIRECTIONS)
    _check_records(records, (seed_col, "clean_correct", "success"))
    needs_attack = metric != "clean_accuracy"
    if needs_attack and (attack is None or eps is None):
        raise ValueError(f"metric={metric!r} needs attack and eps; got attack={attack!r}, "
                         f"eps={eps!r}")
    sub = records
    if attack is not None:
        _check_records(records, ("attack",))
        check_choice("attack", attack, tuple(dict.fromkeys(records["attack"].astype(str))))
        sub = sub[sub["attack"] == attack]
    if eps is not None:
        _check_records(records, ("eps",))
        match = np.isclose(sub["eps"].to_numpy(float), float(eps), rtol=1e-6, atol=1e-12)
        if not match.any():
            have = ", ".join(f"{e:g}" for e in np.sort(sub["eps"].unique()))
            raise ValueError(f"eps={eps!r} was not run"
                             + (f" with attack {attack!r}" if attack else "")
                             + f"; eps values present: {have}")
        sub = sub[match]
    mask_a, label_a = _selection(sub, a, by, "a")
    mask_b, label_b = _selection(sub, b, by, "b")
    if (mask_a & mask_b).any():
        raise ValueError(f"a={a!r} and b={b!r} select some of the same records; the two "
                         "sides of a comparison must be disjoint")
    side = np.where(mask_a, "a", np.where(mask_b, "b", ""))
    rows = sub.assign(_side=side, _value=_metric_rows(sub, metric))
    rows = rows[rows["_side"] != ""]
    va = _seed_means(rows[rows["_side"] == "a"], seed_col)
    vb = _seed_means(rows[rows["_side"] == "b"], seed_col)
    if set(va) != set(vb):
        raise ValueError(f"seeds do not pair: a={label_a!r} has seeds {sorted(va)}, "
                         f"b={label_b!r} has {sorted(vb)}; select records whose seeds "
                         "match (a paired comparison needs both models of every seed)")
    if len(va) < 2:
        hint = (" (models wrapped with evaluation.foreign carry seed -1: put each copy's "
                "seed in a column and pass seed_col)" if set(va) == {-1} else "")
        raise ValueError(f"a paired comparison needs at least two seeds; a={label_a!r} and "
                         f"b={label_b!r} share {len(va)} ({sorted(va)} in column "
                         f"{seed_col!r}){hint}")
    diffs = {s: va[s] - vb[s] for s in sorted(va)}
    ivar = 0.0
    if image_var and "sample" in rows.columns:
        ivar = claims.image_variance(rows, "_value", "a", "b", by="_side",
                                     seed_col=seed_col)
    setting = "" if attack is None else f" under {attack}" + (
        "" if eps is None else f" at eps {float(eps):g}")
    claim = claims.Claim(
        id=f"compare: {label_a} vs {label_b}, {metric}{setting}", notebook="",
        source="stats.compare (a user's comparison)",
        statement=f"{metric}{setting}: {label_a} is {direction}"
                  + (" to " if direction == "equivalent" else " than ") + label_b,
        estimand=f"{metric}{setting}, {label_a} - {label_b}", direction=direction,
        sesoi=float(sesoi), why=why, scale=scale, units=units, digits=digits,
        primary=False, role="finding")
    mean_a, mean_b = np.mean(list(va.values())), np.mean(list(vb.values()))
    detail = (f"{metric}{setting}: {label_a} {mean_a * scale:.{digits}f}, {label_b} "
              f"{mean_b * scale:.{digits}f} {units} (mean over {len(diffs)} seeds)").rstrip()
    level = claims.ALPHA if alpha is None else alpha
    with _declared_for_now(claims, claim):
        evidence = claims.Evidence(claim.id, diffs, detail, image_var=ivar)
        row = claims.evidence_frame([evidence], level, family=[])
    note = row.loc[0, "note"]
    row.loc[0, "note"] = EXPLORATORY_NOTE + (f"; {note}" if note else "")
    front = {"a": label_a, "b": label_b, "metric": metric, "attack": attack,
             "eps": None if eps is None else float(eps), "exploratory": True}
    for i, (col, value) in enumerate(front.items()):
        row.insert(i, col, [value])
    return row


@contextlib.contextmanager
def _declared_for_now(claims: Any, claim: Any) -> Iterator[None]:
    """``claim`` declared while the block runs, and the registry as it was afterwards:
    the claims machinery judges only declared claims, and an ad-hoc comparison must not
    enter the declaration (its hash decides whether a report is confirmatory)."""
    before = claims.CLAIMS[claim.id] if claim.id in claims.CLAIMS else None
    claims.register(claim, replace=True)
    try:
        yield
    finally:
        if before is None:
            claims.CLAIMS.unregister(claim.id)
        else:
            claims.register(before, replace=True)
