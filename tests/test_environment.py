"""Tests of the set-up files around the package: environment.yml (the conda path) agrees
with pyproject.toml, and lab-config/ (the project's JupyterLab settings, used by
`make lab`) is valid for the installed JupyterLab.

conda cannot be reached here, so environment.yml is checked by parsing: both files are
read on their own (tomllib, yaml), not through scripts/sync_environment.py, which writes
the file; a last test checks that the script's output is what is committed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
ENV_TEXT = (ROOT / "environment.yml").read_text(encoding="utf-8")
# Installed by hand after `conda env create`, outside both solvers (its requests pin).
NOTE = re.compile(r"^#\s+pip install --no-deps (?!-e )(\S+)\s*$", re.MULTILINE)
LAB_CONFIG = ROOT / "lab-config"


def _pyproject_requirements() -> dict[str, SpecifierSet]:
    project = PYPROJECT["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return _by_name(reqs, "pyproject.toml")


def _environment_requirements(text: str = ENV_TEXT) -> dict[str, SpecifierSet]:
    reqs = []
    for entry in yaml.safe_load(text)["dependencies"]:
        if isinstance(entry, dict):
            reqs += entry["pip"]
        elif entry != "pip" and not entry.startswith("python="):
            reqs.append(entry)
    return _by_name(reqs + NOTE.findall(text), "environment.yml")


def _by_name(reqs: list[str], where: str) -> dict[str, SpecifierSet]:
    out: dict[str, SpecifierSet] = {}
    for text in reqs:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name not in out, f"{req.name} is listed twice in {where}"
        out[name] = req.specifier
    return out


def _mismatches(env: dict[str, SpecifierSet], pyproject: dict[str, SpecifierSet]) -> list[str]:
    problems = [f"{n} is in pyproject.toml, not in environment.yml"
                for n in sorted(pyproject.keys() - env.keys())]
    problems += [f"{n} is in environment.yml, not in pyproject.toml"
                 for n in sorted(env.keys() - pyproject.keys())]
    problems += [f"{n}: environment.yml has {env[n] or 'no bound'!s}, pyproject.toml "
                 f"{pyproject[n] or 'no bound'!s}"
                 for n in sorted(env.keys() & pyproject.keys()) if env[n] != pyproject[n]]
    return problems


def test_environment_has_every_dependency_and_extra_with_the_same_bounds():
    pyproject = _pyproject_requirements()
    assert len(pyproject) > 20  # the parse found the lists
    assert _mismatches(_environment_requirements(), pyproject) == []


def test_the_check_sees_a_missing_package_and_a_changed_bound():
    # The comparison itself, on edited copies: the test above cannot pass vacuously.
    pyproject = _pyproject_requirements()
    entry = next(e for e in yaml.safe_load(ENV_TEXT)["dependencies"]
                 if isinstance(e, str) and e != "pip" and not e.startswith("python="))
    name = canonicalize_name(Requirement(entry).name)
    dropped = ENV_TEXT.replace(f"  - {entry}\n", "", 1)
    assert _mismatches(_environment_requirements(dropped), pyproject) == [
        f"{name} is in pyproject.toml, not in environment.yml"]
    raised = ENV_TEXT.replace(f"  - {entry}\n", f"  - {name}>=999\n", 1)
    assert _mismatches(_environment_requirements(raised), pyproject) == [
        f"{name}: environment.yml has >=999, pyproject.toml {pyproject[name]}"]
    noted = NOTE.sub(lambda m: m.group(0).replace(m.group(1), "torchattacks==0.1"), ENV_TEXT)
    assert _mismatches(_environment_requirements(noted), pyproject) == [
        f"torchattacks: environment.yml has ==0.1, pyproject.toml {pyproject['torchattacks']}"]


def test_environment_names_every_extra_and_the_python_version():
    extras = set(PYPROJECT["project"].get("optional-dependencies", {}))
    listed = re.search(r"^# The runtime dependencies and every extra: (.*)\.$", ENV_TEXT,
                       re.MULTILINE)
    assert listed, "environment.yml's header does not name the extras it includes"
    assert set(listed.group(1).split(", ")) == extras
    lower = re.fullmatch(r">=(\d+\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)
    assert f"python={lower}" in yaml.safe_load(ENV_TEXT)["dependencies"]


def test_torchattacks_stays_outside_the_solver_with_its_note():
    conda = yaml.safe_load(ENV_TEXT)["dependencies"]
    pip = next(e["pip"] for e in conda if isinstance(e, dict))
    assert not [e for e in [*conda, *pip] if "torchattacks" in str(e)]
    assert [Requirement(r).name for r in NOTE.findall(ENV_TEXT)] == ["torchattacks"]
    assert "requests~=2.25.1" in ENV_TEXT and "never imports" in ENV_TEXT
    assert "pip install --no-deps -e ." in ENV_TEXT


def test_environment_is_what_the_script_writes():
    spec = importlib.util.spec_from_file_location(
        "sync_environment", ROOT / "scripts" / "sync_environment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render(PYPROJECT) == ENV_TEXT, (
        "environment.yml is stale: run .venv/bin/python scripts/sync_environment.py")


# The project's JupyterLab settings (the browser test checks them in a running lab).
def test_lab_settings_are_valid_for_the_installed_jupyterlab():
    import jupyterlab

    overrides = json.loads((LAB_CONFIG / "labconfig" /
                            "default_setting_overrides.json").read_text(encoding="utf-8"))
    schemas = Path(jupyterlab.__file__).parent / "schemas"
    for plugin, values in overrides.items():
        package, name = plugin.rsplit(":", 1)
        schema = json.loads((schemas / package / f"{name}.json").read_text(encoding="utf-8"))
        for key, value in values.items():
            prop = schema["properties"][key]  # a KeyError is a setting this lab lacks
            allowed = [o["const"] for o in prop.get("oneOf", [])] or [value]
            assert value in allowed and isinstance(value, bool) == (prop["type"] == "boolean")
    assert overrides["@jupyterlab/apputils-extension:notification"] == {
        "fetchNews": "false", "checkForUpdates": False}


def test_lab_server_config_turns_news_and_update_checks_off():
    from jupyterlab.handlers.announcements import CheckForUpdateABC, NeverCheckForUpdate
    from jupyterlab.labapp import LabApp
    from traitlets.config import PyFileConfigLoader

    config = PyFileConfigLoader("jupyter_lab_config.py", path=str(LAB_CONFIG)).load_config()
    app = LabApp(config=config)
    assert app.news_url is None
    assert app.check_for_updates_class is NeverCheckForUpdate
    assert issubclass(app.check_for_updates_class, CheckForUpdateABC)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_lab_puts_the_lab_config_on_jupyters_path():
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(
        ["make", "-n", "-o", ".venv/.drsl-installed", "-o", "gitfilter", "-o", "data", "lab"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert f'JUPYTER_CONFIG_PATH="{LAB_CONFIG}' in out and "jupyter lab" in out
