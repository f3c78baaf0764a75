"""Tests for drsl_utils.plots: colours, reproducible saving, and every figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from test_stats import make_records  # noqa: E402

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
            runs.append({"model": m, "seed": s, "logits": z, "labels": y})
    return stats.stack_stats(runs)


# ------------------------------------------------------------------ colours


def test_color_for_is_stable_and_family_based():
    assert plots.color_for("ce") == plots.LOSS_COLORS["ce"] == plots.color_for("CE")
    assert plots.color_for("I-SCE") == plots.LOSS_COLORS["isce"]
    assert plots.color_for("DRSL-prob") == plots.LOSS_COLORS["drsl-prob"]
    assert plots.color_for("SOVR-AT") == plots.LOSS_COLORS["sovr-at"]
    assert plots.color_for("PGD-AT") == plots.LOSS_COLORS["pgd-at"]
    assert plots.color_for("drsl(tau=0.1)") == plots.color_for("drsl(tau=1.0)")
    assert plots.color_for("drsl(space=prob,tau=0.1)") == plots.LOSS_COLORS["drsl-prob"]
    assert plots.color_for("ce+pgd-at") == plots.LOSS_COLORS["pgd-at"]
    assert plots.color_for("ce+trades") == plots.LOSS_COLORS["trades"]
    assert plots.color_for("sovr(M=0.4)+pgd-at") == plots.LOSS_COLORS["sovr-at"]
    dark = plots.color_for("drsl(tau=0.1)+pgd-at")
    assert dark not in (plots.color_for("drsl"), plots.LOSS_COLORS["pgd-at"])
    unknown = plots.color_for("focal(gamma=2)")
    assert unknown == plots.color_for("focal(gamma=3)") and unknown.startswith("#")
    assert len(set(plots.LOSS_COLORS.values())) == len(plots.LOSS_COLORS)


def test_model_styles_separate_shared_colours():
    st = plots.model_styles(["drsl(tau=1.0)", "ce", "drsl(tau=0.1)", "ce+pgd-at"])
    assert list(st) == ["ce", "drsl(tau=0.1)", "drsl(tau=1.0)", "ce+pgd-at"]
    a, b = st["drsl(tau=0.1)"], st["drsl(tau=1.0)"]
    assert a.color == b.color and (a.linestyle, a.marker) != (b.linestyle, b.marker)
    assert st["ce+pgd-at"].linestyle != "-"


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
