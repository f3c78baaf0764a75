"""The machine-readable claims table beside claims.md, and ``report diff`` between two runs.

The reports here are built from synthetic per-seed evidence through the real
``Report`` and ``suite.write_gallery``, so the table is checked against the Markdown the
main job really renders, whatever columns the rule gives it.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from drsl_utils import claims as C
from drsl_utils import report as R
from drsl_utils.report import Report
from drsl_utils.suite import write_gallery

SEEDS = range(8)
# Synthetic per-seed values (raw units; most claims here are fractions shown in pp) that
# give each kind of verdict: a clear effect, a tight null, a noisy middle.
RUN_A = {
    "01_train_models": {"drsl-same-accuracy-gce": {s: 0.0002 * (-1) ** s for s in SEEDS}},
    "02_attacks": {
        "drsl-harder-dlr": {s: 0.05 + 0.004 * s for s in SEEDS},          # holds
        "isce-harder-dlr": {s: 0.01 + 0.04 * (-1) ** s for s in SEEDS},   # inconclusive
        "drsl-harder-pgd": {s: 0.0005 * (-1) ** s for s in SEEDS},        # does not hold
    },
    "06_label_noise": {"drsl-noise-pair": {s: 0.03 + 0.002 * s for s in SEEDS}},
}


def _run(folder, evidence, failed=()):
    """Record ``evidence`` ({notebook: {claim: values}}) as the notebooks would, mark
    the ``failed`` notebooks as the main job does, and write the gallery."""
    for notebook, items in evidence.items():
        rep = Report(notebook, "quick", folder)
        for cid, values in items.items():
            rep.claim(cid, values, detail=f"synthetic {cid}")
        rep.finish()
    for notebook in failed:
        path = folder / "meta" / f"{notebook}.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"status": "failed"}))
    return write_gallery(folder, "quick", n_halves=4)


def _markdown_rows(text):
    """Rows of every Markdown table that has a ``verdict`` column: {column: cell}."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if header is None:
            header = cells
        elif not set(line) <= set("|-: ") and "verdict" in header:
            rows.append(dict(zip(header, cells)))
    return rows


@pytest.fixture()
def run_a(tmp_path):
    folder = tmp_path / "a"
    _run(folder, RUN_A, failed=("06_label_noise",))
    return folder


def test_table_agrees_with_the_markdown_row_by_row(run_a):
    md_rows = _markdown_rows((run_a / "claims.md").read_text())
    doc = json.loads((run_a / "claims.json").read_text())
    table = pd.DataFrame(doc["claims"])
    # Every recorded claim, plus whatever rows the rule adds (e.g. declared ones not run).
    assert len(table) == len(md_rows) and table["id"].is_unique
    assert {cid for items in RUN_A.values() for cid in items} <= set(table["id"])
    verdicts = set()
    for row in doc["claims"]:
        spec = C.get_claim(row["id"])
        names = {row["id"], f"`{row['id']}`", spec.statement}
        matches = [r for r in md_rows
                   if names & {c.replace("\\|", "|") for c in r.values()}]
        assert len(matches) == 1, row["id"]
        md = matches[0]
        shown = re.findall(r"\*\*([^*]+)\*\*", md["verdict"])
        assert shown == [C.verdict_label(row["verdict"], row.get("size") or "")], \
            (row["id"], md["verdict"])
        estimate = row.get("estimate", row.get("mean"))
        if estimate is not None and row["seeds"]:
            assert spec.fmt(estimate) in " ".join(md.values()), row["id"]
        assert ("stale" in md["verdict"]) == row["stale"]
        verdicts.add(row["verdict"])
    assert {"holds", "does not hold", "inconclusive"} <= verdicts  # every kind exercised
    csv = pd.read_csv(run_a / "claims.csv")
    assert list(csv["id"]) == list(table["id"]) and list(csv["verdict"]) == list(table["verdict"])
    assert list(csv.columns) == doc["columns"]


def test_table_holds_declaration_interval_p_values_and_seeds(run_a):
    doc = json.loads((run_a / "claims.json").read_text())
    row = next(r for r in doc["claims"] if r["id"] == "drsl-harder-dlr")
    spec = C.get_claim("drsl-harder-dlr")
    assert row["direction"] == spec.direction and row["sesoi"] == spec.sesoi
    assert row["primary"] == spec.primary and row["seeds"] == list(SEEDS)
    assert row["mean"] == pytest.approx(100 * (0.05 + 0.004 * 3.5))
    assert row["verdict"] == "holds" and row["stale"] is False
    assert doc["profile"] == "quick" and set(doc["provenance"]) == set(RUN_A)
    # Every column the rule computes is written, whatever it is.
    assessed = R.claims_frame(R.load_meta(run_a))
    assert set(assessed.columns) - {"claim"} <= set(doc["columns"])


def test_report_and_gallery_carry_the_provenance_block_and_nothing_churns(run_a):
    for name in ("claims.md", "README.md"):
        text = (run_a / name).read_text()
        assert "**Provenance**" in text and "| threads per notebook |" in text
        assert "torchattacks" in text and "| seeds | 0–7 |" in text
    before = {p: (run_a / p).read_bytes() for p in ("claims.md", "README.md", "claims.json",
                                                     "claims.csv")}
    write_gallery(run_a, "quick", n_halves=4)
    assert {p: (run_a / p).read_bytes() for p in before} == before


def _run_b(tmp_path):
    # 06 is not run: its primary finding drsl-noise-pair is absent or reads "not run".
    evidence = {nb: dict(items) for nb, items in RUN_A.items() if nb != "06_label_noise"}
    evidence["02_attacks"] = {
        "drsl-harder-dlr": {s: 0.15 + 0.004 * s for s in SEEDS},   # +10 pp, still holds
        "isce-harder-dlr": {s: 0.08 + 0.004 * s for s in SEEDS},   # now holds
        # drsl-harder-pgd (a secondary row) is not measured: only in A
        "isce-harder-pgd": {s: 0.08 + 0.004 * s for s in SEEDS},   # only in B
    }
    folder = tmp_path / "b"
    _run(folder, evidence)
    return folder


def test_diff_names_changed_verdicts_moved_estimates_and_lone_claims(run_a, tmp_path):
    b = _run_b(tmp_path)
    diff = R.diff_tables(R.load_claims_table(run_a)[0], R.load_claims_table(b)[0])
    change = dict(zip(diff["id"], diff["change"]))
    assert {k: v for k, v in change.items() if v} == {
        "drsl-harder-dlr": "estimate", "isce-harder-dlr": "verdict",
        "drsl-harder-pgd": "only in A", "drsl-noise-pair": "only in A",
        "isce-harder-pgd": "only in B"}
    assert change["drsl-same-accuracy-gce"] == ""


def test_diff_command_prints_a_readable_result(run_a, tmp_path, capsys):
    b = _run_b(tmp_path)
    assert R.main(["diff", str(run_a / "claims.json"), str(b)]) == 0
    out = capsys.readouterr().out
    assert "Verdicts that changed (1):" in out
    assert re.search(r"isce-harder-dlr\s+inconclusive -> holds", out)
    assert re.search(r"drsl-harder-dlr\s+\+6\.4 pp -> \+16\.4 pp", out)
    assert "Only in A (absent or not measured in B) (2):" in out
    assert "Only in B (absent or not measured in A) (1):" in out
    diff = R.diff_tables(R.load_claims_table(run_a)[0], R.load_claims_table(b)[0])
    n_both = int((~diff["change"].isin(["only in A", "only in B"])).sum())
    assert f"Summary: {n_both - 1} of {n_both} claims in both keep their verdict" in out
    assert R.main(["diff", str(run_a), str(b), "--fail-on-change"]) == 1
    capsys.readouterr()
    assert R.main(["diff", str(run_a), str(run_a), "--fail-on-change"]) == 0
    out = capsys.readouterr().out
    assert "Verdicts that changed: none." in out and "Provenance: the same" in out


def test_diff_reads_a_folder_from_before_the_table(run_a, tmp_path):
    legacy = tmp_path / "legacy"
    (legacy / "meta").mkdir(parents=True)
    for p in (run_a / "meta").glob("*.json"):
        (legacy / "meta" / p.name).write_text(p.read_text())
    table, header = R.load_claims_table(legacy)
    written = R.load_claims_table(run_a)[0]
    assert list(table["id"]) == list(written["id"])
    assert list(table["verdict"]) == list(written["verdict"])
    assert header["source"] == "meta"


def test_diff_rejects_what_is_not_a_claims_table(tmp_path, capsys):
    (tmp_path / "claims.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="is not a claims table"):
        R.load_claims_table(tmp_path)
    with pytest.raises(SystemExit):
        R.main(["diff", str(tmp_path / "missing"), str(tmp_path)])
    assert "expected a claims.json" in capsys.readouterr().err
