"""Build the walkthrough book: a static HTML site of the executed notebooks, the claims
report, the gallery, the API reference and the reproducibility pages.

    python scripts/build_book.py                       # what `make book` runs (quick)
    python scripts/build_book.py --profile smoke       # from `make figures PROFILE=smoke`
    python scripts/build_book.py --allow-stale         # build anyway, stale pages marked

It never executes a notebook. It reads the executed copies that the main job
(``python -m drsl_utils.suite``) left in ``build/notebooks/<profile>/`` and checks each
with the main job's own rule (``suite._inputs_hash`` and ``suite._up_to_date``): a
notebook that is missing, failed, or whose inputs changed since it ran is named with the
command that refreshes it, and nothing is built.

The Sphinx source is assembled in ``build/book-src/`` from ``docs/book/`` (the
configuration, the landing page) and pages generated here: every notebook (with an
anchor at each cell that declares a claim), the claims report with each row linked to
that cell, the gallery from the notebooks' recorded figures, one API page per module of
``drsl_utils`` (its ``__all__``), and the reproducibility and cluster pages, included
from ``README.md`` and ``docs/cluster.md`` at build time. Files are rewritten only when
their content changes, so a second build only re-renders what changed.

This lives in ``scripts/`` and not in the package on purpose: every ``drsl_utils/*.py``
is an input of every notebook (``suite._inputs_hash``), so a change to the book builder
would otherwise mark every executed notebook stale.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from drsl_utils import suite  # noqa: E402
from drsl_utils.experiments import PROFILES, figures_dir  # noqa: E402

BOOK_DIR = ROOT / "docs" / "book"
PACKAGE = "drsl_utils"
# Sections of README.md that the book includes at build time: on the reproducibility
# page, in this order, and at the end of the claims report.
README_SECTIONS = ("Profiles", "The cache", "Data, offline", "Environment notes")
VERDICT_SECTION = "How a verdict is drawn"
# Repository files that have a page in the book: a link to one is pointed at its page.
PAGE_OF = {"docs/cluster.md": "cluster.md", "figures/claims.md": "claims.md",
           "figures/README.md": "gallery.md", "README.md": "index.md"}
_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//(?!127\.0\.0\.1|localhost)"""
                       r"""|url\(\s*["']?(?:https?:)?//(?!127\.0\.0\.1|localhost)""",
                       re.IGNORECASE)

__all__ = ["BookError", "Stale", "check_executed", "refresh_command", "stage",
           "build_book", "external_resources", "main"]


class BookError(RuntimeError):
    """The book cannot be built as asked (a notebook is missing or stale, or Sphinx
    failed); the message says what to run."""


@dataclass(frozen=True)
class Stale:
    """An executed notebook the book cannot use, and why."""

    notebook: str
    reason: str


def _executed_dir(profile: str, notebook_dir: Path | None) -> Path:
    """Where the main job writes executed copies (mirrors ``suite.run_suite``)."""
    if notebook_dir is not None:
        return Path(notebook_dir) / "executed"
    return ROOT / "build" / "notebooks" / profile


def _why_stale(path: Path, executed: Path, profile: str, fig_dir: Path) -> str | None:
    """None when the main job would skip ``path`` as up to date (its own rule), else a
    short reason."""
    stamp = executed / f".{path.stem}.inputs"
    digest = suite._inputs_hash(path, profile, fig_dir)
    if suite._up_to_date(path, stamp, digest, fig_dir) and (executed / path.name).exists():
        return None
    if not (executed / path.name).exists():
        return f"never executed in profile {profile!r} (no {_rel(executed / path.name)})"
    if not stamp.exists():
        return "its last run did not finish"
    if stamp.read_text().strip() != digest:
        return ("its inputs changed since it ran (the notebook, drsl_utils/*.py, uv.lock, "
                "the profile or the figures folder)")
    meta = fig_dir / "meta" / f"{path.stem}.json"
    if not meta.exists():
        return f"its record {_rel(meta)} is missing"
    try:
        if json.loads(meta.read_text()).get("status", "ok") != "ok":
            return "it failed in the last run"
    except ValueError:
        return f"its record {_rel(meta)} is unreadable"
    return f"a figure it saved is missing from {_rel(fig_dir)}"


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def check_executed(profile: str = "quick", fig_dir: Path | None = None,
                   notebook_dir: Path | None = None,
                   only: Sequence[str] | None = None) -> list[Stale]:
    """The notebooks whose executed copy the book cannot use, each with the reason;
    empty when every one is present and fresh by the main job's rule."""
    fig_dir = Path(fig_dir) if fig_dir is not None else figures_dir(profile)
    executed = _executed_dir(profile, notebook_dir)
    return [Stale(p.stem, why) for p in suite.notebooks(only, notebook_dir)
            if (why := _why_stale(p, executed, profile, fig_dir)) is not None]


def refresh_command(profile: str, stale: Sequence[Stale], fig_dir: Path | None = None,
                    notebook_dir: Path | None = None, everything: bool = False) -> str:
    """The command that re-executes exactly ``stale`` (all notebooks when
    ``everything``), in the form the user ran it."""
    only = "" if everything else " ".join(s.notebook[:2] for s in stale)
    default_dir = fig_dir is None or Path(fig_dir).resolve() == figures_dir(profile).resolve()
    if default_dir and notebook_dir is None:
        cmd = "make figures" + ("" if profile == "quick" else f" PROFILE={profile}")
        return cmd + (f' SUITE_ARGS="--only {only}"' if only else "")
    cmd = f".venv/bin/python -m drsl_utils.suite --profile {profile}"
    if not default_dir:
        cmd += f" --figures-dir {fig_dir}"
    if notebook_dir is not None:
        cmd += f" --notebook-dir {notebook_dir}"
    return cmd + (f" --only {only}" if only else "")


# --------------------------------------------------------------------------- staging

def _write(path: Path, data: str | bytes) -> bool:
    """Write ``data`` unless ``path`` already holds it (keeps Sphinx's incremental build
    honest); True when it wrote."""
    raw = data.encode() if isinstance(data, str) else data
    if path.exists() and path.read_bytes() == raw:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return True


def _claim_ids() -> dict[str, tuple[str, str]]:
    """Claim id -> (its notebook, its statement), for every declared claim."""
    from drsl_utils import claims as C

    return {cid: (c.notebook, c.statement) for cid, c in C.CLAIMS.items()}


def _match_claim(text: str, notebook: str, claims: dict[str, tuple[str, str]]) -> str | None:
    """The id of the claim that a report row states (its statement as the report shows
    it), among the claims of ``notebook``; None when no statement is close enough (a
    report older than the claim table)."""
    mine = {cid: s for cid, (nb, s) in claims.items() if nb == notebook}
    for cid, s in mine.items():
        if s == text:
            return cid

    def common(s: str) -> int:
        return next((i for i, (x, y) in enumerate(zip(s, text)) if x != y), min(len(s), len(text)))
    best = max(mine, key=lambda cid: common(mine[cid]), default=None)
    return best if best is not None and common(mine[best]) >= min(30, len(text)) else None


def _claim_cells(nb: dict, ids: Sequence[str]) -> dict[int, list[str]]:
    """Code cell index -> the claim ids whose literal (quoted) id the cell contains; a
    claim is anchored at the first cell that names it."""
    seen: set[str] = set()
    out: dict[int, list[str]] = {}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        found = [c for c in ids if c not in seen and (f'"{c}"' in src or f"'{c}'" in src)]
        if found:
            out[i] = found
            seen.update(found)
    return out


def _stage_notebook(src: Path, dest: Path, claim_ids: Sequence[str],
                    stale_reason: str | None, command: str | None) -> set[str]:
    """Copy an executed notebook into the book, with a labelled note before each cell
    that declares a claim (and a banner when it is stale); returns the anchored ids."""
    nb = json.loads(src.read_text())
    cells = _claim_cells(nb, claim_ids)
    for i in sorted(cells, reverse=True):
        targets = "".join(f"(claim-{c})=\n" for c in cells[i])
        names = ", ".join(f"`{c}`" for c in cells[i])
        nb["cells"].insert(i, {
            "cell_type": "markdown", "id": f"claim-note-{i}",
            "metadata": {"tags": ["book-claim-anchor"]},
            "source": f"{targets}*The next cell declares {names}; each has its row in the "
                      f"[claims report](../claims.md).*"})
    if stale_reason is not None:
        first = next((i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown"), 0)
        nb["cells"].insert(first + 1, {
            "cell_type": "markdown", "id": "book-stale-banner", "metadata": {},
            "source": f":::{{warning}}\nThese outputs are stale: {stale_reason}. "
                      f"`{command}` refreshes them.\n:::"})
    _write(dest, json.dumps(nb, indent=1, sort_keys=True) + "\n")
    return {c for ids in cells.values() for c in ids}


def _split_row(line: str) -> list[str]:
    """The cells of a Markdown table row (``\\|`` is a literal bar)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


# The report's columns that the book moves to the front, in this order, so that a
# verdict and the link to the notebook's cell sit next to the claim; the other columns
# (the long explanations) follow in the report's own order.
CLAIM_COLUMNS = ("claim", "verdict", "measured", "bounds", "p", "seeds", "stability",
                 "notebook")


def _claims_page(claims_md: Path, claims: dict[str, tuple[str, str]], anchored: set[str],
                 pages: set[str]) -> str:
    """``claims.md`` of the figures folder, for the book: in a table with a
    ``notebook`` column every row's notebook links to the cell that declares its claim
    (or to the notebook, when no cell names it) and the columns are reordered
    (``CLAIM_COLUMNS``); in a table whose rows start with a claim id, the id links to
    that cell. Other lines are kept as they are."""
    def to(cid: str | None, notebook: str, label: str | None = None) -> str:
        if cid in anchored:
            return f"{{ref}}`{label or notebook} <claim-{cid}>`"
        if notebook in pages:
            return f"[{label or notebook}](notebooks/{notebook}.ipynb)"
        return f"`{label or notebook}`"

    if not claims_md.exists():
        return "# Claims report\n\nNo claims report in this build (no `claims.md`).\n"
    lines = claims_md.read_text().splitlines()
    out = ["---", "html_theme.sidebar_secondary.remove: true", "---", ""]
    names: list[str] = []
    order: list[int] = []
    for i, line in enumerate(lines):
        cells = _split_row(line) if line.startswith("|") else []
        if not cells:
            names, order = [], []
            out.append(line)
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", nxt.strip()):  # a header row
            names = cells
            front = [names.index(c) for c in CLAIM_COLUMNS if c in names]
            order = (front + [j for j in range(len(names)) if j not in front]
                     if "notebook" in names else list(range(len(names))))
        elif len(cells) == len(names) and not set("".join(cells)) <= set("-: "):
            if "notebook" in names and cells[names.index("notebook")].startswith("`"):
                k = names.index("notebook")
                notebook = cells[k].strip("`")
                cid = _match_claim(cells[0].replace("\\|", "|"), notebook, claims)
                cells[k] = to(cid, notebook)
            elif (m := re.fullmatch(r"`([\w\-]+)`", cells[0])) and m.group(1) in claims:
                cid = m.group(1)
                cells[0] = to(cid, claims[cid][0], label=cid)
        if len(order) == len(cells):
            cells = [cells[j] for j in order]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _with_verdict_rule(page: str, readme: str) -> str:
    """The claims page followed by the README's section on how a verdict is drawn."""
    section = _readme_section(readme, VERDICT_SECTION)
    return page + ("\n" + _relink(section, {_slug(VERDICT_SECTION)}) + "\n" if section else "")


def _gallery_page(fig_dir: Path, profile: str, pages: set[str]) -> tuple[str, set[str]]:
    """Every recorded figure with its caption, by notebook; returns the page and the
    figure names it shows."""
    from drsl_utils.report import load_meta

    lines = ["# Figure gallery", "",
             f"Every figure of the profile `{profile}`, as the main job saved it, under "
             "the notebook that drew it (the PDF of each sits beside the PNG in the "
             "figures folder).", ""]
    shown: set[str] = set()
    for meta in load_meta(fig_dir):
        if meta.get("profile") != profile or not meta.get("figures"):
            continue
        nb = meta["notebook"]
        lines += [f"## {nb}", ""]
        if nb in pages:
            lines += [f"From the notebook [{nb}](notebooks/{nb}.ipynb).", ""]
        for f in meta["figures"]:
            if not (fig_dir / f"{f['name']}.png").exists():
                continue
            shown.add(f["name"])
            lines += [f"```{{figure}} figures/{f['name']}.png", f":alt: {f['name']}",
                      f":name: fig-{f['name']}", "", f"**{f['name']}**. {f['caption']}", "```",
                      ""]
    return "\n".join(lines), shown


def _readme_section(text: str, title: str) -> str:
    """One ``## title`` section of a Markdown file, up to the next ``## ``."""
    lines, out, inside = text.splitlines(), [], False
    for line in lines:
        if line.startswith("## "):
            if inside:
                break
            inside = line[3:].strip() == title
        if inside:
            out.append(line)
    if not out:
        print(f"make book: README.md has no section '## {title}' any more; the book leaves "
              "it out (update the section lists in scripts/build_book.py)", file=sys.stderr)
    return "\n".join(out)


def _slug(title: str) -> str:
    """GitHub-style heading anchor, as MyST writes them (``myst_heading_anchors``)."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _relink(text: str, anchors: set[str], base: str = "") -> str:
    """Point links at the book's pages: a repository file with a page goes to it, an
    anchor on the same page stays, anything else (a file outside the book, an anchor of
    another page) becomes plain text."""
    def fix(m: re.Match) -> str:
        label, target = m.group(1), m.group(2)
        if re.match(r"[a-z]+://", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        if not path:
            return m.group(0) if anchor in anchors else label
        page = PAGE_OF.get(str(Path(base, path)).lstrip("./")) if path else None
        return f"[{label}]({page})" if page else label
    return re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", fix, text)


def _reproducibility_page(readme: str) -> str:
    """The README's sections on profiles, the cache, offline data and the environment."""
    parts = [s for t in README_SECTIONS if (s := _readme_section(readme, t))]
    anchors = {_slug(t) for t in README_SECTIONS}
    body = _relink("\n\n".join(parts), anchors)
    return ("# Reproducibility\n\nHow the results are made and kept: the profiles, the "
            "cache whose keys carry the code, the offline data and the pinned environment. "
            "These sections are the README's own, included when the book is built. "
            "Running on a cluster has [its own page](cluster.md).\n\n" + body + "\n")


def _cluster_page() -> str:
    """``docs/cluster.md``, with its links pointed at the book's pages."""
    text = (ROOT / "docs" / "cluster.md").read_text()
    anchors = {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
    return _relink(text, anchors, base="docs")


def _comment_above(lines: list[str], lineno: int) -> str:
    """The ``#`` comment block right above line ``lineno`` (1-based), as plain text."""
    out: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].lstrip().startswith("#"):
        out.insert(0, lines[i].lstrip()[1:].strip())
        i -= 1
    return " ".join(out)


def _public_names(path: Path) -> tuple[dict[str, tuple[str, str]], str]:
    """A module's public names (its ``__all__``, else its top-level public definitions),
    each with how the book documents it (``autoclass``, ``autofunction``, or ``data``
    with the comment above its assignment), and the first paragraph of the module's
    docstring; read from the source without importing it."""
    text = path.read_text()
    tree, lines = ast.parse(text), text.splitlines()
    doc = (ast.get_docstring(tree) or "").strip().split("\n\n")[0].replace("\n", " ")
    kinds = {n.name: ("autoclass" if isinstance(n, ast.ClassDef) else "autofunction", "")
             for n in tree.body
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    names = [n for n in kinds if not n.startswith("_")]
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, ast.AnnAssign) else [])
        for t in targets:
            if not isinstance(t, ast.Name):
                continue
            if t.id == "__all__":
                names = [ast.literal_eval(e) for e in node.value.elts]
            elif t.id not in kinds:
                kinds[t.id] = ("data", _comment_above(lines, node.lineno))
    return {n: kinds.get(n, ("data", "")) for n in names}, doc


def _rst_text(text: str) -> str:
    """Plain text made safe inside reStructuredText (no markup is read in it)."""
    return re.sub(r"([\\*`|_\[\]<>])", r"\\\1", text)


def _api_pages() -> dict[str, str]:
    """One page per module of the package (an autosummary table of its functions and
    classes, then each public name's full docstring), and an index of the modules.
    Constants are declared with the comment above them: autodoc would show the
    docstring of their type (``dict``, ``ndarray``) instead."""
    pages, index = {}, ["# API reference", "",
                        f"Every public function and class of `{PACKAGE}`, module by module "
                        "(each module's `__all__`), from the docstrings.", "",
                        "| module | what it holds |", "|---|---|"]
    for path in sorted((ROOT / PACKAGE).glob("*.py")):
        if path.stem.startswith("_"):
            continue
        module = f"{PACKAGE}.{path.stem}"
        names, doc = _public_names(path)
        index.append(f"| [{path.stem}]({path.stem}.md) | {doc.replace('|', '/')} |")
        body = [f"# {path.stem}", "", "```{eval-rst}", f".. automodule:: {module}",
                "   :no-members:", ""]
        code = [n for n, (kind, _) in names.items() if kind != "data"]
        if code:
            body += [".. autosummary::", "   :nosignatures:", "", *[f"   {n}" for n in code],
                     ""]
        for name, (kind, comment) in names.items():
            if kind == "data":
                body += [f".. py:data:: {name}", ""]
                body += [f"   {_rst_text(comment)}", ""] if comment else []
            else:
                body += [f".. {kind}:: {name}"] + (["   :members:"] if kind == "autoclass"
                                                    else []) + [""]
        body += ["```", ""]
        pages[f"api/{path.stem}.md"] = "\n".join(body)
    index += ["", "```{toctree}", ":hidden:", "",
              *[p.removeprefix("api/").removesuffix(".md") for p in pages], "```", ""]
    pages["api/index.md"] = "\n".join(index)
    return pages


_FIGURE_SLOT = re.compile(r"^\{\{figure:([\w\-]+)\}\}$", re.MULTILINE)


def _landing_page(template: str, fig_dir: Path, profile: str, claims_md: Path,
                  pages: set[str]) -> tuple[str, set[str]]:
    """``docs/book/index.md`` with its slots filled: ``{{profile}}``, ``{{claims}}`` (the
    counts of the report) and ``{{figure:NAME}}`` (the figure with its caption, or
    nothing when this build has no such figure); a link to a notebook that is not in
    this build (``--only``) becomes plain text."""
    from drsl_utils.report import load_meta

    captions = {f["name"]: f["caption"] for m in load_meta(fig_dir)
                if m.get("profile") == profile for f in m.get("figures", [])}
    shown: set[str] = set()

    def figure(m: re.Match) -> str:
        name = m.group(1)
        if name not in captions or not (fig_dir / f"{name}.png").exists():
            return ""
        shown.add(name)
        return (f"```{{figure}} figures/{name}.png\n:alt: {name}\n:width: 90%\n\n"
                f"{captions[name]} ([in the gallery](gallery.md))\n```")

    counts = [m.groups() for ln in claims_md.read_text().splitlines()
              if (m := re.match(r"(\d+) claims: (.*)", ln))] if claims_md.exists() else []
    if counts:
        summary = (f"In this build (profile `{profile}`): {counts[0][0]} primary claims "
                   f"({counts[0][1]})" + (f" and {counts[1][0]} secondary rows "
                                           f"({counts[1][1]})" if len(counts) > 1 else "")
                   + ".")
    else:
        summary = f"This build (profile `{profile}`) has no claims report yet."
    text = _FIGURE_SLOT.sub(figure, template)
    text = _unlink_absent(text, pages)
    return text.replace("{{profile}}", profile).replace("{{claims}}", summary), shown


def _unlink_absent(text: str, pages: set[str]) -> str:
    """Markdown links to a notebook page (``notebooks/NAME.ipynb``, with or without a
    ``#section``) that is not in this build (``--only``) become plain text, so that a
    partial book has no broken link."""
    return re.sub(r"\[([^\]]+)\]\(notebooks/([\w\-]+)\.ipynb(#[\w\-]*)?\)",
                  lambda m: m.group(0) if m.group(2) in pages else m.group(1), text)


def stage(profile: str = "quick", fig_dir: Path | None = None,
          notebook_dir: Path | None = None, src_dir: Path | None = None,
          only: Sequence[str] | None = None, allow_stale: bool = False) -> Path:
    """Assemble the Sphinx source of the book in ``src_dir`` (default
    ``build/book-src``) and return it. Raises :class:`BookError` naming every missing
    or stale notebook (unless ``allow_stale``: then a present but stale notebook gets a
    banner that says so; a missing one is still an error)."""
    if profile not in PROFILES:
        raise BookError(f"profile={profile!r} is not valid; choose one of: "
                        f"{', '.join(PROFILES)}")
    fig_dir = Path(fig_dir) if fig_dir is not None else figures_dir(profile)
    src = Path(src_dir) if src_dir is not None else ROOT / "build" / "book-src"
    executed = _executed_dir(profile, notebook_dir)
    stale = check_executed(profile, fig_dir, notebook_dir, only)
    paths = suite.notebooks(only, notebook_dir)
    missing = [s for s in stale if not (executed / f"{s.notebook}.ipynb").exists()]
    if stale and (not allow_stale or missing):
        bad = missing if allow_stale else stale
        everything = len(bad) == len(paths)
        lines = [f"  {s.notebook}: {s.reason}" for s in bad]
        raise BookError(
            f"the book is built from the executed notebooks of profile {profile!r} in "
            f"{_rel(executed)}, and {len(bad)} of {len(paths)} cannot be used:\n"
            + "\n".join(lines) + "\nRefresh them with:\n  "
            + refresh_command(profile, bad, fig_dir, notebook_dir, everything)
            + ("" if allow_stale or len(missing) == len(bad) else
               "\n(or build anyway, each stale page marked as such: --allow-stale)"))
    reasons = {s.notebook: s.reason for s in stale}
    keep: set[Path] = set()

    def put(rel: str, data: str | bytes) -> None:
        keep.add(src / rel)
        _write(src / rel, data)

    for f in sorted(BOOK_DIR.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.name != "index.md":
            data = f.read_bytes()
            if f.suffix == ".md":  # a page of docs/book (teaching.md) may link notebooks
                data = _unlink_absent(data.decode(), {p.stem for p in paths})
            put(str(f.relative_to(BOOK_DIR)), data)
    import plotly

    put("_static/plotly.min.js",
        (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes())
    claims = _claim_ids()
    anchored: set[str] = set()
    pages = {p.stem for p in paths}
    for p in paths:
        dest = src / "notebooks" / p.name
        keep.add(dest)
        cmd = refresh_command(profile, [Stale(p.stem, "")], fig_dir, notebook_dir)
        anchored |= _stage_notebook(executed / p.name, dest, list(claims),
                                    reasons.get(p.stem), cmd)
    claims_md = fig_dir / "claims.md"
    readme = (ROOT / "README.md").read_text()
    put("claims.md", _with_verdict_rule(_claims_page(claims_md, claims, anchored, pages),
                                        readme))
    gallery, shown = _gallery_page(fig_dir, profile, pages)
    put("gallery.md", gallery)
    landing, on_landing = _landing_page((BOOK_DIR / "index.md").read_text(), fig_dir,
                                        profile, claims_md, pages)
    put("index.md", landing)
    for name in sorted(shown | on_landing):
        put(f"figures/{name}.png", (fig_dir / f"{name}.png").read_bytes())
    put("reproducibility.md", _reproducibility_page(readme))
    put("cluster.md", _cluster_page())
    for rel, text in _api_pages().items():
        put(rel, text)
    for f in list(src.rglob("*")):  # what an earlier build staged and this one does not
        if f.is_file() and f not in keep and ".doctrees" not in f.parts:
            f.unlink()
    return src


def build_book(profile: str = "quick", fig_dir: Path | None = None,
               notebook_dir: Path | None = None, out_dir: Path | None = None,
               src_dir: Path | None = None, only: Sequence[str] | None = None,
               allow_stale: bool = False, strict: bool = True) -> Path:
    """Stage the book's source (see :func:`stage`) and run Sphinx into ``out_dir``
    (default ``build/book``); returns the path of its ``index.html``. ``strict`` makes
    a Sphinx warning on the book's own pages (a broken link or image, a missing page)
    an error; warnings about the package's docstrings are only counted. A site that
    would load anything from another host is always an error."""
    src = stage(profile, fig_dir, notebook_dir, src_dir, only, allow_stale)
    out = Path(out_dir) if out_dir is not None else ROOT / "build" / "book"
    # One process: a parallel read (-j) forks after autodoc has imported torch, and a
    # worker died that way here.
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(src / ".doctrees"),
           str(src), str(out)]
    proc = subprocess.run(cmd, cwd=src, text=True, capture_output=True)
    if proc.returncode != 0:
        raise BookError(f"sphinx-build failed (exit {proc.returncode}):\n"
                        + (proc.stderr or proc.stdout)[-6000:])
    warnings = _sphinx_warnings(proc.stderr)
    (src / "sphinx-warnings.log").write_text(proc.stderr)
    fatal = [w for w in warnings if not _from_docstring(w)]
    if len(fatal) < len(warnings):
        print(f"{len(warnings) - len(fatal)} Sphinx warning(s) from docstrings (the API "
              f"pages still build; all in {_rel(src / 'sphinx-warnings.log')})",
              file=sys.stderr)
    if fatal and strict:
        raise BookError(f"{len(fatal)} Sphinx warning(s) in the book's pages (a broken "
                        "link or image, a missing page):\n  " + "\n  ".join(fatal[:30]))
    for w in fatal:
        print(w, file=sys.stderr)
    leaks = external_resources(out)
    if leaks:
        raise BookError("the built book would load from outside hosts:\n  "
                        + "\n  ".join(leaks[:20]))
    return out / "index.html"


def _sphinx_warnings(stderr: str) -> list[str]:
    """Sphinx's warnings and errors, one string each (a traceback's lines folded in)."""
    out: list[str] = []
    for line in stderr.splitlines():
        if re.search(r"\b(WARNING|ERROR|CRITICAL|SEVERE):", line):
            out.append(line.strip())
    return out


def _from_docstring(warning: str) -> bool:
    """A warning about a docstring of the package (its reST), or raised on an API page:
    reported, never fatal; the book's own pages must be clean."""
    return ":docstring of " in warning or "/api/" in warning.replace("\\", "/")


def external_resources(out_dir: Path) -> list[str]:
    """Every place in the built site (HTML, JS, CSS) that would load a resource from
    another host (a ``src``/``href`` or CSS ``url()`` with ``http(s)://`` or ``//``),
    as ``file: snippet``. Plain links in text (``<a href>``) are not loads and are
    skipped."""
    found = []
    for f in sorted(Path(out_dir).rglob("*")):
        if f.suffix not in (".html", ".css") or not f.is_file():
            continue
        text = f.read_text(errors="replace")
        for m in _EXTERNAL.finditer(text):
            start = text.rfind("<", 0, m.start())
            tag = text[start:start + 3].lower() if f.suffix == ".html" else ""
            if tag.startswith("<a ") or tag.startswith("<a\n"):
                continue
            found.append(f"{f.relative_to(out_dir)}: {text[max(0, m.start() - 40):m.end() + 60]!r}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/build_book.py",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick", choices=tuple(PROFILES))
    parser.add_argument("--figures-dir", type=Path, default=None,
                        help="the main job's figures folder (default: the profile's)")
    parser.add_argument("--notebook-dir", type=Path, default=None,
                        help="as given to the main job (executed copies in <dir>/executed)")
    parser.add_argument("--out", type=Path, default=None, help="default: build/book")
    parser.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 00 03")
    parser.add_argument("--allow-stale", action="store_true",
                        help="build from stale executed notebooks, marking each page")
    parser.add_argument("--no-strict", dest="strict", action="store_false",
                        help="let Sphinx warnings (broken links, images) pass")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        index = build_book(args.profile, args.figures_dir, args.notebook_dir, args.out,
                           only=args.only, allow_stale=args.allow_stale, strict=args.strict)
    except BookError as exc:
        print(f"make book: {exc}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in index.parent.rglob("*") if f.is_file())
    print(f"The book ({args.profile}): {index} ({size / 2**20:.1f} MB, "
          f"{time.perf_counter() - start:.1f} s). Open it in a browser, or serve it with "
          f"`{Path(sys.executable).name} -m http.server -b 127.0.0.1 -d {_rel(index.parent)}`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
