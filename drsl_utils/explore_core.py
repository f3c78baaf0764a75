"""The numbers behind the explorers, with nothing drawn.

An explorer shows one *selection* at a time: for the sweep explorer an attack (and any
other control), a model and a point of the sweep; for the sample explorer a model and
a sample. The cores here turn a selection into a plain *view*, every number and label
a renderer needs, so the three renderers of ``explore`` (a matplotlib figure, the live
widget and the kernel-free HTML figure) cannot disagree: they draw the same view.

The numbers come from where the project defines them, never recomputed here:

- robust accuracy and the success rate from :func:`stats.robust_accuracy` (a sample
  is robust when it is correct both clean and under attack), averaged over seeds by
  :func:`stats.seed_table`;
- the share of successful attacks that land on the clean runner-up, and chance
  ``1/(K-1)``, from :func:`stats.second_class_fraction_ci`;
- a sample's prediction, runner-up, ``p2`` and where its attack landed from the
  attack records (``evaluation.evaluate``), which ranked the softmax once;
- colours from ``plots`` (:func:`plots.model_styles`, :func:`plots.class_color`), so an
  explorer looks like the saved figures.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import stats
from .evaluation import MODEL_COLUMNS
from .plots import ADVERSARIAL_COLOR, Style, class_color, model_styles

__all__ = ["P2_BINS", "SweepCore", "SweepView", "SampleCore", "SampleView", "fmt"]

#: Bin edges of the ``p2`` histograms (p2 of a correctly classified sample is <= 1/2).
P2_BINS = np.linspace(0.0, 0.5, 26)

_SWEEP_COLUMNS = ("label", "adv_pred", "clean_correct", "success", "adv_is_clean_second",
                  "clean_p_second", "adv_p_second", "seed")
_SAMPLE_COLUMNS = ("model_key", "attack", "eps", "sample", "label", "clean_pred",
                   "clean_second", "adv_pred", "clean_p_top", "clean_p_second", "success",
                   "adv_is_clean_second", "linf")


def fmt(value: Any) -> str:
    """How a control's value is shown (and keyed in the kernel-free figure)."""
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def _check_columns(df: pd.DataFrame, name: str, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(df.columns)}")


def plain(caption: str) -> str:
    """A caption without its HTML markup (for matplotlib titles)."""
    return html.unescape(re.sub(r"<[^>]+>", "", caption))


# ----------------------------------------------------------------------------- sweep


@dataclass(frozen=True)
class SweepView:
    """Everything one selection of the sweep explorer shows.

    Attributes:
        selection: column -> chosen value, in control order (controls, line, sweep).
        sweep, line: the sweep and line column names.
        curves: line value -> (sweep values, robust accuracy: mean over seeds), for
            every line under the chosen controls.
        styles: line value -> :class:`plots.Style` (colour, line style, marker).
        robust_accuracy, robust_accuracy_std, seeds, success_rate: of the selected
            cell (std NaN for one seed).
        successes: successful attacks in the cell (all seeds).
        runner_up_share: of those, the share that land on the clean runner-up (NaN
            without successes); chance: 1/(K-1).
        p2_before, p2_after: share of clean-correct samples per :data:`P2_BINS` bin.
        landing_x, landing_share: the runner-up share at every sweep value of the
            selected line (NaN where no attack succeeded).
        caption: one sentence (with ``<b>`` markup) saying all of the above.
    """

    selection: dict[str, Any]
    sweep: str
    line: str
    curves: dict[Any, tuple[list[float], list[float]]]
    styles: dict[Any, Style]
    robust_accuracy: float
    robust_accuracy_std: float
    seeds: int
    success_rate: float
    successes: int
    runner_up_share: float
    chance: float
    p2_before: np.ndarray
    p2_after: np.ndarray
    landing_x: list[Any]
    landing_share: list[float]
    caption: str

    def summary(self) -> dict[str, Any]:
        """The selection and its numbers as one flat dict."""
        return {**self.selection, "robust_accuracy": self.robust_accuracy,
                "robust_accuracy_std": self.robust_accuracy_std, "seeds": self.seeds,
                "success_rate": self.success_rate, "successes": self.successes,
                "runner_up_share": self.runner_up_share, "chance": self.chance}


class SweepCore:
    """Turns a selection of (controls, line, sweep value) into a :class:`SweepView`.

    Args:
        records: per-sample attack records (``evaluation.evaluate``'s ``records``),
            possibly several attacks and models concatenated, plus any extra column
            named by ``sweep``, ``line`` or ``controls``.
        sweep: the numeric column along which robust accuracy is drawn (``"eps"``, or
            ``"tau"`` in a tau sweep).
        line: the column whose values are drawn as separate lines (``"model"``).
        controls: further columns chosen from a list each (``("attack",)``).
        num_classes: K, for chance 1/(K-1); default from the records
            (``records.attrs["num_classes"]``, else the largest class index seen + 1).
    """

    def __init__(self, records: pd.DataFrame, *, sweep: str = "eps", line: str = "model",
                 controls: Sequence[str] = ("attack",), num_classes: int | None = None
                 ) -> None:
        if not isinstance(records, pd.DataFrame) or records.empty:
            raise ValueError("records must be a non-empty DataFrame of attack records")
        self.sweep, self.line, self.controls = sweep, line, tuple(controls)
        self.order = (*self.controls, line, sweep)
        if len(set(self.order)) != len(self.order):
            raise ValueError(f"sweep, line and controls must be distinct columns; "
                             f"got {list(self.order)}")
        _check_columns(records, "records", [*self.order, *_SWEEP_COLUMNS])
        keys = list(self.order)
        # The model columns (loss, its parameters, training regime), where present, go
        # with the selection: its tables carry them and its colours are read from them.
        extra = [c for c in MODEL_COLUMNS if c in records.columns and c not in keys]
        rec = records[[*keys, *_SWEEP_COLUMNS, *extra]].reset_index(drop=True)
        rec.attrs = dict(records.attrs)
        robust = stats.robust_accuracy(rec, by=keys)
        table = stats.seed_table(robust, keys, ["robust_accuracy", "success_rate"])
        self._seed = {q: t.set_index(keys)[["mean", "std", "n_seeds"]]
                      for q, t in table.groupby("quantity", sort=False)}
        share = stats.second_class_fraction_ci(rec, by=keys, num_classes=num_classes)
        self._share = share.set_index(keys)
        self.chance = float(share["chance"].iloc[0])
        self._groups = {(g if isinstance(g, tuple) else (g,)): idx for g, idx in
                        rec.groupby(keys, sort=False, dropna=False).indices.items()}
        self._ok = rec["clean_correct"].to_numpy(bool)
        self._p2 = rec[["clean_p_second", "adv_p_second"]].to_numpy(float)
        self._combos = rec[keys].drop_duplicates().reset_index(drop=True)
        self.styles = model_styles(list(pd.unique(rec[line])), rec, line)
        self.lines = list(pd.unique(rec[line]))

    # ---------------------------------------------------------------- selections

    def options(self, column: str, selection: Mapping[str, Any]) -> list[Any]:
        """The values ``column`` can take given the choices before it in
        :attr:`order` (sweep values sorted, others in the order of the records)."""
        if column not in self.order:
            raise ValueError(f"column={column!r} is not one of {list(self.order)}")
        df = self._combos
        for c in self.order[: self.order.index(column)]:
            df = df[df[c] == selection[c]]
        values = list(pd.unique(df[column]))
        return sorted(values) if column == self.sweep else values

    def default(self) -> dict[str, Any]:
        """The first view: the first combination, the middle of the sweep."""
        first = self._combos.iloc[0]
        sel = {c: first[c] for c in self.order[:-1]}
        values = self.options(self.sweep, sel)
        sel[self.sweep] = values[len(values) // 2]
        return sel

    def resolve(self, selection: Mapping[str, Any], changes: Mapping[str, Any]
                ) -> dict[str, Any]:
        """``selection`` with ``changes`` applied; later columns fall back to their
        nearest valid value. Raises ValueError for an unknown column or a value the
        records do not have."""
        for col in changes:
            if col not in self.order:
                raise ValueError(f"{col!r} is not a control; choose from {list(self.order)}")
        out = dict(selection)
        for col in self.order:
            opts = self.options(col, out)
            if col in changes:
                value = changes[col]
                match = [o for o in opts if o == value or (
                    isinstance(o, float | np.floating) and isinstance(value, int | float)
                    and np.isclose(o, value))]
                if not match:
                    raise ValueError(f"{col}={value!r} is not available here; "
                                     f"choose one of {[fmt(o) for o in opts]}")
                out[col] = match[0]
            elif out.get(col) not in opts:
                if col == self.sweep and opts and out.get(col) is not None:
                    out[col] = min(opts, key=lambda o: abs(o - out[col]))
                else:
                    out[col] = opts[0]
        return out

    def selections(self) -> Iterator[dict[str, Any]]:
        """Every selection the records allow (the kernel-free figure's states)."""
        for row in self._combos.itertuples(index=False):
            yield dict(zip(self.order, row))

    # ---------------------------------------------------------------- numbers

    def _seed_stat(self, quantity: str, key: tuple) -> tuple[float, float, int]:
        try:
            row = self._seed[quantity].loc[key]
        except KeyError:  # seed_table drops a group whose value is NaN for every seed
            return float("nan"), float("nan"), 0
        return float(row["mean"]), float(row["std"]), int(row["n_seeds"])

    def _landing(self, key: tuple) -> float:
        return float(self._share.loc[key, "fraction"])

    def view(self, selection: Mapping[str, Any]) -> SweepView:
        """The numbers of one selection (see :class:`SweepView`)."""
        sel = {c: selection[c] for c in self.order}
        key = tuple(sel[c] for c in self.order)
        if key not in self._groups:
            raise ValueError(f"no records for {sel}")
        fixed = key[: len(self.controls)]
        curves = {}
        for name in self.options(self.line, sel):
            xs = self.options(self.sweep, {**sel, self.line: name})
            curves[name] = (xs, [self._seed_stat("robust_accuracy", (*fixed, name, x))[0]
                                 for x in xs])
        robust, robust_std, seeds = self._seed_stat("robust_accuracy", key)
        success_rate = self._seed_stat("success_rate", key)[0]
        idx = self._groups[key]
        ok = idx[self._ok[idx]]
        n = max(1, len(ok))
        before = np.histogram(self._p2[ok, 0], P2_BINS)[0] / n
        after = np.histogram(self._p2[ok, 1], P2_BINS)[0] / n
        xs = curves[sel[self.line]][0]
        landing = [self._landing((*key[:-1], x)) for x in xs]
        share = self._landing(key)
        successes = int(self._share.loc[key, "n_success"])
        return SweepView(sel, self.sweep, self.line, curves, self.styles, robust,
                         robust_std, seeds, success_rate, successes, share, self.chance,
                         before, after, xs, landing,
                         self._caption(sel, robust, robust_std, seeds, successes,
                                       success_rate, share))

    def _caption(self, sel: Mapping[str, Any], robust: float, std: float, seeds: int,
                 successes: int, success_rate: float, share: float) -> str:
        what = ", ".join(f"{c}={fmt(v)}" for c, v in sel.items())
        spread = f" ± {std:.3f}" if np.isfinite(std) else ""
        rate = f"{100 * success_rate:.1f}%" if np.isfinite(success_rate) else "n/a"
        landed = (f"{100 * share:.1f}% of them land on the clean runner-up (chance "
                  f"{100 * self.chance:.1f}%)." if np.isfinite(share) else "none to place.")
        return (f"<b>{html.escape(what)}</b>: robust accuracy {robust:.3f}{spread} (mean "
                f"± std over {seeds} seed(s)); {successes} successful attacks ({rate} of "
                f"clean-correct samples), {landed}")


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class SampleView:
    """Everything the sample panel shows for one (model, sample).

    Attributes:
        model, sample: the selection.
        info: the sample's facts (:meth:`SampleCore.info`).
        clean_softmax, adv_softmax: ``[K]`` softmax before and after the attack.
        clean_image, adv_image: ``[H, W, C]`` in [0, 1]; delta: their difference.
        color: the model's colour (the clean bars), adv_color the adversarial bars'.
        caption: one sentence (with ``<b>`` markup).
    """

    model: str
    sample: int
    info: dict[str, Any]
    clean_softmax: np.ndarray
    adv_softmax: np.ndarray
    clean_image: np.ndarray
    adv_image: np.ndarray
    delta: np.ndarray
    color: str
    adv_color: str
    caption: str


def _softmax(logits: np.ndarray) -> np.ndarray:
    from scipy.special import softmax

    return softmax(np.asarray(logits, dtype=np.float64), axis=1)


class SampleCore:
    """Turns a (model, sample) selection into a :class:`SampleView`.

    Args:
        result: the ``evaluation.AttackResult`` the panels were drawn from (a test set
            small enough to keep its images, see ``evaluation.ADV_IMAGES_MAX``).
        panels: ``embed.UmapPanel`` objects (``experiments.umap_panels``), one per model.
        keys: panel name -> the model key whose records the panel shows.
        attack, eps: the attack and radius the panels' adversarial points come from.
        class_names: class labels for the bars and captions.
    """

    def __init__(self, result: Any, panels: Sequence[Any], keys: Mapping[str, str], *,
                 attack: str, eps: float, class_names: Sequence[str] | None = None) -> None:
        if not panels:
            raise ValueError("panels is empty: give at least one UmapPanel")
        if result.images is None:
            raise ValueError("the attack result kept no images (its test set is larger "
                             "than evaluation.ADV_IMAGES_MAX); explore a subset result")
        missing = [p.name for p in panels if p.name not in keys]
        if missing:
            raise ValueError(f"keys has no model key for panel(s) {missing}")
        _check_columns(result.records, "result.records", _SAMPLE_COLUMNS)
        self.result, self.attack, self.eps = result, attack, float(eps)
        self.panels = {p.name: p for p in panels}
        self.keys = dict(keys)
        k = result.clean_logits(self.keys[panels[0].name]).shape[1]
        self.class_names = (list(class_names) if class_names is not None
                            else [str(i) for i in range(k)])
        if len(self.class_names) != k:
            raise ValueError(f"class_names has {len(self.class_names)} names for {k} classes")
        self.images = np.asarray(result.images)
        self.labels = np.asarray(result.labels)
        self.styles = model_styles(list(self.panels), getattr(result, "models", None))
        self._cache: dict[str, dict[str, np.ndarray]] = {}

    def _data(self, model: str) -> dict[str, np.ndarray]:
        if model not in self.panels:
            raise ValueError(f"model={model!r} is not one of {list(self.panels)}")
        if model not in self._cache:
            key = self.keys[model]
            rec = self.result.records
            rec = rec[(rec["model_key"] == key) & (rec["attack"] == self.attack)
                      & np.isclose(rec["eps"], self.eps)].sort_values("sample")
            if len(rec) != len(self.labels):
                raise ValueError(f"the records of {model!r} ({self.attack}, eps="
                                 f"{self.eps:g}) have {len(rec)} rows for "
                                 f"{len(self.labels)} samples")
            data = {c: rec[c].to_numpy() for c in _SAMPLE_COLUMNS[3:]}
            data["clean"] = _softmax(self.result.clean_logits(key))
            data["adv"] = _softmax(self.result.adv_logits(key, self.attack, self.eps))
            data["adv_images"] = np.asarray(self.result.adv_images(key, self.attack,
                                                                   self.eps))
            self._cache[model] = data
        return self._cache[model]

    def candidates(self, model: str, landed_on_runner_up: bool | None = None) -> np.ndarray:
        """Successfully attacked samples of ``model``; with ``landed_on_runner_up``,
        only those whose attack did (True) or did not (False) land on the clean
        runner-up."""
        d = self._data(model)
        ok = d["success"].astype(bool)
        if landed_on_runner_up is not None:
            ok &= d["adv_is_clean_second"].astype(bool) == landed_on_runner_up
        return d["sample"][ok].astype(int)

    def fixed_samples(self, model: str, n: int = 60) -> list[int]:
        """A fixed set of ``n`` samples of ``model`` for the kernel-free figure, the
        instructive ones first: up to a third whose attack missed the runner-up, up to
        a half that landed on it, then the rest in index order; sorted."""
        chosen: list[int] = []
        for group, cap in ((self.candidates(model, False), n // 3),
                           (self.candidates(model, True), n // 2),
                           (np.arange(len(self.labels)), n)):
            room = min(cap, n - len(chosen))
            chosen += [int(i) for i in group if int(i) not in chosen][:max(0, room)]
        return sorted(chosen)

    def info(self, model: str, i: int) -> dict[str, Any]:
        """What the sample panel says about sample ``i`` of ``model``."""
        i = int(i)
        if not 0 <= i < len(self.labels):
            raise ValueError(f"sample {i} is out of range 0..{len(self.labels) - 1}")
        d = self._data(model)
        name = self.class_names
        return {"model": model, "sample": i, "label": name[int(d["label"][i])],
                "clean_pred": name[int(d["clean_pred"][i])],
                "clean_p_top": float(d["clean_p_top"][i]),
                "clean_p2": float(d["clean_p_second"][i]),
                "runner_up": name[int(d["clean_second"][i])],
                "adv_pred": name[int(d["adv_pred"][i])],
                "attack_succeeded": bool(d["success"][i]),
                "landed_on_runner_up": bool(d["adv_is_clean_second"][i]),
                "linf": float(d["linf"][i])}

    def view(self, model: str, i: int) -> SampleView:
        """The numbers and images of one sample (see :class:`SampleView`)."""
        s = self.info(model, i)
        d = self._data(model)
        clean = np.moveaxis(self.images[s["sample"]], 0, -1).astype(np.float64)
        adv = np.moveaxis(d["adv_images"][s["sample"]], 0, -1).astype(np.float64)
        return SampleView(model, s["sample"], s, d["clean"][s["sample"]],
                          d["adv"][s["sample"]], clean, adv, adv - clean,
                          self.styles[model].color, ADVERSARIAL_COLOR, self._caption(s))

    def point_colors(self, classes: Sequence[int] | np.ndarray) -> list[str]:
        """The colour of each class index (the UMAP panels' colours)."""
        return [class_color(int(c)) for c in classes]

    def _caption(self, s: Mapping[str, Any]) -> str:
        if not s["attack_succeeded"]:
            verdict = ("the attack did not flip it" if s["clean_pred"] == s["label"]
                       else "already misclassified before the attack, so not attacked")
        elif s["landed_on_runner_up"]:
            verdict = "the attack landed on the clean runner-up"
        else:
            verdict = "the attack landed on another class, not the runner-up"
        e = html.escape
        return (f"<b>{e(s['model'])}, sample {s['sample']}</b> (true: {e(s['label'])}): "
                f"clean prediction {e(s['clean_pred'])} ({s['clean_p_top']:.3f}), clean p2 "
                f"{s['clean_p2']:.3f} (runner-up: <b>{e(s['runner_up'])}</b>); after "
                f"{e(self.attack)} at eps={self.eps:g}: <b>{e(s['adv_pred'])}</b>; "
                f"{verdict}. L-inf perturbation {s['linf']:.3f}.")
