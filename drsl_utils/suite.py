"""The main job: run every notebook headless under one profile, then write the gallery
(``figures/README.md``) and the claims report (``figures/claims.md``).

    python -m drsl_utils.suite --profile quick            # what `make figures` runs
    python -m drsl_utils.suite --profile smoke --only 00  # one notebook, in seconds
    python -m drsl_utils.suite --profile quick --force    # re-execute every notebook

Executed copies of the notebooks go to ``build/notebooks/<profile>/`` (outside git).
Models, attack records and embeddings come from the shared cache, so a re-executed
notebook only redoes its cheap analysis. A notebook whose inputs are unchanged since its
last successful run (its own source, the package's source, the lock file, the profile
and the output folder; its figures still on disk) is not executed again at all.

Notebooks run ``--jobs`` at a time (default: one per two cores, at least 2 on a 2-core
machine), each kernel with ``cores / jobs`` threads, in an order that respects what
they share: a notebook starts only after the notebooks whose models it reuses
(``DEPENDS``) have finished, so no model is trained twice.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .experiments import PROFILES, figures_dir, repo_root
from .report import load_meta

__all__ = ["DEPENDS", "notebooks", "run_notebook", "run_suite", "write_gallery",
           "claims_report", "NotebookFailed", "SuiteFailed"]

# Which notebooks' models a notebook reuses (by number). The scheduler starts a notebook
# only after these have finished; among the ready ones it takes the first in PRIORITY.
DEPENDS: dict[str, tuple[str, ...]] = {
    # 05 also waits for 00, which compiles and caches the UMAP kernels first.
    "02": ("01",), "03": ("01", "02"), "04": ("01",), "05": ("01", "02", "00"),
    "07": ("06",), "08": ("04", "02"), "09": ("04", "06"), "11": ("05", "02"),
}
# Longest first, as measured in a cold quick run (s, two side by side at one thread):
# 02 341, 10 288, 01 215, 06 177, 07 157, 04 156, 09 146, 08 110, 00 55, 05 55, 03 20,
# 11 9. 01 goes first because 02, 03, 04 and 05 wait for it. 00 comes late: by then
# 01 and 02 have cached its models and attacks. Simulated with those times, this order
# packs two slots within 3 s of the ideal (half the sum); the order before it left one
# slot idle for about 30 s at the end.
PRIORITY = ("01", "02", "10", "06", "07", "04", "09", "08", "00", "05", "03", "11")


_THREAD_POOLS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS")


def notebooks(only: Sequence[str] | None = None,
              notebook_dir: Path | None = None) -> list[Path]:
    """The numbered notebooks in ``notebooks/`` (or ``notebook_dir``), optionally
    filtered by name prefix."""
    folder = Path(notebook_dir) if notebook_dir is not None else repo_root() / "notebooks"
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.stem.startswith(o) for o in only)]
        if not paths:
            raise ValueError(f"only={list(only)!r} matches no notebook in notebooks/")
    return paths


def run_notebook(path: Path, profile: str, out_dir: Path, fig_dir: Path,
                 extra_parameters: dict | None = None) -> float:
    """Execute one notebook with papermill; returns its wall time in seconds. The
    kernel inherits this process's environment (``DRSL_THREADS``, ``DRSL_CACHE_DIR``),
    with ``DRSL_HEADLESS=1`` so explorers draw static views."""
    import papermill as pm

    os.environ["DRSL_HEADLESS"] = "1"  # same value for every caller: no race
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, "figures_dir": str(fig_dir)} | (extra_parameters or {})
    start = time.perf_counter()
    pm.execute_notebook(str(path), str(out_dir / path.name), parameters=params,
                        cwd=str(path.parent), kernel_name="python3", progress_bar=False,
                        log_output=False)
    return time.perf_counter() - start


def _inputs_hash(path: Path, profile: str, fig_dir: Path) -> str:
    """What a notebook's outputs depend on, besides the caches (which are themselves
    keyed by content): its source, the package's source, the lock file, the profile and
    where figures go."""
    h = hashlib.sha256()
    root = repo_root()
    for f in [path, root / "uv.lock", *sorted((root / "drsl_utils").glob("*.py"))]:
        if f.exists():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    h.update(f"{profile}|{fig_dir.resolve()}".encode())
    return h.hexdigest()


def _up_to_date(path: Path, stamp: Path, digest: str, fig_dir: Path) -> bool:
    meta = fig_dir / "meta" / f"{path.stem}.json"
    if not (stamp.exists() and meta.exists()) or stamp.read_text().strip() != digest:
        return False
    try:
        record = json.loads(meta.read_text())
    except ValueError:
        return False
    if record.get("status", "ok") != "ok":
        return False
    return all((fig_dir / f"{f['name']}.png").exists() for f in record["figures"])


class NotebookFailed(RuntimeError):
    """A notebook of the main job raised; carries the failing cell and the error."""

    def __init__(self, notebook: str, cell: str, error: str) -> None:
        self.notebook, self.cell, self.error = notebook, cell, error
        super().__init__(f"{notebook} failed: {error}")

    def describe(self) -> str:
        cell = "\n".join(f"      | {line}" for line in self.cell.strip().splitlines()[:25])
        return (f"  {self.notebook}: FAILED\n    in the cell:\n{cell}\n"
                f"    {self.error}")


def _failure(path: Path, exc: BaseException) -> NotebookFailed:
    """What went wrong in a notebook, from papermill's error (the cell's source and the
    exception) or any other exception."""
    source = getattr(exc, "source", "") or ""
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None) or str(exc)
    return NotebookFailed(path.stem, source, f"{ename}: {evalue}".strip())


def _mark_failed(fig_dir: Path, notebook: str) -> bool:
    """Label a failed notebook's last record (figures and evidence of its last
    successful run) as stale; False when it has none."""
    from .cache import atomic_write

    meta = fig_dir / "meta" / f"{notebook}.json"
    try:
        record = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    record["status"] = "failed"
    text = json.dumps(record, indent=1, sort_keys=True)
    atomic_write(meta, lambda tmp: tmp.write_text(text + "\n"))
    return True


def run_suite(profile: str = "quick", only: Sequence[str] | None = None,
              fig_dir: Path | None = None, jobs: int | None = None,
              force: bool = False, notebook_dir: Path | None = None,
              executor: str | None = None) -> dict[str, float]:
    """Run the notebooks and rebuild the gallery; returns seconds per notebook
    (0.0 for a notebook skipped as up to date).

    A notebook that fails is reported at once (its name, the failing cell's source and
    the error); the others still run, the gallery and the claims report are still
    written, with the failed notebook's last results labelled stale, and then
    :class:`SuiteFailed` is raised.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not valid; choose one of: "
                         f"{', '.join(PROFILES)}")
    fig_dir = Path(fig_dir) if fig_dir is not None else figures_dir(profile)
    out_dir = (repo_root() / "build" / "notebooks" / profile if notebook_dir is None
               else Path(notebook_dir) / "executed")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    jobs = jobs or max(2, (cores or 1) // 2)
    if jobs < 1:
        raise ValueError(f"jobs={jobs!r}: must be >= 1")
    threads = max(1, (cores or 1) // jobs)
    paths = {p.stem[:2]: p for p in notebooks(only, notebook_dir)}
    pending = sorted(paths, key=lambda k: PRIORITY.index(k) if k in PRIORITY else len(PRIORITY))
    times: dict[str, float] = {}
    done: set[str] = set()
    failures: list[NotebookFailed] = []
    total = time.perf_counter()

    def run(key: str) -> float:
        path = paths[key]
        stamp = out_dir / f".{path.stem}.inputs"
        digest = _inputs_hash(path, profile, fig_dir)
        if not force and _up_to_date(path, stamp, digest, fig_dir):
            print(f"  {path.stem}: up to date, skipped (--force re-executes it)", flush=True)
            return 0.0
        print(f"  {path.stem}: running (profile={profile}, {threads} thread(s)) ...", flush=True)
        stamp.unlink(missing_ok=True)
        try:
            seconds = run_notebook(path, profile, out_dir, fig_dir)
        except Exception as exc:  # noqa: BLE001 - reported, and the others go on
            failure = _failure(path, exc)
            print(failure.describe(), file=sys.stderr, flush=True)
            failures.append(failure)
            return math.nan
        stamp.write_text(digest + "\n")
        print(f"  {path.stem}: done in {seconds:.1f} s", flush=True)
        return seconds

    # Kernels inherit these: runtime.set_threads (called by experiments.setup) reads the
    # thread count, and the explorers draw static views when run headless. The thread
    # pools torch does not own (OpenMP, OpenBLAS, MKL, numba: UMAP and pynndescent) get
    # the same count, so two kernels side by side do not oversubscribe the cores.
    env = {"DRSL_THREADS": str(threads), "DRSL_HEADLESS": "1",
           **{k: str(threads) for k in _THREAD_POOLS}}
    if executor is not None:
        from .executor import get_executor

        get_executor(executor)  # validates the name before anything runs
        env["DRSL_EXECUTOR"] = executor
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        _schedule(run, pending, paths, jobs, times, done)
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for failure in failures:
        _mark_failed(fig_dir, failure.notebook)
    write_gallery(fig_dir, profile)
    print(f"All notebooks: {time.perf_counter() - total:.1f} s wall. "
          f"Gallery: {fig_dir / 'README.md'}")
    if failures:
        raise SuiteFailed(failures)
    return times


class SuiteFailed(RuntimeError):
    """One or more notebooks of the main job failed (the rest ran and the gallery was
    written)."""

    def __init__(self, failures: Sequence[NotebookFailed]) -> None:
        self.failures = list(failures)
        names = ", ".join(f.notebook for f in self.failures)
        super().__init__(f"{len(self.failures)} notebook(s) failed: {names}")


def _schedule(run, pending: list[str], paths: dict[str, Path], jobs: int,
              times: dict[str, float], done: set[str]) -> None:
    """Run ``run(key)`` for every pending notebook, ``jobs`` at a time, each only after
    its ``DEPENDS`` have finished."""
    with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
        running: dict[cf.Future, str] = {}
        while pending or running:
            ready = [k for k in pending if all(d in done or d not in paths
                                               for d in DEPENDS.get(k, ()))]
            while ready and len(running) < jobs:
                key = ready.pop(0)
                pending.remove(key)
                running[pool.submit(run, key)] = key
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                key = running.pop(fut)
                times[paths[key].stem] = fut.result()  # re-raises a notebook's error
                done.add(key)


def write_gallery(fig_dir: Path, profile: str, n_halves: int = 20) -> tuple[Path, Path]:
    """Write ``claims.md`` (every verdict, by :mod:`drsl_utils.claims`, with its
    stability) and ``README.md`` (the claims report, then every figure with its caption)
    from the notebooks' recorded metadata. Neither file carries a date, so a rerun with
    the same results changes nothing."""
    metas = [m for m in load_meta(fig_dir) if m.get("profile") == profile]
    lines = claims_report(metas, profile, n_halves=n_halves)
    claims_path = fig_dir / "claims.md"
    claims_path.write_text("\n".join(lines) + "\n")

    gallery = ["# Figure gallery", "",
               f"Regenerated by `make figures` (profile `{profile}`). Each figure is a PNG "
               "(shown) with a PDF beside it. The claims report comes first; "
               "[claims.md](claims.md) holds the same tables.", "",
               *["#" + ln if ln.startswith("#") else ln for ln in lines], ""]
    for meta in metas:
        if not meta["figures"]:
            continue
        gallery += [f"## {meta['notebook']}", ""]
        for f in meta["figures"]:
            gallery += [f"### {f['name']}", "", f"![{f['name']}]({f['name']}.png)", "",
                        f"{f['caption']} *(profile `{meta['profile']}`)*", ""]
    readme = fig_dir / "README.md"
    readme.write_text("\n".join(gallery))
    return readme, claims_path


def claims_report(metas: Sequence[dict], profile: str, n_halves: int = 20) -> list[str]:
    """The claims report as Markdown lines: the rule, the primary claims (one Holm
    family), the secondary rows, and each claim's smallest effect of interest."""
    from . import claims as C
    from .report import verdict_table

    evidence = [C.Evidence.from_json(e) for m in metas for e in m.get("evidence", [])
                if e.get("claim") in C.CLAIMS]
    stale = {e["claim"] for m in metas if m.get("status", "ok") != "ok"
             for e in m.get("evidence", [])}
    head = ["# Claims report", "",
            f"Profile `{profile}`, written by `python -m drsl_utils.suite --profile "
            f"{profile}` from the notebooks' per-seed measurements. One rule decides every "
            "row (`drsl_utils/claims.py`): the seed is the unit of replication (models "
            "trained with the same seed are paired); a one-sample t-test over the "
            "per-seed values gives two one-sided p-values, against *no effect in the "
            "claimed direction* and against *an effect at least as large as the smallest "
            "effect of interest* (SESOI); Holm's procedure adjusts each kind over the "
            "primary claims (alpha = 0.05). **holds**: the first is rejected; **does not "
            "hold**: the second is; **inconclusive**: neither, and the note says what the "
            "95 % interval rules out and about how many seeds would decide. Equivalence "
            "claims use two one-sided tests against the margin. **stability**: the share "
            "of resamples of the seeds (leave one seed out; "
            f"{n_halves} random halves) on which the whole procedure gives the same "
            "verdict.", ""]
    if not evidence:
        return head + ["No claims recorded yet."]
    table = C.evidence_frame(evidence, n_halves=n_halves)
    view = verdict_table(table).assign(
        stability=[f"{s:.2f} ({la}/{ln}, {ha}/{hn})" for s, la, ln, ha, hn in
                   zip(table["stability"], table["loso_agree"], table["loso_n"],
                       table["halves_agree"], table["halves_n"])],
        detail=table["detail"].to_numpy(), notebook=table["notebook"].to_numpy(),
        primary=table["primary"].to_numpy())
    out = list(head)
    for primary, title in ((True, "Primary claims (one Holm family)"),
                           (False, "Secondary rows (other attacks and variants; not "
                                   "adjusted)")):
        part = view[view["primary"] == primary]
        counts = {v: int((part["verdict"] == v).sum()) for v in C.VERDICTS}
        out += [f"## {title}", "",
                f"{len(part)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()),
                "", "| claim | estimand (SESOI) | measured | seeds | p | verdict | "
                    "stability | note | context | notebook |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r, cid in zip(part.itertuples(index=False), table.loc[part.index, "claim"]):
            verdict = f"**{r.verdict}**"
            if cid in stale:
                verdict += " (stale: the notebook failed in the last run; this is its " \
                           "previous result)"
            out.append(f"| {_cell(r.claim)} | {_cell(r.estimand)} | {_cell(r.measured)} | "
                       f"{r.seeds} | {r.p} | {verdict} | {r.stability} | "
                       f"{_cell(r.note)} | {_cell(r.detail)} | `{r.notebook}` |")
        out.append("")
    out += ["## Smallest effects of interest", "", "| claim id | SESOI | why |", "|---|---|---|"]
    for e in evidence:
        c = C.get_claim(e.claim)
        out.append(f"| `{c.id}` | {c.fmt(c.sesoi, False)} | {_cell(c.why)} |")
    return out


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drsl_utils.suite", description=__doc__)
    parser.add_argument("--profile", default="quick", choices=tuple(PROFILES))
    parser.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 00 02")
    parser.add_argument("--figures-dir", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=None,
                        help="notebooks run at once (default: cores / 2, at least 2)")
    parser.add_argument("--notebook-dir", type=Path, default=None,
                        help="run the notebooks of another folder (default: notebooks/)")
    parser.add_argument("--executor", choices=("inline", "local", "slurm"), default=None,
                        help="where missing training and attack units run (default: "
                             "$DRSL_EXECUTOR, else inline); see docs/cluster.md")
    parser.add_argument("--force", action="store_true",
                        help="re-execute notebooks even when their inputs are unchanged")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        run_suite(args.profile, args.only, args.figures_dir, jobs=args.jobs, force=args.force,
                  notebook_dir=args.notebook_dir, executor=args.executor)
    except SuiteFailed as exc:
        print(f"\n{exc}; their last results are labelled stale in the claims report:",
              file=sys.stderr)
        for failure in exc.failures:
            print(failure.describe(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
