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

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import claims as C
from . import provenance
from .cache import atomic_write
from .calibration import Differential

__all__ = ["Report", "load_meta", "load_evidence", "verdict_table",
           # the machine-readable claims table and the diff between two runs
           "claims_frame", "claims_table", "write_claims_table", "write_report_tables",
           "load_claims_table", "provenance_blocks", "diff_tables", "format_diff", "main",
           # the attack calibration (issue 26)
           "load_calibrations", "load_overstatement"]


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
    calibration: dict[str, Any] = field(default_factory=dict)

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
              detail: str = "", image_var: float = 0.0, *,
              alt_power: float | None = None, alternative: str = "",
              alt_effect: float | None = None) -> None:
        """Hand the per-seed values of a declared claim (``claims.CLAIMS``) to the
        report; a second call with the same id replaces the first.

        Args:
            claim_id: the claim's id; it must belong to this notebook.
            values: ``{seed: estimand}`` in raw units (``claims.paired`` and
                ``claims.per_seed`` build them).
            detail: the context a reader needs next to the numbers.
            image_var: for a row measured on a fixed image subset shared by every seed,
                the image-sampling variance of the across-seed mean in raw units squared
                (``claims.image_variance``); the rule adds it to the seed term.
            alt_power, alternative, alt_effect: for a detection claim, a power against a
                stated alternative, that alternative as text, and the alternative's
                population value of the estimand; given ``alt_effect``, the rule states
                the row's own test's power there (``claims.Evidence``).
        """
        spec = C.get_claim(claim_id)
        if spec.notebook != self.notebook:
            raise ValueError(f"claim {claim_id!r} belongs to notebook {spec.notebook!r}, "
                             f"not {self.notebook!r}")
        if isinstance(values, pd.Series):
            values = values.to_dict()
        item = C.Evidence(claim_id, dict(values), detail, self.notebook, self.profile,
                          image_var, alt_power, alternative, alt_effect)
        self.evidence = [e for e in self.evidence if e.claim != claim_id] + [item]

    def attack_calibration(self, overstatement: pd.DataFrame,
                           differentials: Mapping[str, Differential]) -> None:
        """Record an attack calibration (:mod:`drsl_utils.calibration`): each cheap
        attack's overstatement of standard AutoAttack per model
        (``calibration.overstatement_table``) and, per robustness claim, the calibrated
        differential of the attack that decides it. The claims report re-decides those
        rows (``claims.calibrate``) and prints the overstatement table. The claims may
        belong to other notebooks: a calibration runs where its models are.
        """
        for claim_id, diff in differentials.items():
            C.get_claim(claim_id)
            if not isinstance(diff, Differential):
                raise TypeError(f"differentials[{claim_id!r}] is a {type(diff).__name__}: "
                                "expected a calibration.Differential")
        rows = overstatement.to_dict(orient="records")
        self.calibration = {"overstatement": rows,
                            "differentials": {k: d.to_json() for k, d in
                                              sorted(differentials.items())}}

    def finish(self) -> pd.DataFrame:
        """Write ``meta/<notebook>.json`` (atomically, once) and return this notebook's
        verdicts as a table.

        The verdicts are provisional: Holm's family is the declared set of primary
        findings (``claims.declared_family``), so they are computed here against the
        other notebooks' latest evidence on record (in ``figures_dir`` and
        ``context_dirs``), members without evidence counting as *not run*; the main job
        recomputes them all together for ``claims.md``.
        """
        payload = {"notebook": self.notebook, "profile": self.profile, "status": "ok",
                   "figures": self.figures,
                   "evidence": [e.to_json() for e in self.evidence],
                   **({"attack_calibration": self.calibration} if self.calibration
                      else {}),
                   # The provenance of every figure and value above (provenance.py).
                   "provenance": provenance.collect(
                       self.profile, seeds={s for e in self.evidence for s in e.values} or None,
                       exclude=(self.figures_dir,))}
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
        members = table[table["in_family"]]
        n_run = int((members["verdict"] != "not run").sum())
        print(f"{len(mine)} claims from {self.notebook}; primary findings are "
              f"Holm-adjusted in the declared family of {len(members)} ({n_run} on record "
              f"for profile '{self.profile}', the rest count as not run).")
        return verdict_table(mine)


def _history_text(r: Any, spec: C.Claim) -> str:
    """The variance history a row's replication pooled, or why it did not (rule v10;
    methods review 7, S2): ``"; variance history sd 0.12 radii on 28 df"`` or
    ``"; variance history (sd 0.12 radii on 28 df) dropped: today's sd differs, F p
    0.019"``; empty without one."""
    df = getattr(r, "history_df", 0.0)
    sd = getattr(r, "history_sd", math.nan)
    if not (isinstance(df, (int, float)) and df > 0 and math.isfinite(sd)):
        return ""
    shown = (spec.fmt(sd, False) if sd >= 10.0 ** -spec.digits
             else f"{sd:.2g} {spec.units}".rstrip())  # never "sd 0.0000"
    text = f"sd {shown} on {int(df)} df"
    if getattr(r, "history_dropped", False):
        return (f"; variance history ({text}) dropped: today's sd differs, F p "
                f"{_fmt_p(getattr(r, 'history_p', math.nan))}")
    return f"; variance history {text}"


def loso_text(r: Any, *, verdict: bool = True) -> str:
    """A row's leave-one-seed-out reading (:func:`claims.loso_agreement`) as the
    report prints it: ``"; leave one seed out: verdict 2/5, estimate on the claimed side
    5/5 (+9.9 pp to +12.6 pp)"`` (``verdict=False`` leaves the verdict count out: the
    headline reads a row by its estimates, since the verdict count also measures the
    degree of freedom a resample loses; methods review 6, point 4). ``"; leave one seed
    out n/a"`` with two seeds or fewer; empty where the row carries none."""
    n = getattr(r, "loso_n", None)
    if n is None:
        return ""
    seeds = getattr(r, "n_seeds", None)
    if seeds is not None and seeds <= 2:
        return "; leave one seed out n/a"  # one seed left: nothing is decided
    if not (isinstance(n, (int, float)) and math.isfinite(n) and n > 0):
        return ""
    parts = [f"verdict {int(r.loso_agree)}/{int(n)}"] if verdict else []
    side = getattr(r, "loso_side", None)
    low, high = getattr(r, "loso_low", math.nan), getattr(r, "loso_high", math.nan)
    if side is not None and math.isfinite(side):
        spec = C.get_claim(r.claim)
        where = "inside the margin" if spec.direction == "equivalent" else "on the claimed side"
        text = f"estimate {where} {int(side)}/{int(n)}"
        if math.isfinite(low) and math.isfinite(high):
            text += f" ({spec.fmt(low)} to {spec.fmt(high)})"
        parts.append(text)
    return "; leave one seed out: " + ", ".join(parts) if parts else ""


def verdict_table(assessed: pd.DataFrame) -> pd.DataFrame:
    """A readable view of :func:`claims.assess` (or :func:`claims.evidence_frame`) rows.

    Columns: ``claim`` (the statement), ``estimand`` (with the SESOI; a calibrated
    row's says that its verdict is on the effect estimated under standard AutoAttack,
    the cheap attack's effect minus the calibrated differential), ``measured``,
    ``seeds``, ``bounds`` (the interval that matches the decision, with each bound's
    confidence), ``p`` (the p-value behind the verdict: Holm-adjusted in the family,
    marked *unadjusted* outside it; the one against "no effect" for *holds*,
    *negligible*, *equivalent* and *inconclusive* rows and a detection claim's
    *detected* / *not detected*, the one against "at least the SESOI" for *does not
    hold* and *not equivalent*, the reversal test's for *reversed*), ``verdict``, ``replication`` (probability of a fresh
    *holds*/*equivalent*; the row's own verdict's; leave-one-seed-out agreement when
    present), ``power`` (at the SESOI; for a detection row whose evidence states its
    power against an alternative, that power first, with the alternative named;
    *underpowered* below 0.8 in the family),
    ``seeds needed`` (for power 0.8: the range from the sd's 95 % interval) and ``note``.
    """
    rows = []
    for r in assessed.itertuples(index=False):
        spec = C.get_claim(r.claim)
        run = r.verdict != "not run"
        p = r.p_not_adj if r.verdict in ("does not hold", "not equivalent",
                                         "reversed") else r.p_holds_adj
        if r.verdict == "reversed" and hasattr(r, "p_rev_adj"):
            p = r.p_rev_adj  # the reversal's own Holm family
        rep = ""
        if run and math.isfinite(r.replication):
            rep = f"{r.replication:.2f} (same verdict {r.same_verdict:.2f}"
            rep += _history_text(r, spec) + loso_text(r) + ")"
        power = ""
        if run and math.isfinite(r.power):
            power = f"{r.power:.2f}"
            lo, hi = getattr(r, "power_low", math.nan), getattr(r, "power_high", math.nan)
            if math.isfinite(lo) and math.isfinite(hi):
                power += f" ({lo:.2f}-{hi:.2f})"
            alt = getattr(r, "alt_power", math.nan)
            if spec.detection and alt is not None and math.isfinite(alt):
                # methods review 5, 4a: the test's power against the stated alternative
                # is the column (and decides underpowered); the SESOI's beside it.
                named = getattr(r, "alternative", "") or "the stated alternative"
                power = (f"{alt:.2f} against {named}"
                         + (" (underpowered)" if r.underpowered else "")
                         + f"; {power} against an effect of the SESOI")
            else:
                power += " (underpowered)" if r.underpowered else ""
                if spec.detection:  # methods review 2, point 7: which alternative
                    power += (" against an effect of the SESOI; the context gives the "
                              "test's power against a stated alternative")
        estimand = spec.estimand
        attack = getattr(r, "decided_by", "") or ""
        if isinstance(attack, str) and attack:
            # The verdict is on the effect estimated under standard AutoAttack, not on
            # the cheap attack's the estimand names (methods review 4).
            estimand += (f", estimated under standard AutoAttack (the {attack} effect "
                         "minus its calibrated differential)")
        rows.append({"claim": spec.statement,
                     "estimand": f"{estimand} (SESOI {spec.fmt(spec.sesoi, False)})",
                     "measured": r.measured, "seeds": r.n_seeds, "bounds": r.interval,
                     "p": (_fmt_p(p) + _size_p(r) + ("" if r.in_family else " (unadjusted)"))
                     if run else "–",
                     # holds split by size (methods review S2): "at least the SESOI"
                     # (its own minimal-effect test, Holm) or "in direction, size open"
                     "verdict": C.verdict_label(r.verdict, getattr(r, "size", "") or ""),
                     "replication": rep, "power": power,
                     "seeds needed": _fmt_needed(r.seeds_needed_low, r.seeds_needed,
                                                 r.seeds_needed_high, sd=r.sd,
                                                 cal_seeds=getattr(r, "cal_seeds", None))
                     if run else "",
                     "note": _with_calibration(r)})
    return pd.DataFrame(rows)


def _with_calibration(r: Any) -> str:
    """The row's note, led by which attack decided it and how far the calibration
    against standard AutoAttack moved it (``claims.calibrate``), when it has one."""
    text = getattr(r, "calibration", "") or ""
    note = r.note or ""
    if not text:
        return note
    if note.startswith("after the attack calibration: "):
        note = ""  # the calibration text says it already
    return f"{text}; {note}" if note else text


def _size_p(r: Any) -> str:
    """Beside a *holds* with a size label, the p-value of the size test that chose the
    label: against an effect below the SESOI (``p_min``, Holm-adjusted in the family,
    where it decides *at least the SESOI* at alpha; methods review 6, point 13)."""
    size = getattr(r, "size", "") or ""
    p_min = getattr(r, "p_min", math.nan)
    if r.verdict != "holds" or not size or p_min is None or not math.isfinite(p_min):
        return ""
    if r.in_family:
        p_min = min(1.0, p_min * getattr(r, "k_min", 1.0))
    return f"; size p {_fmt_p(p_min)}"


def _fmt_p(p: float) -> str:
    """A p-value for the report: three decimals, ``< 0.001`` below, ``–`` when none."""
    if p is None or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_needed(low: Any, point: Any, high: Any, sd: Any = None,
                cal_seeds: Any = None) -> str:
    """``8-38 (12 at the observed sd)``; ``unreachable`` where no seed count gets there
    (the image term alone is too large, or a calibrated row's degrees of freedom are
    capped by its calibration's seeds); empty when the spread is unknown."""
    def num(v: Any) -> int | None:
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) \
            else int(v)

    lo, pt, hi = num(low), num(point), num(high)
    if lo is None and pt is None and hi is None:
        known = sd is not None and isinstance(sd, (int, float)) and math.isfinite(sd)
        if not known:
            return ""
        calibrated = isinstance(cal_seeds, (int, float)) and math.isfinite(cal_seeds) \
            and cal_seeds > 0
        return (f"unreachable: the calibration's {int(cal_seeds)} seeds cap the degrees "
                "of freedom and fix the differential's variance" if calibrated else
                "unreachable: the image term alone is too large")
    text = lambda v: "unreachable" if v is None else str(v)  # noqa: E731
    return f"{text(lo)}-{text(hi)} ({text(pt)} at the observed sd)"


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


# ------------------------------------------------------- the machine-readable claims table
#
# ``claims.json`` and ``claims.csv`` sit beside ``claims.md``: one row per claim, with
# every column of the assessed table (whatever the rule in claims.py computes) next to
# the claim's declaration, so a run can be read by a program and compared with another
# (``python -m drsl_utils.report diff A B``).

TABLE_FORMAT = "drsl_utils claims table"
TABLE_VERSION = 1


def _report_evidence(metas: Sequence[Mapping[str, Any]]) -> list[C.Evidence]:
    """The declared claims' evidence of a report's notebooks, in record order (the order
    ``suite.claims_report`` reads it in)."""
    return [C.Evidence.from_json(e) for m in metas for e in m.get("evidence", [])
            if e.get("claim") in C.CLAIMS]


def provenance_blocks(metas: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{notebook: provenance block}`` of the notebooks that recorded one."""
    return {m["notebook"]: m["provenance"] for m in metas if m.get("provenance")}


def load_calibrations(metas: Sequence[Mapping[str, Any]]) -> dict[str, Differential]:
    """``{claim id: calibrated differential}`` recorded by a report's notebooks
    (:meth:`Report.attack_calibration`); claims no longer declared are skipped."""
    out: dict[str, Differential] = {}
    for m in metas:
        for cid, d in m.get("attack_calibration", {}).get("differentials", {}).items():
            if cid in C.CLAIMS:
                out[cid] = Differential.from_json(d)
    return out


def load_overstatement(metas: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The overstatement tables recorded by a report's notebooks, stacked."""
    rows = [r for m in metas for r in m.get("attack_calibration", {}).get("overstatement", [])]
    return pd.DataFrame(rows)


def claims_frame(metas: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The assessed table of a report's notebooks (the one ``claims.md`` renders), as
    :func:`claims.evidence_frame` computes it over their recorded evidence, with the
    recorded attack calibrations applied."""
    evidence = _report_evidence(metas)
    return (C.evidence_frame(evidence, calibrations=load_calibrations(metas)) if evidence
            else pd.DataFrame())


def claims_table(assessed: pd.DataFrame, metas: Sequence[Mapping[str, Any]] = ()
                 ) -> pd.DataFrame:
    """One row per claim: ``id``, then the claim's declaration (every field of
    :class:`claims.Claim`; where ``assessed`` has the same column, its value), then
    every other column of ``assessed``, then ``seeds`` (the seeds its evidence holds)
    and ``stale`` (its notebook failed in the last run; the row is that notebook's
    previous result).

    Generic over columns: whatever the rule adds to the assessed table (replication,
    power, seeds-needed ranges) is written as it is.
    """
    if assessed.empty:
        return pd.DataFrame(columns=["id"])
    seeds = {e.claim: sorted(e.values) for e in _report_evidence(metas)}
    stale = {e.get("claim") for m in metas if m.get("status", "ok") != "ok"
             for e in m.get("evidence", [])}
    rows = []
    for row in assessed.to_dict("records"):
        spec = dataclasses.asdict(C.get_claim(row["claim"]))
        # The declaration's order, with the assessment's value where both have a field
        # (the notebook that measured it), then the assessment's own columns.
        rows.append({"id": row["claim"], **{k: v for k, v in spec.items() if k != "id"},
                     **{k: v for k, v in row.items() if k != "claim"},
                     "seeds": seeds.get(row["claim"], []), "stale": row["claim"] in stale})
    return pd.DataFrame(rows)


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars as Python ones, NaN and infinities as null."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def write_claims_table(table: pd.DataFrame, fig_dir: str | Path, *, profile: str = "",
                       provenance_by_notebook: Mapping[str, Any] | None = None
                       ) -> tuple[Path, Path]:
    """Write ``claims.json`` (the rows, their columns, the profile and each notebook's
    provenance block) and ``claims.csv`` (the rows; lists joined by spaces) into
    ``fig_dir``, atomically; returns both paths. Neither carries a date."""
    fig_dir = Path(fig_dir)
    rows = [_plain(r) for r in table.to_dict("records")]
    doc = {"format": TABLE_FORMAT, "version": TABLE_VERSION, "profile": profile,
           "columns": list(table.columns), "claims": rows,
           "provenance": _plain(dict(provenance_by_notebook or {}))}
    text = json.dumps(doc, indent=1, sort_keys=False, allow_nan=False, ensure_ascii=False)
    json_path, csv_path = fig_dir / "claims.json", fig_dir / "claims.csv"
    atomic_write(json_path, lambda tmp: tmp.write_text(text + "\n"))
    flat = table.map(lambda v: " ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    atomic_write(csv_path, lambda tmp: flat.to_csv(tmp, index=False, lineterminator="\n"))
    return json_path, csv_path


def write_report_tables(metas: Sequence[Mapping[str, Any]], fig_dir: str | Path,
                        profile: str) -> tuple[Path, Path]:
    """The main job's one call: assess the notebooks' evidence (as ``claims.md`` does)
    and write ``claims.json`` and ``claims.csv`` into ``fig_dir``."""
    table = claims_table(claims_frame(metas), metas)
    return write_claims_table(table, fig_dir, profile=profile,
                              provenance_by_notebook=provenance_blocks(metas))


def load_claims_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A claims table and its header (profile, provenance) from ``claims.json``, or from
    a folder holding one. A folder with only ``meta/*.json`` (a run from before the
    table existed) is assessed afresh from its recorded evidence.

    Raises:
        ValueError: ``path`` holds neither a claims table nor notebook records.
    """
    path = Path(path)
    file = path / "claims.json" if path.is_dir() else path
    if file.is_file():
        doc = json.loads(file.read_text())
        if doc.get("format") != TABLE_FORMAT:
            raise ValueError(f"path={str(path)!r} is not a claims table (format "
                             f"{doc.get('format')!r}; expected {TABLE_FORMAT!r})")
        table = pd.DataFrame(doc["claims"], columns=doc.get("columns"))
        return table, {k: v for k, v in doc.items() if k != "claims"}
    if path.is_dir() and (path / "meta").is_dir():
        metas = load_meta(path)
        table = claims_table(claims_frame(metas), metas)
        return table, {"profile": ", ".join(sorted({m.get("profile", "") for m in metas})),
                       "provenance": provenance_blocks(metas), "source": "meta"}
    raise ValueError(f"path={str(path)!r}: expected a claims.json or a figures folder "
                     "holding one (or meta/*.json)")


# ------------------------------------------------------------------------ the verdict diff

def _column(table: pd.DataFrame, *names: str) -> pd.Series:
    """The first of ``names`` that ``table`` has (the rule may rename a column), else NaN."""
    for name in names:
        if name in table.columns:
            return table[name]
    return pd.Series(math.nan, index=table.index)


#: Columns that declare what a claim tests; a difference in one makes two runs'
#: verdicts incomparable (those a table lacks are skipped).
_DECLARATION = ("direction", "sesoi", "primary", "role", "in_family")


def diff_tables(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Compare two claims tables claim by claim.

    Returns:
        One row per claim in either table: ``id``, ``change`` (``"verdict"``,
        ``"estimate"``, ``"declaration"``, ``"only in A"``, ``"only in B"`` or ``""``;
        a claim listed but not measured in one table, such as a declared claim that
        reads *not run*, counts as only in the other),
        ``verdict_a``, ``verdict_b``, ``estimate_a``, ``estimate_b``, ``half_width``
        (of A's interval: an estimate "moved" when B's lies further from A's than that,
        i.e. outside A's interval) and ``units``/``digits`` for display. A changed
        verdict outranks a moved estimate; a changed direction, SESOI or role is a
        ``"declaration"`` change (the two runs did not test the same claim); a column
        that only one table has is not compared.
    """
    common = [c for c in _DECLARATION if c in a.columns and c in b.columns]

    def prepare(t: pd.DataFrame) -> pd.DataFrame:
        est = pd.to_numeric(_column(t, "estimate", "mean"), errors="coerce")
        low = pd.to_numeric(_column(t, "ci_low", "low"), errors="coerce")
        high = pd.to_numeric(_column(t, "ci_high", "high"), errors="coerce")
        return pd.DataFrame({
            "id": t["id"], "verdict": _column(t, "verdict"), "estimate": est,
            "half_width": (high - low) / 2, "units": _column(t, "units"),
            "digits": _column(t, "digits"),
            "declared": t[common].astype(str).agg("|".join, axis=1) if common else "",
        }).set_index("id")

    pa, pb = prepare(a), prepare(b)
    ids = list(pa.index) + [i for i in pb.index if i not in pa.index]
    rows = []
    for cid in ids:
        ra = pa.loc[cid] if cid in pa.index else None
        rb = pb.loc[cid] if cid in pb.index else None
        ref = ra if ra is not None else rb
        row = {"id": cid, "verdict_a": None if ra is None else ra["verdict"],
               "verdict_b": None if rb is None else rb["verdict"],
               "estimate_a": math.nan if ra is None else ra["estimate"],
               "estimate_b": math.nan if rb is None else rb["estimate"],
               "half_width": ref["half_width"], "units": ref["units"], "digits": ref["digits"]}
        # A row without an estimate was not measured (e.g. a declared claim "not run").
        if rb is None or (math.isnan(rb["estimate"]) and not math.isnan(ra["estimate"])):
            row["change"] = "only in A"
        elif ra is None or (math.isnan(ra["estimate"]) and not math.isnan(rb["estimate"])):
            row["change"] = "only in B"
        elif ra["declared"] != rb["declared"]:
            row["change"] = "declaration"
        elif ra["verdict"] != rb["verdict"]:
            row["change"] = "verdict"
        elif abs(rb["estimate"] - ra["estimate"]) > ra["half_width"]:
            row["change"] = "estimate"  # NaN compares False: no interval, no move
        else:
            row["change"] = ""
        rows.append(row)
    return pd.DataFrame(rows, columns=["id", "change", "verdict_a", "verdict_b", "estimate_a",
                                       "estimate_b", "half_width", "units", "digits"])


def _num(value: Any, digits: Any, units: Any, sign: bool = True) -> str:
    """A number as the report shows it (the claim's digits and units), "–" for none."""
    try:
        v, d = float(value), int(digits)
    except (TypeError, ValueError):  # no value, or NaN digits
        v, d = float(value) if isinstance(value, (int, float)) else math.nan, 2
    if not math.isfinite(v):
        return "–"
    text = C.signed(v, d) if sign else f"{v:.{d}f}"
    return f"{text} {units}" if isinstance(units, str) and units else text


def _provenance_changes(ha: Mapping[str, Any], hb: Mapping[str, Any]) -> list[str]:
    """The provenance fields, as the report prints them, that differ between A and B."""
    fa = provenance.fields(ha.get("provenance") or {}) if ha.get("provenance") else {}
    fb = provenance.fields(hb.get("provenance") or {}) if hb.get("provenance") else {}
    return [f"{k}: {fa.get(k, '–')}  ->  {fb.get(k, '–')}"
            for k in dict.fromkeys([*fa, *fb]) if fa.get(k) != fb.get(k)]


def format_diff(diff: pd.DataFrame, header_a: Mapping[str, Any] | None = None,
                header_b: Mapping[str, Any] | None = None,
                labels: tuple[str, str] = ("A", "B")) -> str:
    """The diff as readable text: what differs in provenance, the changed verdicts, the
    moved estimates, the claims in only one table, and a one-line summary."""
    la, lb = labels
    out: list[str] = []
    if header_a is not None and header_b is not None:
        missing = [lab for lab, h in ((la, header_a), (lb, header_b))
                   if not h.get("provenance")]
        changes = [] if missing else _provenance_changes(header_a, header_b)
        out += [f"Provenance: not recorded in {' and '.join(missing)} (a run from before "
                "0.2.0)." if missing else f"Provenance that differs ({la} -> {lb}):"
                if changes else "Provenance: the same in both.",
                *(f"  {c}" for c in changes), ""]
    width = max([len(str(i)) for i in diff["id"]] + [4])

    def section(kind: str, title: str, fmt) -> None:
        part = diff[diff["change"] == kind]
        out.append(f"{title} ({len(part)}):" if len(part) else f"{title}: none.")
        out.extend(f"  {str(r.id):<{width}}  {fmt(r)}" for r in part.itertuples(index=False))
        out.append("")

    est = lambda r, v: _num(v, r.digits, r.units)  # noqa: E731
    section("verdict", "Verdicts that changed",
            lambda r: f"{r.verdict_a} -> {r.verdict_b}   (estimate {est(r, r.estimate_a)} "
                      f"-> {est(r, r.estimate_b)})")
    section("estimate", f"Estimates that moved by more than {la}'s interval half-width",
            lambda r: f"{est(r, r.estimate_a)} -> {est(r, r.estimate_b)}   (half-width "
                      f"{_num(r.half_width, r.digits, r.units, sign=False)}; verdict "
                      f"{r.verdict_a} in both)")
    section("declaration", "Declaration changed (direction, SESOI or role; not comparable)",
            lambda r: f"{r.verdict_a} -> {r.verdict_b}")
    section("only in A", f"Only in {la} (absent or not measured in {lb})",
            lambda r: f"{r.verdict_a}" + (f"   ({lb}: {r.verdict_b})"
                                          if isinstance(r.verdict_b, str) else ""))
    section("only in B", f"Only in {lb} (absent or not measured in {la})",
            lambda r: f"{r.verdict_b}" + (f"   ({la}: {r.verdict_a})"
                                          if isinstance(r.verdict_a, str) else ""))
    both = diff[~diff["change"].isin(["only in A", "only in B"])]
    same = int((both["verdict_a"] == both["verdict_b"]).sum())
    out.append(f"Summary: {same} of {len(both)} claims in both keep their verdict; "
               f"{int((diff['change'] == 'estimate').sum())} estimates moved; "
               f"{int(diff['change'].isin(['only in A', 'only in B']).sum())} claims are "
               "in one table only.")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m drsl_utils.report diff A B``: compare two claims tables (two runs, two
    machines, two commits). A and B are ``claims.json`` files or the folders that hold
    them. Exit status 0, or with ``--fail-on-change`` 1 when a verdict changed or a
    claim is in one table only (for CI)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m drsl_utils.report",
                                     description="Tools for the claims report.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("diff", help="compare two claims tables",
                       description=(main.__doc__ or "").replace("``", "`"))
    d.add_argument("a", type=Path, help="claims.json, or the figures folder holding it")
    d.add_argument("b", type=Path, help="claims.json, or the figures folder holding it")
    d.add_argument("--labels", nargs=2, default=["A", "B"], metavar=("LABEL_A", "LABEL_B"),
                   help="names for the two runs in the output (default: A B)")
    d.add_argument("--fail-on-change", action="store_true",
                   help="exit 1 when a verdict changed or a claim is in one table only")
    args = parser.parse_args(argv)
    try:
        (ta, ha), (tb, hb) = load_claims_table(args.a), load_claims_table(args.b)
    except ValueError as exc:
        parser.error(str(exc))
    labels = tuple(args.labels)
    print(f"{labels[0]}: {args.a}  (profile {ha.get('profile') or '?'}, {len(ta)} claims)")
    print(f"{labels[1]}: {args.b}  (profile {hb.get('profile') or '?'}, {len(tb)} claims)")
    print()
    diff = diff_tables(ta, tb)
    print(format_diff(diff, ha, hb, labels=labels))
    changed = diff["change"].isin(["verdict", "declaration", "only in A", "only in B"]).any()
    return 1 if args.fail_on_change and changed else 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
