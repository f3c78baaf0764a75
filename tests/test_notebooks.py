"""Every notebook runs top to bottom in the smoke profile, and each is committed without
outputs, in sync with its jupytext text form."""

from __future__ import annotations

import json
import os

import pytest

from drsl_utils.suite import notebooks, run_notebook

NOTEBOOKS = notebooks()


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 6


@pytest.fixture(scope="module")
def smoke_env(tmp_path_factory):
    """One cache for the whole module, so notebooks share models as in the main job."""
    cache = tmp_path_factory.mktemp("nb-cache")
    old = os.environ.get("DRSL_CACHE_DIR")
    os.environ["DRSL_CACHE_DIR"] = str(cache)
    yield tmp_path_factory.mktemp("nb-figures"), tmp_path_factory.mktemp("nb-out")
    if old is None:
        os.environ.pop("DRSL_CACHE_DIR", None)
    else:
        os.environ["DRSL_CACHE_DIR"] = old


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(path, smoke_env):
    fig_dir, out_dir = smoke_env
    run_notebook(path, "smoke", out_dir, fig_dir)
    meta = json.loads((fig_dir / "meta" / f"{path.stem}.json").read_text())
    assert meta["figures"], f"{path.stem} saved no figure"
    for fig in meta["figures"]:
        assert (fig_dir / f"{fig['name']}.png").stat().st_size > 5000
        assert (fig_dir / f"{fig['name']}.pdf").exists()
    if path.stem == "12_attack_calibration":  # it calibrates the others' claims
        assert meta["attack_calibration"]["differentials"], "no calibration recorded"
    elif path.stem not in ("00_tour", "11_explore", "13_your_own_model"):
        # the tour and the explorers claim nothing; 13's claim is exploratory (stats.compare)
        assert meta["evidence"], f"{path.stem} recorded no finding"
        assert meta["status"] == "ok"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs_and_paired(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code)
    text_form = path.with_suffix(".py")
    assert text_form.exists(), f"{path.name} has no paired {text_form.name}"
    import jupytext

    paired = jupytext.read(text_form)
    assert _code(paired.cells) == _code(nb["cells"]), f"{path.name} and {text_form.name} differ"
    # Notebooks take their logic from drsl_utils; pandas and numpy only hold and reshape
    # the tables drsl_utils returns. 13 defines and trains a model in plain PyTorch.
    allowed = {"drsl_utils", "pandas", "numpy", "dataclasses", "IPython", "__future__"}
    allowed |= {"torch"} if path.stem == "13_your_own_model" else set()
    for c in code:
        for line in _text(c["source"]).splitlines():
            line = line.strip()
            if line.startswith(("import ", "from ")):
                mod = line.split()[1].split(".")[0]
                assert mod in allowed, f"{path.name} imports {mod}"


def test_claim_ids_are_literal_strings_in_their_notebooks():
    """Grep for a claim's id finds the cell that produces its evidence: every declared id
    appears as a literal string in its notebook, and no id is built at run time."""
    import re

    from drsl_utils.claim_table import PROJECT_CLAIMS

    texts = {p.stem: p.with_suffix(".py").read_text() for p in NOTEBOOKS}
    for claim in PROJECT_CLAIMS:
        assert f'"{claim.id}"' in texts[claim.notebook], (
            f"claim {claim.id!r} is not a literal string in {claim.notebook}.py")
    for stem, text in texts.items():
        assert not re.search(r"\.claim\(\s*f[\"']", text), f"{stem} builds a claim id"


def test_every_secondary_finding_names_its_primary_row():
    """One primary row per paper finding: a secondary row of a finding says which primary
    row carries that finding in the family; checks and demos are never primary."""
    from drsl_utils.claim_table import PROJECT_CLAIMS

    primary = {c.id for c in PROJECT_CLAIMS if c.primary}
    for claim in PROJECT_CLAIMS:
        if claim.role != "finding":
            assert not claim.primary, claim.id
        elif not claim.primary:
            named = [i for i in primary if i in claim.statement]
            assert named, f"secondary {claim.id!r} names no primary row in its statement"


def _text(source) -> str:
    return source if isinstance(source, str) else "".join(source)


def _code(cells) -> list[str]:
    return [_text(c["source"]).strip() for c in cells if c["cell_type"] == "code"]


def test_committed_notebooks_are_stripped():
    """Every committed notebook is exactly what the set-up's clean filter makes of it
    (no outputs, cell ids kept), so a fresh clone shows no change in git."""
    import subprocess
    import sys

    for path in NOTEBOOKS:
        out = subprocess.run([sys.executable, "-m", "nbstripout", "--keep-id"],
                             input=path.read_text(), capture_output=True, text=True,
                             check=True).stdout
        assert out == path.read_text(), f"{path.name} is not stripped: run nbstripout on it"


def test_saving_outputs_does_not_dirty_git(tmp_path):
    """With the set-up's nbstripout filter, a notebook saved with outputs (as JupyterLab's
    autosave does) shows no change in git."""
    import shutil
    import subprocess
    import sys

    import nbformat

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=tmp_path, capture_output=True, text=True, check=True)

    git("init", "-q")
    shutil.copy(NOTEBOOKS[0], tmp_path / "nb.ipynb")
    subprocess.run([sys.executable, "-m", "nbstripout", "--install", "--attributes",
                    ".gitattributes"], cwd=tmp_path, check=True)
    git("config", "filter.nbstripout.clean", f'"{sys.executable}" -m nbstripout --keep-id')
    git("add", ".")
    git("commit", "-qm", "stripped")
    assert git("show", "HEAD:nb.ipynb").stdout == NOTEBOOKS[0].read_text()  # as committed
    nb = nbformat.read(tmp_path / "nb.ipynb", as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.execution_count = 3
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    assert git("diff", "--stat").stdout.strip() == ""  # no content change
    git("add", "nb.ipynb")  # git status lists the file until then (a stale stat entry)
    assert git("status", "--porcelain").stdout.strip() == ""  # and add stages nothing


# The notebooks of the teaching path (docs/book/teaching.md): each ends with exercises.
TEACHING = [p for p in NOTEBOOKS if p.stem[:2] in {"00", "01", "02", "03", "04", "05"}]


@pytest.mark.parametrize("path", TEACHING, ids=[p.stem for p in TEACHING])
def test_teaching_notebooks_end_with_two_or_three_exercises_with_folded_solutions(path):
    """Each exercise is a markdown cell ("### Exercise N") that asks for a prediction,
    followed by its solution: a code cell that the book folds (MyST-NB's ``hide-cell``
    tag, with a "Show the solution" prompt). Only solutions are folded, and nothing but
    exercises follows the first one."""
    cells = json.loads(path.read_text())["cells"]
    tags = [c.get("metadata", {}).get("tags", []) for c in cells]
    asks = [i for i, c in enumerate(cells)
            if c["cell_type"] == "markdown" and _text(c["source"]).startswith("### Exercise")]
    assert 2 <= len(asks) <= 3, f"{path.stem} has {len(asks)} exercises"
    assert [i for i, t in enumerate(tags) if "hide-cell" in t] == [i + 1 for i in asks]
    for i in asks:
        assert "predict" in _text(cells[i]["source"]).lower(), f"cell {i} asks no prediction"
        solution = cells[i + 1]
        assert solution["cell_type"] == "code" and _text(solution["source"]).strip()
        assert "solution" in solution["metadata"]["mystnb"]["code_prompt_show"]
    # The exercises close the notebook: after the first, only exercises and solutions.
    assert all(c["cell_type"] == "markdown" or "hide-cell" in t
               for c, t in zip(cells[asks[0]:], tags[asks[0]:]))


def test_teaching_page_links_every_teaching_notebook_and_is_in_the_book():
    from pathlib import Path

    book = Path(__file__).resolve().parent.parent / "docs" / "book"
    text = (book / "teaching.md").read_text()
    for path in TEACHING:
        assert f"](notebooks/{path.stem}.ipynb)" in text, f"teaching.md skips {path.stem}"
        assert f"](notebooks/{path.stem}.ipynb#exercises)" in text, (
            f"teaching.md does not point at the exercises of {path.stem}")
    toctree = (book / "index.md").read_text().split("```{toctree}")[1].split("```")[0]
    assert "\nteaching\n" in toctree, "the teaching page is in no toctree"
