"""Explorers: state, numbers, widgets and the headless static view, on synthetic data
with a known answer."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from drsl_utils import explore
from drsl_utils.embed import UmapPanel

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
                    # Robust accuracy falls with eps; DRSL a bit more robust.
                    p_flip = eps * (4 if model == "CE" else 3)
                    success = rng.random(n) < p_flip
                    adv_pred = np.where(success, clean_second, label)
                    rows.append(pd.DataFrame({
                        "attack": attack, "model": model, "eps": eps, "seed": s,
                        "label": label, "clean_pred": label, "clean_second": clean_second,
                        "adv_pred": adv_pred, "clean_correct": True, "success": success,
                        "clean_p_second": rng.uniform(0, 0.3, n),
                        "adv_p_second": rng.uniform(0, 0.5, n)}))
    return pd.concat(rows, ignore_index=True)


def test_sweep_numbers_follow_the_selection():
    rec = _records()
    ex = explore.sweep(rec, controls=("attack",))
    assert ex.options("attack") == ["pgd", "fgsm"] and ex.options("eps") == [0.01, 0.05, 0.1]
    assert ex.state["eps"] == 0.05
    ex.set(attack="pgd", model="CE", eps=0.1)
    s = ex.summary()
    cell = rec[(rec.attack == "pgd") & (rec.model == "CE") & (rec.eps == 0.1)]
    want = cell.groupby("seed").apply(lambda d: (d.adv_pred == d.label).mean()).mean()
    assert s["robust_accuracy"] == pytest.approx(want) and s["seeds"] == 3
    assert s["runner_up_share"] == 1.0 and s["chance"] == pytest.approx(1 / 3)
    ex.set(model="DRSL")
    assert ex.summary()["robust_accuracy"] > s["robust_accuracy"]
    with pytest.raises(ValueError, match="eps=0.3 is not available"):
        ex.set(eps=0.3)
    with pytest.raises(ValueError, match="not a control"):
        ex.set(colour="red")
    with pytest.raises(ValueError, match="lacks column"):
        explore.sweep(rec.drop(columns=["adv_p_second"]))


def test_sweep_widget_redraws_on_change():
    ex = explore.sweep(_records())
    box = ex.widget()
    assert "drsl-sweep-explorer" in box._dom_classes
    fig = ex._fig
    before = tuple(fig.data[-3].y)  # the runner-up share bars
    curve = next(t for t in fig.data if t.meta == "curve" and t.visible)
    y0 = tuple(curve.y)
    ex._widgets["attack"].value = "fgsm"
    assert ex.state["attack"] == "fgsm"
    ex._widgets["eps"].value = 0.01
    assert ex.state["eps"] == 0.01 and "eps=0.01" in ex._html.value
    assert ex.last_redraw_ms < 1000
    curve = next(t for t in fig.data if t.meta == "curve" and t.visible)
    assert tuple(curve.y) != y0 or tuple(fig.data[-3].y) != before


def test_headless_display_draws_a_static_picture(monkeypatch):
    monkeypatch.setenv("DRSL_HEADLESS", "1")
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    explore.sweep(_records())._ipython_display_()
    assert len(shown) == 1 and isinstance(shown[0], plt.Figure)


class _FakeResult:
    """Just what SampleExplorer reads from an evaluation.AttackResult."""

    def __init__(self, n: int = 60, seed: int = 0):
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

    def clean_logits(self, key):
        return self._clean

    def adv_logits(self, key, attack, eps):
        return self._adv

    def adv_images(self, key, attack, eps):
        return np.clip(self.images + 0.05, 0, 1)


def _sample_explorer():
    res = _FakeResult()
    n = len(res.labels)
    coords = np.random.default_rng(1).normal(size=(n, 2)).astype(np.float32)
    adv_idx = np.flatnonzero(res._adv.argmax(1) != res.labels)
    panel = UmapPanel("CE", coords, res.labels, coords[adv_idx] + 0.1, adv_idx,
                      res._adv.argmax(1)[adv_idx])
    return explore.SampleExplorer(res, [panel], {"CE": "k"}, attack="pgd", eps=0.1,
                                  class_names=["a", "b", "c", "d"])


def test_sample_explorer_tells_where_an_attack_landed():
    ex = _sample_explorer()
    off = ex.candidates(landed_on_runner_up=False)
    on = ex.candidates(landed_on_runner_up=True)
    assert len(off) and len(on) and not set(off) & set(on)
    info = ex.select(int(off[0]))
    assert info["attack_succeeded"] and not info["landed_on_runner_up"]
    assert info["adv_pred"] != info["runner_up"] and 0 < info["clean_p2"] < 0.5
    assert ex.select(int(on[0]))["landed_on_runner_up"]
    assert ex.sample_info(1)["attack_succeeded"] is False
    with pytest.raises(ValueError, match="out of range"):
        ex.select(10_000)


def test_sample_explorer_click_updates_the_panel():
    ex = _sample_explorer()
    ex.widget()
    target = int(ex.candidates(landed_on_runner_up=False)[0])
    trace = next(t for t in ex._fig.data if t.meta == "clean"
                 and target in np.asarray(t.customdata).ravel())
    pos = int(np.flatnonzero(np.asarray(trace.customdata).ravel() == target)[0])

    class Points:
        point_inds = [pos]

    ex._on_click(trace, Points(), None)
    assert ex.sample == target and f"sample {target}" in ex._html.value
    assert "not the runner-up" in ex._html.value
    sel = next(t for t in ex._fig.data if t.meta == "sel")
    assert sel.x[0] == pytest.approx(float(ex.panels["CE"].clean_2d[target, 0]))
    fig = ex.static_figure()
    assert isinstance(fig, plt.Figure)
    plt.close(fig)
