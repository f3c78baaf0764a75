"""Claims, figures metadata, verdicts and the gallery the main job writes."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from drsl_utils.report import Report, describe_diff, load_meta, mean_ci, verdict_from_interval  # noqa: E402
from drsl_utils.suite import write_gallery  # noqa: E402


def test_report_writes_meta_without_timestamps(tmp_path):
    rep = Report("02_attacks", "smoke", tmp_path)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    rep.figure(fig, "curve", "A caption.")
    rep.claim("c1", "paper", "A claim.", "x = 1", "holds", 3)
    rep.claim("c1", "paper", "A claim.", "x = 2", "inconclusive", 3)  # replaces
    meta = json.loads((tmp_path / "meta" / "02_attacks.json").read_text())
    assert meta["figures"] == [{"name": "curve", "caption": "A caption."}]
    assert len(meta["claims"]) == 1 and meta["claims"][0]["measured"] == "x = 2"
    assert (tmp_path / "curve.png").stat().st_size > 1000 and (tmp_path / "curve.pdf").exists()
    before = (tmp_path / "meta" / "02_attacks.json").read_bytes()
    Report("02_attacks", "smoke", tmp_path)  # a rerun starts empty...
    rep2 = Report("02_attacks", "smoke", tmp_path)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    rep2.figure(fig, "curve", "A caption.")
    rep2.claim("c1", "paper", "A claim.", "x = 2", "inconclusive", 3)
    assert (tmp_path / "meta" / "02_attacks.json").read_bytes() == before  # ...same bytes


def test_bad_verdict():
    with pytest.raises(ValueError, match="verdict"):
        Report("x", "smoke", "/tmp/drsl-test-report").claim("i", "s", "c", "m", "maybe", 1)


@pytest.mark.parametrize("low, high, direction, expected", [
    (0.1, 0.3, "greater", "holds"), (-0.3, -0.1, "greater", "does not hold"),
    (-0.1, 0.1, "greater", "inconclusive"), (-0.3, -0.1, "less", "holds"),
    (math.nan, 1.0, "greater", "inconclusive")])
def test_verdict_from_interval(low, high, direction, expected):
    assert verdict_from_interval(low, high, 0.0, direction) == expected


def test_mean_ci_matches_t_interval():
    m, s, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and s == 1.0
    # t(0.975, 2) = 4.303; half-width = 4.303 / sqrt(3)
    assert hi - m == pytest.approx(4.3027 / math.sqrt(3), rel=1e-3)
    assert math.isnan(mean_ci([1.0])[2])
    assert "one seed" in describe_diff([0.5])
    assert describe_diff([0.01, 0.03], scale=100, unit=" pp", digits=1).startswith("+2.0 pp")


def test_gallery_lists_claims_and_figures(tmp_path):
    rep = Report("01_train_models", "quick", tmp_path)
    fig, ax = plt.subplots()
    ax.bar([0, 1], [1, 2])
    rep.figure(fig, "bars", "Bars | with a pipe.")
    rep.claim("a", "DRSL slides", "Claim A.", "1 vs 2", "does not hold", 3)
    readme, claims = write_gallery(tmp_path, "quick")
    text = readme.read_text()
    assert "![bars](bars.png)" in text and "Bars | with a pipe." in text
    assert "**does not hold**" in claims.read_text() and "Claim A." in text
    assert "1 claims: 0 holds, 1 does not hold, 0 inconclusive" in text
    assert [m["notebook"] for m in load_meta(tmp_path)] == ["01_train_models"]
