"""Figures metadata, evidence, provisional verdicts and the gallery the main job writes."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from drsl_utils import claims as C  # noqa: E402
from drsl_utils.report import Report, load_evidence, load_meta, verdict_table  # noqa: E402
from drsl_utils.suite import write_gallery  # noqa: E402

VALUES = {s: 0.05 + 0.004 * s for s in range(8)}  # DRSL - CE: +5 pp, clearly positive


def _fig():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    return fig


def test_meta_is_written_once_at_finish_and_without_timestamps(tmp_path):
    rep = Report("02_attacks", "smoke", tmp_path)
    rep.figure(_fig(), "curve", "A caption.")
    meta_path = tmp_path / "meta" / "02_attacks.json"
    assert not meta_path.exists()  # nothing until the notebook has finished
    rep.claim("drsl-harder-dlr", VALUES)
    rep.claim("drsl-harder-dlr", VALUES, detail="replaced")
    table = rep.finish()
    meta = json.loads(meta_path.read_text())
    assert meta["figures"] == [{"name": "curve", "caption": "A caption."}]
    assert meta["status"] == "ok" and len(meta["evidence"]) == 1
    assert meta["evidence"][0]["detail"] == "replaced"
    assert list(table["verdict"]) == ["holds, at least the SESOI"]
    assert (tmp_path / "curve.png").stat().st_size > 1000 and (tmp_path / "curve.pdf").exists()
    before = meta_path.read_bytes()
    rep2 = Report("02_attacks", "smoke", tmp_path)  # a rerun does not empty the record...
    assert meta_path.read_bytes() == before
    rep2.figure(_fig(), "curve", "A caption.")
    rep2.claim("drsl-harder-dlr", VALUES, detail="replaced")
    rep2.finish()
    assert meta_path.read_bytes() == before  # ...and the same results give the same bytes
    assert not plt.get_fignums()  # figures are closed after saving


def test_claims_are_checked(tmp_path):
    rep = Report("02_attacks", "smoke", tmp_path)
    with pytest.raises(ValueError, match="is not valid; choose one of"):
        rep.claim("no-such-claim", {0: 1.0})
    with pytest.raises(ValueError, match="belongs to notebook"):
        rep.claim("drsl-noise-pair", {0: 1.0})


def test_finish_adjusts_against_other_notebooks_on_record(tmp_path):
    other = Report("06_label_noise", "smoke", tmp_path)
    for cid in ("drsl-noise-symmetric", "drsl-noise-pair", "gce-memorises-less"):
        other.claim(cid, {s: (-1) ** s * 0.01 for s in range(8)})
    other.finish()
    rep = Report("02_attacks", "smoke", tmp_path)
    rep.claim("drsl-harder-dlr", VALUES)
    rep.finish()
    assert {e.claim for e in load_evidence(tmp_path, "smoke")} == {
        "drsl-noise-symmetric", "drsl-noise-pair", "gce-memorises-less", "drsl-harder-dlr"}
    assert load_evidence(tmp_path, "quick") == []


def test_gallery_lists_claims_and_figures(tmp_path):
    rep = Report("01_train_models", "quick", tmp_path)
    rep.figure(_fig(), "bars", "Bars | with a pipe.")
    rep.claim("drsl-same-accuracy-gce", {s: -0.012 + 0.001 * (s % 2) for s in range(8)})
    rep.finish()
    readme, claims = write_gallery(tmp_path, "quick", n_halves=4)
    text = readme.read_text()
    assert "![bars](bars.png)" in text and "Bars \\| with a pipe." not in text
    assert "Bars | with a pipe." in text
    report = claims.read_text()
    assert "**not equivalent**" in report and "GCE reaches the same clean accuracy" in report
    assert "| `drsl-same-accuracy-gce` | 0.30 pp |" in report  # the SESOI table
    # The headline counts the declared primary findings only: none run here, so every
    # one reads "not run" and still counts; the secondary row is not in it.
    n_family = len(C.declared_family())
    assert (f"**{n_family} primary findings** (one Holm family, declared in "
            f"`drsl_utils/claim_table.py`): {n_family} not run.") in report
    assert "1 claims: 1 not equivalent" in report
    # A section line counts a holds row (whose display label splits holds by size).
    (tmp_path / "holds").mkdir()
    rep = Report("03_second_softmax", "quick", tmp_path / "holds")
    rep.claim("drsl-p2-vs-gap", {s: 0.03 + 0.001 * (s % 3) for s in range(8)})
    rep.finish()
    again = write_gallery(tmp_path / "holds", "quick", n_halves=4)[1].read_text()
    checks = again.split("## Project checks")[1]
    assert "1 claims: 1 holds (" in checks, checks[:400]
    assert "Choices made after seeing the data." in report
    assert "**Exploratory**: no confirmatory run is recorded" in report
    assert f"Declaration hash `{C.declaration_hash(profile='quick')}`" in report
    # A recorded confirmatory run of this declaration is not enough: every declared
    # primary must have been run on the whole block.
    (tmp_path / "confirmatory.json").write_text(json.dumps(
        {"declaration": C.declaration_hash(), "commit": "abc", "seeds": list(range(8))}))
    confirmed = write_gallery(tmp_path, "quick", n_halves=4)[1].read_text()
    assert "**Exploratory**: the declared primary" in confirmed
    assert "was not run" in confirmed
    (tmp_path / "confirmatory.json").unlink()
    header = next(ln for ln in report.splitlines() if ln.startswith("| claim | estimand"))
    for column in ("bounds", "verdict", "replication", "power", "seeds needed"):
        assert f"| {column} |" in header
    assert [m["notebook"] for m in load_meta(tmp_path)] == ["01_train_models"]
    assert write_gallery(tmp_path, "quick", n_halves=4)[1].read_text() == report  # no date


def test_image_variance_is_saved_and_read_back(tmp_path):
    rep = Report("02_attacks", "smoke", tmp_path)
    rep.claim("drsl-harder-dlr", VALUES, image_var=4e-5)
    rep.finish()
    meta_path = tmp_path / "meta" / "02_attacks.json"
    meta = json.loads(meta_path.read_text())
    assert meta["evidence"][0]["image_var"] == 4e-5
    assert load_evidence(tmp_path)[0].image_var == 4e-5
    # A file written before the field existed reads as no image term.
    del meta["evidence"][0]["image_var"]
    meta_path.write_text(json.dumps(meta))
    assert load_evidence(tmp_path)[0].image_var == 0.0


def test_verdict_table_prints_what_the_decision_used():
    ev = [C.Evidence("drsl-harder-dlr", VALUES, image_var=1e-5)]
    assessed = C.evidence_frame(ev)
    view = verdict_table(assessed).set_index(assessed["claim"])
    row = view.loc["drsl-harder-dlr"]
    # Every other member is not run, so both bounds share the level alpha / 19.
    k = len(C.declared_family())
    assert row["verdict"].startswith("holds") and f"({100 * (1 - 2 * 0.05 / k):.2f} % two-sided)" \
        in row["bounds"]
    assert assessed.set_index("claim").loc["drsl-harder-dlr", "low"] > 0
    assert "image se" in row["measured"] and "verdict 8/8" in row["replication"]
    assert "at the observed sd" in row["seeds needed"]
    # holds is printed with its size: at least the SESOI, or in direction only
    size = assessed.set_index("claim").loc["drsl-harder-dlr", "size"]
    assert row["verdict"] == C.verdict_label("holds", size) != "holds"
    not_run = view[view["verdict"] == "not run"]
    assert len(not_run) == len(C.declared_family()) - 1
    assert (not_run["p"] == "–").all() and (not_run["replication"] == "").all()


def test_attack_calibration_reaches_the_claims_report(tmp_path):
    """A calibration recorded by one notebook re-decides another notebook's row; the
    report names the attack that decided it and prints the overstatement table, and the
    machine-readable table carries the same verdict."""
    import pandas as pd

    from drsl_utils.calibration import Differential

    rep = Report("02_attacks", "quick", tmp_path)
    rep.claim("drsl-harder-dlr", VALUES)
    rep.finish()
    cal = Report("12_attack_calibration", "quick", tmp_path)
    over = pd.DataFrame([{"model": "DRSL", "attack": "apgd-dlr", "eps": 0.05, "n_seeds": 2,
                          "n_images": 300, "robust_cheap": 0.45, "robust_reference": 0.41,
                          "overstatement": 0.04, "low": 0.03, "high": 0.05}])
    big = Differential("apgd-dlr", "autoattack-standard", "DRSL", "CE", 0.05,
                       {0: 0.05, 1: 0.06}, 1e-5, 300)
    cal.attack_calibration(over, {"drsl-harder-dlr": big})
    cal.finish()
    _, claims_md = write_gallery(tmp_path, "quick")
    text = claims_md.read_text()
    assert "## Attack calibration" in text and "| DRSL | apgd-dlr | 0.05 | 2 x 300 |" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| `drsl-harder-dlr` | apgd-dlr"))
    assert "**inconclusive** (holds)" in row and row.endswith("| yes |")
    # The note under the table counts the flag from the rows (methods review 4).
    assert "The flag fired on 1 of 1 calibrated row(s). At 2 seeds x 300 images" in text
    # The verdict is on the standard-AutoAttack estimate, and the estimand says so.
    assert ("DRSL - CE, estimated under standard AutoAttack (the apgd-dlr effect minus "
            "its calibrated differential) (SESOI 2.0 pp)") in text
    table = json.loads((tmp_path / "claims.json").read_text())
    rows = table["claims"] if isinstance(table, dict) else table
    entry = next(r for r in rows if r.get("id") == "drsl-harder-dlr")
    assert entry["verdict"] == "inconclusive" and entry["decided_by"] == "apgd-dlr"
    with pytest.raises(ValueError, match="is not valid; choose one of"):
        cal.attack_calibration(over, {"no-such-claim": big})


def test_a_calibrated_rows_estimand_names_the_standard_autoattack_estimate():
    """Methods review 4: a calibrated row's estimand names the cheap attack, but its
    verdict is on the effect estimated under standard AutoAttack; an uncalibrated row's
    estimand is the claim's as declared."""
    from drsl_utils.calibration import Differential

    ev = [C.Evidence("drsl-harder-dlr", VALUES),
          C.Evidence("drsl-harder-square", VALUES)]
    diff = Differential("apgd-dlr", "autoattack-standard", "DRSL", "CE", 0.05,
                        {s: 0.004 + 0.001 * s for s in range(5)}, 1e-6, 300)
    view = verdict_table(C.calibrate(ev, {"drsl-harder-dlr": diff}))
    spec = C.get_claim("drsl-harder-dlr")
    assert view.loc[0, "estimand"] == (
        f"{spec.estimand}, estimated under standard AutoAttack (the apgd-dlr effect minus "
        "its calibrated differential) (SESOI 2.0 pp)")
    square = C.get_claim("drsl-harder-square")
    assert view.loc[1, "estimand"] == f"{square.estimand} (SESOI {square.fmt(square.sesoi, False)})"


def test_a_detection_rows_power_column_names_its_stated_alternative(tmp_path):
    """Methods review 5, 4a: the power column leads with the test's power against the
    alternative the notebook states (and counts underpowered by it); the notebook's
    ``report.claim`` records it in the meta."""
    values = {s: -0.0025 + 1e-4 * (s - 2) for s in range(5)}
    rep = Report("04_logit_gaps_and_margins", "quick", tmp_path)
    rep.claim("sovr-two-peaks", values, alt_power=0.0, alternative="0.7 N(0,1) + 0.3 N(3,1)")
    rep.finish()
    (ev,) = load_evidence(tmp_path)
    assert ev.alt_power == 0.0 and ev.alternative == "0.7 N(0,1) + 0.3 N(3,1)"
    row = verdict_table(C.evidence_frame([ev])).iloc[0]
    assert row["power"].startswith("0.00 against 0.7 N(0,1) + 0.3 N(3,1) (underpowered); ")
    assert "against an effect of the SESOI" in row["power"]
    assert row["verdict"] == "not detected"
    assert "not evidence of no effect" in row["note"]
    plain = verdict_table(C.evidence_frame([C.Evidence("sovr-two-peaks", values)])).iloc[0]
    assert "(underpowered)" not in plain["power"]
    assert "the context gives the test's power against a stated alternative" in plain["power"]
