"""Identity is data, not a name: nothing in the package or the notebooks reads what a
model is back out of its display name (issue 22). Records carry the identity columns
(``evaluation.IDENTITY_COLUMNS``, tested in ``test_evaluation.py``); this guards the
other side, that no code goes back to parsing names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "drsl_utils").glob("*.py")) + sorted((ROOT / "notebooks").glob("*.py"))

#: What parsing a model's name looks like: the removed parser, and a regex or prefix
#: test on the ``model`` column.
NAME_PARSING = re.compile(
    r"parse_model_name|ModelName\b"
    r"|\[\s*[\"']model[\"']\s*\]\s*\.str\.(extract|contains|match|split|startswith)"
    r"|startswith\(\s*[\"']DRSL")


def test_the_sources_are_found():
    assert len(SOURCES) > 20


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_no_code_parses_a_model_name(path):
    hits = [f"{path.name}:{i}: {line.strip()}"
            for i, line in enumerate(path.read_text().splitlines(), 1)
            if NAME_PARSING.search(line)]
    assert not hits, "read the identity columns instead of the name:\n" + "\n".join(hits)


def test_the_guard_catches_what_notebook_07_used_to_do():
    old = ['robust["tau"] = robust["model"].str.extract(r"tau=([\\d.e+-]+)")[0]',
           'clean = ex.clean_stats(S, {k: v for k, v in zoo.items() if k.startswith("DRSL")})',
           "from drsl_utils.stats import parse_model_name"]
    assert all(NAME_PARSING.search(line) for line in old)
    assert not NAME_PARSING.search('AUTOATTACK = next(a for a in costly.attacks '
                                   'if a.startswith("autoattack"))')
