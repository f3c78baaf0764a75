"""Where a result came from: the code, the packages, the machine and the settings that
produced a figure or a verdict.

A claims report or a gallery is read far from the machine that made it, so each carries
a provenance block: the commit (and whether the tree was dirty), the profile, the seed
block, the versions of the packages that change numbers (torch, torchattacks, numpy,
scipy, umap-learn), the Python version, the CPU model, the thread count and the device.

Nothing in a block changes between two runs of the same commit on the same machine:
there is no date, wall time, host name or path in it. Two choices keep that true when
the results are committed:

- *commit* is the last commit that touched anything outside the output folder, so
  committing a regenerated gallery does not change the commit the next run records;
- *dirty* ignores the output folder (the run itself writes there) and untracked files
  (scratch files are not part of the code); a dirty tree also records a short hash of
  the changed files, which names the exact uncommitted code.

Each notebook records its own block in ``meta/<notebook>.json`` (:mod:`drsl_utils.report`,
collected in the kernel that ran it, with that kernel's thread count);
:func:`markdown_block` merges the blocks of a report into the lines that head
``claims.md`` and the gallery, and lists a field per notebook where they differ.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "CODE_PATHS", "code_since", "writer_block", "collect", "fields",
           "markdown_block", "refresh", "under_title", "seed_block"]

#: The distributions whose version can change a number in the report, in display order.
PACKAGES = ("torch", "torchattacks", "numpy", "scipy", "umap-learn")

_ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    """``git <args>`` in the repository, or None where git or the checkout is missing
    (an installed package has no ``.git``). Without optional locks: a notebook reading
    its provenance must never hold the index lock while someone commits."""
    try:
        out = subprocess.run(["git", "--no-optional-locks", "-C", str(_ROOT), *args],
                             capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def _pathspec(exclude: Iterable[str | Path]) -> list[str]:
    """``-- . :(exclude)<p>`` for the excluded folders that lie inside the repository."""
    spec = ["--", "."]
    for p in exclude:
        try:
            rel = Path(p).resolve().relative_to(_ROOT)
        except ValueError:  # outside the checkout: nothing of it is tracked
            continue
        if str(rel) != ".":
            spec.append(f":(exclude){rel.as_posix()}")
    return spec


#: Left out of the dirty check: a notebook's ``.ipynb`` goes through the nbstripout
#: clean filter (``.gitattributes``), a fresh Python per file whenever its index entry is
#: racily clean, as it is in a fresh clone; without optional locks git never writes the
#: refreshed index, so every call paid it again (29 s for 14 notebooks, past the
#: timeout on a loaded machine). The paired ``.py`` (jupytext) carries the same code.
_STATUS_EXCLUDE = (":(exclude,glob)**/*.ipynb",)


def _changed(spec: list[str]) -> list[str] | None:
    """Tracked paths that differ from HEAD (staged or not), from ``git status`` (which
    takes milliseconds where ``git diff HEAD`` took minutes on a busy checkout);
    notebooks' ``.ipynb`` files are judged by their paired ``.py`` (:data:`_STATUS_EXCLUDE`)."""
    out = _git("status", "--porcelain", "-z", "--untracked-files=no", *spec,
               *_STATUS_EXCLUDE)
    if out is None:
        return None
    entries, paths = out.split("\0"), []
    while entries:
        entry = entries.pop(0)
        if len(entry) > 3:
            paths.append(entry[3:])
            if "R" in entry[:2] or "C" in entry[:2]:
                entries.pop(0)  # a rename's or copy's source path follows
    return sorted(paths)


def _commit(exclude: Iterable[str | Path]) -> tuple[str, bool | None, str | None]:
    """The last commit outside ``exclude``, whether the tracked tree differs from it
    there, and a short hash of the changed files' paths and contents: read once per
    process and checkout (see :func:`refresh`)."""
    return _commit_of(_ROOT, tuple(_pathspec(exclude)))


@functools.cache
def _commit_of(root: Path, spec: tuple[str, ...]) -> tuple[str, bool | None, str | None]:
    """:func:`_commit` for one checkout and pathspec, cached: the code a process runs is
    the code it imported, so what git said at the first look is the answer for the rest
    of the process. It also keeps two reports of one process from disagreeing when a
    ``git`` call fails or times out on a loaded machine, and keeps git out of the hot
    path of a test suite that finishes hundreds of reports."""
    spec = list(spec)
    head = _git("log", "-1", "--format=%H", *spec)
    if not head or not head.strip():
        return "unknown (not a git checkout)", None, None
    changed = _changed(spec)
    if changed is None:
        return head.strip()[:12], None, None
    digest = hashlib.sha256()
    for rel in changed:
        path = _ROOT / rel
        digest.update(rel.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<deleted>")
    return head.strip()[:12], bool(changed), digest.hexdigest()[:12] if changed else None


def refresh() -> None:
    """Forget what git said, so the next :func:`collect` looks again (for a long-lived
    kernel that reloaded edited code, and for tests that edit a checkout)."""
    _commit_of.cache_clear()


#: The code that computes the evidence and decides the verdicts: a confirmatory run
#: must run it as it was when the declaration was frozen (:func:`code_since`).
CODE_PATHS = ("drsl_utils", "notebooks", "pyproject.toml", "uv.lock")


def code_since(freeze: str, blocks: Iterable[Mapping[str, Any]], *,
               writer: Mapping[str, Any] | None = None) -> tuple[bool | None, str]:
    """Did the runs behind ``blocks`` (provenance blocks, :func:`collect`), and the
    process that writes the report from them (``writer``, :func:`writer_block`), run
    the freeze commit's code? ``(True, why)`` when every block names a commit on a
    clean tree and ``git diff`` finds no change under :data:`CODE_PATHS` between
    ``freeze`` and each; ``(False, why)`` when one ran on a modified tree or the code
    changed (the notebooks compute the evidence; the writer applies the rule, so a
    report written again after an edit to the rule is not the frozen analysis: methods
    review 3, A2); ``(None, why)`` when it cannot be told here (no git history, an
    unknown commit)."""
    commits: dict[str, str] = {}
    for who, block in [*(("the run", b) for b in blocks),
                       *((("the report's writer", writer),) if writer is not None else ())]:
        commit = str(block.get("commit", ""))
        if not commit or commit.startswith("unknown"):
            return None, f"{who}'s commit is unknown"
        if block.get("dirty") is True:
            return False, f"{who} ran on a modified tree"
        commits.setdefault(commit, who)
    for commit, who in sorted(commits.items()):
        out = _git("diff", "--name-only", freeze, commit, "--", *CODE_PATHS)
        if out is None:
            return None, (f"git cannot compare commit {commit} with the freeze commit "
                          f"{freeze[:12]} here")
        if out.strip():
            files = out.split()
            return False, (f"the code changed between the freeze commit {freeze[:12]} "
                           f"and {who}'s commit {commit}: {', '.join(files[:3])}"
                           + (f" and {len(files) - 3} more" if len(files) > 3 else ""))
    return True, (f"the run's and the report writer's code ({', '.join(CODE_PATHS)} at "
                  f"{', '.join(sorted(commits))}) is the freeze commit's")


def writer_block(exclude: Iterable[str | Path] = ()) -> dict[str, Any]:
    """This process's commit and whether its tree is modified (outside ``exclude``,
    e.g. the figures folder it writes): the ``writer`` of :func:`code_since`."""
    commit, dirty, _ = _commit(exclude)
    return {"commit": commit, "dirty": dirty}


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    """The CPU's marketing name (Linux ``/proc/cpuinfo``, macOS ``sysctl``), else what
    :func:`platform.processor` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                 capture_output=True, text=True, timeout=10, check=True)
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def collect(profile: str | None = None, *, seeds: Sequence[int] | None = None,
            device: str | None = None, threads: int | None = None,
            exclude: Iterable[str | Path] = ()) -> dict[str, Any]:
    """This process's provenance block, as plain JSON-ready data.

    Args:
        profile: the profile the results were computed under.
        seeds: the seeds the results rest on (None: not recorded).
        device: the device the computation ran on (default: what ``device="auto"``
            resolves to on this machine, which is what the notebooks use).
        threads: intra-op threads (default: torch's current setting, which
            ``runtime.set_threads`` fixed in a notebook's kernel).
        exclude: output folders whose changes are neither "dirty" nor a new commit
            (the figures folder the run writes into).
    """
    import torch

    from . import __version__
    from .runtime import resolve_device

    commit, dirty, diff = _commit(exclude)
    block: dict[str, Any] = {
        "drsl_utils": __version__, "commit": commit, "dirty": dirty,
        "profile": profile, "seeds": None if seeds is None else sorted({int(s) for s in seeds}),
        "python": platform.python_version(),
        "packages": {d: _version(d) for d in PACKAGES},
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": _cpu_model(),
        "threads": int(threads if threads is not None else torch.get_num_threads()),
        "device": str(device if device is not None else resolve_device("auto")),
    }
    if diff:
        block["diff"] = diff
    return block


def seed_block(seeds: Sequence[int] | None) -> str:
    """Seeds as short text: ``0–7``, ``0–4, 9``, ``none recorded``."""
    if not seeds:
        return "none recorded"
    runs: list[list[int]] = []
    for s in sorted({int(x) for x in seeds}):
        if runs and s == runs[-1][-1] + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    parts = [str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs]
    return ", ".join(parts)


def _field_text(block: Mapping[str, Any], key: str) -> str:
    """One row's text for one notebook's block."""
    if key == "commit":
        if block.get("dirty") is None:  # no git: the text says why
            return str(block.get("commit", "unknown"))
        commit = f"`{block['commit']}`"
        if block["dirty"]:
            return f"{commit} + uncommitted changes (hash `{block.get('diff', '?')}`)"
        return f"{commit}, clean tree"
    if key == "packages":
        pk = block.get("packages", {})
        return ", ".join(f"{d} {pk.get(d, '?')}" for d in PACKAGES)
    if key == "python":
        return f"{block.get('python', '?')} ({block.get('platform', '?')})"
    if key == "seeds":
        return seed_block(block.get("seeds"))
    if key == "profile":
        return f"`{block.get('profile')}`"
    if key == "drsl_utils":
        return str(block.get("drsl_utils", "?"))
    return str(block.get(key, "not recorded"))


_ROWS = (("commit", "commit"), ("drsl_utils", "drsl_utils"), ("profile", "profile"),
         ("seeds", "seeds"), ("packages", "packages"), ("python", "Python"),
         ("cpu", "CPU"), ("threads", "threads per notebook"), ("device", "device"))


def fields(blocks: Mapping[str, Mapping[str, Any]], **fixed: Any) -> dict[str, str]:
    """The provenance of a report as ``{label: text}``, merged over its notebooks.

    Args:
        blocks: ``{notebook: block}``, each as :func:`collect` returned it in that
            notebook's kernel. A field on which they all agree is shown once; one on
            which they differ lists each value with its notebooks, so a gallery whose
            notebooks ran on two machines or at two commits says so. The seeds are the
            union of every notebook's seeds.
        fixed: fields given for the whole report, shown instead of the notebooks' values.

    Returns ``{}`` when no notebook recorded a block (a run from before 0.2.0): the
    writing process's own settings would not be those the results came from.
    """
    if not blocks:
        return {}
    if "seeds" not in fixed:
        recorded = [b["seeds"] for b in blocks.values() if b.get("seeds")]
        fixed = {**fixed, "seeds": sorted({s for seeds in recorded for s in seeds}) or None}
    out = {}
    for key, label in _ROWS:
        if key in fixed:
            out[label] = _field_text({key: fixed[key]}, key)
            continue
        by_value: dict[str, list[str]] = {}
        for name, block in blocks.items():
            by_value.setdefault(_field_text(block, key), []).append(name)
        out[label] = (next(iter(by_value)) if len(by_value) == 1 else
                      "; ".join(f"{v} ({', '.join(names)})" for v, names in by_value.items()))
    return out


def markdown_block(blocks: Mapping[str, Mapping[str, Any]], **fixed: Any) -> list[str]:
    """The provenance of a report as Markdown lines (a two-column table) for the head of
    ``claims.md`` and the gallery; the arguments are those of :func:`fields`."""
    table = fields(blocks, **fixed)
    if not table:
        return ["**Provenance**: not recorded (these notebooks ran before drsl_utils 0.2.0, "
                "which added it)."]
    rows = ["**Provenance** (what produced these results, as each notebook recorded it; "
            "see `drsl_utils/provenance.py`):", "", "| | |", "|---|---|"]
    return rows + [f"| {label} | {text.replace('|', '/')} |" for label, text in table.items()]


def under_title(lines: Sequence[str], block: Sequence[str]) -> list[str]:
    """``lines`` (a Markdown document) with ``block`` right under its first title, or at
    the top when it has none."""
    lines = list(lines)
    at = next((i + 1 for i, ln in enumerate(lines) if ln.startswith("# ")), 0)
    before = [""] if at else []
    after = [] if lines[at:at + 1] == [""] else [""]
    return [*lines[:at], *before, *block, *after, *lines[at:]]
