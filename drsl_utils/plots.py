"""Figures for the softmax/logit and robustness analyses, in one consistent style.

- :func:`use_style` is the one style (fonts, sizes, Okabe-Ito colour cycle,
  deterministic output settings); every plot function applies it.
- :data:`LOSS_COLORS` gives each loss family one colour in every figure;
  :func:`model_styles` reads each model's family and training regime from the identity
  columns of the frame drawn (``loss``, ``loss_params``, ``adversarial``, ...: see
  ``evaluation.IDENTITY_COLUMNS``), never from its display name, and adds line styles
  and markers where several models share a colour (DRSL at two values of tau, say). A
  frame built by hand without those columns is drawn by label (:func:`color_for`).
- :func:`save_figure` writes PNG and PDF without timestamps and leaves an unchanged
  file untouched, so a rerun does not churn the figures directory.
- :func:`figure_title` and :func:`figure_legend` keep every text on the page: the title
  wraps to the figure's width (never splitting ``ε = 0.05``) and an outside legend widens
  the figure by its own width instead of squeezing the panels.

Each ``plot_*`` function takes a DataFrame produced by :mod:`drsl_utils.stats` (or the
attack records) and returns a :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde

from .cache import atomic_write
from .runtime import check_choice
from .stats import with_margins

__all__ = [
    "OKABE_ITO",
    "LOSS_COLORS",
    "LOSS_ORDER",
    "STYLE",
    "use_style",
    "color_for",
    "class_color",
    "ADVERSARIAL_COLOR",
    "Style",
    "model_styles",
    "save_figure",
    "figure_title",
    "figure_legend",
    "fit_text",
    "plot_second_softmax_hist",
    "plot_second_softmax_before_after",
    "plot_logit_gap_before_after",
    "plot_logit_distributions",
    "plot_margin_hist",
    "plot_success_vs_p2",
    "plot_robust_accuracy",
    "plot_seed_curves",
    "plot_frontier",
    "plot_attack_calibration",
    "plot_second_class_bars",
    "plot_table",
]

#: Okabe & Ito (2008), "Color universal design": distinguishable under the common
#: colour-vision deficiencies.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: One colour per loss family, the same in every figure. Related losses share a hue
#: (CE/GCE blues, DRSL logit/prob vermillion/orange, OvR/SOVR greens); adversarially
#: trained models are dark.
LOSS_COLORS: dict[str, str] = {
    "ce": OKABE_ITO["blue"],
    "gce": OKABE_ITO["sky_blue"],
    "mae": "#882255",  # Tol's wine: the one non-Okabe-Ito hue, still CVD-safe
    "drsl": OKABE_ITO["vermillion"],
    "drsl-prob": OKABE_ITO["orange"],
    "isce": OKABE_ITO["reddish_purple"],
    "ovr": "#B5A300",  # Okabe-Ito yellow darkened: plain yellow vanishes on white
    "sovr": OKABE_ITO["bluish_green"],
    "pgd-at": OKABE_ITO["black"],
    "trades": "#6E6E6E",
    "sovr-at": "#00543D",
}

#: Canonical legend order (unknown names follow, alphabetically).
LOSS_ORDER: tuple[str, ...] = ("ce", "gce", "mae", "drsl", "drsl-prob", "isce", "ovr",
                               "sovr", "pgd-at", "trades", "sovr-at")

# Paul Tol's "muted" scheme for names outside LOSS_COLORS (picked by a hash of the
# loss family, so the same unknown loss keeps its colour across figures and runs).
_FALLBACK_COLORS = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77",
                    "#CC6677", "#AA4499")
_CLASS_COLORS = tuple(plt.get_cmap("tab10").colors)

#: The adversarial input's colour wherever clean and adversarial are drawn together (the
#: clean one takes its model's colour).
ADVERSARIAL_COLOR = "#000000"

_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P")

#: The rcParams of :func:`use_style`.
STYLE: dict[str, Any] = {
    # Fonts shipped with matplotlib, so every machine renders the same glyphs.
    "font.family": "DejaVu Sans",
    "mathtext.fontset": "dejavusans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "legend.frameon": False,
    "figure.titlesize": 11,
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=[OKABE_ITO[c] for c in (
        "blue", "vermillion", "bluish_green", "orange", "reddish_purple", "sky_blue",
        "black")]),
    "lines.linewidth": 1.5,
    "savefig.dpi": 200,
    "savefig.bbox": "standard",
    # Deterministic output: embedded TrueType (not Type 3) fonts, fixed SVG ids.
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "svg.hashsalt": "drsl-utils",
    "path.simplify": True,
}


@contextlib.contextmanager
def use_style(**overrides: Any) -> Iterator[None]:
    """Apply the project style (plus any rcParams ``overrides``) inside a ``with`` block."""
    with plt.rc_context({**STYLE, **overrides}):
        yield


# ---------------------------------------------------------------------- colours


def _darken(color: str, factor: float = 0.55) -> str:
    rgb = np.asarray(mcolors.to_rgb(color)) * factor
    return mcolors.to_hex(rgb)


#: The loss families of :data:`LOSS_COLORS` that are adversarially trained models.
_ADVERSARIAL_FAMILIES = ("pgd-at", "trades", "sovr-at")

#: The identity columns (:data:`evaluation.IDENTITY_COLUMNS`) that decide how a model is
#: drawn; ``loss`` and ``adversarial`` must both be present for a frame to be drawn by
#: identity.
_LOOK_COLUMNS = ("loss", "loss_params", "adversarial", "distilled")


def _spelling(text: Any) -> str:
    """A family name as compared: lower case, letters and digits only."""
    return "".join(ch for ch in str(text).lower() if ch.isalnum())


_FAMILY_SPELLINGS = {_spelling(k): k for k in LOSS_COLORS}


def _hashed_color(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return _FALLBACK_COLORS[digest[0] % len(_FALLBACK_COLORS)]


@dataclass(frozen=True)
class _Look:
    """What a model's identity says about its drawing: colour, loss family (the legend
    order, :data:`LOSS_ORDER`) and whether it was adversarially trained."""

    color: str
    family: str
    adversarial: bool


def _label_look(label: Any) -> _Look:
    """The look of a label that comes with no identity (a frame built by hand)."""
    family = _FAMILY_SPELLINGS.get(_spelling(label))
    if family is not None:
        return _Look(LOSS_COLORS[family], family, family in _ADVERSARIAL_FAMILIES)
    text = str(label).strip().lower()
    return _Look(_hashed_color(text), text, False)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _identity_look(label: Any, loss: Any, loss_params: Any, adversarial: Any,
                   distilled: Any) -> _Look:
    """The look of a model from its identity columns. A model whose loss is not its
    family (a foreign model's unknown loss, a distilled student) gets a colour of its
    own label, never a family's colour, whatever the label says."""
    if _missing(loss) or loss == "unknown" or not (_missing(distilled) or distilled == "none"):
        return _Look(_hashed_color(str(label).strip().lower()), "", False)
    params = json.loads(loss_params) if isinstance(loss_params, str) else (loss_params or {})
    base = "drsl-prob" if loss == "drsl" and params.get("space") == "prob" else str(loss)
    color = LOSS_COLORS.get(base) or _hashed_color(base)
    if _missing(adversarial) or adversarial == "none":
        return _Look(color, base, False)
    family = {("pgd", "ce"): "pgd-at", ("pgd", "sovr"): "sovr-at",
              ("trades", "ce"): "trades"}.get((adversarial, base))
    if family is not None:
        return _Look(LOSS_COLORS[family], family, True)
    return _Look(_darken(color), base, True)


def _looks(names: Sequence[Any], frame: pd.DataFrame | None, hue: str) -> dict[Any, _Look]:
    """Each name's :class:`_Look`: from the identity columns of its rows in ``frame``
    (where ``hue`` names it) when all its rows agree, else from the name as a label."""
    found: dict[Any, _Look | None] = {}
    if (frame is not None and hue in frame.columns
            and {"loss", "adversarial"} <= set(frame.columns)):
        cols = [c for c in _LOOK_COLUMNS if c in frame.columns and c != hue]
        # Each distinct (name, identity): factorised column by column, which is far
        # faster than drop_duplicates on a frame of a million records.
        rows = pd.MultiIndex.from_arrays([frame[c] for c in (hue, *cols)]).unique()
        for values in rows:
            ident = dict(zip(cols, values[1:]))
            name = values[0]
            look = _identity_look(name, ident.get("loss"), ident.get("loss_params"),
                                  ident.get("adversarial"), ident.get("distilled"))
            found[name] = look if name not in found or found[name] == look else None
    return {name: found.get(name) or _label_look(name) for name in names}


def color_for(name: str) -> str:
    """The colour (hex) of a loss family or of any other label, stable across figures
    and runs.

    A loss family is a key of :data:`LOSS_COLORS`, in any case and punctuation
    (``"CE"``, ``"DRSL-prob"``, ``"I-SCE"``, ``"PGD-AT"``); any other label gets a
    colour from Tol's muted scheme chosen by a hash of the label. Nothing is parsed
    out of the label: a model's colour comes from its identity columns
    (:func:`model_styles` given the frame), and this colours a label without one.
    """
    return _label_look(name).color


def class_color(k: int) -> str:
    """The colour (hex) of class ``k`` (tab10, cycling), as the UMAP panels draw it."""
    return mcolors.to_hex(_CLASS_COLORS[int(k) % len(_CLASS_COLORS)])


def _ordered(looks: Mapping[Any, _Look]) -> list[Any]:
    """The names in legend order: standard before adversarial training, then by loss
    family (:data:`LOSS_ORDER`), then by name."""

    def key(name: Any) -> tuple[int, int, str]:
        look = looks[name]
        rank = (LOSS_ORDER.index(look.family) if look.family in LOSS_ORDER
                else len(LOSS_ORDER))
        return (1 if look.adversarial else 0, rank, str(name))

    return sorted(looks, key=key)


@dataclass(frozen=True)
class Style:
    """How one model is drawn: ``color``, ``linestyle`` and ``marker``."""

    color: str
    linestyle: str
    marker: str


def model_styles(names: Sequence[str], frame: pd.DataFrame | None = None,
                 hue: str = "model") -> dict[str, Style]:
    """Colour, line style and marker for each name, in legend order.

    Args:
        names: the values of ``hue`` to draw (model names, or any grouping).
        frame: where the names' identities are read: its rows whose ``hue`` is a name
            give that name's loss, loss parameters and training regime (the identity
            columns of :data:`evaluation.IDENTITY_COLUMNS`; ``loss`` and ``adversarial``
            at least). A model whose loss is unknown (a foreign model) or that was
            distilled gets a colour of its own name. A name whose rows disagree
            (``hue="attack"``), and every name when ``frame`` is None or lacks those
            columns (a frame built by hand), is drawn by its label
            (:func:`color_for`, standard training unless the label names an
            adversarial family such as ``"PGD-AT"``).
        hue: the column of ``frame`` that holds the names.

    Each loss family has one colour (:data:`LOSS_COLORS`; DRSL on probabilities its
    own, PGD-AT, TRADES and SOVR-AT theirs, any other adversarially trained loss a
    darkened loss colour). Models that share a colour are told apart by line style and
    marker, assigned in sorted order; adversarially trained models start from a dashed
    line.
    """
    looks = _looks(list(dict.fromkeys(names)), frame, hue)
    styles: dict[str, Style] = {}
    seen: dict[str, int] = {}
    for name in _ordered(looks):
        color = looks[name].color
        i = seen.get(color, 0)
        seen[color] = i + 1
        offset = 1 if looks[name].adversarial else 0
        styles[name] = Style(color, _LINESTYLES[(i + offset) % len(_LINESTYLES)],
                             _MARKERS[i % len(_MARKERS)])
    return styles


# ---------------------------------------------------------------------- saving


def save_figure(fig: Figure, name: str, directory: str | Path = "figures", *,
                formats: Sequence[str] = ("png", "pdf"), dpi: int = 200,
                close: bool = False) -> list[Path]:
    """Save ``fig`` as ``directory/name.<fmt>`` for each format, reproducibly.

    No timestamps or version strings that change between runs go into the files
    (PNG ``Software``, PDF ``CreationDate``/``ModDate``/``Producer`` are dropped),
    fonts and the SVG hash salt are fixed by :func:`use_style`, and a file whose bytes
    would not change is left alone, so reruns do not touch unchanged figures. Writes
    are atomic. A figure with a layout engine has its layout computed once and then
    frozen, so all formats and later saves share one geometry (add nothing to a
    figure after saving it).

    Args:
        fig: the figure.
        name: file stem, without directory or extension.
        directory: created if missing.
        formats: any of ``"png"``, ``"pdf"``, ``"svg"``.
        dpi: raster resolution (at least 200 for PNG).
        close: close the figure afterwards.

    Returns:
        The paths, in the order of ``formats``.
    """
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"name={name!r}: give a plain file stem without directories")
    if dpi < 200:
        raise ValueError(f"dpi={dpi!r}: must be >= 200")
    for fmt in formats:
        check_choice("formats", fmt, ("png", "pdf", "svg"))
    metadata = {
        "png": {"Software": None},
        "pdf": {"CreationDate": None, "ModDate": None, "Producer": None},
        "svg": {"Date": None},
    }
    paths = []
    # Constrained layout re-runs at every draw and starts from the last positions, so
    # a second save can shift an axis by a pixel. Run it once, then freeze it: every
    # format and every later save then share one geometry.
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
    with use_style(**{"figure.constrained_layout.use": False}):
        for fmt in formats:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata[fmt])
            data = buf.getvalue()
            path = Path(directory) / f"{name}.{fmt}"
            if not (path.exists() and path.read_bytes() == data):
                atomic_write(path, lambda p, data=data: p.write_bytes(data))
            paths.append(path)
    if close:
        plt.close(fig)
    return paths


# ---------------------------------------------------------------------- helpers


def _check_df(df: Any, name: str, needed: Sequence[str]) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{name} is empty")
    return df


def _grid(n: int, ncols: int, panel: tuple[float, float], *, sharex: bool | str = False,
          sharey: bool | str = False, nrows: int | None = None
          ) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = nrows or int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows),
                             sharex=sharex, sharey=sharey, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def figure_legend(fig: Figure, handles: list, labels: list[str], title: str | None = None,
                  ncols: int = 1) -> Any:
    """A legend outside the panels, on the right, with the figure widened by the
    legend's width. The panels keep their size: an outside legend otherwise takes its
    room from them, and a long model name squeezed a single panel until its labels ran
    off the page ("ensity")."""
    if not handles:
        return None
    legend = fig.legend(handles, labels, loc="outside center right", title=title,
                        ncols=ncols)
    width = legend.get_window_extent().width / fig.dpi
    fig.set_figwidth(fig.get_figwidth() + width + 0.1)
    return legend


def _wrap(text: str, chars: int) -> str:
    """``text`` wrapped to ``chars`` per line, each line of it on its own. An equation
    such as ``ε = 0.05`` is never split: a break at its spaces printed "ε" at the end of
    one line and "= 0.05" on the next."""
    glue = "\ue000"  # a private-use character: textwrap breaks at whitespace only
    keep = text.replace(" = ", f"{glue}={glue}")
    return "\n".join(textwrap.fill(line, chars) for line in keep.split("\n")).replace(
        glue, " ")


def fit_text(text: str, width: float, fontsize: float) -> str:
    """``text`` wrapped to fit ``width`` inches at ``fontsize`` points (a panel title
    that names a long model, say), equations kept whole."""
    return _wrap(text, max(12, int(width * 72 / (fontsize * 0.6))))


def figure_title(fig: Figure, text: str) -> None:
    """A figure title wrapped to the figure's width, so it never runs off the page
    (call it before :func:`figure_legend`, which only widens the figure)."""
    fig.suptitle(fit_text(text, fig.get_figwidth(), STYLE["figure.titlesize"]))


_suptitle = figure_title  # the old private name, which explore.py imports


def _regime(df: pd.DataFrame, hue: str) -> pd.Series:
    """The ``training`` column; without one, each ``hue`` value's regime as
    :func:`model_styles` reads it (standard, unless an identity or label says
    adversarial)."""
    if "training" in df.columns:
        return df["training"].astype(str)
    looks = _looks(list(df[hue].unique()), df, hue)
    return df[hue].map({m: "adversarial" if look.adversarial else "standard"
                        for m, look in looks.items()})


def _log10(x: np.ndarray, floor: float) -> tuple[np.ndarray, int]:
    x = np.asarray(x, dtype=np.float64)
    below = int(np.sum(x < floor))
    return np.log10(np.maximum(x, floor)), below


def _edges(values: np.ndarray, bins: int) -> np.ndarray:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.linspace(0, 1, bins + 1)
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def _draw_dist(ax: plt.Axes, values: np.ndarray, edges: np.ndarray, style: Style,
               label: str, kind: str, fill: bool = False) -> Any:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    if kind == "kde" and values.size > 1 and np.ptp(values) > 0:
        grid = np.linspace(edges[0], edges[-1], 400)
        dens = gaussian_kde(values)(grid)
        (line,) = ax.plot(grid, dens, color=style.color, ls=style.linestyle, label=label)
        if fill:
            ax.fill_between(grid, dens, color=style.color, alpha=0.25, lw=0)
        return line
    dens, _ = np.histogram(values, bins=edges, density=True)
    if fill:
        ax.stairs(dens, edges, fill=True, color=style.color, alpha=0.3, lw=0)
    return ax.stairs(dens, edges, color=style.color, ls=style.linestyle, lw=1.5, label=label)


def _hist_facets(df: pd.DataFrame, quantities: Sequence[str], *, hue: str, col: str | None,
                 bins: int, kind: str, xlabels: Mapping[str, str], title: str,
                 vline: float | None = None, panel: tuple[float, float] = (3.6, 2.6)
                 ) -> Figure:
    """Rows = quantities, columns = values of ``col``; one curve per ``hue`` value."""
    check_choice("kind", kind, ("hist", "kde"))
    cols = [None] if col is None else list(dict.fromkeys(
        sorted(df[col].astype(str), key=lambda v: (v != "standard", v))))
    styles = model_styles(list(df[hue].unique()), df, hue)
    with use_style():
        fig, axes = _grid(len(quantities) * len(cols), len(cols), panel,
                          nrows=len(quantities), sharex="row")
        handles: dict[str, Any] = {}
        for r, q in enumerate(quantities):
            values = df[q].to_numpy(dtype=np.float64)
            edges = _edges(values, bins)
            for c, cval in enumerate(cols):
                ax = axes[r, c]
                sub = df if cval is None else df[df[col].astype(str) == cval]
                for name, style in styles.items():
                    v = sub.loc[sub[hue] == name, q].to_numpy(dtype=np.float64)
                    artist = _draw_dist(ax, v, edges, style, str(name), kind)
                    if artist is not None:
                        handles.setdefault(str(name), artist)
                if vline is not None:
                    ax.axvline(vline, color="0.3", lw=0.8, ls="--")
                ax.set_xlabel(xlabels.get(q, q))
                ax.set_ylabel("density")
                if cval is not None:
                    ax.set_title(f"{cval} training" if cval in ("standard", "adversarial")
                                 else f"{col} = {cval}")
        figure_title(fig, title)
        figure_legend(fig, list(handles.values()), list(handles), title=hue)
    return fig


def _pick_col(df: pd.DataFrame, hue: str, col: str | None) -> tuple[pd.DataFrame, str | None]:
    """``col="training"`` splits standard from adversarial training when both occur."""
    if col == "training":
        df = df.assign(training=_regime(df, hue))
        return df, ("training" if df["training"].nunique() > 1 else None)
    if col is not None and col not in df.columns:
        raise ValueError(f"col={col!r} is not a column; columns are {list(df.columns)}")
    return df, col


# ---------------------------------------------------------------------- figures


_P2_LABEL = r"$\log_{10}\,p_2$"


def plot_second_softmax_hist(stats_df: pd.DataFrame, *, column: str = "p_top2",
                             hue: str = "model", col: str | None = "training",
                             log: bool = True, floor: float = 1e-12, bins: int = 40,
                             kind: str = "hist", correct_only: bool = False) -> Figure:
    """Distribution of the clean second-largest softmax probability, one curve per model.

    Args:
        stats_df: per-sample statistics (:func:`stats.stack_stats`), or any frame
            with ``column`` and ``hue``.
        column: the probability column (``p_top2``; ``clean_p_second`` in records).
        hue: the column naming the model.
        col: facet column; ``"training"`` (default) splits standard from adversarial
            training when both are present; None for one panel.
        log: plot ``log10 p2`` (p2 spans many decades); values below ``floor`` are
            drawn at ``log10(floor)`` and counted in the title.
        bins: histogram bins (shared by all models).
        kind: ``"hist"`` (step histograms of the density) or ``"kde"``.
        correct_only: keep only correctly classified samples (needs ``correct``).
    """
    df = _check_df(stats_df, "stats_df", [column, hue])
    if correct_only:
        df = df[_check_df(df, "stats_df", ["correct"])["correct"].astype(bool)]
    df, col = _pick_col(df, hue, col)
    title = "Second-largest softmax probability $p_2$ on clean inputs"
    if log:
        values, below = _log10(df[column].to_numpy(), floor)
        df = df.assign(**{column: values})
        if below:
            title += f"\n({below} values < {floor:g} drawn at {np.log10(floor):g})"
    xlabel = _P2_LABEL if log else "$p_2$"
    return _hist_facets(df, [column], hue=hue, col=col, bins=bins, kind=kind,
                        xlabels={column: xlabel}, title=title)


def _select_eps(records: pd.DataFrame, attack: str, eps: float) -> pd.DataFrame:
    attacks = sorted(records["attack"].astype(str).unique())
    check_choice("attack", attack, attacks)
    sub = records[records["attack"] == attack]
    all_eps = np.sort(sub["eps"].unique())
    match = np.isclose(sub["eps"].to_numpy(dtype=float), eps, rtol=1e-6, atol=1e-12)
    if not match.any():
        raise ValueError(f"eps={eps!r} was not run with attack {attack!r}; eps values "
                         f"present: {', '.join(f'{e:g}' for e in all_eps)}")
    return sub[match]


def plot_second_softmax_before_after(records: pd.DataFrame, attack: str, eps: float, *,
                                     hue: str = "model", log: bool = True,
                                     floor: float = 1e-12, bins: int = 40,
                                     correct_only: bool = True, ncols: int | None = None
                                     ) -> Figure:
    """The second-largest softmax before and after one attack, one panel per model.

    Filled: clean ``clean_p_second``; black outline: ``adv_p_second`` on the
    adversarial input. Panel titles give the attack success rate. By default only
    samples classified correctly when clean are shown, as for every success
    statistic.

    Args:
        records: attack records.
        attack, eps: the setting shown (eps matched up to float rounding).
        hue: the column naming the model (one panel each).
        log, floor, bins: as in :func:`plot_second_softmax_hist`.
        correct_only: keep only clean-correct samples.
        ncols: panels per row (default: a near-square grid, at most 4 wide).
    """
    df = _before_after_records(records, attack, eps, hue, ["clean_p_second", "adv_p_second"],
                               correct_only)
    if log:
        df = df.assign(**{c: _log10(df[c].to_numpy(), floor)[0]
                          for c in ("clean_p_second", "adv_p_second")})
    row = ("clean_p_second", "adv_p_second", _P2_LABEL if log else "$p_2$", None)
    return _before_after(df, hue, [row], bins=bins, ncols=ncols, title=(
        f"Second-largest softmax before and after {attack}, ε = {eps:g}"
        + ("\n(clean-correct samples)" if correct_only else "")))


#: The quantities of :func:`plot_logit_gap_before_after`: (clean column, adversarial
#: column, axis label, reference line).
_GAP_ROWS: dict[str, tuple[str, str, str, float | None]] = {
    "gap": ("clean_gap", "adv_gap", "logit gap (max − second max)", None),
    "margin": ("clean_margin", "adv_margin", r"logit margin $z_y - \max_{k\neq y} z_k$", 0.0),
}


def plot_logit_gap_before_after(records: pd.DataFrame, attack: str, eps: float, *,
                                quantities: Sequence[str] = ("gap", "margin"),
                                hue: str = "model", bins: int = 40,
                                correct_only: bool = True) -> Figure:
    """The logit gap and the logit margin before and after one attack, per model.

    The gap (top-1 minus top-2 logit) says how decided the prediction is; the margin
    (true-class logit minus the largest other, :func:`stats.with_margins`) says on
    which side of the decision boundary the input lies (dashed line at 0), so a
    successful attack moves it below 0. Filled: clean input (the model's colour);
    black outline: the adversarial input. Rows are ``quantities``, columns the models;
    a model's panels share one x axis per row, so the shift is visible. By default only
    samples classified correctly when clean are shown, as for every success statistic.

    Args:
        records: attack records (``AttackResult.records``), one or several models.
        attack, eps: the setting shown (eps matched up to float rounding).
        quantities: any of ``"gap"`` and ``"margin"``, one row each.
        hue: the column naming the model (one column of panels each).
        bins: histogram bins (shared along a row).
        correct_only: keep only clean-correct samples.
    """
    if isinstance(quantities, str):
        quantities = (quantities,)
    if not quantities:
        raise ValueError("quantities is empty: name 'gap', 'margin' or both")
    for q in quantities:
        check_choice("quantities", q, tuple(_GAP_ROWS))
    df = _before_after_records(records, attack, eps, hue, ["clean_gap", "adv_gap"],
                               correct_only)
    if "margin" in quantities:
        df = with_margins(df)
    what = " and ".join({"gap": "logit gap", "margin": "logit margin"}[q]
                        for q in quantities)
    return _before_after(df, hue, [_GAP_ROWS[q] for q in quantities], bins=bins,
                         ncols=None, title=(
        f"{what[0].upper()}{what[1:]} before and after {attack}, ε = {eps:g}"
        + ("\n(clean-correct samples)" if correct_only else "")))


def _before_after_records(records: pd.DataFrame, attack: str, eps: float, hue: str,
                          columns: Sequence[str], correct_only: bool) -> pd.DataFrame:
    """The records of one attack setting that a before/after figure draws."""
    needed = [hue, "attack", "eps", "success", "clean_correct", *columns]
    df = _select_eps(_check_df(records, "records", needed), attack, eps)
    if correct_only:
        df = df[df["clean_correct"].astype(bool)]
    if df.empty:
        raise ValueError("no clean-correct samples for this attack and eps")
    return df


def _before_after(df: pd.DataFrame, hue: str,
                  rows: Sequence[tuple[str, str, str, float | None]], *, bins: int,
                  ncols: int | None, title: str) -> Figure:
    """Clean (filled, the model's colour) against adversarial (black outline) densities:
    one panel per model and row of ``(clean column, adversarial column, x label,
    reference line)``. One row wraps the models into a grid of ``ncols``; several rows
    put the models in columns, so each row shares its bins and x axis."""
    styles = model_styles(list(df[hue].unique()), df, hue)
    names = list(styles)
    if len(rows) == 1:
        ncols = ncols or min(4, int(np.ceil(np.sqrt(len(names)))))
        nrows = None
    else:
        ncols, nrows = len(names), len(rows)
    with use_style():
        fig, axes = _grid(len(names) * len(rows), ncols, (3.0, 2.4), nrows=nrows,
                          sharex="row" if nrows else True)
        panels = [(r, name) for r in range(len(rows)) for name in names]
        for i, (ax, (r, name)) in enumerate(zip(axes.flat, panels)):
            clean_col, adv_col, xlabel, vline = rows[r]
            values = df[[clean_col, adv_col]].to_numpy(np.float64).ravel()
            edges = _edges(values, bins)
            sub = df[df[hue] == name]
            style = styles[name]
            _draw_dist(ax, sub[clean_col].to_numpy(np.float64), edges,
                       Style(style.color, "-", style.marker), "clean input", "hist",
                       fill=True)
            _draw_dist(ax, sub[adv_col].to_numpy(np.float64), edges,
                       Style(ADVERSARIAL_COLOR, "-", style.marker), "adversarial input",
                       "hist")
            if vline is not None:
                ax.axvline(vline, color="0.3", lw=0.8, ls="--")
            if r == 0:
                rate = sub["success"].astype(bool).mean()
                ax.set_title(fit_text(f"{name}\nsuccess {rate:.0%} of {len(sub)}", 3.0, 9),
                             fontsize=9)
            if nrows or i + ncols >= len(panels):  # the lowest panel of its column
                ax.set_xlabel(xlabel)
                ax.xaxis.set_tick_params(labelbottom=True)
        for ax in axes[:, 0]:
            ax.set_ylabel("density")
        handles = [plt.Rectangle((0, 0), 1, 1, color="0.5", alpha=0.3, lw=0),
                   plt.Line2D([], [], color=ADVERSARIAL_COLOR, lw=1.5)]
        figure_title(fig, title)
        figure_legend(fig, handles, ["clean input", "adversarial input"])
    return fig


_LOGIT_LABELS = {
    "max_logit": "max logit",
    "logit_gap": "logit gap (max − second max)",
    "logit_margin": r"logit margin $z_y - \max_{k\neq y} z_k$",
    "p_top1": "top-1 softmax probability",
    "p_true": "true-class softmax probability",
    "nontrue_entropy": "entropy of the non-true softmax (nats)",
    "nontrue_var": "variance of the non-true softmax",
    "nontrue_logit_var": "variance of the non-true logits",
    "nontrue_max_over_mean": "max / mean of the non-true softmax",
}


def plot_logit_distributions(stats_df: pd.DataFrame,
                             quantities: Sequence[str] = ("max_logit", "logit_gap"), *,
                             hue: str = "model", col: str | None = "training",
                             bins: int = 50, kind: str = "hist") -> Figure:
    """Distributions of logit statistics per model (Seguin et al.: AT lowers both).

    Rows are ``quantities``; with ``col="training"`` standard and adversarially
    trained models get separate columns (shared x axis per row, so the shift is
    visible), otherwise one column.

    Args:
        stats_df: per-sample statistics (:func:`stats.stack_stats`).
        quantities: columns to plot.
        hue: the column naming the model.
        col: facet column (``"training"``: standard vs adversarial; None: one column).
        bins, kind: as in :func:`plot_second_softmax_hist`.
    """
    if isinstance(quantities, str):
        quantities = (quantities,)
    if not quantities:
        raise ValueError("quantities is empty: name at least one column")
    df = _check_df(stats_df, "stats_df", [hue, *quantities])
    df, col = _pick_col(df, hue, col)
    return _hist_facets(df, list(quantities), hue=hue, col=col, bins=bins, kind=kind,
                        xlabels=_LOGIT_LABELS, title="Logit distributions on clean inputs")


def plot_margin_hist(stats_df: pd.DataFrame, *, hue: str = "model",
                     col: str | None = "training", bins: int = 60, kind: str = "hist"
                     ) -> Figure:
    """Histograms of the logit margin ``z_y - max_{k != y} z_k`` per model.

    Kanai et al. observe two peaks under adversarial training (hard samples near 0,
    easy ones far out); the dashed line at 0 is the decision boundary.
    """
    df = _check_df(stats_df, "stats_df", [hue, "logit_margin"])
    df, col = _pick_col(df, hue, col)
    return _hist_facets(df, ["logit_margin"], hue=hue, col=col, bins=bins, kind=kind,
                        xlabels=_LOGIT_LABELS, title="Logit margins on clean inputs", vline=0.0)


def _panels(df: pd.DataFrame, keys: Sequence[str]) -> list[tuple]:
    present = [k for k in keys if k in df.columns]
    if not present:
        return [()]
    return [tuple(t) for t in df[present].drop_duplicates().sort_values(present)
            .itertuples(index=False)]


def _panel_title(keys: Sequence[str], values: tuple) -> str:
    parts = []
    for k, v in zip(keys, values):
        parts.append(f"ε = {v:g}" if k == "eps" else str(v))
    return ", ".join(parts)


def plot_success_vs_p2(binned_df: pd.DataFrame, *, hue: str = "model",
                       panel_by: Sequence[str] = ("attack", "eps"), min_n: int = 5,
                       ncols: int = 3) -> Figure:
    """Attack success rate against the clean second-largest softmax, with CI bands.

    Args:
        binned_df: output of :func:`stats.success_vs_p2` (x is each bin's median p2).
        hue: the column naming the model.
        panel_by: one panel per combination of these columns.
        min_n: bins with fewer samples are not drawn (their CIs span everything).
        ncols: panels per row.
    """
    df = _check_df(binned_df, "binned_df", [hue, "stat_median", "success_rate", "ci_low",
                                            "ci_high", "n"])
    keys = [k for k in panel_by if k in df.columns]
    panels = _panels(df, keys)
    styles = model_styles(list(df[hue].unique()), df, hue)
    with use_style():
        fig, axes = _grid(len(panels), ncols, (3.4, 2.7), sharex=True, sharey=True)
        handles: dict[str, Any] = {}
        for ax, pv in zip(axes.flat, panels):
            sub = df
            for k, v in zip(keys, pv):
                sub = sub[sub[k] == v]
            for name, style in styles.items():
                s = sub[(sub[hue] == name) & (sub["n"] >= min_n)].sort_values("stat_median")
                s = s[s["stat_median"] > 0]
                if s.empty:
                    continue
                x = s["stat_median"].to_numpy(float)
                ax.fill_between(x, s["ci_low"], s["ci_high"], color=style.color, alpha=0.2,
                                lw=0)
                (line,) = ax.plot(x, s["success_rate"], color=style.color,
                                  ls=style.linestyle, marker=style.marker, ms=3.5)
                handles.setdefault(str(name), line)
            ax.set_xscale("log")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(_panel_title(keys, pv))
        for ax in axes[-1]:
            ax.set_xlabel("clean second-largest softmax $p_2$")
        for ax in axes[:, 0]:
            ax.set_ylabel("attack success rate")
        figure_title(fig, "Attack success vs clean $p_2$ (clean-correct samples; 95% CI)")
        figure_legend(fig, list(handles.values()), list(handles), title=hue)
    return fig


def plot_robust_accuracy(robust_df: pd.DataFrame, *, hue: str = "model",
                         value: str = "robust_accuracy", band: str = "minmax",
                         add_clean: bool = True, ncols: int = 3) -> Figure:
    """Robust accuracy against eps, one panel per attack: mean over seeds and a band.

    Args:
        robust_df: per-seed rows, e.g. :func:`stats.robust_accuracy` (columns
            ``hue``, ``attack``, ``eps``, ``value``, and ``seed``).
        hue: the column naming the model.
        value: the column plotted.
        band: ``"minmax"`` (range over seeds) or ``"std"`` (mean ± std).
        add_clean: when there is no eps = 0 row, draw the clean accuracy there
            (needs ``clean_accuracy``).
        ncols: panels per row.
    """
    check_choice("band", band, ("minmax", "std"))
    df = _check_df(robust_df, "robust_df", [hue, "attack", "eps", value])
    if "seed" not in df.columns:
        df = df.assign(seed=0)
    if add_clean and "clean_accuracy" in df.columns and value == "robust_accuracy":
        # The identity columns travel with the clean rows: they decide the colours.
        ident = [c for c in (*_LOOK_COLUMNS, "training") if c in df.columns and c != hue]
        extra = []
        for attack, sub in df.groupby("attack", sort=False):
            if not np.isclose(sub["eps"].to_numpy(float), 0).any():
                clean = sub.groupby([hue, "seed", *ident], as_index=False, sort=False,
                                    dropna=False)["clean_accuracy"].mean()
                extra.append(clean.assign(attack=attack, eps=0.0)
                             .rename(columns={"clean_accuracy": value}))
        if extra:
            df = pd.concat([df[[hue, "seed", *ident, "attack", "eps", value]], *extra],
                           ignore_index=True)
    what = "min–max over seeds" if band == "minmax" else "± 1 std over seeds"
    return plot_seed_curves(df, x="eps", y=value, hue=hue, panel_by="attack", band=band,
                            xlabel="ε", ylabel=value.replace("_", " "), ylim=(-0.02, 1.02),
                            ncols=ncols, title=f"{value.replace('_', ' ').capitalize()} vs ε "
                                               f"(mean; band: {what})")


def plot_seed_curves(df: pd.DataFrame, *, x: str, y: str, hue: str = "model",
                     panel_by: str | None = None, band: str = "minmax",
                     xlabel: str | None = None, ylabel: str | None = None,
                     title: str | None = None, ylim: tuple[float, float] | None = None,
                     xscale: str = "linear", ncols: int = 3) -> Figure:
    """Mean over seeds of ``y`` against ``x``, one line per ``hue`` with a seed band,
    one panel per value of ``panel_by`` (e.g. robust accuracy vs eps per attack,
    accuracy vs noise rate per noise kind, accuracy vs tau per reading).

    Args:
        df: per-seed rows with ``x``, ``y``, ``hue`` and ``seed`` columns (rows of one
            seed are averaged first).
        band: ``"minmax"`` (range over seeds) or ``"std"`` (mean ± std).
        xscale: ``"linear"`` or ``"log"``.
    """
    check_choice("band", band, ("minmax", "std"))
    df = _check_df(df, "df", [x, y, hue] + ([panel_by] if panel_by else []))
    if "seed" not in df.columns:
        df = df.assign(seed=0)
    df = df.assign(_panel=df[panel_by].astype(str) if panel_by else "")
    panels = list(dict.fromkeys(df["_panel"])) if panel_by else [""]
    if panel_by:
        panels = sorted(panels)
    styles = model_styles(list(df[hue].unique()), df, hue)
    per_seed = df.groupby([hue, "_panel", x, "seed"], as_index=False)[y].mean()
    agg = per_seed.groupby([hue, "_panel", x])[y].agg(
        ["mean", "std", "min", "max", "count"]).reset_index()
    with use_style():
        fig, axes = _grid(len(panels), ncols, (3.4, 2.7), sharey=True)
        handles: dict[str, Any] = {}
        for ax, panel in zip(axes.flat, panels):
            sub = agg[agg["_panel"] == panel]
            seeds: dict[str, int] = {}
            for name, style in styles.items():
                s = sub[sub[hue] == name].sort_values(x)
                if s.empty:
                    continue
                xs = s[x].to_numpy(float)
                if band == "minmax":
                    lo, hi = s["min"], s["max"]
                else:
                    sd = s["std"].fillna(0.0)
                    lo, hi = s["mean"] - sd, s["mean"] + sd
                ax.fill_between(xs, lo, hi, color=style.color, alpha=0.2, lw=0)
                (line,) = ax.plot(xs, s["mean"], color=style.color, ls=style.linestyle,
                                  marker=style.marker, ms=3.5)
                seeds[name] = int(s["count"].max())
                handles.setdefault(str(name), line)
            ax.set_title(_seed_title(panel, seeds), fontsize=STYLE["axes.titlesize"] - 1)
            ax.set_xscale(xscale)
            ax.set_xlabel(xlabel or x)
            if ylim is not None:
                ax.set_ylim(*ylim)
        for ax in axes[:, 0]:
            ax.set_ylabel(ylabel or y.replace("_", " "))
        if title:
            figure_title(fig, title)
        figure_legend(fig, list(handles.values()), list(handles), title=hue)
    return fig


def _seed_title(panel: str, seeds: dict[str, int]) -> str:
    """A panel title that says how many seeds its lines average. The count belongs to the
    panel, not the legend: the same model can have 8 seeds under one attack and 3 under
    another, and a legend entry per (model, count) listed each model twice."""
    counts = set(seeds.values())
    if not counts:
        return panel
    if len(counts) == 1:
        n = counts.pop()
        what = f"n = {n} seed{'s' if n != 1 else ''}"
    else:
        what = "seeds: " + ", ".join(f"{name} {n}" for name, n in seeds.items())
    return _wrap(f"{panel} ({what})" if panel else what, 40)


def plot_second_class_bars(frac_df: pd.DataFrame, *, hue: str = "model",
                           panel_by: str = "attack", x: str = "eps", ncols: int = 3
                           ) -> Figure:
    """Bars: fraction of successful attacks whose label is the clean second class.

    Args:
        frac_df: output of :func:`stats.second_class_fraction_ci` (``fraction``,
            ``ci_low``, ``ci_high``, ``chance``, ``n_success``).
        hue: one bar per value (colour).
        panel_by: one panel per value of this column.
        x: bar groups along the x axis.
        ncols: panels per row.

    Groups without successful attacks (``n_success = 0``) are marked "n=0". The dashed
    line is chance, 1/(K-1).
    """
    df = _check_df(frac_df, "frac_df", [hue, x, "fraction", "ci_low", "ci_high", "chance"])
    panels = sorted(df[panel_by].astype(str).unique()) if panel_by in df.columns else [None]
    styles = model_styles(list(df[hue].unique()), df, hue)
    names = list(styles)
    xs = sorted(df[x].unique())
    width = 0.8 / len(names)
    with use_style():
        fig, axes = _grid(len(panels), ncols, (max(3.2, 0.35 * len(xs) * len(names) + 1.2),
                                               2.8), sharey=True)
        handles: dict[str, Any] = {}
        for ax, pv in zip(axes.flat, panels):
            sub = df if pv is None else df[df[panel_by].astype(str) == pv]
            for j, name in enumerate(names):
                s = sub[sub[hue] == name].set_index(x).reindex(xs)
                pos = np.arange(len(xs)) + (j - (len(names) - 1) / 2) * width
                frac = s["fraction"].to_numpy(float)
                err = np.vstack([frac - s["ci_low"].to_numpy(float),
                                 s["ci_high"].to_numpy(float) - frac])
                bars = ax.bar(pos, np.nan_to_num(frac), width * 0.92, color=styles[name].color,
                              yerr=np.nan_to_num(err), capsize=2,
                              error_kw={"elinewidth": 0.8, "ecolor": "0.2"})
                handles.setdefault(str(name), bars)
                if "n_success" in s.columns:
                    for p, n in zip(pos, s["n_success"].to_numpy()):
                        if n == 0:
                            ax.text(p, 0.01, "n=0", rotation=90, ha="center", va="bottom",
                                    fontsize=6)
            chance = sub["chance"].dropna().unique()
            for c in chance:
                line = ax.axhline(c, color="0.2", ls="--", lw=1)
            if len(chance):
                handles.setdefault("chance 1/(K−1)", line)
            ax.set_xticks(np.arange(len(xs)),
                          [f"{v:g}" if isinstance(v, float | np.floating) else str(v)
                           for v in xs])
            ax.set_xlabel("ε" if x == "eps" else x)
            ax.set_ylim(0, 1.02)
            if pv is not None:
                ax.set_title(pv)
        for ax in axes[:, 0]:
            ax.set_ylabel("adv. label = clean 2nd class")
        figure_title(fig, "Successful attacks that land on the clean second class (95% CI)")
        figure_legend(fig, list(handles.values()), list(handles), title=hue)
    return fig


def plot_table(df: pd.DataFrame, *, title: str | None = None, index: bool = True,
               fontsize: float = 9) -> Figure:
    """Render a (formatted) table, e.g. :func:`stats.format_seed_table`, as a figure.

    Column widths follow the longest entry; the header is shaded and bold, body rows
    alternate in light grey. ``index``: draw the index as the first column, unless it is
    pandas' default unnamed 0..n-1 range, which carries nothing.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if df.empty:
        raise ValueError("df is empty")
    default = (isinstance(df.index, pd.RangeIndex) and df.index.name is None
               and df.index.start == 0 and df.index.step == 1)
    index = index and not default
    frame = df.reset_index() if index else df
    header = [str(c) for c in frame.columns]
    body = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    lengths = np.array([[len(h) for h in header]] + [[len(c) for c in r] for r in body])
    widths = lengths.max(axis=0) + 2
    char_w = fontsize / 72 * 0.62  # inches per character for DejaVu Sans
    fig_w = float(widths.sum() * char_w + 0.3)
    row_h = fontsize / 72 * 2.1
    title_lines = 0
    if title:
        import textwrap

        # The suptitle is set a little larger than the cells: wrap it to the table width.
        per_line = max(20, int(fig_w / (char_w * 1.25)))
        title = "\n".join(textwrap.wrap(title, per_line))
        title_lines = title.count("\n") + 1
    fig_h = float((len(body) + 1) * row_h + (0.15 + 0.3 * title_lines if title else 0.15))
    with use_style(**{"figure.constrained_layout.use": False}):
        fig = plt.figure(figsize=(fig_w, fig_h), layout="none")
        ax = fig.add_axes((0.02, 0.02, 0.96, (len(body) + 1) * row_h / fig_h))
        ax.axis("off")
        table = ax.table(cellText=body, colLabels=header, loc="upper center",
                         cellLoc="center", colWidths=list(widths / widths.sum()),
                         bbox=(0, 0, 1, 1))
        table.auto_set_font_size(False)
        table.set_fontsize(fontsize)
        for (r, c), cell in table.get_celld().items():
            cell.set_edgecolor("0.75")
            cell.set_linewidth(0.5)
            if r == 0:
                cell.set_facecolor("#E6E6E6")
                cell.set_text_props(weight="bold")
            elif r % 2 == 0:
                cell.set_facecolor("#F5F5F5")
            if c == 0 and index and r > 0:
                cell.set_text_props(ha="left")
                cell.PAD = 0.05
        if title:
            fig.suptitle(title, y=1 - 0.12 / fig_h, va="top")
    return fig


def plot_frontier(df: pd.DataFrame, *, x: str = "clean_accuracy",
                  y: str = "robust_accuracy", hue: str = "model", order: str | None = None,
                  panel_by: str | None = None, annotate: str | None = None,
                  title: str | None = None, ncols: int = 2) -> Figure:
    """Clean against robust accuracy: one point per configuration (mean over seeds, with
    ± std error bars in both directions); configurations of the same ``hue`` are joined
    in the order of ``order`` (e.g. tau), so a sweep traces its trade-off curve and
    single reference models appear as lone markers.

    Args:
        df: per-seed rows with ``x``, ``y``, ``hue`` (and ``order``, ``panel_by``,
            ``annotate``, ``seed`` where used).
        order: the column that orders the points of one ``hue`` (None: one point per hue).
        panel_by: one panel per value (e.g. the eps of the attack).
        annotate: a column whose value labels each point (e.g. ``"tau"``).
    """
    needed = [x, y, hue] + [c for c in (order, panel_by, annotate) if c]
    df = _check_df(df, "df", needed)
    if "seed" not in df.columns:
        df = df.assign(seed=0)
    keys = [hue] + ([order] if order else []) + ([panel_by] if panel_by else [])
    # dropna=False: reference models have no tau (NaN in ``order``) and must stay.
    agg = (df.groupby(keys + ["seed"], sort=False, dropna=False)[[x, y]].mean()
           .groupby(keys, sort=False, dropna=False).agg(["mean", "std"]).reset_index())
    agg.columns = ["_".join(c).rstrip("_") if isinstance(c, tuple) else c for c in agg.columns]
    panels = sorted(agg[panel_by].unique()) if panel_by else [None]
    styles = model_styles(list(df[hue].unique()), df, hue)
    with use_style():
        fig, axes = _grid(len(panels), ncols, (3.8, 3.2), sharey=False)
        handles: dict[str, Any] = {}
        for ax, panel in zip(axes.flat, panels):
            sub = agg if panel is None else agg[agg[panel_by] == panel]
            for name, style in styles.items():
                s = sub[sub[hue] == name]
                if s.empty:
                    continue
                if order:
                    s = s.sort_values(order)
                ax.errorbar(s[f"{x}_mean"], s[f"{y}_mean"], xerr=s[f"{x}_std"].fillna(0),
                            yerr=s[f"{y}_std"].fillna(0), color=style.color, lw=0,
                            elinewidth=0.8, capsize=1.5)
                (line,) = ax.plot(s[f"{x}_mean"], s[f"{y}_mean"], color=style.color,
                                  ls=style.linestyle if len(s) > 1 else "none",
                                  marker=style.marker, ms=4.5)
                handles.setdefault(str(name), line)
                if annotate and order and len(s) > 1:
                    for _, r in s.iterrows():
                        ax.annotate(f"{r[order]:g}", (r[f"{x}_mean"], r[f"{y}_mean"]),
                                    textcoords="offset points", xytext=(3, 3), fontsize=6.5,
                                    color=style.color)
            if panel is not None:
                ax.set_title(f"{panel_by} = {panel:g}" if isinstance(panel, float | int)
                             else str(panel))
            ax.set_xlabel(x.replace("_", " "))
            ax.set_ylabel(y.replace("_", " "))
        if title:
            figure_title(fig, title)
        figure_legend(fig, list(handles.values()), list(handles), title=hue)
    return fig


def plot_attack_calibration(table: pd.DataFrame, *, scale: float = 100.0) -> Figure:
    """Robust accuracy per model under each cheap attack (bars, mean over seeds) with
    standard AutoAttack on the same images as the reference (a black line across each
    model's bars), one panel per eps: the gap between a bar and the line is that
    attack's overstatement (:func:`calibration.overstatement_table`).

    Args:
        table: rows of :func:`calibration.overstatement_table` (columns ``model``,
            ``attack``, ``eps``, ``robust_cheap``, ``robust_reference``, ``n_seeds``).
        scale: display units per fraction (100: percent).
    """
    df = _check_df(table, "table", ["model", "attack", "eps", "robust_cheap",
                                    "robust_reference", "n_seeds"])
    panels = sorted(df["eps"].unique())
    attacks = list(dict.fromkeys(df["attack"]))
    width = 0.8 / max(1, len(attacks))
    hatches = ("", "//", "..", "xx", "\\\\")
    n_models = max(df[df["eps"] == e]["model"].nunique() for e in panels)
    with use_style():
        fig, axes = _grid(len(panels), len(panels), (max(3.2, 0.9 * n_models + 1.2), 3.2),
                          sharey=True)
        for ax, eps in zip(axes.flat, panels):
            sub = df[df["eps"] == eps]
            styles = model_styles(list(dict.fromkeys(sub["model"])), sub)
            models = list(styles)
            for i, model in enumerate(models):
                rows = sub[sub["model"] == model]
                for j, attack in enumerate(attacks):
                    row = rows[rows["attack"] == attack]
                    if row.empty:
                        continue
                    ax.bar(i - 0.4 + width * (j + 0.5),
                           float(row["robust_cheap"].iloc[0]) * scale, width,
                           color=styles[model].color, alpha=0.85, hatch=hatches[j % 5],
                           edgecolor="white", linewidth=0.5)
                ref = float(rows["robust_reference"].iloc[0]) * scale
                ax.hlines(ref, i - 0.45, i + 0.45, color=ADVERSARIAL_COLOR, linewidth=1.8)
            n = int(sub["n_seeds"].max())
            ax.set_title(f"ε = {eps:g} (n={n} seeds)")
            ax.set_xticks(range(len(models)), [textwrap.fill(str(m), 10) for m in models],
                          fontsize=7)
        handles = [matplotlib.patches.Patch(facecolor="#bbbbbb", hatch=hatches[j % 5],
                                            edgecolor="white", label=a)
                   for j, a in enumerate(attacks)]
        handles.append(matplotlib.lines.Line2D([], [], color=ADVERSARIAL_COLOR,
                                               linewidth=1.8, label="standard AutoAttack"))
        figure_legend(fig, handles, [h.get_label() for h in handles], title="attack")
        axes[0, 0].set_ylabel("robust accuracy (%)")
        figure_title(fig, "Cheap attacks against standard AutoAttack on the same images")
    return fig
