"""Write environment.yml (the conda set-up) from pyproject.toml, the one list of
dependencies. Run it after changing pyproject.toml:

    .venv/bin/python scripts/sync_environment.py          # rewrite environment.yml
    .venv/bin/python scripts/sync_environment.py --check  # exit 1 if it is stale

tests/test_environment.py parses both files on its own and fails when a dependency or an
extra is in one and not the other, or when a version bound differs.

Every runtime dependency and every extra goes into the file, each with the bound
pyproject.toml gives it. Packages that conda-forge carries under the same name are
solved by conda; the rest (and torch and torchvision, whose PyPI builds the lock uses,
see the README) are installed by pip inside the environment. torchattacks is installed
last, by hand, without its dependencies: see OUTSIDE.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
ENVIRONMENT = ROOT / "environment.yml"

# Solved by conda from conda-forge, where each has the same name as on PyPI. Anything
# else goes to the pip section: pip can install whatever pyproject.toml names, so a new
# dependency works before anyone checks whether conda-forge has it.
CONDA_FORGE = frozenset({
    "anywidget", "filelock", "hypothesis", "ipykernel", "ipywidgets", "jupyterlab",
    "jupytext", "matplotlib", "nbstripout", "numpy", "pandas", "papermill", "plotly",
    "pytest", "requests", "ruff", "scikit-learn", "scipy", "seaborn", "selenium",
    "submitit", "tabulate", "tqdm", "umap-learn", "sphinx", "myst-nb", "sphinx-book-theme",
})

# Installed after the environment is created, outside both solvers, with the reason.
OUTSIDE = {
    "torchattacks": (
        "torchattacks 3.5.1 pins requests~=2.25.1 in its metadata but never imports "
        "requests;\n# installing it with its pin would drag JupyterLab back to 3.x. So "
        "everything else\n# comes first, and torchattacks is installed afterwards without "
        "its dependencies:"
    ),
}


def groups(pyproject: dict) -> dict[str, list[Requirement]]:
    """The runtime dependencies ("runtime") and each extra, in pyproject.toml's order."""
    project = pyproject["project"]
    out = {"runtime": [Requirement(r) for r in project.get("dependencies", [])]}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        out[extra] = [Requirement(r) for r in reqs]
    return out


def _python(pyproject: dict) -> str:
    """``python=X.Y`` from requires-python's lower bound (the version the project runs)."""
    spec = pyproject["project"]["requires-python"]
    lower = next(s.version for s in Requirement(f"python{spec}").specifier
                 if s.operator in (">=", "==", "~="))
    return "python=" + ".".join(lower.split(".")[:2])


def _by_conda(req: Requirement) -> bool:
    # conda's match specs know neither extras nor environment markers.
    return canonicalize_name(req.name) in CONDA_FORGE and not req.extras and not req.marker


def render(pyproject: dict) -> str:
    """The text of environment.yml for ``pyproject`` (a parsed pyproject.toml)."""
    by_group = groups(pyproject)
    extras = [g for g in by_group if g != "runtime"]
    outside = [r for rs in by_group.values() for r in rs
               if canonicalize_name(r.name) in OUTSIDE]
    lines = [
        "# Generated from pyproject.toml by scripts/sync_environment.py: do not edit by hand;",
        "# change pyproject.toml and run the script (tests/test_environment.py checks both).",
        "# The runtime dependencies and every extra: " + ", ".join(extras) + ".",
    ]
    for req in outside:
        lines.append("# " + OUTSIDE[canonicalize_name(req.name)])
    lines += ["#   conda env create -f environment.yml", "#   conda activate drsl"]
    lines += [f"#   pip install --no-deps {req}" for req in outside]
    lines += [
        "#   pip install --no-deps -e .",
        "name: drsl",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - {_python(pyproject)}",
        "  - pip",
    ]
    pip: list[str] = []
    for group, reqs in by_group.items():
        label = "runtime" if group == "runtime" else f"extra {group}"
        inside = [r for r in reqs if canonicalize_name(r.name) not in OUTSIDE]
        conda = [r for r in inside if _by_conda(r)]
        rest = [r for r in inside if not _by_conda(r)]
        if conda:
            lines.append(f"  # {label}")
            lines += [f"  - {r}" for r in conda]
        if rest:
            pip.append(f"      # {label}")
            pip += [f"      - {r}" for r in rest]
    if pip:
        lines.append("  # by pip: torch and torchvision (the PyPI builds) and packages not listed as on conda-forge")
        lines += ["  - pip:", *pip]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if environment.yml differs from what would be written")
    args = parser.parse_args(argv)
    text = render(tomllib.loads(PYPROJECT.read_text(encoding="utf-8")))
    if args.check:
        if ENVIRONMENT.read_text(encoding="utf-8") != text:
            print("environment.yml is stale: run python scripts/sync_environment.py",
                  file=sys.stderr)
            return 1
        return 0
    ENVIRONMENT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
