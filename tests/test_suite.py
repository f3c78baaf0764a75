"""The main job's scheduler: dependencies respected, errors surface, up-to-date skips."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from drsl_utils import suite


def test_schedule_respects_dependencies():
    keys = ["00", "01", "02", "03", "04", "05", "08", "09"]
    paths = {k: Path(f"{k}_x.ipynb") for k in keys}
    finished: dict[str, float] = {}
    started: dict[str, float] = {}
    lock = threading.Lock()

    def run(key):
        with lock:
            started[key] = time.perf_counter()
        time.sleep(0.02)
        with lock:
            finished[key] = time.perf_counter()
        return 1.0

    times, done = {}, set()
    suite._schedule(run, sorted(keys), paths, 2, times, done)
    assert done == set(keys) and len(times) == len(keys)
    for key, deps in suite.DEPENDS.items():
        for d in deps:
            if key in started and d in finished:
                assert started[key] >= finished[d], f"{key} started before {d} finished"


def test_a_fresh_clone_starts_the_longest_chain_first():
    """Without times of its own, the order follows COLD_COST along DEPENDS: 01 first
    (everything waits on it), and 12, the longest notebook with no dependents, ahead of
    the short ones that became ready with it (03, 05, 08)."""
    paths = {k: Path(f"{k}_x.ipynb") for k in suite.COLD_COST}
    got = suite.order(paths, {})
    assert got[0] == "01" and set(got) == set(paths)
    assert all(got.index("12") < got.index(k) for k in ("03", "05", "08", "11", "13"))
    # Measured times take over, by stem (a costly 12 pulls 02 and 04, which it waits on,
    # ahead of 06); an unknown notebook goes first.
    paths["99"] = Path("99_new.ipynb")
    got = suite.order(paths, {"12_x": 1e6})
    assert got[:5] == ["99", "01", "02", "04", "12"]


def test_schedule_reraises_a_failed_notebook():
    paths = {"00": Path("00_a.ipynb"), "01": Path("01_b.ipynb")}

    def run(key):
        if key == "01":
            raise RuntimeError("cell failed")
        return 0.0

    with pytest.raises(RuntimeError, match="cell failed"):
        suite._schedule(run, ["01", "00"], paths, 2, {}, set())


def test_inputs_hash_and_up_to_date(tmp_path):
    nb = tmp_path / "99_x.ipynb"
    nb.write_text("{}")
    digest = suite._inputs_hash(nb, "smoke", tmp_path)
    assert digest == suite._inputs_hash(nb, "smoke", tmp_path)
    assert digest != suite._inputs_hash(nb, "quick", tmp_path)
    stamp = tmp_path / ".99_x.inputs"
    assert not suite._up_to_date(nb, stamp, digest, tmp_path)
    stamp.write_text(digest)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "99_x.json").write_text('{"figures": [{"name": "f"}]}')
    assert not suite._up_to_date(nb, stamp, digest, tmp_path)  # figure missing
    (tmp_path / "f.png").write_bytes(b"png")
    assert suite._up_to_date(nb, stamp, digest, tmp_path)
    nb.write_text('{"changed": 1}')
    assert not suite._up_to_date(nb, stamp, suite._inputs_hash(nb, "smoke", tmp_path),
                                 tmp_path)


def test_the_longest_recorded_notebook_runs_first(tmp_path, monkeypatch):
    """The first run goes in number order (nothing timed yet) and records each wall
    time; the next starts with the longest. Executing is faked; the order is real."""
    for name in ("97_a", "98_b", "99_c"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    seconds = {"97_a": 1.0, "98_b": 3.0, "99_c": 2.0}
    order: list[str] = []

    def fake_run(path, profile, out_dir, fig_dir, extra_parameters=None):
        order.append(path.stem)
        out_dir.mkdir(parents=True, exist_ok=True)
        return seconds[path.stem]

    monkeypatch.setattr(suite, "run_notebook", fake_run)
    monkeypatch.setattr(suite, "_up_to_date", lambda *args: False)
    monkeypatch.setattr(suite, "write_gallery", lambda *args, **kwargs: None)
    suite.run_suite("smoke", fig_dir=tmp_path / "fig", jobs=1, notebook_dir=tmp_path)
    assert order == ["97_a", "98_b", "99_c"]
    times = tmp_path / "executed" / "times.json"
    assert json.loads(times.read_text()) == seconds
    order.clear()
    seconds["98_b"] = 0.5  # a warm run: the longest time seen is kept
    suite.run_suite("smoke", fig_dir=tmp_path / "fig", jobs=1, notebook_dir=tmp_path)
    assert order == ["98_b", "99_c", "97_a"]
    assert json.loads(times.read_text())["98_b"] == 3.0


def test_headline_names_fragile_positives_and_calibrations_that_moved_a_verdict():
    """Methods review 3, B1 and B3: the headline lists positive primaries a fresh run
    would read again with probability below 0.8, with their leave-one-seed-out
    agreement (review 4), and calibrated primaries whose cheap attack alone read
    otherwise, by cause (review 4)."""
    import pandas as pd

    from drsl_utils import suite

    nan = float("nan")
    fam = pd.DataFrame({
        "claim": ["drsl-harder-dlr", "seguin-logit-gap", "drsl-noise-pair"],
        "verdict": ["inconclusive", "holds", "holds"],
        "replication": [0.01, 0.99, 0.59], "n_seeds": [8, 5, 5],
        "loso_agree": [8, 5, 0], "loso_n": [8, 5, 5],
        "cheap_verdict": ["holds", "", ""], "decided_by": ["apgd-dlr", "", ""],
        "cal_mean": [1.7, nan, nan], "cheap_mean": [7.1, nan, nan],
        "mean": [5.4, nan, nan], "df": [4.0, nan, nan], "cal_se": [3.4, nan, nan],
        "cal_estimate_verdict": ["holds", "", ""], "cal_moved_by": ["variance", "", ""]})
    text = suite._fragile(fam)
    assert "1 of the 2 positive verdicts" in text
    # The headline reads a fragile row by its leave-one-out estimates, not the verdict
    # count (methods review 6, point 4); without those columns, by nothing more.
    assert "`drsl-noise-pair` (0.59)" in text
    with_side = suite._fragile(fam.assign(loso_side=[8, 5, 5], loso_low=[1.0, 0.2, 9.9],
                                          loso_high=[2.0, 0.3, 12.6]))
    assert ("`drsl-noise-pair` (0.59; leave one seed out: estimate on the claimed side 5/5 "
            "(+9.9 pp to +12.6 pp))") in with_side
    assert "verdict 0/5" not in with_side
    assert "seguin-logit-gap" not in text
    moved = suite._calibration_moved(fam)
    assert "`drsl-harder-dlr` reads *holds* under apgd-dlr alone" in moved
    assert "+1.7 pp" in moved and "noise-pair" not in moved
    assert "changed" not in moved
    assert "through the calibration's variance, not a bias" in moved
    assert "from +7.1 pp to +5.4 pp" in moved and "se 3.4 pp" in moved
    assert "would still read *holds*" in moved and "4 df" in moved
    assert "0 through the differential" in moved and "1 through the calibration's" in moved
    biased = fam.assign(cal_estimate_verdict=["inconclusive", "", ""],
                        cal_moved_by=["differential", "", ""])
    moved = suite._calibration_moved(biased)
    assert "through the differential (the attack's bias)" in moved
    assert "reads *inconclusive* even on the cheap attack's own precision" in moved
    # A table without LOSO columns names the rows as before.
    assert "`drsl-noise-pair` (0.59)" in suite._fragile(
        fam.drop(columns=["loso_agree", "loso_n"]))


def test_the_flag_note_is_counted_from_the_rows():
    """Methods review 4: at 5 seeds x 60 images the flag fired on every calibrated row;
    the note under the calibration table says so from the data, and only then says to
    expect it on every row."""
    import pandas as pd

    from drsl_utils import suite

    rows = pd.DataFrame({"cal_flag": [True, True, True], "cal_clearable": [True, False, True],
                         "cal_clear_max": [0, -1, 0], "cal_cells": [300, 300, 300],
                         "cal_seeds": [5, 5, 5], "cal_images": [60, 60, 60]})
    text = suite._flag_note(rows)
    assert text.startswith("The flag fired on 3 of 3 calibrated row(s). At 5 seeds x 60 "
                           "images, no data could clear it on 1 of them")
    assert "the other 2 can read unflagged only with at most 0 discordant cell(s) of 300" \
        in text
    assert "expect it on every calibrated row" in text
    big = pd.DataFrame({"cal_flag": [True, False], "cal_clearable": [True, True],
                        "cal_clear_max": [180, 180], "cal_cells": [64_000, 64_000],
                        "cal_seeds": [64, 64], "cal_images": [1000, 1000]})
    text = suite._flag_note(big)
    assert text.startswith("The flag fired on 1 of 2 calibrated row(s). At 64 seeds x "
                           "1000 images, 2 can read unflagged only with at most 180")
    assert "expect" not in text
    # Every row flagged, but a large calibration could have cleared them: no "expect".
    assert "expect" not in suite._flag_note(big.assign(cal_flag=[True, True]))


def test_the_header_says_what_p_shows_and_that_loso_keeps_the_calibration_whole(
        monkeypatch):
    """Methods review 5, 2 and 8: the header defines the p column (the Holm-adjusted p
    of the test that decided the row, unadjusted outside the family) and says that
    leave-one-seed-out keeps the calibration whole."""
    from drsl_utils import claims as C
    from drsl_utils import suite

    monkeypatch.setattr(C, "confirmatory_status", lambda *a, **k: ("exploratory", "test"))
    lines = suite.claims_report([], "quick")
    text = " ".join(lines)
    assert "**p**: the Holm-adjusted p-value of the test that decided the row" in text
    assert "(p_holds) for *holds*" in text and "(p_not)" in text and "(p_rev" in text
    assert "*(unadjusted)*" in text
    assert "keeps the calibration whole" in text
    assert "re-draws the differential" in text


def test_the_detectable_effects_multiples_print_one_decimal():
    """Methods review 5, 4c: 7.5-11.3 times the SESOI, not 8-11."""
    import pandas as pd

    from drsl_utils import suite

    fam = pd.DataFrame({"claim": ["drsl-harder-dlr", "isce-harder-dlr"],
                        "cal_seeds": [5, 5], "seeds_needed": [None, None],
                        "sd": [2.7, 2.0], "effect_for_power": [15.1, 22.6]})
    text = suite._undecidable(fam)
    # In SESOI multiples only (methods review 6, point 10: the units differ by row).
    assert "only at 7.5-11.3 times their SESOI" in text, text
    assert "in each row's units" not in text
