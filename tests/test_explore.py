"""Explorers: the core's numbers without any renderer (on synthetic records with a
known answer), then each renderer (matplotlib, the live widget, the kernel-free HTML)
agreeing with the core on one selection, and the headless output."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from drsl_utils import explore, plots, stats  # noqa: E402
from drsl_utils.embed import UmapPanel  # noqa: E402
from drsl_utils.explore_core import SampleCore, SweepCore, plain  # noqa: E402

K = 4


def _records(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for attack in ("pgd", "fgsm"):
        for model in ("CE", "DRSL"):
            for eps in (0.01, 0.05, 0.1):
                for s in (0, 1, 2):
                    n = 200
                    label = rng.integers(0, K, n)
                    clean_second = (label + 1) % K
                    # Robust accuracy falls with eps; DRSL a bit more robust. One sample
                    # in ten is a clean error: never robust, never a success.
                    p_flip = eps * (4 if model == "CE" else 3)
                    correct = rng.random(n) > 0.1
                    success = correct & (rng.random(n) < p_flip)
                    adv_pred = np.where(success, clean_second,
                                        np.where(correct, label, (label + 2) % K))
                    rows.append(pd.DataFrame({
                        "attack": attack, "model": model, "eps": eps, "seed": s,
                        "label": label, "clean_pred": np.where(correct, label, adv_pred),
                        "clean_second": clean_second, "adv_pred": adv_pred,
                        "clean_correct": correct, "success": success,
                        "adv_is_clean_second": adv_pred == clean_second,
                        "clean_p_second": rng.uniform(0, 0.3, n),
                        "adv_p_second": rng.uniform(0, 0.5, n)}))
    return pd.concat(rows, ignore_index=True)


# ------------------------------------------------------------------- sweep core


def test_sweep_core_numbers_come_from_stats():
    rec = _records()
    core = SweepCore(rec, controls=("attack",))
    sel = core.resolve(core.default(), {"attack": "pgd", "model": "CE", "eps": 0.1})
    v = core.view(sel)
    cell = rec[(rec.attack == "pgd") & (rec.model == "CE") & (rec.eps == 0.1)]
    # Robust = correct clean and under attack, per seed, then the mean over seeds.
    want = cell.groupby("seed").apply(
        lambda d: (d.clean_correct & ~d.success).mean()).mean()
    assert v.robust_accuracy == pytest.approx(want) and v.seeds == 3
    frac = stats.second_class_fraction_ci(cell, num_classes=K)
    assert v.runner_up_share == pytest.approx(frac["fraction"].iloc[0]) == 1.0
    assert v.chance == pytest.approx(1 / 3)
    assert v.successes == int(cell.success.sum())
    ok = cell[cell.clean_correct]
    assert v.p2_before.sum() == pytest.approx(1.0)
    assert v.p2_before[0] == pytest.approx((ok.clean_p_second < 0.02).mean())
    # The curves hold every line under the chosen attack; DRSL is the more robust.
    assert set(v.curves) == {"CE", "DRSL"}
    assert v.curves["CE"][0] == [0.01, 0.05, 0.1]
    assert v.curves["CE"][1][-1] == pytest.approx(want)
    assert np.mean(v.curves["DRSL"][1]) > np.mean(v.curves["CE"][1])
    assert v.landing_x == [0.01, 0.05, 0.1] and v.landing_share[-1] == 1.0
    # Colours are the loss colours of plots, not a positional palette.
    assert v.styles["CE"].color == plots.color_for("CE")
    assert v.styles["DRSL"].color == plots.color_for("DRSL")
    assert "robust accuracy" in v.caption and "pgd" in v.caption


def test_sweep_core_selections_and_errors():
    rec = _records()
    core = SweepCore(rec, controls=("attack",))
    assert len(list(core.selections())) == 2 * 2 * 3
    sel = core.default()
    assert sel["eps"] == 0.05 and core.options("attack", sel) == ["pgd", "fgsm"]
    with pytest.raises(ValueError, match="eps=0.3 is not available"):
        core.resolve(sel, {"eps": 0.3})
    with pytest.raises(ValueError, match="not a control"):
        core.resolve(sel, {"colour": "red"})
    with pytest.raises(ValueError, match="lacks column"):
        SweepCore(rec.drop(columns=["adv_p_second"]))
    with pytest.raises(ValueError, match="distinct"):
        SweepCore(rec, line="eps")
    # A later control falls back to the nearest value the records have.
    short = rec[~((rec.attack == "fgsm") & (rec.eps == 0.1))]
    core = SweepCore(short)
    sel = core.resolve(core.default(), {"eps": 0.1})
    assert core.resolve(sel, {"attack": "fgsm"})["eps"] == 0.05


# ------------------------------------------------------------- sweep renderers


def test_sweep_explorer_keeps_its_interface():
    ex = explore.sweep(_records(), controls=("attack",))
    assert ex.options("attack") == ["pgd", "fgsm"] and ex.state["eps"] == 0.05
    ex.set(attack="pgd", model="CE", eps=0.1)
    s = ex.summary()
    assert s == ex.core.view(ex.state).summary() and s["eps"] == 0.1
    ex.set(model="DRSL")
    assert ex.summary()["robust_accuracy"] > s["robust_accuracy"]
    with pytest.raises(ValueError, match="not a control"):
        ex.set(colour="red")


def test_sweep_matplotlib_agrees_with_the_core():
    ex = explore.sweep(_records())
    ex.set(attack="fgsm", model="DRSL", eps=0.1)
    v = ex.view()
    fig = ex.static_figure()
    curves = {ln.get_label(): ln for ln in fig.axes[0].get_lines()
              if not ln.get_label().startswith("_")}
    np.testing.assert_allclose(curves["DRSL"].get_ydata(), v.curves["DRSL"][1])
    assert curves["DRSL"].get_color() == v.styles["DRSL"].color
    clean = fig.axes[1].patches[0]  # the clean p2 stairs
    np.testing.assert_allclose(clean.get_data().values, v.p2_before)
    heights = [p.get_height() for p in fig.axes[2].patches]
    np.testing.assert_allclose(heights, np.nan_to_num(v.landing_share))
    assert "robust accuracy" in fig._suptitle.get_text()
    plt.close(fig)


def test_sweep_widget_agrees_with_the_core_and_redraws():
    ex = explore.sweep(_records())
    box = ex.widget()
    assert "drsl-sweep-explorer" in box._dom_classes
    fig = ex._fig

    def check():
        v = ex.view()
        by_meta = {}
        for t in fig.data:
            by_meta.setdefault(t.meta, []).append(t)
        curve = next(t for t in by_meta["curve"] if t.name == str(v.selection["model"]))
        np.testing.assert_allclose(curve.y, v.curves[v.selection["model"]][1], atol=1e-4)
        np.testing.assert_allclose(by_meta["p2 before"][0].y, v.p2_before, atol=1e-4)
        np.testing.assert_allclose(by_meta["share"][0].y, v.landing_share, atol=1e-4)
        assert by_meta["chosen"][0].x[0] == pytest.approx(v.selection["eps"])
        assert ex._html.value == v.caption

    check()
    ex._widgets["attack"].value = "fgsm"
    ex._widgets["eps"].value = 0.01
    assert ex.state["attack"] == "fgsm" and ex.state["eps"] == 0.01
    assert "eps=0.01" in ex._html.value and ex.last_redraw_ms < 1000
    check()
    ex._widgets["model"].value = "DRSL"
    check()


class _Tags(HTMLParser):
    """The elements, attributes and script texts of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self._in: dict | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in = dict(attrs)
            self.scripts.append((self._in, ""))

    def handle_data(self, data):
        if self._in is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in = None


def _parse(html: str) -> tuple[_Tags, dict]:
    tags = _Tags()
    tags.feed(html)
    data = next(t for a, t in tags.scripts if a.get("type") == "application/json")
    return tags, json.loads(data)


def _no_external_reference(html: str, tags: _Tags) -> None:
    for tag, attrs in tags.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith("data:"), (tag, name, value)
    assert not re.search(r"https?://(?!www\.w3\.org/)", html), re.findall(
        r"https?://[^\s\"']+", html)[:5]
    assert "require(" not in html and "import(" not in html


def test_sweep_html_has_every_state_and_agrees_with_the_core():
    rec = _records()
    ex = explore.sweep(rec)
    html = ex.html(picture=False)
    tags, spec = _parse(html)
    _no_external_reference(html, tags)
    core = ex.core
    want = {explore._SEP.join(explore.fmt(s[c]) for c in core.order)
            for s in core.selections()}
    assert set(spec["states"]) == want == set(spec["keys"]) and len(want) == 12
    # One selection, decoded from the page, against the core.
    sel = {"attack": "fgsm", "model": "CE", "eps": 0.05}
    v = core.view(sel)
    state = spec["states"][explore._SEP.join(["fgsm", "CE", "0.05"])]
    traces = {t.get("meta"): t for t in state["d"] if t.get("meta") != "curve"}
    curves = {t["name"]: t for t in state["d"] if t.get("meta") == "curve"}
    np.testing.assert_allclose(curves["CE"]["y"], v.curves["CE"][1], atol=1e-4)
    np.testing.assert_allclose(traces["p2 after"]["y"], v.p2_after, atol=1e-4)
    np.testing.assert_allclose(traces["share"]["y"], v.landing_share, atol=1e-4)
    assert state["c"] == v.caption
    # Controls for each column, plotly expected from the page (not embedded).
    cols = {a.get("data-col"): t for t, a in tags.tags if a.get("data-col")}
    assert cols == {"attack": "select", "model": "select", "eps": "input"}
    script = next(t for a, t in tags.scripts if not a.get("type"))
    assert "window.Plotly" in script and "Plotly.react" in script
    assert len(html) < 300_000


def test_headless_display_leaves_html_and_a_picture(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display",
                        lambda obj, raw=False: shown.append((obj, raw)))
    monkeypatch.delenv("DRSL_HEADLESS", raising=False)
    assert explore.headless()  # no kernel here
    explore.sweep(_records())._ipython_display_()
    (bundle, raw), = shown
    assert raw and {"text/html", "image/png", "text/plain"} <= set(bundle)
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
    assert 'class="drsl-fallback"' in bundle["text/html"]
    monkeypatch.setenv("DRSL_HEADLESS", "0")
    assert not explore.headless()


class _Kernel:
    def __init__(self, allow_stdin):
        self.allow_stdin = allow_stdin

    def get_parent(self, channel=None):
        return {"content": {"allow_stdin": self.allow_stdin}}


@pytest.mark.parametrize("allow_stdin, want", [(False, True), (True, False)])
def test_headless_tells_a_runner_from_a_front_end(monkeypatch, allow_stdin, want):
    class Shell:
        kernel = _Kernel(allow_stdin)

    monkeypatch.delenv("DRSL_HEADLESS", raising=False)
    monkeypatch.setattr("IPython.get_ipython", lambda: Shell())
    assert explore.headless() is want


# --------------------------------------------------------------------- samples


class _FakeResult:
    """Just what SampleExplorer reads from an evaluation.AttackResult."""

    def __init__(self, n: int = 90, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, K, n)
        self.images = rng.random((n, 1, 8, 8)).astype(np.float32)
        self._clean = rng.normal(size=(n, K))
        self._clean[np.arange(n), self.labels] += 6.0
        second = (self.labels + 1) % K
        self._clean[np.arange(n), second] += 3.0
        self._adv = self._clean.copy()
        # Every third sample flips to the runner-up, every fifth to another class.
        flip = np.arange(n) % 3 == 0
        self._adv[flip, second[flip]] += 10
        other = (np.arange(n) % 5 == 0) & ~flip
        self._adv[other, (self.labels[other] + 2) % K] += 10
        c, a = (stats.softmax_stats(z, self.labels) for z in (self._clean, self._adv))
        self.records = pd.DataFrame({
            "model_key": "k", "attack": "pgd", "eps": 0.1, "sample": np.arange(n),
            "label": self.labels, "clean_pred": c["pred"], "clean_second": c["second"],
            "adv_pred": a["pred"], "clean_p_top": c["p_top1"], "clean_p_second": c["p_top2"],
            "success": c["correct"] & ~a["correct"],
            "adv_is_clean_second": a["pred"] == c["second"],
            "linf": np.full(n, 0.05)})

    def clean_logits(self, key):
        return self._clean

    def adv_logits(self, key, attack, eps):
        return self._adv

    def adv_images(self, key, attack, eps):
        return np.clip(self.images + 0.05, 0, 1)


def _panel(res, name="CE"):
    n = len(res.labels)
    coords = np.random.default_rng(1).normal(size=(n, 2)).astype(np.float32)
    adv_idx = np.flatnonzero(res._adv.argmax(1) != res.labels)
    return UmapPanel(name, coords, res.labels, coords[adv_idx] + 0.1, adv_idx,
                     res._adv.argmax(1)[adv_idx])


def _sample_explorer():
    res = _FakeResult()
    return explore.SampleExplorer(res, [_panel(res), _panel(res, "DRSL")],
                                  {"CE": "k", "DRSL": "k"}, attack="pgd", eps=0.1,
                                  class_names=["a", "b", "c", "d"])


def test_sample_core_reads_the_ranking_from_the_records():
    res = _FakeResult()
    core = SampleCore(res, [_panel(res)], {"CE": "k"}, attack="pgd", eps=0.1,
                      class_names=["a", "b", "c", "d"])
    off, on = core.candidates("CE", False), core.candidates("CE", True)
    assert len(off) and len(on) and not set(off) & set(on)
    # The records decide: a record saying "landed on the runner-up" is believed.
    res.records.loc[int(off[0]), "adv_is_clean_second"] = True
    core._cache.clear()
    assert int(off[0]) in core.candidates("CE", True)
    v = core.view("CE", int(on[0]))
    assert v.info["landed_on_runner_up"] and v.info["attack_succeeded"]
    assert v.info["clean_p2"] == pytest.approx(res.records.clean_p_second[int(on[0])])
    assert v.clean_softmax.sum() == pytest.approx(1.0)
    assert v.clean_softmax.argmax() == res.labels[int(on[0])]
    assert v.color == plots.color_for("CE") and v.adv_color == plots.ADVERSARIAL_COLOR
    fixed = core.fixed_samples("CE", 50)
    assert len(fixed) == 50 == len(set(fixed)) and fixed == sorted(fixed)
    assert set(off[1:]) & set(fixed)
    with pytest.raises(ValueError, match="out of range"):
        core.info("CE", 10_000)
    with pytest.raises(ValueError, match="class_names"):
        SampleCore(res, [_panel(res)], {"CE": "k"}, attack="pgd", eps=0.1,
                   class_names=["a"])


def test_sample_explorer_tells_where_an_attack_landed():
    ex = _sample_explorer()
    off = ex.candidates(landed_on_runner_up=False)
    info = ex.select(int(off[0]))
    assert info["attack_succeeded"] and not info["landed_on_runner_up"]
    assert info["adv_pred"] != info["runner_up"] and 0 < info["clean_p2"] < 0.5
    assert ex.sample_info(1)["attack_succeeded"] is False
    with pytest.raises(ValueError, match="out of range"):
        ex.select(10_000)
    with pytest.raises(ValueError, match="model="):
        ex.select(0, model="MAE")


def test_sample_widget_click_agrees_with_the_core():
    ex = _sample_explorer()
    box = ex.widget()
    assert "drsl-sample-explorer" in box._dom_classes
    # The figures wrap instead of scrolling sideways (issue 23, item 7).
    assert all(c.layout.flex_flow == "row wrap" for c in box.children)
    target = int(ex.candidates(landed_on_runner_up=False)[0])
    trace = next(t for t in ex._fig.data if t.meta == "clean"
                 and target in np.asarray(t.customdata).ravel())
    pos = int(np.flatnonzero(np.asarray(trace.customdata).ravel() == target)[0])

    class Points:
        point_inds = [pos]

    ex._on_click(trace, Points(), None)
    v = ex.view()
    assert ex.sample == target and ex._html.value == v.caption
    assert "not the runner-up" in ex._html.value
    sel = next(t for t in ex._fig.data if t.meta == "sel")
    assert sel.x[0] == pytest.approx(float(ex.panels["CE"].clean_2d[target, 0]), abs=1e-3)
    bars = [t for t in ex._detail.data if t.type == "bar"]
    np.testing.assert_allclose(bars[0].y, v.clean_softmax, atol=1e-4)
    np.testing.assert_allclose(bars[1].y, v.adv_softmax, atol=1e-4)
    assert bars[0].marker.color == v.color


def test_sample_matplotlib_agrees_with_the_core():
    ex = _sample_explorer()
    ex.select(int(ex.candidates(True)[0]))
    v = ex.view()
    fig = ex.static_figure()
    bars = fig.axes[-1].patches
    k = len(ex.class_names)
    np.testing.assert_allclose([b.get_height() for b in bars[:k]], v.clean_softmax)
    np.testing.assert_allclose([b.get_height() for b in bars[k:]], v.adv_softmax)
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(),
                                  explore._images(v)[0])
    assert plain(v.caption)[:40] in fig._suptitle.get_text().replace("\n", " ")
    plt.close(fig)


def test_sample_html_has_the_fixed_set_and_agrees_with_the_core():
    ex = _sample_explorer()
    html = ex.html(picture=False)
    tags, spec = _parse(html)
    _no_external_reference(html, tags)
    assert spec["models"] == ["CE", "DRSL"]
    for model in spec["models"]:
        per = spec["per"][model]
        assert len(per["samples"]) == 60 and set(per["states"]) == {
            str(i) for i in per["samples"]}
        assert {t["meta"] for t in per["scatter"]} == {"clean", "adv"}
    i = int(ex.candidates(False)[0])
    state = spec["per"]["CE"]["states"][str(i)]
    v = ex.core.view("CE", i)
    assert state["c"] == v.caption and state["off"] is True
    bars = [t for t in state["d"] if t["type"] == "bar"]
    np.testing.assert_allclose(bars[1]["y"], v.adv_softmax, atol=1e-4)
    pics = [t for t in state["d"] if t["type"] == "image"]
    assert len(pics) == 3 and all(p["source"].startswith("data:image/png;base64,")
                                  for p in pics)
    cols = {a.get("data-col") for t, a in tags.tags if a.get("data-col")}
    assert cols == {"model", "sample"}
    assert len(html) < 1_500_000
