"""The provenance block: what it records, that nothing in it churns between two runs of
the same code, and how it treats the output folder and a tree with uncommitted work."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

import drsl_utils
from drsl_utils import provenance as P
from drsl_utils.report import Report

ROOT = Path(__file__).resolve().parent.parent


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    *args], check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    """A tiny checkout with code and a committed figures folder, standing in for ours."""
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "claims.md").write_text("old\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "code")
    monkeypatch.setattr(P, "_ROOT", tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _fresh_look():
    """Each test starts without what git said to another test."""
    P.refresh()
    yield
    P.refresh()


def _collect(*args, **kwargs):
    """collect() after forgetting the cached git answer: these tests edit the checkout
    between two looks, which a real process (running the code it imported) never does."""
    P.refresh()
    return P.collect(*args, **kwargs)


def _head(repo):
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()[:12]


def test_block_records_code_settings_packages_and_machine(repo):
    block = P.collect("quick", seeds=[3, 1, 2, 2], device="cpu", threads=2,
                      exclude=[repo / "figures"])
    assert block["commit"] == _head(repo) and block["dirty"] is False
    assert block["profile"] == "quick" and block["seeds"] == [1, 2, 3]
    assert block["threads"] == 2 and block["device"] == "cpu"
    assert set(block["packages"]) == set(P.PACKAGES)
    assert block["packages"]["torch"][0].isdigit()
    assert block["drsl_utils"] == drsl_utils.__version__
    assert re.fullmatch(r"3\.\d+\.\d+.*", block["python"]) and block["cpu"]


def test_writing_the_output_folder_or_committing_it_changes_nothing(repo):
    code_commit = _head(repo)
    before = _collect("quick", exclude=[repo / "figures"])
    (repo / "figures" / "claims.md").write_text("new results\n")  # the run writes here
    (repo / "scratch.txt").write_text("untracked\n")                 # not code
    assert _collect("quick", exclude=[repo / "figures"]) == before
    _git(repo, "commit", "-q", "-am", "regenerate figures")           # results committed
    after = _collect("quick", exclude=[repo / "figures"])
    assert after == before and after["commit"] == code_commit
    # Without the exclusion the same change would have read as dirty.
    (repo / "figures" / "claims.md").write_text("newer\n")
    assert _collect("quick")["dirty"] is True


def test_uncommitted_code_is_dirty_and_names_its_diff(repo):
    (repo / "code.py").write_text("x = 2\n")
    one = _collect("quick", exclude=[repo / "figures"])
    assert one["dirty"] is True and re.fullmatch(r"[0-9a-f]{12}", one["diff"])
    assert _collect("quick", exclude=[repo / "figures"])["diff"] == one["diff"]
    (repo / "code.py").write_text("x = 3\n")
    assert _collect("quick", exclude=[repo / "figures"])["diff"] != one["diff"]
    assert "uncommitted changes" in P.fields({"00": one})["commit"]


def test_outside_a_checkout_the_commit_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "_ROOT", tmp_path)
    block = P.collect("quick")
    assert block["commit"].startswith("unknown") and block["dirty"] is None
    assert P.fields({"00": block})["commit"].startswith("unknown")


def test_git_is_asked_once_per_process(repo, monkeypatch):
    """Two reports of one process carry the same block even when a later git call
    would fail (a timeout on a loaded machine once turned "dirty" from false to null
    between two reports of one test)."""
    calls = []
    real = P._git
    monkeypatch.setattr(P, "_git", lambda *a: calls.append(a) or real(*a))
    first = P.collect("quick", exclude=[repo / "figures"])
    n = len(calls)
    assert n >= 2  # the commit, then the status
    monkeypatch.setattr(P, "_git", lambda *a: None)  # git gone: the answer stands
    assert P.collect("quick", exclude=[repo / "figures"]) == first and first["dirty"] is False
    P.refresh()
    assert P.collect("quick", exclude=[repo / "figures"])["dirty"] is None


def test_seed_block_reads_as_ranges():
    assert P.seed_block([7, 0, 1, 2, 3, 4, 5, 6]) == "0–7"
    assert P.seed_block([0, 1, 2, 9, 1000, 1001]) == "0–2, 9, 1000–1001"
    assert P.seed_block([]) == P.seed_block(None) == "none recorded"


def test_markdown_block_merges_notebooks_and_names_what_differs(repo):
    a = P.collect("quick", seeds=range(5), device="cpu", threads=1)
    b = dict(a, seeds=list(range(8)), threads=2)
    lines = P.markdown_block({"01_train": a, "02_attacks": b, "03_x": a})
    text = "\n".join(lines)
    assert "| seeds | 0–7 |" in text                          # the union of the seeds
    assert "| threads per notebook | 1 (01_train, 03_x); 2 (02_attacks) |" in text
    assert "| device | cpu |" in text and f"`{a['commit']}`, clean tree" in text
    body = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| |")]
    assert len(body) == len(P.fields({"x": a}))                # one row per field


def test_a_report_without_recorded_provenance_says_so():
    assert P.fields({}) == {}
    assert P.markdown_block({}) == ["**Provenance**: not recorded (these notebooks ran "
                                    "before drsl_utils 0.2.0, which added it)."]


def test_under_title_puts_the_block_below_the_first_heading():
    doc = ["# Claims report", "", "Profile `quick`."]
    assert P.under_title(doc, ["B"]) == ["# Claims report", "", "B", "", "Profile `quick`."]
    assert P.under_title(["text"], ["B"]) == ["B", "", "text"]


def test_meta_entry_carries_the_block_and_no_time(tmp_path):
    rep = Report("02_attacks", "smoke", tmp_path)
    rep.claim("drsl-harder-dlr", {s: 0.05 + 0.004 * s for s in range(4)})
    rep.finish()
    meta_path = tmp_path / "meta" / "02_attacks.json"
    meta = json.loads(meta_path.read_text())
    block = meta["provenance"]
    assert block["profile"] == "smoke" and block["seeds"] == [0, 1, 2, 3]
    assert block["threads"] >= 1 and block["device"] in ("cpu", "cuda", "mps")
    text = meta_path.read_text()
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}", text)  # no date, no time
    first = meta_path.read_bytes()
    rep.finish()
    assert meta_path.read_bytes() == first


def test_version_is_one_number_in_package_and_project():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == drsl_utils.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{drsl_utils.__version__}]" in changelog  # every release has its section


def test_notebooks_are_judged_by_their_paired_py(repo):
    """The dirty check skips ``.ipynb`` files (their clean filter made git status take
    29 s in a fresh clone and time out under load); the paired ``.py`` carries the code."""
    (repo / "nb").mkdir()
    (repo / "nb" / "x.ipynb").write_text("{}\n")
    (repo / "nb" / "x.py").write_text("# %%\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "notebook")
    (repo / "nb" / "x.ipynb").write_text('{"outputs": 1}\n')  # run in Jupyter
    assert _collect("quick", exclude=[repo / "figures"])["dirty"] is False
    (repo / "nb" / "x.py").write_text("# %%\nx = 1\n")             # the code changed
    assert _collect("quick", exclude=[repo / "figures"])["dirty"] is True


def test_code_since_the_freeze_reads_the_history():
    """The previous confirmatory run (commit b2a86a2) changed nothing under drsl_utils/
    or notebooks/ since its freeze (43f4f9a); a later commit did; a dirty tree or an
    unknown commit cannot pass (methods review 2, point 3)."""
    freeze = "43f4f9aff1dd5bce337a867b2d5ef6687aa1e25e"
    if P._git("cat-file", "-e", freeze + "^{commit}") is None:
        pytest.skip("the freeze commit is not in this checkout's history")
    same, why = P.code_since(freeze, [{"commit": "b2a86a226c91", "dirty": False}])
    assert same is True, why
    changed, why = P.code_since(freeze, [{"commit": "87b6d0a", "dirty": False}])
    assert changed is False and "drsl_utils/" in why
    assert P.code_since(freeze, [{"commit": "b2a86a226c91", "dirty": True}])[0] is False
    assert P.code_since(freeze, [{"commit": "unknown (not a git checkout)"}])[0] is None
    assert P.code_since(freeze, [{"commit": "f" * 12, "dirty": False}])[0] is None
    # The process that writes the report applies the rule: its code counts too (methods
    # review 3, A2): a report written again after an edit to the rule is not frozen.
    run = [{"commit": "b2a86a226c91", "dirty": False}]
    changed, why = P.code_since(freeze, run, writer={"commit": "87b6d0a", "dirty": False})
    assert changed is False and "writer" in why
    assert P.code_since(freeze, run, writer={"commit": "b2a86a2", "dirty": True})[0] is False
    assert P.code_since(freeze, run, writer={"commit": "b2a86a2", "dirty": False})[0] is True
    assert set(P.writer_block()) == {"commit", "dirty"}
