"""What a notebook reports: its figures with captions, and the per-seed evidence for the
papers' claims. The verdicts themselves come from :mod:`drsl_utils.claims`, which owns
the rule; the main job (``suite.py``) gathers every notebook's report into
``figures/README.md`` (the gallery) and ``figures/claims.md`` (the claims report).

A notebook uses three calls::

    report.figure(fig, "name", "caption")     # save PNG + PDF, show it once
    report.claim("claim-id", per_seed_values, detail="context")
    report.finish()                           # write meta/<notebook>.json, show verdicts

``meta/<notebook>.json`` is written once, atomically, by :meth:`Report.finish`, never
emptied at the start, so a notebook that fails half-way leaves the previous run's record
in place. Nothing in it carries a timestamp: re-running with the same results changes no
committed file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import claims as C
from .cache import atomic_write

__all__ = ["Report", "load_meta", "load_evidence", "verdict_table"]


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


@dataclass
class Report:
    """Collects a notebook's figures and evidence and writes them to ``figures_dir``.

    Args:
        notebook: the notebook's name, e.g. ``"02_attacks"``.
        profile: the profile name it runs under.
        figures_dir: where figures and ``meta/`` go.
        context_dirs: other report folders whose claims join this notebook's in the Holm
            family when :meth:`finish` shows provisional verdicts (the main job
            recomputes them over the whole report anyway).
    """

    notebook: str
    profile: str
    figures_dir: Path
    context_dirs: tuple[Path, ...] = ()
    figures: list[dict[str, str]] = field(default_factory=list)
    evidence: list[C.Evidence] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.figures_dir = Path(self.figures_dir)
        self.context_dirs = tuple(Path(p) for p in self.context_dirs)

    # ------------------------------------------------------------------ figures

    def figure(self, fig: Any, name: str, caption: str) -> None:
        """Save ``fig`` as ``<name>.png`` and ``.pdf`` with its caption for the gallery,
        show it once in the notebook, and close it."""
        import matplotlib.pyplot as plt

        from .plots import save_figure

        save_figure(fig, name, directory=self.figures_dir)
        self.figures = [f for f in self.figures if f["name"] != name]
        self.figures.append({"name": name, "caption": caption})
        if _in_kernel():
            from IPython.display import display

            display(fig)
        plt.close(fig)

    def table(self, df: pd.DataFrame, name: str, caption: str, title: str | None = None) -> None:
        """Render a formatted table as a figure (:func:`plots.plot_table`) and save it
        like :meth:`figure`."""
        from .plots import plot_table

        self.figure(plot_table(df, title=title), name, caption)

    # ------------------------------------------------------------------- claims

    def claim(self, claim_id: str, values: Mapping[int, float] | pd.Series,
              detail: str = "") -> None:
        """Hand the per-seed values of a declared claim (``claims.CLAIMS``) to the
        report; a second call with the same id replaces the first.

        Args:
            claim_id: the claim's id; it must belong to this notebook.
            values: ``{seed: estimand}`` in raw units (``claims.paired`` and
                ``claims.per_seed`` build them).
            detail: the context a reader needs next to the numbers.
        """
        spec = C.get_claim(claim_id)
        if spec.notebook != self.notebook:
            raise ValueError(f"claim {claim_id!r} belongs to notebook {spec.notebook!r}, "
                             f"not {self.notebook!r}")
        if isinstance(values, pd.Series):
            values = values.to_dict()
        item = C.Evidence(claim_id, dict(values), detail, self.notebook, self.profile)
        self.evidence = [e for e in self.evidence if e.claim != claim_id] + [item]

    def finish(self) -> pd.DataFrame:
        """Write ``meta/<notebook>.json`` (atomically, once) and return this notebook's
        verdicts as a table.

        The verdicts are provisional: Holm's adjustment couples every primary claim of
        the report, so they are computed here against the other notebooks' latest
        evidence on record (in ``figures_dir`` and ``context_dirs``); the main job
        recomputes them all together for ``claims.md``.
        """
        payload = {"notebook": self.notebook, "profile": self.profile, "status": "ok",
                   "figures": self.figures,
                   "evidence": [e.to_json() for e in self.evidence]}
        text = json.dumps(payload, indent=1, sort_keys=True, default=_json_default)
        atomic_write(self.figures_dir / "meta" / f"{self.notebook}.json",
                     lambda tmp: tmp.write_text(text + "\n"))
        if not self.evidence:
            return pd.DataFrame()
        family = {e.claim: e for d in (*self.context_dirs[::-1], self.figures_dir)
                  for e in load_evidence(d, self.profile)}
        family.update({e.claim: e for e in self.evidence})
        table = C.assess(list(family.values()))
        mine = table[table["claim"].isin([e.claim for e in self.evidence])]
        n_primary = int(table["primary"].sum())
        print(f"{len(mine)} claims from {self.notebook}; primary ones are Holm-adjusted "
              f"with the {n_primary} primary claims on record for profile "
              f"'{self.profile}'.")
        return verdict_table(mine)


def verdict_table(assessed: pd.DataFrame) -> pd.DataFrame:
    """A readable view of :func:`claims.assess` rows: the claim, what was measured,
    seeds, the p-value behind the verdict (Holm-adjusted for primary claims; for an
    inconclusive row, the one against "no effect") and the verdict."""
    rows = []
    for r in assessed.itertuples(index=False):
        spec = C.get_claim(r.claim)
        p = r.p_holds_adj if r.verdict != "does not hold" else r.p_not_adj
        rows.append({"claim": spec.statement,
                     "estimand": f"{spec.estimand} (SESOI {spec.fmt(spec.sesoi, False)})",
                     "measured": r.measured, "seeds": r.n_seeds,
                     "p": _fmt_p(p) + ("" if r.primary else " (secondary)"),
                     "verdict": r.verdict, "note": r.note})
    return pd.DataFrame(rows)


def _fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def load_meta(figures_dir: str | Path) -> list[dict[str, Any]]:
    """Every notebook's recorded figures and evidence under ``figures_dir``, by name.
    An unreadable file is skipped with a warning (it is rewritten on the next run)."""
    import warnings

    meta_dir = Path(figures_dir) / "meta"
    if not meta_dir.exists():
        return []
    out = []
    for p in sorted(meta_dir.glob("*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError) as exc:
            warnings.warn(f"skipping unreadable report {p}: {exc}", stacklevel=2)
    return out


def load_evidence(figures_dir: str | Path, profile: str | None = None) -> list[C.Evidence]:
    """The evidence recorded under ``figures_dir`` (optionally only of ``profile``);
    records of claims that are no longer declared are skipped."""
    out = []
    for meta in load_meta(figures_dir):
        if profile is not None and meta.get("profile") != profile:
            continue
        for item in meta.get("evidence", []):
            if item.get("claim") in C.CLAIMS:
                out.append(C.Evidence.from_json(item))
    return out
