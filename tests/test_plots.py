"""Tests for drsl_utils.plots: colours, reproducible saving, and every figure."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from test_stats import identity, make_records  # noqa: E402

from drsl_utils import plots, stats  # noqa: E402

MODELS = ("ce", "gce(q=0.7)", "drsl(tau=0.1)", "ce+pgd-at")


@pytest.fixture(scope="module")
def records():
    return make_records(models=MODELS, seeds=(0, 1), attacks=("pgd", "fgsm"),
                        eps=(0.05, 0.1), n=150)


@pytest.fixture(scope="module")
def stats_df():
    rng = np.random.default_rng(0)
    runs = []
    for m in MODELS + ("sovr+pgd-at",):
        at = "+" in m
        for s in (0, 1):
            y = rng.integers(0, 10, 300)
            z = rng.normal(size=(300, 10)) * (0.7 if at else 2.0)
            z[np.arange(300), y] += rng.uniform(0, 5, 300) if at else rng.uniform(4, 14, 300)
            runs.append({**identity(m, s), "logits": z, "labels": y})
    return stats.stack_stats(runs)


# ------------------------------------------------------------------ colours


def test_color_for_colours_families_and_hashes_other_labels():
    assert plots.color_for("ce") == plots.LOSS_COLORS["ce"] == plots.color_for("CE")
    assert plots.color_for("I-SCE") == plots.LOSS_COLORS["isce"]
    assert plots.color_for("DRSL-prob") == plots.LOSS_COLORS["drsl-prob"]
    assert plots.color_for("SOVR-AT") == plots.LOSS_COLORS["sovr-at"]
    assert plots.color_for("PGD-AT") == plots.LOSS_COLORS["pgd-at"]
    # Any other label is a label: a stable colour of its own, nothing parsed out of it.
    unknown = plots.color_for("drsl(tau=0.1)")
    assert unknown == plots.color_for("DRSL(tau=0.1)") and unknown.startswith("#")
    assert unknown not in plots.LOSS_COLORS.values()
    assert len(set(plots.LOSS_COLORS.values())) == len(plots.LOSS_COLORS)


def _identities(names):
    return pd.DataFrame([identity(n) for n in names])


def test_model_styles_read_identity_and_separate_shared_colours():
    names = ["drsl(tau=1.0)", "ce", "drsl(tau=0.1)", "ce+pgd-at", "sovr+pgd-at"]
    frame = _identities(names[1:]).assign(model=names[1:])
    frame = pd.concat([frame, _identities(["drsl(tau=0.1)"]).assign(model="drsl(tau=1.0)")])
    st = plots.model_styles(names, frame)
    assert list(st) == ["ce", "drsl(tau=0.1)", "drsl(tau=1.0)", "ce+pgd-at", "sovr+pgd-at"]
    a, b = st["drsl(tau=0.1)"], st["drsl(tau=1.0)"]
    assert a.color == b.color == plots.LOSS_COLORS["drsl"]
    assert (a.linestyle, a.marker) != (b.linestyle, b.marker)
    assert st["ce+pgd-at"].color == plots.LOSS_COLORS["pgd-at"]
    assert st["sovr+pgd-at"].color == plots.LOSS_COLORS["sovr-at"]
    assert st["ce+pgd-at"].linestyle != "-"


def test_styles_come_from_identity_not_from_a_misleading_name():
    import json

    # "PGD-AT" here is a CE model trained on labels, and "my model" DRSL on probabilities
    # trained with TRADES; a foreign model keeps a colour of its own label.
    frame = pd.DataFrame([
        {**identity("ce"), "model": "PGD-AT"},
        {**identity("ce"), "model": "my model", "loss": "drsl", "adversarial": "trades",
         "loss_params": json.dumps({"space": "prob", "tau": 1.0})},
        {**identity("SmallCNN"), "model": "CE"},
    ])
    st = plots.model_styles(list(frame["model"]), frame)
    assert st["PGD-AT"] == plots.Style(plots.LOSS_COLORS["ce"], "-", "o")
    assert st["my model"].color not in (plots.LOSS_COLORS["drsl-prob"],
                                        plots.LOSS_COLORS["trades"])
    assert st["my model"].linestyle == "--"  # adversarially trained: dashed
    # A foreign model named "CE": its loss is unknown, so its colour is its own.
    assert st["CE"].color not in plots.LOSS_COLORS.values() and st["CE"].linestyle == "-"
    assert list(st) == ["PGD-AT", "CE", "my model"]
    # Without identity columns the labels decide (a frame built by hand).
    bare = plots.model_styles(["PGD-AT", "my model"])
    assert bare["PGD-AT"].color == plots.LOSS_COLORS["pgd-at"]
    assert bare["PGD-AT"].linestyle == "--"


def test_figures_draw_and_facet_by_identity(records, stats_df):
    # The records of "ce+pgd-at", renamed "CE": still drawn (and faceted) as PGD-AT.
    rec = records.replace({"model": {"ce+pgd-at": "CE"}})
    fig = plots.plot_robust_accuracy(stats.robust_accuracy(rec))
    legend = {t.get_text(): h for t, h in zip(fig.legends[0].get_texts(),
                                               fig.legends[0].legend_handles)}
    assert legend["CE"].get_color() == plots.LOSS_COLORS["pgd-at"]
    assert legend["ce"].get_color() == plots.LOSS_COLORS["ce"]
    plt.close(fig)
    clean = stats_df.replace({"model": {"ce+pgd-at": "CE"}})
    titles = [ax.get_title() for ax in plots.plot_second_softmax_hist(clean).axes
              if ax.get_visible()]
    assert titles == ["standard training", "adversarial training"]
    one = plots.plot_second_softmax_hist(clean[clean["training"] == "standard"])
    assert [ax.get_title() for ax in one.axes if ax.get_visible()] == [""]
    # A frame built by hand, without identity: a label naming an adversarial family
    # ("PGD-AT") is the only regime it has.
    bare = stats_df[["model", "seed", "p_top2"]].replace(
        {"model": {"ce+pgd-at": "PGD-AT", "sovr+pgd-at": "my AT model"}})
    titles = [ax.get_title() for ax in plots.plot_second_softmax_hist(bare).axes
              if ax.get_visible()]
    assert titles == ["standard training", "adversarial training"]
    plt.close("all")


# ------------------------------------------------------------------ saving


def test_save_figure_is_byte_reproducible_and_does_not_touch_unchanged(tmp_path):
    with plots.use_style():
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, 1], [0, 1], label="ce")
        ax.legend()
    first = plots.save_figure(fig, "line", tmp_path)
    assert [p.suffix for p in first] == [".png", ".pdf"]
    data = [p.read_bytes() for p in first]
    mtimes = [p.stat().st_mtime_ns for p in first]
    second = plots.save_figure(fig, "line", tmp_path, close=True)
    assert [p.read_bytes() for p in second] == data
    assert [p.stat().st_mtime_ns for p in second] == mtimes
    assert b"CreationDate" not in data[1] and b"Software" not in data[0]
    h, w = mpimg.imread(first[0]).shape[:2]
    assert (w, h) == (600, 400)  # 3 x 2 inches at 200 dpi
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "a/b"}, "name"), ({"name": "x", "dpi": 72}, "dpi"),
    ({"name": "x", "formats": ("jpg",)}, "formats"),
])
def test_save_figure_rejects_bad_arguments(tmp_path, kwargs, match):
    fig = plt.figure()
    with pytest.raises(ValueError, match=match):
        plots.save_figure(fig, directory=tmp_path, **kwargs)
    plt.close(fig)


# ------------------------------------------------------------------ figures


def _figures(records, stats_df):
    frac = stats.second_class_fraction_ci(records)
    table = stats.format_seed_table(stats.seed_table(
        stats.robust_accuracy(records).query("eps == 0.1"), ["model", "attack"],
        ["clean_accuracy", "robust_accuracy"]), index=["model", "attack"])
    return {
        "second_softmax_hist": lambda: plots.plot_second_softmax_hist(stats_df),
        "before_after": lambda: plots.plot_second_softmax_before_after(records, "pgd", 0.1),
        "logit_distributions": lambda: plots.plot_logit_distributions(stats_df),
        "margin_hist": lambda: plots.plot_margin_hist(stats_df, kind="kde"),
        "success_vs_p2": lambda: plots.plot_success_vs_p2(stats.success_vs_p2(records)),
        "robust_accuracy": lambda: plots.plot_robust_accuracy(stats.robust_accuracy(records),
                                                              band="std"),
        "second_class_bars": lambda: plots.plot_second_class_bars(frac),
        "table": lambda: plots.plot_table(table, title="Accuracy"),
    }


@pytest.mark.parametrize("name", ["second_softmax_hist", "before_after",
                                  "logit_distributions", "margin_hist", "success_vs_p2",
                                  "robust_accuracy", "second_class_bars", "table"])
def test_each_figure_saves_png_and_pdf(name, records, stats_df, tmp_path):
    fig = _figures(records, stats_df)[name]()
    png, pdf = plots.save_figure(fig, name, tmp_path)
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000
    h, w = mpimg.imread(png).shape[:2]
    assert 400 <= w <= 4000 and 200 <= h <= 3000
    # A second save of the same figure gives the same bytes.
    again = plots.save_figure(fig, name + "-again", tmp_path, formats=("png",), close=True)
    assert again[0].read_bytes() == png.read_bytes()


def test_rendering_twice_gives_identical_png(records, tmp_path):
    a = plots.save_figure(plots.plot_robust_accuracy(stats.robust_accuracy(records)), "a",
                          tmp_path, formats=("png",), close=True)
    b = plots.save_figure(plots.plot_robust_accuracy(stats.robust_accuracy(records)), "b",
                          tmp_path, formats=("png",), close=True)
    assert a[0].read_bytes() == b[0].read_bytes()


def test_figures_validate_inputs(records, stats_df):
    with pytest.raises(ValueError, match="attack"):
        plots.plot_second_softmax_before_after(records, "cw", 0.1)
    with pytest.raises(ValueError, match="eps"):
        plots.plot_second_softmax_before_after(records, "pgd", 0.3)
    with pytest.raises(ValueError, match="logit_gap"):
        plots.plot_logit_distributions(stats_df.drop(columns=["logit_gap"]))
    with pytest.raises(ValueError, match="band"):
        plots.plot_robust_accuracy(stats.robust_accuracy(records), band="iqr")
    with pytest.raises(ValueError, match="kind"):
        plots.plot_margin_hist(stats_df, kind="violin")
    plt.close("all")


def test_second_class_bars_handles_groups_without_successes(records, tmp_path):
    frac = stats.second_class_fraction_ci(records.assign(success=False), num_classes=10)
    fig = plots.plot_second_class_bars(frac)
    assert any(t.get_text() == "n=0" for ax in fig.axes for t in ax.texts)
    plt.close(fig)


def test_seed_counts_go_per_panel_not_per_legend_entry(records):
    # PGD on both seeds of every model, FGSM on seed 0 only: the legend used to list
    # each model twice ("ce (n=2)" and "ce (n=1)").
    robust = stats.robust_accuracy(records)
    robust = robust[(robust["attack"] == "pgd") | (robust["seed"] == 0)]
    fig = plots.plot_robust_accuracy(robust)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sorted(legend) == sorted(MODELS), legend
    titles = {ax.get_title().split(" ")[0]: ax.get_title() for ax in fig.axes if ax.get_title()}
    assert "n = 2 seeds" in titles["pgd"] and "n = 1 seed)" in titles["fgsm"], titles
    plt.close(fig)


def test_attack_calibration_plot_draws_bars_and_reference_lines():
    import pandas as pd

    from drsl_utils.plots import plot_attack_calibration

    table = pd.DataFrame([
        {"model": m, "attack": a, "eps": e, "robust_cheap": rc, "robust_reference": rr,
         "n_seeds": 2}
        for e in (0.05, 0.1) for m, rr in (("CE", 0.35), ("DRSL", 0.41))
        for a, rc in (("apgd-dlr", rr + 0.03), ("pgd", rr + 0.05))])
    fig = plot_attack_calibration(table)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    ax = axes[0]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == sorted(round(100 * v, 6) for v in (0.38, 0.40, 0.44, 0.46))
    lines = [c for c in ax.collections if c.get_segments()]
    ys = sorted(round(seg[0][1], 6) for c in lines for seg in c.get_segments())
    assert ys == [35.0, 41.0]
    assert "n=2" in ax.get_title()
    plt.close(fig)


# ------------------------------------------------------------------ nothing clips


def _texts(fig):
    """Every text the renderer drew: visible, non-empty, in a visible axes, and (for
    tick labels) at a tick inside the view limits."""
    import matplotlib.text as mtext

    hidden = set()
    for ax in fig.axes:
        if not ax.get_visible():  # an axes that is not drawn, with all it holds
            hidden |= {id(t) for t in ax.findobj(mtext.Text)}
            continue
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = (hi - lo) or 1.0
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 * span <= tick.get_loc() <= hi + 1e-9 * span:
                    hidden |= {id(tick.label1), id(tick.label2)}
    out = []
    for t in fig.findobj(mtext.Text):
        if t.get_visible() and t.get_text().strip() and id(t) not in hidden:
            out.append(t)
    return out


def assert_no_text_clipped(fig):
    """Every drawn text lies inside the figure (one pixel of slack for rounding)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    texts = _texts(fig)
    assert texts, "no text found: the check would pass vacuously"
    out = []
    for t in texts:
        bb = t.get_window_extent(renderer)
        if bb.x0 < box.x0 - 1 or bb.x1 > box.x1 + 1 or bb.y0 < box.y0 - 1 or bb.y1 > box.y1 + 1:
            out.append(f"{t.get_text()!r} at [{bb.x0:.0f}, {bb.x1:.0f}] x "
                       f"[{bb.y0:.0f}, {bb.y1:.0f}] in {box.width:.0f} x {box.height:.0f}")
    assert not out, "text outside the figure: " + "; ".join(out)


#: A user's model, named as users name them: a long name that squeezed a single panel.
USER_MODEL = "SmallCNN trained in plain PyTorch"
TINY_MODELS = ("ce", "drsl(tau=0.1)", "ce+pgd-at", USER_MODEL)


@pytest.fixture(scope="module")
def tiny():
    """Records and per-sample statistics small enough to draw every figure in a blink."""
    recs = make_records(models=TINY_MODELS, seeds=(0, 1), attacks=("pgd", "fgsm"),
                        eps=(0.05, 0.1), n=40)
    rng = np.random.default_rng(1)
    runs = []
    for m in TINY_MODELS:
        for s in (0, 1):
            y = rng.integers(0, 10, 60)
            z = rng.normal(size=(60, 10)) * 2.0
            z[np.arange(60), y] += rng.uniform(2, 10, 60)
            runs.append({**identity(m, s), "logits": z, "labels": y})
    return recs, stats.stack_stats(runs)


def _calibration_table(eps=(0.05, 0.1)):
    import pandas as pd

    return pd.DataFrame([
        {"model": m, "attack": a, "eps": e, "robust_cheap": rr + d, "robust_reference": rr,
         "n_seeds": 2}
        for e in eps for m, rr in (("ce", 0.35), (USER_MODEL, 0.41))
        for a, d in (("apgd-dlr", 0.03), ("pgd", 0.05))])


def _layouts(recs, sdf):
    """For each public plot function: builders of a one-panel and a several-panel figure
    (None where the function draws no panels)."""
    one = recs[recs["model"] == USER_MODEL]
    one_sdf = sdf[sdf["model"] == USER_MODEL]
    robust = stats.robust_accuracy(recs)
    frontier = robust.query("attack == 'pgd'")
    frac = stats.second_class_fraction_ci(recs)
    table = stats.format_seed_table(stats.seed_table(
        robust.query("eps == 0.1"), ["model", "attack"], ["clean_accuracy",
                                                          "robust_accuracy"]),
        index=["model", "attack"])
    return {
        "plot_second_softmax_hist": (
            lambda: plots.plot_second_softmax_hist(one_sdf, col=None),
            lambda: plots.plot_second_softmax_hist(sdf)),
        "plot_second_softmax_before_after": (
            lambda: plots.plot_second_softmax_before_after(one, "pgd", 0.05),
            lambda: plots.plot_second_softmax_before_after(recs, "pgd", 0.05)),
        "plot_logit_gap_before_after": (
            lambda: plots.plot_logit_gap_before_after(one, "pgd", 0.05, quantities="gap"),
            lambda: plots.plot_logit_gap_before_after(recs, "pgd", 0.05)),
        "plot_logit_distributions": (
            lambda: plots.plot_logit_distributions(one_sdf, "logit_gap", col=None),
            lambda: plots.plot_logit_distributions(sdf)),
        "plot_margin_hist": (
            lambda: plots.plot_margin_hist(one_sdf, col=None),
            lambda: plots.plot_margin_hist(sdf)),
        "plot_success_vs_p2": (
            lambda: plots.plot_success_vs_p2(stats.success_vs_p2(
                recs.query("attack == 'pgd' and eps == 0.1")), min_n=1),
            lambda: plots.plot_success_vs_p2(stats.success_vs_p2(recs), min_n=1)),
        "plot_robust_accuracy": (
            lambda: plots.plot_robust_accuracy(robust.query("attack == 'pgd'")),
            lambda: plots.plot_robust_accuracy(robust)),
        "plot_seed_curves": (
            lambda: plots.plot_seed_curves(robust, x="eps", y="robust_accuracy",
                                           title="Robust accuracy against ε = 0.05 and ε "
                                                 "= 0.1 on the tiny set"),
            lambda: plots.plot_seed_curves(robust, x="eps", y="robust_accuracy",
                                           panel_by="attack")),
        "plot_frontier": (
            lambda: plots.plot_frontier(frontier, title="Clean against robust accuracy"),
            lambda: plots.plot_frontier(frontier, panel_by="eps")),
        "plot_attack_calibration": (
            lambda: plots.plot_attack_calibration(_calibration_table((0.05,))),
            lambda: plots.plot_attack_calibration(_calibration_table())),
        "plot_second_class_bars": (
            lambda: plots.plot_second_class_bars(frac.query("attack == 'pgd'")),
            lambda: plots.plot_second_class_bars(frac)),
        "plot_table": (lambda: plots.plot_table(table, title="Accuracy (mean ± std)"), None),
    }


def test_every_public_plot_has_a_layout_check(tiny):
    public = {n for n in plots.__all__ if n.startswith("plot_")}
    assert public == set(_layouts(*tiny))


@pytest.mark.parametrize("panels", ["one", "several"])
def test_no_text_is_clipped(tiny, panels):
    for name, builders in _layouts(*tiny).items():
        build = builders[0 if panels == "one" else 1]
        if build is None:
            continue
        fig = build()
        try:
            assert_no_text_clipped(fig)
        except AssertionError as exc:
            raise AssertionError(f"{name} ({panels} panel(s)): {exc}") from None
        finally:
            plt.close(fig)


def test_an_equation_in_a_title_stays_on_one_line():
    # Plain textwrap breaks this one as "... pgd, ε" / "= 0.05".
    text = "Second-largest softmax before and after pgd, ε = 0.05"
    assert textwrap.fill(text, 46).split("\n")[0].endswith("ε")
    lines = plots.fit_text(text, 46 * 0.6 * 10 / 72, 10).split("\n")
    assert any("ε = 0.05" in line for line in lines), lines
    assert " ".join(lines) == text


def test_logit_gap_before_after_draws_clean_and_adversarial_per_model(tiny):
    recs, _ = tiny
    two = recs[recs["model"].isin(["ce", USER_MODEL])]
    fig = plots.plot_logit_gap_before_after(two, "pgd", 0.1)
    title = fig._suptitle.get_text()
    assert "before and after pgd" in title and "ε = 0.1" in title
    assert "clean inputs" not in title  # the old workaround's title said "on clean inputs"
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 4  # rows: gap, margin; columns: the two models
    assert [ax.get_xlabel().split()[1] for ax in axes] == ["gap", "gap", "margin", "margin"]
    # The first panel's filled histogram is the clean gap of its clean-correct samples.
    sel = two[(two["attack"] == "pgd") & np.isclose(two["eps"], 0.1) & two["clean_correct"]]
    name = axes[0].get_title().split("\n")[0]
    clean = sel.loc[sel["model"] == name, "clean_gap"].to_numpy()
    stairs = [p for p in axes[0].patches if p.get_fill()]
    values, edges = stairs[0].get_data().values, stairs[0].get_data().edges
    np.testing.assert_allclose(values, np.histogram(clean, edges, density=True)[0])
    # The margin panels mark the decision boundary at 0.
    assert any(np.allclose(line.get_xdata(), 0) for line in axes[2].lines)
    plt.close(fig)
    only_gap = plots.plot_logit_gap_before_after(two, "pgd", 0.1, quantities="gap")
    assert len([ax for ax in only_gap.axes if ax.get_visible()]) == 2
    plt.close(only_gap)
    with pytest.raises(ValueError, match="quantities"):
        plots.plot_logit_gap_before_after(two, "pgd", 0.1, quantities=("entropy",))
    with pytest.raises(ValueError, match="eps"):
        plots.plot_logit_gap_before_after(two, "pgd", 0.3)


def test_plot_table_drops_the_default_range_index():
    """A frame with pandas' unnamed 0..n-1 index (12_attack_calibration's rows) draws no
    'index' column; a named index is drawn as the first column."""
    rows = pd.DataFrame({"model": ["CE", "DRSL"], "robust": ["35.3", "43.0"]})
    def texts(fig):
        return {c.get_text().get_text() for c in fig.axes[0].tables[0].get_celld().values()}

    plain = plots.plot_table(rows)
    assert "index" not in texts(plain) and "0" not in texts(plain)
    named = plots.plot_table(rows.set_index("model"))
    assert {"model", "CE", "robust"} <= texts(named)
    plt.close("all")
