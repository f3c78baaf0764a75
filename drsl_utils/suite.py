"""The main job: run every notebook headless under one profile, then write the gallery
(``figures/README.md``) and the claims report (``figures/claims.md``).

    python -m drsl_utils.suite --profile quick            # what `make figures` runs
    python -m drsl_utils.suite --profile smoke --only 00  # one notebook, in seconds
    python -m drsl_utils.suite --profile quick --force    # re-execute every notebook

Executed copies of the notebooks go to ``build/notebooks/<profile>/`` (outside git),
with ``times.json``: the longest wall time each notebook took on this machine.
Models, attack records and embeddings come from the shared cache, so a re-executed
notebook only redoes its cheap analysis. A notebook whose inputs are unchanged since its
last successful run (its own source, the package's source, the lock file, the profile
and the output folder; its figures still on disk) is not executed again at all.

Notebooks run ``--jobs`` at a time (default: one per two cores, at least 2 on a 2-core
machine), each kernel with ``cores / jobs`` threads (:mod:`drsl_utils.resources`). A
notebook starts only after the notebooks whose models it reuses (``DEPENDS``) have
finished, so that it does not wait on the cache's per-key lock (which is what keeps a
model from being trained twice); among the ready ones, the longest recorded goes first.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import provenance
from .experiments import PROFILES, figures_dir, repo_root
from .report import load_meta, loso_text, provenance_blocks, write_report_tables

__all__ = ["DEPENDS", "notebooks", "run_notebook", "run_suite", "write_gallery",
           "claims_report", "NotebookFailed", "SuiteFailed"]

# Which notebooks' models a notebook reuses (by number); 05 also waits for 00, which
# compiles and caches the UMAP kernels first (and so does 13, which trains its own models
# but draws a UMAP). Correctness does not rest on this table:
# the per-key lock of cache.compute_once already keeps two notebooks from computing one
# entry. It keeps a notebook from holding a slot while it waits on that lock. Among the
# ready notebooks the scheduler takes the one with the longest recorded time first
# (``times.json`` beside the executed notebooks; one never timed goes first).
DEPENDS: dict[str, tuple[str, ...]] = {
    "02": ("01",), "03": ("01", "02"), "04": ("01",), "05": ("01", "02", "00"),
    "07": ("06",), "08": ("04", "02"), "09": ("04", "06"), "11": ("05", "02"),
    "12": ("02", "04"), "13": ("00",),
}


#: Each notebook's cold cost in the ``quick`` profile (seconds with one thread, from a
#: cold run on a 2-core machine, rounded). Only the order of a run that has not yet
#: measured its own times (``times.json``) depends on it: see :func:`order`.
COLD_COST: dict[str, float] = {
    "00": 190, "01": 670, "02": 1090, "03": 60, "04": 490, "05": 180, "06": 600,
    "07": 490, "08": 350, "09": 380, "10": 510, "11": 25, "12": 860, "13": 100,
}


def order(paths: dict[str, Path], measured: dict[str, float]) -> list[str]:
    """The notebooks in the order the scheduler offers them: longest chain first, each
    notebook's cost plus the costliest path through the notebooks that wait on it
    (:data:`DEPENDS`). A cost is the longest wall time the notebook took here
    (``measured``, by stem), else :data:`COLD_COST`, else unknown (first). On the quick
    profile's costs this starts ``12`` as soon as ``02`` and ``04`` are done instead of
    after every lower number, about 7 % less wall time with two workers than the
    numeric order."""
    cost = {k: measured.get(p.stem, COLD_COST.get(k, math.inf)) for k, p in paths.items()}
    waiting = {k: [c for c in paths if k in DEPENDS.get(c, ())] for k in paths}
    chain: dict[str, float] = {}

    def length(k: str) -> float:
        if k not in chain:
            chain[k] = cost[k] + max((length(c) for c in waiting[k]), default=0.0)
        return chain[k]

    return sorted(paths, key=lambda k: (-length(k), k))


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
    kernel inherits this process's environment (``DRSL_THREADS``, ``DRSL_CACHE_DIR``);
    the explorers see by themselves that no front end is attached (``explore.headless``)
    and leave a kernel-free figure and a picture."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, "figures_dir": str(fig_dir)} | (extra_parameters or {})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="drsl-kernel-") as sockets:
        pm.execute_notebook(str(path), str(out_dir / path.name), parameters=params,
                            cwd=str(path.parent), kernel_name="python3",
                            progress_bar=False, log_output=False,
                            config=_kernel_config(Path(sockets)))
    return time.perf_counter() - start


def _kernel_config(sockets: Path) -> Any:
    """The kernel talks to us over IPC (Unix sockets) where it can. Over TCP without
    CurveZMQ keys, ipykernel warns "Kernel is running over TCP without encryption" once
    per notebook; IPC is the transport that warning asks for, and it opens no port.
    Each kernel gets its own socket folder (``sockets``): jupyter_client numbers IPC
    sockets by the first free name beside ``ip``, so two kernels started at the same
    moment in one folder can pick the same sockets and read each other's messages
    ("Invalid Signature"). Windows has no IPC transport, and a socket path longer than
    the OS allows (about 100 bytes) fails to bind, so those keep TCP and its warning."""
    from traitlets.config import Config

    ip = sockets / "kernel"
    if os.name == "nt" or len(f"{ip}-ipc-99999") > 100:
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": str(ip)}})


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
    from . import resources
    from .cache import atomic_write

    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not valid; choose one of: "
                         f"{', '.join(PROFILES)}")
    fig_dir = Path(fig_dir) if fig_dir is not None else figures_dir(profile)
    out_dir = (repo_root() / "build" / "notebooks" / profile if notebook_dir is None
               else Path(notebook_dir) / "executed")
    jobs = jobs or max(2, resources.available_cores() // 2)
    if jobs < 1:
        raise ValueError(f"jobs={jobs!r}: must be >= 1")
    threads = resources.threads_per_worker(jobs)
    paths = {p.stem[:2]: p for p in notebooks(only, notebook_dir)}
    # Longest chain first (order), by the longest wall time each notebook took here (a
    # cold run's, once there was one); wall times depend on the machine, so they stay out
    # of git, and a fresh clone starts from COLD_COST.
    timings = out_dir / "times.json"
    measured = json.loads(timings.read_text()) if timings.exists() else {}
    pending = order(paths, measured)
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

    # Kernels inherit these: every thread pool gets this notebook's share of the cores
    # (resources.thread_env; experiments.setup applies it in the kernel), so kernels side
    # by side do not oversubscribe the cores; the explorers draw static views headless.
    env = resources.thread_env(threads) | {"DRSL_HEADLESS": "1"}
    if executor is not None:
        from .executor import get_executor

        get_executor(executor)  # validates the name before anything runs
        env["DRSL_EXECUTOR"] = executor
    with resources.child_env(env):
        _schedule(run, pending, paths, jobs, times, done)
    ran = {k: round(v, 1) for k, v in times.items() if v > 0}  # skipped: 0, failed: nan
    if ran:
        text = json.dumps(measured | {k: max(v, measured.get(k, 0.0)) for k, v in ran.items()},
                          indent=1, sort_keys=True)
        atomic_write(timings, lambda tmp: tmp.write_text(text + "\n"))
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
    """Write ``claims.md`` (every verdict, by :mod:`drsl_utils.claims`, with its bounds,
    replication and power) and ``README.md`` (the claims report, then every figure with
    its caption) from the notebooks' recorded metadata. Neither file carries a date, so
    a rerun with the same results changes nothing. ``n_halves`` is ignored by the claims
    report (kept for one release)."""
    metas = [m for m in load_meta(fig_dir) if m.get("profile") == profile]
    record_path = Path(fig_dir) / "confirmatory.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    history_path = Path(fig_dir) / "confirmatory_history.json"
    history = json.loads(history_path.read_text()) if history_path.exists() else None
    lines = claims_report(metas, profile, n_halves=n_halves, record=record, history=history)
    # Results that travel: the provenance block under the report's title (the gallery
    # copies these lines) and the machine-readable table beside claims.md.
    lines = provenance.under_title(lines, provenance.markdown_block(provenance_blocks(metas)))
    write_report_tables(metas, fig_dir, profile)
    claims_path = fig_dir / "claims.md"
    claims_path.write_text("\n".join(lines) + "\n")

    gallery = ["# Figure gallery", "",
               f"Regenerated by `make figures` (profile `{profile}`). Each figure is a PNG "
               "(shown) with a PDF beside it. The claims report comes first; "
               "[claims.md](claims.md) holds the same tables; "
               "[claims.json](claims.json) and [claims.csv](claims.csv) the same rows for "
               "machines. The same results as a browsable site, every notebook with its "
               "outputs and kernel-free explorers: [the book](../README.md#the-book) "
               "(`make book`, then open `build/book/index.html`).", "",
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


#: Which analysis choices were made after seeing exploratory data (issue 21, item 12).
FORKING_PATHS = (
    "**Choices made after seeing the data.** The smallest effects of interest, the "
    "primary/secondary labels, the primary attack (APGD-DLR) and the two-peaks statistic "
    "(Hartigan's dip against its 5 % critical value) were all set in one commit, after a "
    "committed report on 2-3 seeds had shown most effects. The roles, the one primary row "
    "per finding, the verdict vocabulary and this decision procedure were set after the "
    "5-8-seed report, and so were the label-noise memorisation regime (chosen after CE "
    "was seen to memorise 2 % of flipped labels in the first), the image population (the "
    "test set, with the finite-population correction) and the `confirm` profile's seed "
    "count. After the first confirmatory run (seeds 1000-1012, declaration "
    "`824732c6f8b2c955`) and its methods review, rule v6 changed how the attack "
    "calibration enters: 5 seeds x 60 images instead of 2 x 200 (the six calibrated "
    "primaries had 1 degree of freedom and could not leave *inconclusive*), the "
    "exact-count floor on a normal reference instead of times a t quantile, and the "
    "flag on the exact bound; that run's verdicts were seen, and none of the "
    "uncalibrated rules changed. The `quick` profile then moved to new seeds (3000-3012) "
    "and a freshly drawn 1,000-image attack subset with its calibration images "
    "(`subset_seed` 1; 103 of its images were in the exploratory subset, as chance "
    "implies), so in its confirmatory run no model, and no new draw of images, was seen "
    "by any choice above. The first confirmatory run's 13 uncalibrated primaries read "
    "as the second's but for `drsl-same-accuracy-drsl` (*inconclusive* in the first) "
    "and the size label of `seguin-confidence-disagree` (*at least the SESOI* in the "
    "first), and every calibrated primary was *inconclusive* in the first. After the "
    "second confirmatory run (seeds 3000-3012, declaration `18d59a949a48a8b0`, rule v6) "
    "and its methods review, whose verdicts were seen, rule v7 changed one thing: a "
    "calibrated row keeps the calibration's n_cal - 1 degrees of freedom also where the "
    "exact-count floor decides the differential's standard error (before, it then took "
    "the row's own n - 1); this can only widen a bound. The `quick` profile then moved to "
    "seeds 4000-4012 and a subset drawn with `subset_seed` 2. The third confirmatory run "
    "(declaration `b03ad4e8a0595b52`, rule v7) read the primaries as the second but for "
    "`drsl-same-accuracy-drsl` (*equivalent* in the second, *inconclusive* in the "
    "third), `drsl-noise-pair` (*holds* in the second; *inconclusive*, Holm-adjusted p "
    "0.051, in the third) and the size label of `seguin-confidence-disagree` (*size "
    "open* in the second); rule v6 applied to the third run's evidence gave the same 39 "
    "verdicts, so these moves came from seed sampling. Its headline's sentences on "
    "fragile positives, calibration moves and detectable effects, and the flag's 'for "
    "any data' note, were written after the second run was seen; they are presentation "
    "and move no verdict. After the third run and its methods review, whose verdicts "
    "were seen, rule v8 changed only what is printed beside a verdict: a calibrated "
    "row's power, seeds needed and detectable effect use the test's degrees of freedom "
    "where the exact-count floor decides (one secondary's power, 0.42 to 0.38), no "
    "signed number prints as -0.0, the fragile positives show their leave-one-seed-out "
    "agreement, the calibration sentence names the cause (differential or variance), a "
    "calibrated row's estimand names the standard-AutoAttack estimate, and a note counts "
    "the calibration flag from the data; applied to the third run's evidence it moves no "
    "verdict. Training on the CPU then moved to one PyTorch thread on any machine: a "
    "twin of the third run with one notebook at a time at two threads differed on 4 of "
    "39 verdicts (all secondary, each near its test's level), because one and two "
    "threads trained different models; the default of two one-thread notebooks trains "
    "the same models as before. The `quick` profile then moved to seeds 5000-5012 and a "
    "subset drawn with `subset_seed` 3. The fourth confirmatory run (declaration "
    "`721bc7a8e9708ffa`, rule v8) read the primaries as the third but for "
    "`drsl-same-accuracy-drsl` (*equivalent*; its per-seed sd, 0.085 pp, was a fifth "
    "to a seventh of the three earlier runs', and one retrained seed-4000 pair gave the "
    "third run's value exactly, so the models had not changed), `drsl-noise-pair` "
    "(*holds*, at least the SESOI) and the size label of `seguin-confidence-disagree` "
    "(*size open*). After it and its methods review, whose verdicts were seen, rule v9 "
    "changed what is printed beside a verdict and one variance: a calibrated row's "
    "replication re-draws the calibration's differential and its power range varies the "
    "differential's se; a detection claim's power is stated against its named "
    "alternative (the underpowered count uses it), with a note where a bound below zero "
    "could be misread as evidence of absence; the header defines the p column; "
    "`drsl-umap-tips` is worded as our reading; and the two UMAP rows, measured on the "
    "fixed attack subset, gained its image-sampling variance (with the clean geometry "
    "held fixed, which understates it). Applied to the fourth run's evidence, the "
    "changes other than the UMAP image term move no verdict. The `quick` profile then "
    "moved to seeds 6000-6012 and a subset drawn with `subset_seed` 4. The fifth "
    "confirmatory run (declaration `6b30b6b860f29f55`, rule v9) read the primaries as "
    "the fourth but for `drsl-same-accuracy-drsl` (*inconclusive*) and the size label of "
    "`seguin-confidence-disagree` (*at least the SESOI*). After it and its methods "
    "review, whose verdicts were seen, rule v10 changed: the replication forecast pools "
    "the five earlier confirmatory runs' per-seed variance (its history, frozen in the "
    "declaration; the forecast at 5 seeds had averaged 0.87 at three times the SESOI, "
    "short of the plan's 0.9); `sovr-two-peaks` names 0.7 N(0,1) + 0.3 N(3.5,1), whose "
    "mean dip excess is about its SESOI, and states its own test's power there (it had "
    "named a mixture its test cannot detect); `seguin-distill-mean` and `-max-gap` are "
    "calibrated against standard AutoAttack like the other students (uncalibrated "
    "APGD-DLR had overstated the altered-teacher students by 8-10 pp); the rest is "
    "presentation (leave-one-seed-out estimates, the split underpowered count, the size "
    "p, the detectable effect in SESOI multiples, the verdict history). The `confirm` "
    "profile moved to 256 seeds. The `quick` profile then moved to seeds 7000-7012 and a "
    "subset drawn with `subset_seed` 5 for the sixth confirmatory run, declared final "
    "before it ran, so no model or image draw behind this report was seen by any choice "
    "above.")


def claims_report(metas: Sequence[dict], profile: str, n_halves: int | None = None,
                  record: dict | None = None, history: dict | None = None) -> list[str]:
    """The claims report as Markdown lines: the rule, the choices made after seeing the
    data, the headline (primary findings only), the primary findings (one Holm family,
    the declared one), the secondary findings, the project's checks and the tour, and
    each claim's smallest effect of interest. ``record`` is the committed note of the
    confirmatory run (``confirmatory.json`` beside the report); the first line says
    whether the report is confirmatory or exploratory (``claims.confirmatory_status``).
    ``history`` (``confirmatory_history.json``) holds the earlier confirmatory runs'
    primary verdicts, printed beside this report's.
    ``n_halves`` is ignored (kept for one release; the random-halves stability score is
    gone)."""
    from . import claims as C
    from .report import load_calibrations, load_overstatement, verdict_table

    evidence = [C.Evidence.from_json(e) for m in metas for e in m.get("evidence", [])
                if e.get("claim") in C.CLAIMS]
    # Evidence for a claim this process does not know (registered only in a notebook's
    # kernel): named, never used silently (methods review 2, point 11).
    undeclared = sorted({str(e.get("claim")) for m in metas for e in m.get("evidence", [])
                         if e.get("claim") not in C.CLAIMS})
    stale = {e["claim"] for m in metas if m.get("status", "ok") != "ok"
             for e in m.get("evidence", [])}
    alpha = C.ALPHA
    # Did the run execute the freeze commit's code (methods review 2, point 3)?
    code = (provenance.code_since(str(record["commit"]),
                                  [m["provenance"] for m in metas if m.get("provenance")],
                                  writer=provenance.writer_block(
                                      (repo_root() / "figures", repo_root() / "build")))
            if record and record.get("commit") else None)
    status, why = C.confirmatory_status(record, {s for e in evidence for s in e.values},
                                        evidence=evidence, code=code)
    head = ["# Claims report", "",
            f"**{status.capitalize()}**: {why}. Declaration hash "
            f"`{C.declaration_hash(profile=profile)}` (the claim set, SESOIs, directions, "
            "roles, the rule's constants and this profile's measurement protocol: "
            f"`claims.declaration({profile!r})`).", "",
            f"Profile `{profile}`, written by `python -m drsl_utils.suite --profile "
            f"{profile}` from the notebooks' per-seed measurements. One rule decides every "
            "row (`drsl_utils/claims.py`). The seed is the unit of replication (models "
            "trained with the same seed are paired). The estimands are defined on the "
            "dataset's whole test set: a row measured on all of it has no image term, and "
            "a row on a fixed subset adds the subset's image-sampling variance with the "
            "finite-population correction (1 - N/N_test). One-sided t-tests at alpha "
            f"= {alpha:g}: against *no effect in the claimed direction*, against *an effect "
            "at least as large as the smallest effect of interest* (SESOI), and against "
            "*no effect in the opposite direction*. Holm's procedure adjusts each kind "
            "over the declared primary findings, one row per paper finding; a "
            "declared one with no evidence reads *not run* and still counts. Each kind's "
            "family-wise error is at most alpha, so the chance of any wrong primary "
            "verdict is at most 2 alpha for *holds* and *below the SESOI* together "
            "(3 alpha counting a false *reversed*, 4 alpha counting a false *at least "
            "the SESOI*; all assume normal per-seed values). "
            "**bounds**: each bound is the one-sided bound at the Holm-adjusted confidence "
            "of its own test (1 - alpha/k for a row with Holm multiplier k), so the bound "
            "on the claimed side clears zero exactly when the row holds and the other "
            "falls below the SESOI exactly when it does not hold; rows outside the family "
            f"print a {100 * (1 - 2 * alpha):.0f} % two-sided interval. Directional "
            "verdicts: "
            "**holds** (shown in the claimed direction, not shown below the SESOI), "
            "**negligible** (shown non-zero but shown below the SESOI), **does not hold** "
            "(shown below the SESOI), **reversed** (shown on the opposite side), "
            "**inconclusive** (the note says that zero and the SESOI are not excluded; "
            "the bounds invert the tests at those two values only). "
            "Equivalence claims (two one-sided tests against the margin): **equivalent**, "
            "**not equivalent**, **inconclusive**. "
            "**p**: the Holm-adjusted p-value of the test that decided the row: the one "
            "against *no effect in the claimed direction* (p_holds) for *holds*, "
            "*negligible*, *equivalent*, *inconclusive* and a detection claim's "
            "*detected* and *not detected*, the one against *at least the SESOI* (p_not) "
            "for *does not hold* and *not equivalent*, and the reversal test's (p_rev, "
            "its own Holm family) for *reversed*; beside a *holds*, *size p* is the "
            "size test's (against an effect below the SESOI, its own Holm family), which "
            "chose the size label; rows outside the family print them "
            "unadjusted, marked *(unadjusted)*. "
            "**replication**: the predictive "
            "probability that a fresh run with the same seed count reads *holds* "
            "(*equivalent*), its per-seed variance drawn from the posterior given this "
            "run's sd and the variance history of the earlier confirmatory runs (their "
            "pooled variance, on their degrees of freedom: `drsl_utils/seed_history.py`), "
            "which assumes the per-seed variance did not change between runs: where a "
            "two-sided F test of this run's variance against the history's gives p < 0.05 "
            "the history is dropped and the cell says so, and a claim without one uses "
            "this run's variance alone (power and seeds needed always use this run's sd); "
            "in brackets, that it reads this row's verdict (never much "
            "below 0.5, since the same data chose it: below 0.9 a fresh run may well "
            "disagree), and, leaving one seed out at a time, in how many resamples the "
            "verdict stands (which also counts the power a resample loses with its degree "
            "of freedom) and how many of their estimates lie on the claimed side, with "
            "their range (n/a with 2 seeds). A calibrated row's fresh run re-measures the "
            "calibration's differential on its own models, so its replication re-draws "
            "the differential (estimate and se, on the calibration's seeds less one "
            "degrees of freedom); leave-one-seed-out leaves out seeds of the main "
            "comparison only and keeps the calibration whole, so it is silent about the "
            "differential's share of the se. **power**: the probability that the *holds* "
            "(*equivalent*) test rejects when the true effect is the SESOI (zero), at the "
            "observed sd and the pre-specified level alpha/m (m primary findings), with "
            "its range over the sd's 95 % interval in brackets (a calibrated row's "
            "together with the differential's se over its own 95 % interval); a "
            "detection claim's power column leads with its own test's power against the "
            "alternative its notebook names (at that alternative's population value of "
            "the estimand), and that power decides whether it counts as underpowered; **seeds needed**: for "
            "power 0.8, from the ends of the sd's 95 % interval.", "",
            FORKING_PATHS + (" Until a confirmatory run on seeds never used before, "
                             "against a frozen declaration, read every verdict here as "
                             "exploratory." if status == "exploratory" else ""), ""]
    not_in = ([f"**Not in this report**: evidence for {', '.join(f'`{c}`' for c in undeclared)}, "
               "claims not declared in the process that wrote it. Declare them in a module "
               f"named by `${C.USER_CLAIMS_ENV}` (see `claims.load_user_claims`) and write "
               "the report again.", ""] if undeclared else [])
    if not evidence:
        return head + not_in + ["No claims recorded yet."]
    calibrations = load_calibrations(metas)
    table = C.evidence_frame(evidence, alpha, calibrations=calibrations)
    view = verdict_table(table).assign(
        detail=table["detail"].to_numpy(), notebook=table["notebook"].to_numpy(),
        id=table["claim"].to_numpy())
    family = table["in_family"].to_numpy(bool)
    finding = (table["role"] == "finding").to_numpy(bool)
    fam = table[family]
    weak = fam[fam["underpowered"]]
    counts = _verdict_counts(fam)
    headline = (f"**{len(fam)} primary findings** (one Holm family, declared in "
                f"`drsl_utils/claim_table.py`): {counts}. "
                + _underpowered(weak) + "Power at the SESOI "
                "qualifies an *inconclusive* or a *does not hold*; it does not weaken a "
                "*holds*, which cleared its test. " + _fragile(fam) + _undecidable(fam)
                + _calibration_moved(fam) +
                "Checks and the tour are not counted.")
    out = head + ["## Headline", "", headline, ""] + not_in
    parts = ((family, "Primary findings (one Holm family)"),
             (finding & ~family, "Secondary findings (other attacks and variants; not "
                                 "adjusted)"),
             (~finding, "Project checks and the tour (not findings; not adjusted, not "
                        "counted in the headline)"))
    for mask, title in parts:
        part = view[mask]
        if part.empty:
            continue
        out += [f"## {title}", "",
                f"{len(part)} claims: {_verdict_counts(table[mask])}", "",
                "| claim | estimand (SESOI) | measured | bounds | p | verdict | "
                "replication | power | seeds needed | note | context | notebook |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in part.itertuples(index=False):
            verdict = f"**{r.verdict}**"
            if r.id in stale:
                verdict += " (stale: the notebook failed in the last run; this is its " \
                           "previous result)"
            out.append(f"| {_cell(r.claim)} | {_cell(r.estimand)} | {_cell(r.measured)} | "
                       f"{_cell(r.bounds)} | {r.p} | {verdict} | {_cell(r.replication)} | "
                       f"{_cell(r.power)} | {_cell(r[9])} | {_cell(r.note)} | "
                       f"{_cell(r.detail)} | `{r.notebook}` |")
        out.append("")
    out += _history_section(table[family], history or {}, status)
    out += _calibration_section(table, load_overstatement(metas))
    out += ["## Smallest effects of interest", "", "| claim id | SESOI | why |", "|---|---|---|"]
    for cid in table["claim"]:
        c = C.get_claim(cid)
        out.append(f"| `{c.id}` | {c.fmt(c.sesoi, False)} | {_cell(c.why)} |")
    return out


def _history_section(fam: Any, history: dict, status: str) -> list[str]:
    """The primary verdicts of the earlier confirmatory runs beside this report's
    (``confirmatory_history.json`` beside the report; methods review 6, point 6): one
    column per run, oldest first, each under its own declaration and rule. Context, not
    evidence: the report's verdicts rest on this run's seeds alone."""
    runs = history.get("runs") or []
    if not runs or fam.empty:
        return []
    from . import claims as C

    def label(verdict: str, size: str) -> str:
        return C.verdict_label(verdict, size or "") if verdict else "–"

    now = "this report" + ("" if status == "confirmatory" else f" ({status})")
    head = ["claim id"] + [f"run {r['run']} (seeds {r['seeds']}, rule {r['rule']})"
                           for r in runs] + [now]
    out = ["## Verdict history of the primary findings", "",
           f"The primary verdicts of the {len(runs)} earlier confirmatory runs (each on "
           "its own unseen seeds, under its own declaration and rule; read from the "
           "claims tables committed with their galleries, `confirmatory_history.json`) "
           "beside this report's. Later rules changed how some rows are decided or "
           "printed (the report's header lists what changed after each run), so a row's "
           "history is context for its verdict here, not part of its test; a row whose "
           "verdict moved between runs sits near a boundary. Each cell gives the verdict, "
           "the estimate and the per-seed sd (the spread the replication forecast pools, "
           "`drsl_utils/seed_history.py`).", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    from .seed_history import VALUES

    def cell(verdict: str, size: str, mean: Any, sd: Any, spec: Any) -> str:
        text = label(verdict, size)
        if verdict and isinstance(mean, (int, float)) and math.isfinite(mean):
            text += f"; {spec.fmt(mean)}"
            if isinstance(sd, (int, float)) and math.isfinite(sd):
                text += f" (sd {spec.fmt(sd, False)})"
        return text

    for r in fam.itertuples():
        spec = C.get_claim(r.claim)
        cells = []
        for run in runs:
            p = run["primaries"].get(r.claim, {})
            vals = list(VALUES.get(r.claim, {}).get(run["run"], {}).values())
            sd = (statistics.stdev(vals) * spec.scale if len(vals) >= 2 else math.nan)
            cells.append(cell(p.get("verdict", ""), p.get("size", ""), p.get("mean"), sd,
                              spec))
        cells.append(cell(r.verdict, getattr(r, "size", "") or "", r.mean,
                          getattr(r, "sd", math.nan), spec))
        out.append(f"| `{r.claim}` | " + " | ".join(cells) + " |")
    return out + [""]


def _calibration_section(table: Any, overstatement: Any) -> list[str]:
    """The attack calibration (``12_attack_calibration``): how far each cheap attack
    overstates standard AutoAttack per model, and per robustness row the attack that
    decided it, the calibrated differential and the verdict before and after."""
    from . import claims as C

    rows = table[table["decided_by"].astype(bool)] if "decided_by" in table else table[:0]
    if overstatement.empty and rows.empty:
        return []
    out = ["## Attack calibration", "",
           "Standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square; 100 steps, 5,000 queries) "
           "beside the cheap attacks on the same test images and seeds "
           "(`notebooks/12_attack_calibration`). *Overstatement*: robust accuracy under "
           "the cheap attack minus under standard AutoAttack (pp; mean over seeds, 95 % "
           "interval: at each end the wider of the t bound, seeds plus the subset's image "
           "variance on n - 1 degrees of freedom, and the exact Clopper-Pearson bound of "
           "the discordant images on that side). A robustness row decided by a cheap "
           "attack tests the "
           "effect under standard AutoAttack: its effect minus its comparison's "
           "*differential* (the overstatement of one side minus the other's), with both "
           "standard errors and the smaller degrees of freedom; those p-values enter "
           "Holm's procedure (`claims.calibrate`), so the verdict can move either way. "
           "A row is *flagged* when standard AutoAttack may beat the cheap attack on the "
           "claimed side by more than half its SESOI: the differential's one-sided upper "
           "bound (the wider of its t bound and the exact bound) exceeds SESOI / 2. In "
           "`quick` (5 seeds x 60 images) even no discordant image bounds it at 1.0 pp, "
           "so a row with a SESOI of 1 pp is always flagged, and one of 2 pp can read "
           "unflagged only when no image was discordant on the claimed side.", ""]
    if not rows.empty:
        out += ["| claim | decided by | cheap attack's bounds | differential | "
                "calibrated bounds | verdict (cheap attack alone) | flagged |",
                "|---|---|---|---|---|---|---|"]
        for r in rows.itertuples(index=False):
            c = C.get_claim(r.claim)
            d = c.digits
            out.append(
                f"| `{r.claim}` | {r.decided_by} | "
                f"[{C.signed(r.cheap_low, d)}, {C.signed(r.cheap_high, d)}] | "
                f"{c.fmt(r.cal_mean)} [{C.signed(r.cal_low, d)}, {C.signed(r.cal_high, d)}] "
                f"({r.cal_seeds} seeds x {r.cal_images} images) | "
                f"[{C.signed(r.calibrated_low, d)}, {C.signed(r.calibrated_high, d)}] | "
                f"**{r.verdict}** ({r.cheap_verdict}) | {_flag_text(r)} |")
        out += ["", _flag_note(rows), ""]
    if not overstatement.empty:
        out += ["| model | attack | eps | seeds x images | robust, cheap | "
                "robust, standard AA | overstatement (pp) |", "|---|---|---|---|---|---|---|"]
        for r in overstatement.itertuples(index=False):
            out.append(f"| {r.model} | {r.attack} | {r.eps:g} | {r.n_seeds} x {r.n_images} | "
                       f"{100 * r.robust_cheap:.1f} | {100 * r.robust_reference:.1f} | "
                       f"{C.signed(100 * r.overstatement, 1)} "
                       f"[{C.signed(100 * r.low, 1)}, {C.signed(100 * r.high, 1)}] |")
        out.append("")
    return out


def _flag_text(r: Any) -> str:
    """The calibration table's *flagged* cell: yes or no, and where the design cannot
    clear the flag at all (``cal_clearable``), that it is so for any data."""
    if not r.cal_flag:
        return "no"
    return "yes" if getattr(r, "cal_clearable", True) else "yes (for any data at this size)"


def _flag_note(rows: Any) -> str:
    """The note under the calibration table on how often the flag fired, and what the
    calibration's size allows (methods review 4): counted from the rows, not written
    for one profile. It says how many rows no data could clear (``cal_clearable``) and
    how few discordant cells on the claimed side the others allow (``cal_clear_max``);
    where every row is one or the other at zero cells, the flag fires on a single
    discordant cell, and the note says to expect it on every calibrated row."""
    k = len(rows)
    if k == 0:
        return ""
    flagged = int(rows["cal_flag"].astype(bool).sum())
    has = {"cal_clearable", "cal_clear_max", "cal_cells"} <= set(rows.columns)
    sizes = " or ".join(sorted({f"{int(a)} seeds x {int(b)} images" for a, b in
                                zip(rows["cal_seeds"], rows["cal_images"])}))
    text = f"The flag fired on {flagged} of {k} calibrated row(s)"
    if not has:
        return text + "."
    clearable = rows["cal_clearable"].astype(bool)
    stuck = int((~clearable).sum())
    rest = rows[clearable]
    parts = []
    if stuck:
        parts.append(f"no data could clear it on {stuck} of them (zero discordant cells "
                     "still bound the differential above half the SESOI)")
    if len(rest):
        most = sorted({int(m) for m in rest["cal_clear_max"]})
        cells = " or ".join(map(str, sorted({int(n) for n in rest["cal_cells"]})))
        span = str(most[0]) if len(most) == 1 else f"{most[0]}-{most[-1]}"
        parts.append(f"{'the other ' if stuck else ''}{len(rest)} can read unflagged only "
                     f"with at most {span} discordant cell(s) of {cells} on the claimed "
                     "side")
    text += f". At {sizes}, " + ", and ".join(parts) + "."
    if flagged == k and (len(rest) == 0 or int(rest["cal_clear_max"].max()) <= 0):
        text += (" At this size the flag stays silent only where the two attacks agree on "
                 "every claimed-side cell, if at all: expect it on every calibrated row, and read "
                 "it as the calibration's size more than as any row's bias.")
    return text


def _underpowered(weak: Any) -> str:
    """The headline's count of underpowered primaries (power < 0.8 at the SESOI), split
    by what the run showed anyway (methods review 6, point 9): rows that hold at least
    the SESOI, other positives, and the rest, which the low power leaves open."""
    from . import claims as C

    if weak.empty:
        return f"**None of them is underpowered** (power < {C.POWER_TARGET:g} at its SESOI). "
    positive = weak["verdict"].isin(list(C.POSITIVE_VERDICTS.values()))
    at_least = positive & (weak["size"] == C.SIZE_LABELS[True] if "size" in weak
                           else False)
    groups = [(at_least, "hold at least the SESOI regardless"),
              (positive & ~at_least, "hold with the size open")]
    # The others by their own verdict: "inconclusive" is not "does not hold" (methods
    # review 7, M2).
    groups += [(weak["verdict"] == v, f"read *{v}*")
               for v in dict.fromkeys(weak["verdict"][~positive])]
    parts = [f"{int(mask.sum())} {text} ({', '.join(f'`{c}`' for c in weak['claim'][mask])})"
             for mask, text in groups if mask.any()]
    return (f"**{len(weak)} of them are underpowered** (power < {C.POWER_TARGET:g} at "
            f"their SESOI): {'; '.join(parts)}. ")


def _fragile(fam: Any) -> str:
    """The headline's sentence on positive primary verdicts that a fresh run with the
    same seed count would read again with probability below 0.8 (the replication
    column): valid rejections that sit near Holm's level (methods review 3, B1), each
    with its leave-one-seed-out estimates where the table has them: how many lie on the
    claimed side, and their range (methods review 6, point 4: the verdict count also
    measures the degree of freedom a resample loses, so the headline leaves it out)."""
    from . import claims as C

    if "replication" not in fam:
        return ""
    pos = fam[fam["verdict"].isin(list(C.POSITIVE_VERDICTS.values()))]
    weak = pos[pos["replication"] < C.POWER_TARGET]
    if weak.empty:
        return ""
    rows = ", ".join(f"`{r.claim}` ({r.replication:.2f}{loso_text(r, verdict=False)})"
                     for r in weak.itertuples())
    return (f"**{len(weak)} of the {len(pos)} positive verdicts may not replicate**: a "
            f"fresh run with as many new seeds would read them again with probability below "
            f"{C.POWER_TARGET:g} ({rows}). ")


def _calibration_moved(fam: Any) -> str:
    """The headline's sentence on the calibrated primaries whose verdict under the
    cheap attack alone differs from the calibrated one, worded by cause (methods review
    3, B3; review 4): the *differential* (the attack's bias) moved the estimate across
    a boundary (the estimate reads the calibrated verdict even on the cheap attack's own
    precision), or the calibration's *variance* (and degrees of freedom) made the row
    undecided while the estimate alone would still read as the cheap attack did
    (``claims.assess``'s ``cal_moved_by``)."""
    if "cheap_verdict" not in fam:
        return ""
    moved = fam[(fam["cheap_verdict"].fillna("") != "")
                & (fam["cheap_verdict"] != fam["verdict"])]
    if moved.empty:
        return ""
    from . import claims as C

    def why(r: Any) -> str:
        c = C.get_claim(r.claim)
        cause = getattr(r, "cal_moved_by", "") or ""
        est = getattr(r, "cal_estimate_verdict", "") or ""
        head = (f"`{r.claim}` reads *{r.cheap_verdict}* under {r.decided_by} alone and "
                f"*{r.verdict}* as estimated under standard AutoAttack")
        se = getattr(r, "cal_se", math.nan)
        var = (f"the differential's variance (se {c.fmt(se, False)}; the row tested on "
               f"{C._df_text(r.df)})" if isinstance(se, float) and math.isfinite(se)
               else "the differential's variance")
        shift = (f"the differential {c.fmt(r.cal_mean)} moves the estimate from "
                 f"{c.fmt(r.cheap_mean)} to {c.fmt(r.mean)}"
                 if hasattr(r, "cheap_mean") and hasattr(r, "mean") else
                 f"the differential {c.fmt(r.cal_mean)} moves the estimate")
        if cause == "variance":
            return (f"{head}, through the calibration's variance, not a bias: "
                    f"{shift}, which on the cheap attack's own precision would still read "
                    f"*{est}*, but {var} is too large to decide")
        if cause == "differential":
            return (f"{head}, through the differential (the attack's bias): {shift}, "
                    f"which reads *{est}* even on the cheap attack's own precision")
        if cause:
            return (f"{head}, through both: {shift} (on the cheap attack's own precision "
                    f"*{est}*), and {var} makes it *{r.verdict}*")
        return (f"{head} (minus a differential of {c.fmt(r.cal_mean)}, with its "
                "variance)")

    causes = list(moved["cal_moved_by"].fillna("")) if "cal_moved_by" in moved else []
    n_diff = sum(1 for x in causes if x.startswith("differential"))
    n_var = sum(1 for x in causes if x == "variance")
    split = (f" ({n_diff} through the differential, the attack's bias moving the "
             f"estimate across a boundary; {n_var} through the calibration's variance "
             "alone, the estimate itself reading as the cheap attack did)"
             if causes and all(causes) else "")
    rows = "; ".join(why(r) for r in moved.itertuples())
    return (f"**{len(moved)} calibrated primary reading(s) differ from the cheap attack's "
            f"alone**{split}: {rows}. ")


def _undecidable(fam: Any) -> str:
    """The headline's sentence on the calibrated primary rows whose power no seed count
    of the main comparison raises to the target: the calibration's seeds cap their
    degrees of freedom and its images fix the differential's variance. With a 1-df
    calibration (2 seeds) they cannot leave *inconclusive* at all (methods review 2,
    point 1); with more, a large effect can still decide them."""
    if "cal_seeds" not in fam or "seeds_needed" not in fam:
        return ""
    capped = fam[(fam["cal_seeds"].fillna(0) > 0) & fam["seeds_needed"].isna()
                 & fam["sd"].notna()]
    if capped.empty:
        return ""
    from . import claims as C

    seeds = sorted({int(n) for n in capped["cal_seeds"]})
    names = ", ".join(f"`{c}`" for c in capped["claim"])
    if max(seeds) <= 2:
        return (f"**{len(capped)} of them cannot leave *inconclusive* at this design**: "
                f"{names} are tested on {' or '.join(str(n - 1) for n in seeds)} degree(s) "
                f"of freedom, the calibration's {' or '.join(map(str, seeds))} seeds less "
                "one, so even an effect many times the SESOI would rarely clear Holm's "
                f"level; this run decides the other {len(fam) - len(capped)}. ")
    need = ""
    if "effect_for_power" in capped:
        eff = capped["effect_for_power"].dropna()
        if not eff.empty:
            ratio = [r.effect_for_power / C.get_claim(r.claim).sesoi
                     for r in capped.itertuples() if math.isfinite(r.effect_for_power)]
            need = (f" At this design they detect an effect with power 0.8 only at "
                    f"{min(ratio):.1f}-{max(ratio):.1f} times their SESOI.")
    return (f"**{len(capped)} of them cannot reach power {0.8:g} by adding seeds**: {names} "
            "subtract a differential measured on the calibration's "
            f"{' or '.join(map(str, seeds))} seeds, which caps their degrees of freedom "
            "and fixes that part of their variance; only a larger calibration (the "
            "`confirm` profile's) raises their power." + need + " ")


def _verdict_counts(rows: Any) -> str:
    """The verdicts of assessed ``rows`` counted (``claims.VERDICTS`` order), with how
    many of the holds were shown at least the SESOI: only those replicate a finding's
    size (methods review S2). Counts the rule's verdicts, not the table's display
    labels, which split *holds* in two (a section line once counted none of them)."""
    from . import claims as C

    counts = _counts(rows["verdict"], C.VERDICTS)
    holds = rows["verdict"] == "holds"
    if "size" in rows and holds.any():
        big = int((holds & (rows["size"] == C.SIZE_LABELS[True])).sum())
        counts += (f" ({big} of the holds shown at least the SESOI, the rest in direction "
                   "with the size open)")
    return counts


def _counts(verdicts: Any, order: Sequence[str]) -> str:
    """``12 holds, 3 does not hold, 1 not run``: the non-zero counts, in ``order``."""
    values = list(verdicts)
    text = ", ".join(f"{values.count(v)} {v}" for v in order if values.count(v))
    return text or "none"


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
    parser.add_argument("--no-book", dest="book", action="store_false",
                        help="do not build the book (build/book/) at the end")
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
    if args.book and not args.only:  # a partial run leaves the other notebooks stale
        _build_book(args.profile, args.figures_dir, args.notebook_dir)
    return 0


def _build_book(profile: str, fig_dir: Path | None, notebook_dir: Path | None) -> None:
    """The book (``make book``) from the notebooks just executed: about 35 s on two
    cores, never re-executing a notebook. A failure is reported, not fatal: the figures
    and the claims report are already written."""
    import subprocess

    cmd = [sys.executable, str(repo_root() / "scripts" / "build_book.py"), "--profile",
           profile]
    cmd += ["--figures-dir", str(fig_dir)] if fig_dir else []
    cmd += ["--notebook-dir", str(notebook_dir)] if notebook_dir else []
    start = time.perf_counter()
    if subprocess.run(cmd).returncode != 0:
        print("the book was not built (see above); figures and claims are written",
              file=sys.stderr)
    else:
        print(f"Book: build/book/index.html ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
