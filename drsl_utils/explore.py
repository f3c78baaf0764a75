"""Interactive explorers over cached results: ipywidgets controls and plotly figures.

Two explorers, both built from what the notebooks already computed (attack records,
attack results, UMAP panels); they never train or attack anything:

- :class:`SweepExplorer` (``sweep(records, ...)``): pick the attack, the model or loss,
  and a point of the sweep (eps, or tau in the tau sweep); it shows robust accuracy
  along the sweep, the histogram of the second-largest softmax ``p2`` before and after
  the attack, and the share of successful attacks that land on the clean runner-up.
- :class:`SampleExplorer` (``samples(result, panels, ...)``): the 2-D (UMAP) view of a
  model's clean and adversarial points. Clicking a point shows the clean image, the
  adversarial image, the perturbation (rescaled), and the softmax bars before and after,
  with the clean ``p2``, the clean runner-up and the class the attack landed on.

Each explorer also has a plain Python interface (``set(...)``, ``select(i)``,
``summary()``, ``sample_info(i)``), so a teacher can script it and tests can drive it.

Headless runs: when ``DRSL_HEADLESS=1`` (the main job and the tests set it for their
kernels), displaying an explorer draws a static matplotlib view of its current state
instead of widgets, so every cell still executes and the output is a picture.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["headless", "SweepExplorer", "SampleExplorer", "sweep", "samples"]

#: Bin edges of the ``p2`` histograms (p2 never exceeds 1/2).
P2_BINS = np.linspace(0.0, 0.5, 26)
_PALETTE = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB",
            "#000000", "#EE7733", "#009988")


def headless() -> bool:
    """True when explorers should draw static views (``DRSL_HEADLESS=1``)."""
    return os.environ.get("DRSL_HEADLESS", "") not in ("", "0")


def _check_columns(df: pd.DataFrame, name: str, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(df.columns)}")


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


class _Explorer:
    """Display logic shared by the explorers: widgets in a live front end, a static
    matplotlib view when headless."""

    last_redraw_ms: float = float("nan")

    def widget(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def static_figure(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if headless():
            import matplotlib.pyplot as plt

            fig = self.static_figure()
            display(fig)
            plt.close(fig)
        else:
            display(self.widget())

    def _timed(self, fn) -> None:
        start = time.perf_counter()
        fn()
        self.last_redraw_ms = 1000 * (time.perf_counter() - start)


# ----------------------------------------------------------------------------- sweep


_SWEEP_COLUMNS = ("label", "adv_pred", "clean_second", "clean_correct", "success",
                  "clean_p_second", "adv_p_second", "seed")


class SweepExplorer(_Explorer):
    """Robust accuracy, ``p2`` before/after and where attacks land, along a sweep.

    Args:
        records: per-sample attack records (``evaluation.evaluate``'s ``records``),
            possibly several attacks and models concatenated, plus any extra column
            named by ``sweep``, ``line`` or ``controls``.
        sweep: the numeric column along which robust accuracy is drawn (``"eps"``, or
            ``"tau"`` for a tau sweep); a slider picks one of its values.
        line: the column whose values are drawn as separate lines (``"model"``); a
            dropdown picks the one whose histograms are shown.
        controls: further columns with a dropdown each (``("attack",)``).
        num_classes: for the chance level of "lands on the runner-up" (1/(K-1)).
        title: shown above the widgets.
    """

    def __init__(self, records: pd.DataFrame, *, sweep: str = "eps", line: str = "model",
                 controls: Sequence[str] = ("attack",), num_classes: int | None = None,
                 title: str | None = None) -> None:
        if not isinstance(records, pd.DataFrame) or records.empty:
            raise ValueError("records must be a non-empty DataFrame of attack records")
        self.sweep_col, self.line_col = sweep, line
        self.controls = tuple(controls)
        keys = [*self.controls, line, sweep]
        if len(set(keys)) != len(keys):
            raise ValueError(f"sweep, line and controls must be distinct columns; got {keys}")
        _check_columns(records, "records", [*keys, *_SWEEP_COLUMNS])
        rec = records[[*keys, *_SWEEP_COLUMNS]].reset_index(drop=True)
        self.title = title or ""
        k = num_classes or int(max(rec["label"].max(), rec["adv_pred"].max())) + 1
        self.chance = 1.0 / max(1, k - 1)
        self._arr = {c: rec[c].to_numpy() for c in _SWEEP_COLUMNS}
        self._groups = {(g if isinstance(g, tuple) else (g,)): idx
                        for g, idx in rec.groupby(keys, sort=False, dropna=False).indices.items()}
        self._combos = rec[keys].drop_duplicates().reset_index(drop=True)
        # Robust accuracy per cell: the mean over seeds of each seed's accuracy.
        correct = (rec["adv_pred"] == rec["label"]).rename("robust")
        per_seed = correct.groupby([rec[c] for c in keys] + [rec["seed"]],
                                   sort=False, dropna=False).mean()
        self._robust = per_seed.groupby(level=list(range(len(keys))), sort=False,
                                        dropna=False).agg(["mean", "std", "count"])
        self.state: dict[str, Any] = {}
        first = self._combos.iloc[0]
        for c in self.controls:
            self.state[c] = first[c]
        self.state[line] = first[line]
        values = self.options(sweep)
        self.state[sweep] = values[len(values) // 2]
        self._widgets: dict[str, Any] = {}
        self._fig = None
        self._html = None
        self._box = None

    # ---------------------------------------------------------------- state and data

    def options(self, column: str) -> list[Any]:
        """The values ``column`` can take given the choices made before it
        (controls, then line, then sweep)."""
        order = [*self.controls, self.line_col, self.sweep_col]
        if column not in order:
            raise ValueError(f"column={column!r} is not one of {order}")
        df = self._combos
        for c in order[: order.index(column)]:
            df = df[df[c] == self.state[c]]
        values = list(pd.unique(df[column]))
        return sorted(values) if column == self.sweep_col else values

    def set(self, **changes: Any) -> None:
        """Change the selection, e.g. ``set(attack="pgd", eps=0.1)``; later controls
        fall back to their nearest valid value. Raises ValueError for an unknown
        column or a value the records do not have."""
        order = [*self.controls, self.line_col, self.sweep_col]
        for col in changes:
            if col not in order:
                raise ValueError(f"{col!r} is not a control; choose from {order}")
        for col in order:
            opts = self.options(col)
            if col in changes:
                value = changes[col]
                match = [o for o in opts if o == value or (
                    isinstance(o, float | np.floating) and isinstance(value, int | float)
                    and np.isclose(o, value))]
                if not match:
                    raise ValueError(f"{col}={value!r} is not available here; "
                                     f"choose one of {[_fmt(o) for o in opts]}")
                self.state[col] = match[0]
            elif self.state[col] not in opts:
                if col == self.sweep_col and opts:
                    self.state[col] = min(opts, key=lambda o: abs(o - self.state[col]))
                else:
                    self.state[col] = opts[0]
        self._sync_widgets()
        self._timed(self._redraw)

    def _cell(self) -> np.ndarray:
        key = tuple(self.state[c] for c in (*self.controls, self.line_col, self.sweep_col))
        return self._groups[key]

    def summary(self) -> dict[str, Any]:
        """The numbers behind the current view."""
        idx = self._cell()
        a = self._arr
        success = a["success"][idx].astype(bool)
        landed = a["adv_pred"][idx][success] == a["clean_second"][idx][success]
        key = tuple(self.state[c] for c in (*self.controls, self.line_col, self.sweep_col))
        robust = self._robust.loc[key]
        return {**self.state, "robust_accuracy": float(robust["mean"]),
                "robust_accuracy_std": float(robust["std"]) if robust["count"] > 1 else
                float("nan"), "seeds": int(robust["count"]),
                "success_rate": float(success.sum() / max(1, a["clean_correct"][idx].sum())),
                "successes": int(success.sum()),
                "runner_up_share": float(landed.mean()) if landed.size else float("nan"),
                "chance": self.chance}

    def _curves(self) -> dict[Any, tuple[list[float], list[float]]]:
        """Robust accuracy along the sweep for every line given the controls."""
        fixed = tuple(self.state[c] for c in self.controls)
        out: dict[Any, tuple[list[float], list[float]]] = {}
        df = self._combos
        for c in self.controls:
            df = df[df[c] == self.state[c]]
        for name in pd.unique(df[self.line_col]):
            xs = sorted(df.loc[df[self.line_col] == name, self.sweep_col])
            ys = [float(self._robust.loc[(*fixed, name, x), "mean"]) for x in xs]
            out[name] = (xs, ys)
        return out

    def _hists(self) -> tuple[np.ndarray, np.ndarray]:
        idx = self._cell()
        ok = self._arr["clean_correct"][idx].astype(bool)
        before = np.histogram(self._arr["clean_p_second"][idx][ok], P2_BINS)[0]
        after = np.histogram(self._arr["adv_p_second"][idx][ok], P2_BINS)[0]
        n = max(1, ok.sum())
        return before / n, after / n

    def _landing(self) -> tuple[list[float], list[float]]:
        xs = self.options(self.sweep_col)
        fixed = tuple(self.state[c] for c in (*self.controls, self.line_col))
        shares = []
        for x in xs:
            idx = self._groups[(*fixed, x)]
            s = self._arr["success"][idx].astype(bool)
            hit = self._arr["adv_pred"][idx][s] == self._arr["clean_second"][idx][s]
            shares.append(float(hit.mean()) if hit.size else None)
        return xs, shares

    def _caption(self) -> str:
        s = self.summary()
        sel = ", ".join(f"{c}={_fmt(self.state[c])}" for c in
                        (*self.controls, self.line_col, self.sweep_col))
        std = s["robust_accuracy_std"]
        spread = f" ± {std:.3f}" if np.isfinite(std) else ""
        share = s["runner_up_share"]
        return (f"<b>{sel}</b>: robust accuracy {s['robust_accuracy']:.3f}{spread} "
                f"(mean ± std over {s['seeds']} seed(s)); {s['successes']} successful "
                f"attacks ({100 * s['success_rate']:.1f}% of clean-correct samples), "
                + (f"{100 * share:.1f}% of them land on the clean runner-up "
                   f"(chance {100 * s['chance']:.1f}%)." if np.isfinite(share) else
                   "none to place."))

    # ----------------------------------------------------------------- interactive

    def widget(self) -> Any:
        """The live view: dropdowns, a slider and a plotly ``FigureWidget``."""
        import ipywidgets as W
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        if self._box is not None:
            return self._box
        for c in (*self.controls, self.line_col):
            w = W.Dropdown(options=[(_fmt(o), o) for o in self.options(c)], value=self.state[c],
                           description=c, layout=W.Layout(width="260px"))
            w.observe(lambda ch, c=c: self._on_widget(c, ch), names="value")
            self._widgets[c] = w
        opts = self.options(self.sweep_col)
        s = W.SelectionSlider(options=[(_fmt(o), o) for o in opts], value=self.state[self.sweep_col],
                              description=self.sweep_col, continuous_update=False,
                              layout=W.Layout(width="360px"))
        s.observe(lambda ch: self._on_widget(self.sweep_col, ch), names="value")
        self._widgets[self.sweep_col] = s
        base = make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=(
            f"robust accuracy along {self.sweep_col}", "p2 of clean-correct samples",
            "successes landing on the runner-up"))
        fig = base  # filled as a plain figure, wrapped in a FigureWidget at the end
        fig.update_layout(height=360, width=980, margin=dict(l=40, r=20, t=50, b=40),
                          template="simple_white", bargap=0.05, showlegend=True,
                          legend=dict(orientation="h", y=-0.2))
        # Plain lists only: numpy arrays travel as typed buffers, which the widget's front
        # end drops when a trace is added before the view exists.
        centers = ((P2_BINS[:-1] + P2_BINS[1:]) / 2).tolist()
        fig.add_bar(x=centers, y=[0.0] * len(centers), name="p2 before", row=1, col=2,
                    marker_color="#4477AA", opacity=0.6)
        fig.add_bar(x=centers, y=[0.0] * len(centers), name="p2 after", row=1, col=2,
                    marker_color="#EE6677", opacity=0.6)
        for _ in range(self._combos[self.line_col].nunique()):
            fig.add_scatter(x=[], y=[], mode="lines+markers", row=1, col=1, meta="curve",
                            visible=False)
        fig.add_bar(x=[], y=[], name="runner-up share", row=1, col=3, marker_color="#228833",
                    showlegend=False)
        fig.add_scatter(x=[], y=[], mode="lines", name="chance", row=1, col=3, meta="chance",
                        line=dict(dash="dash", color="grey"), showlegend=False)
        fig.update_layout(barmode="overlay")
        fig.add_shape(type="line", x0=0, x1=0, y0=0, y1=1, xref="x", yref="y domain",
                      line=dict(color="black", dash="dot", width=1))
        fig.update_yaxes(range=[-0.02, 1.02], row=1, col=1)
        fig.update_yaxes(range=[0, 1], row=1, col=3)
        fig.update_xaxes(title_text=self.sweep_col, row=1, col=1)
        fig.update_xaxes(title_text="p2", row=1, col=2)
        fig.update_xaxes(title_text=self.sweep_col, type="category", row=1, col=3)
        if self.sweep_col == "tau":
            fig.update_xaxes(type="log", row=1, col=1)
        self._html = W.HTML()
        # The first view is drawn into the plain figure, so the widget starts with every
        # trace complete; later changes travel as updates.
        self._fig = fig
        self._timed(self._redraw)
        self._fig = go.FigureWidget(fig)
        title = W.HTML(f"<h4>{self.title}</h4>") if self.title else W.HTML()
        controls = W.HBox([self._widgets[c] for c in (*self.controls, self.line_col)]
                          + [self._widgets[self.sweep_col]])
        self._box = W.VBox([title, controls, self._fig, self._html])
        self._box.add_class("drsl-sweep-explorer")
        return self._box

    def _on_widget(self, col: str, change: Mapping[str, Any]) -> None:
        if getattr(self, "_syncing", False) or change["new"] == self.state.get(col):
            return
        self.set(**{col: change["new"]})

    def _sync_widgets(self) -> None:
        if not self._widgets:
            return
        self._syncing = True
        try:
            for c, w in self._widgets.items():
                opts = [(_fmt(o), o) for o in self.options(c)]
                if list(w.options) != opts:
                    w.options = opts
                if w.value != self.state[c]:
                    w.value = self.state[c]
        finally:
            self._syncing = False

    def _redraw(self) -> None:
        if self._fig is None:
            return
        fig = self._fig
        curves = self._curves()
        before, after = self._hists()
        xs, shares = self._landing()
        chosen = self.state[self.sweep_col]
        with fig.batch_update():
            # Lines: keep one trace per line value (added on demand), hide unused ones.
            lines = [t for t in fig.data if getattr(t, "meta", None) == "curve"]
            for i, (name, (x, y)) in enumerate(curves.items()):
                t = lines[i]
                selected = name == self.state[self.line_col]
                t.update(x=[float(v) for v in x], y=[float(v) for v in y], name=str(name), visible=True, mode="lines+markers",
                         line=dict(width=3.5 if selected else 1.2,
                                   color=_PALETTE[i % len(_PALETTE)]),
                         opacity=1.0 if selected else 0.45)
            for t in lines[len(curves):]:
                t.visible = False
            # Every property is set here, not only where the traces are created: the
            # front end keeps what the last update sent.
            centers = ((P2_BINS[:-1] + P2_BINS[1:]) / 2).tolist()
            bars = [t for t in fig.data if t.type == "bar"]
            bars[0].update(x=centers, y=before.tolist(), name="p2 before",
                           marker_color="#4477AA", opacity=0.6, showlegend=True)
            bars[1].update(x=centers, y=after.tolist(), name="p2 after",
                           marker_color="#EE6677", opacity=0.6, showlegend=True)
            bars[2].update(x=[_fmt(x) for x in xs], y=shares, name="runner-up share",
                           showlegend=False,
                           marker_color=["#117733" if x == chosen else "#88CCAA" for x in xs])
            chance = [t for t in fig.data if t.meta == "chance"][0]
            chance.update(x=[_fmt(x) for x in xs], y=[self.chance] * len(xs), name="chance",
                          mode="lines", line=dict(dash="dash", color="grey"), showlegend=False)
            # Shapes on a log axis take log10 coordinates.
            x = float(np.log10(chosen)) if self.sweep_col == "tau" else float(chosen)
            fig.layout.shapes[0].update(x0=x, x1=x)
        self._html.value = self._caption()

    # ----------------------------------------------------------------------- static

    def static_figure(self) -> Any:
        """A matplotlib picture of the current view (what headless runs show)."""
        import matplotlib.pyplot as plt

        from .plots import use_style

        curves = self._curves()
        before, after = self._hists()
        xs, shares = self._landing()
        with use_style():
            fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), constrained_layout=True)
            for i, (name, (x, y)) in enumerate(curves.items()):
                sel = name == self.state[self.line_col]
                axes[0].plot(x, y, marker="o", lw=2.5 if sel else 1, alpha=1 if sel else 0.5,
                             color=_PALETTE[i % len(_PALETTE)], label=str(name))
            axes[0].axvline(self.state[self.sweep_col], color="black", ls=":", lw=1)
            if self.sweep_col == "tau":
                axes[0].set_xscale("log")
            axes[0].set(xlabel=self.sweep_col, ylabel="robust accuracy", ylim=(-0.02, 1.02))
            axes[0].legend(fontsize=7)
            centers = (P2_BINS[:-1] + P2_BINS[1:]) / 2
            w = P2_BINS[1] - P2_BINS[0]
            axes[1].bar(centers, before, width=w, alpha=0.6, label="before", color="#4477AA")
            axes[1].bar(centers, after, width=w, alpha=0.6, label="after", color="#EE6677")
            axes[1].set(xlabel="p2 (clean-correct samples)", ylabel="share")
            axes[1].legend(fontsize=7)
            pos = np.arange(len(xs))
            axes[2].bar(pos, [np.nan if v is None else v for v in shares], color=["#117733" if x == self.state[self.sweep_col]
                                            else "#88CCAA" for x in xs])
            axes[2].axhline(self.chance, color="grey", ls="--", lw=1)
            axes[2].set_xticks(pos, [_fmt(x) for x in xs])
            axes[2].set(xlabel=self.sweep_col, ylabel="share landing on runner-up",
                        ylim=(0, 1))
            sel = ", ".join(f"{c}={_fmt(self.state[c])}" for c in
                            (*self.controls, self.line_col, self.sweep_col))
            fig.suptitle(f"{self.title} ({sel}); static view: run in JupyterLab for widgets"
                         if self.title else sel, fontsize=9)
        return fig


def sweep(records: pd.DataFrame, **kwargs: Any) -> SweepExplorer:
    """A :class:`SweepExplorer` over ``records`` (see its arguments)."""
    return SweepExplorer(records, **kwargs)


# --------------------------------------------------------------------------- samples


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class SampleExplorer(_Explorer):
    """Click a point of a model's 2-D view to see that sample before and after attack.

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
        self.result, self.attack, self.eps = result, attack, float(eps)
        self.panels = {p.name: p for p in panels}
        self.keys = dict(keys)
        k = result.clean_logits(self.keys[panels[0].name]).shape[1]
        self.class_names = list(class_names) if class_names is not None else [
            str(i) for i in range(k)]
        self.images = np.asarray(result.images)
        self.labels = np.asarray(result.labels)
        self.model = panels[0].name
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        self.sample = int(self.candidates()[0]) if len(self.candidates()) else 0
        self._fig = self._detail = self._html = self._box = None
        self._model_w = self._index_w = None

    def _data(self, model: str) -> dict[str, np.ndarray]:
        if model not in self._cache:
            key = self.keys[model]
            clean = _softmax(self.result.clean_logits(key))
            adv = _softmax(self.result.adv_logits(key, self.attack, self.eps))
            order = np.argsort(-clean, axis=1)
            self._cache[model] = {
                "clean": clean, "adv": adv, "pred": order[:, 0], "second": order[:, 1],
                "adv_pred": adv.argmax(1),
                "adv_images": np.asarray(self.result.adv_images(key, self.attack, self.eps))}
        return self._cache[model]

    def candidates(self, landed_on_runner_up: bool | None = None) -> np.ndarray:
        """Indices of successfully attacked samples of the current model; with
        ``landed_on_runner_up=False``, only those whose attack did not land on the clean
        runner-up (the exercise of the explorers notebook)."""
        d = self._data(self.model)
        ok = (d["pred"] == self.labels) & (d["adv_pred"] != self.labels)
        if landed_on_runner_up is not None:
            ok &= (d["adv_pred"] == d["second"]) == landed_on_runner_up
        return np.flatnonzero(ok)

    def sample_info(self, i: int | None = None) -> dict[str, Any]:
        """What the sample panel says about sample ``i`` (default: the selected one)."""
        i = self.sample if i is None else int(i)
        if not 0 <= i < len(self.labels):
            raise ValueError(f"sample {i} is out of range 0..{len(self.labels) - 1}")
        d = self._data(self.model)
        name = self.class_names
        return {"model": self.model, "sample": i, "label": name[self.labels[i]],
                "clean_pred": name[d["pred"][i]], "clean_p_top": float(d["clean"][i].max()),
                "clean_p2": float(np.sort(d["clean"][i])[-2]),
                "runner_up": name[d["second"][i]], "adv_pred": name[d["adv_pred"][i]],
                "attack_succeeded": bool(d["pred"][i] == self.labels[i]
                                         and d["adv_pred"][i] != self.labels[i]),
                "landed_on_runner_up": bool(d["adv_pred"][i] == d["second"][i]),
                "linf": float(np.abs(d["adv_images"][i] - self.images[i]).max())}

    def select(self, i: int, model: str | None = None) -> dict[str, Any]:
        """Show sample ``i`` (optionally of another model); returns :meth:`sample_info`."""
        if model is not None:
            if model not in self.panels:
                raise ValueError(f"model={model!r} is not one of {list(self.panels)}")
            self.model = model
        info = self.sample_info(i)
        self.sample = int(i)
        self._sync()
        self._timed(self._redraw)
        return info

    def _caption(self) -> str:
        s = self.sample_info()
        if not s["attack_succeeded"]:
            verdict = ("the attack did not flip it" if s["clean_pred"] == s["label"]
                       else "already misclassified before the attack, so not attacked")
        elif s["landed_on_runner_up"]:
            verdict = "the attack landed on the clean runner-up"
        else:
            verdict = "the attack landed on another class, not the runner-up"
        return (f"<b>{self.model}, sample {s['sample']}</b> (true: {s['label']}): clean "
                f"prediction {s['clean_pred']} ({s['clean_p_top']:.3f}), clean p2 "
                f"{s['clean_p2']:.3f} (runner-up: <b>{s['runner_up']}</b>); after "
                f"{self.attack} at eps={self.eps:g}: <b>{s['adv_pred']}</b>; {verdict}. "
                f"L-inf perturbation {s['linf']:.3f}.")

    # ----------------------------------------------------------------- interactive

    def widget(self) -> Any:
        """The live view: a model dropdown, the clickable 2-D view and the sample panel."""
        import ipywidgets as W
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        if self._box is not None:
            return self._box
        self._model_w = W.Dropdown(options=list(self.panels), value=self.model,
                                   description="model")
        self._model_w.observe(self._on_model, names="value")
        self._index_w = W.BoundedIntText(value=self.sample, min=0, max=len(self.labels) - 1,
                                         description="sample")
        self._index_w.observe(self._on_index, names="value")
        button = W.Button(description="next: not on runner-up",
                          tooltip="jump to a successful attack that did not land on the "
                                  "clean runner-up")
        button.on_click(self._on_next)
        scatter = go.Figure()
        scatter.update_layout(height=430, width=470, template="simple_white",
                              margin=dict(l=10, r=10, t=30, b=10), hovermode="closest",
                              legend=dict(font=dict(size=9)),
                              title=dict(text="click a point", font=dict(size=12)))
        scatter.update_xaxes(visible=False)
        scatter.update_yaxes(visible=False)
        n_classes = len(self.class_names)
        for c in range(n_classes):
            scatter.add_scatter(x=[], y=[], mode="markers", name=self.class_names[c],
                                marker=dict(size=5, color=_PALETTE[c % len(_PALETTE)],
                                            opacity=0.55), meta="clean")
        scatter.add_scatter(x=[], y=[], mode="markers", name="adversarial", meta="adv",
                            marker=dict(size=8, symbol="diamond", line=dict(width=1,
                                                                           color="black")))
        scatter.add_scatter(x=[], y=[], mode="markers", name="selected", meta="sel",
                            marker=dict(size=16, symbol="circle-open",
                                        line=dict(width=3, color="black")))
        detail = go.Figure(make_subplots(
            rows=1, cols=4, column_widths=[0.18, 0.18, 0.18, 0.46], horizontal_spacing=0.04,
            subplot_titles=("clean", "adversarial", "perturbation", "softmax")))
        detail.update_layout(height=260, width=660, template="simple_white", barmode="group",
                             margin=dict(l=10, r=10, t=40, b=60),
                             legend=dict(orientation="h", y=-0.35))
        for col, scale in ((1, "gray_r"), (2, "gray_r"), (3, "RdBu")):
            detail.add_heatmap(z=[[0]], colorscale=scale, showscale=False, row=1, col=col)
            detail.update_xaxes(visible=False, row=1, col=col)
            detail.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{col}",
                                row=1, col=col)
        detail.add_bar(x=self.class_names, y=[0] * n_classes, name="before", row=1, col=4,
                       marker_color="#4477AA")
        detail.add_bar(x=self.class_names, y=[0] * n_classes, name="after", row=1, col=4,
                       marker_color="#EE6677")
        detail.update_yaxes(range=[0, 1], row=1, col=4)
        self._html = W.HTML()
        self._html.add_class("drsl-sample-caption")
        # Draw the first view into plain figures, then wrap them (see SweepExplorer).
        self._fig, self._detail = scatter, detail
        self._drawn_model = None
        self._timed(self._redraw)
        self._fig, self._detail = go.FigureWidget(scatter), go.FigureWidget(detail)
        for t in self._fig.data[:-1]:
            t.on_click(self._on_click)
        self._box = W.VBox([W.HBox([self._model_w, self._index_w, button]),
                            W.HBox([self._fig, W.VBox([self._detail, self._html],
                                                      layout=W.Layout(width="680px"))])])
        self._box.add_class("drsl-sample-explorer")
        return self._box

    def _on_click(self, trace: Any, points: Any, _state: Any) -> None:
        if not points.point_inds:
            return
        idx = trace.customdata[points.point_inds[0]]
        self.select(int(idx[0] if np.ndim(idx) else idx))

    def _on_model(self, change: Mapping[str, Any]) -> None:
        if change["new"] != self.model:
            self.model = change["new"]
            cands = self.candidates()
            self.select(int(cands[0]) if len(cands) else self.sample)

    def _on_index(self, change: Mapping[str, Any]) -> None:
        if change["new"] != self.sample:
            self.select(int(change["new"]))

    def _on_next(self, _button: Any) -> None:
        cands = self.candidates(landed_on_runner_up=False)
        if len(cands):
            later = cands[cands > self.sample]
            self.select(int(later[0] if len(later) else cands[0]))

    def _sync(self) -> None:
        if self._model_w is not None and self._model_w.value != self.model:
            self._model_w.value = self.model
        if self._index_w is not None and self._index_w.value != self.sample:
            self._index_w.value = self.sample

    def _redraw(self) -> None:
        if self._fig is None:
            return
        p, d, i = self.panels[self.model], self._data(self.model), self.sample
        with self._fig.batch_update():
            if self._drawn_model != self.model:
                clean = [t for t in self._fig.data if t.meta == "clean"]
                for c, t in enumerate(clean):
                    rows = np.flatnonzero(p.clean_labels == c)
                    t.update(x=p.clean_2d[rows, 0].tolist(), y=p.clean_2d[rows, 1].tolist(),
                             customdata=rows[:, None].tolist(), mode="markers",
                             name=self.class_names[c],
                             marker=dict(size=5, color=_PALETTE[c % len(_PALETTE)],
                                         opacity=0.55))
                adv = next(t for t in self._fig.data if t.meta == "adv")
                colors = [_PALETTE[int(c) % len(_PALETTE)] for c in (
                    p.adv_pred if p.adv_pred is not None else np.zeros(len(p.adv_2d), int))]
                adv.update(x=p.adv_2d[:, 0].tolist(), y=p.adv_2d[:, 1].tolist(),
                           customdata=np.asarray(p.adv_orig_index)[:, None].tolist(),
                           mode="markers", name="adversarial",
                           marker=dict(size=8, symbol="diamond", color=colors,
                                       line=dict(width=1, color="black")))
                self._drawn_model = self.model
            sel = next(t for t in self._fig.data if t.meta == "sel")
            sel.update(x=[float(p.clean_2d[i, 0])], y=[float(p.clean_2d[i, 1])], mode="markers",
                       name="selected", marker=dict(size=16, symbol="circle-open",
                                                    color="black",
                                                    line=dict(width=3, color="black")))
            self._fig.layout.title.text = f"{self.model}: {self.attack} at eps={self.eps:g}"
        clean_img = self.images[i].mean(0)
        adv_img = d["adv_images"][i].mean(0)
        delta = adv_img - clean_img
        scale = max(1e-8, float(np.abs(delta).max()))
        with self._detail.batch_update():
            h = [t for t in self._detail.data if t.type == "heatmap"]
            for t, z, lim, cmap in ((h[0], clean_img, 0, "gray_r"), (h[1], adv_img, 0, "gray_r"),
                                    (h[2], delta / scale, -1, "RdBu")):
                t.update(z=z.tolist(), zmin=lim, zmax=1, colorscale=cmap, showscale=False)
            b = [t for t in self._detail.data if t.type == "bar"]
            b[0].update(x=self.class_names, y=d["clean"][i].tolist(), name="before",
                        marker_color="#4477AA")
            b[1].update(x=self.class_names, y=d["adv"][i].tolist(), name="after",
                        marker_color="#EE6677")
        self._html.value = self._caption()

    # ----------------------------------------------------------------------- static

    def static_figure(self) -> Any:
        """A matplotlib picture: the 2-D view and the selected sample's panel."""
        import matplotlib.pyplot as plt

        from .plots import use_style

        p, d, i = self.panels[self.model], self._data(self.model), self.sample
        s = self.sample_info()
        with use_style():
            fig = plt.figure(figsize=(11, 4), constrained_layout=True)
            grid = fig.add_gridspec(2, 5, width_ratios=[2.2, 1, 1, 1, 2.2])
            ax = fig.add_subplot(grid[:, 0])
            ax.scatter(p.clean_2d[:, 0], p.clean_2d[:, 1], s=3, alpha=0.5,
                       c=[_PALETTE[int(c) % len(_PALETTE)] for c in p.clean_labels])
            ax.scatter(p.adv_2d[:, 0], p.adv_2d[:, 1], s=12, marker="D", edgecolors="black",
                       linewidths=0.4, c=[_PALETTE[int(c) % len(_PALETTE)] for c in (
                           p.adv_pred if p.adv_pred is not None else
                           np.zeros(len(p.adv_2d), int))])
            ax.scatter([p.clean_2d[i, 0]], [p.clean_2d[i, 1]], s=160, facecolors="none",
                       edgecolors="black", linewidths=2)
            ax.set_title(f"{self.model}: {self.attack} at eps={self.eps:g}", fontsize=9)
            ax.set_axis_off()
            clean_img = self.images[i].mean(0)
            adv_img = d["adv_images"][i].mean(0)
            delta = adv_img - clean_img
            for col, (img, title, cmap, lim) in enumerate((
                    (clean_img, "clean", "gray_r", (0, 1)),
                    (adv_img, "adversarial", "gray_r", (0, 1)),
                    (delta, "perturbation", "RdBu", (-np.abs(delta).max() - 1e-8,
                                                     np.abs(delta).max() + 1e-8)))):
                a = fig.add_subplot(grid[:, 1 + col])
                a.imshow(img, cmap=cmap, vmin=lim[0], vmax=lim[1])
                a.set_title(title, fontsize=9)
                a.set_axis_off()
            a = fig.add_subplot(grid[:, 4])
            pos = np.arange(len(self.class_names))
            a.bar(pos - 0.2, d["clean"][i], width=0.4, label="before", color="#4477AA")
            a.bar(pos + 0.2, d["adv"][i], width=0.4, label="after", color="#EE6677")
            a.set_xticks(pos, self.class_names, rotation=60, fontsize=7)
            a.set(ylim=(0, 1), ylabel="softmax")
            a.legend(fontsize=7)
            fig.suptitle(f"sample {i} (true {s['label']}): clean p2 {s['clean_p2']:.3f}, "
                         f"runner-up {s['runner_up']}, landed on {s['adv_pred']}; static "
                         "view: run in JupyterLab to click points", fontsize=9)
        return fig


def samples(result: Any, panels: Sequence[Any], zoo: Mapping[str, Sequence[Any]], *,
            attack: str, eps: float, seed_index: int = 0,
            class_names: Sequence[str] | None = None) -> SampleExplorer:
    """A :class:`SampleExplorer` for ``panels`` drawn from ``zoo``'s ``seed_index``-th
    seed (as ``experiments.umap_panels`` draws them)."""
    keys = {p.name: zoo[p.name][min(seed_index, len(zoo[p.name]) - 1)].key for p in panels}
    return SampleExplorer(result, panels, keys, attack=attack, eps=eps,
                          class_names=class_names)
