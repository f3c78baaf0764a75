"""Where expensive units run: inline, in local worker processes, or on a Slurm cluster.

A *unit* is one independent, cached piece of work (training one model, attacking one
model). The on-disk cache (``cache.py``) is the source of truth: a unit writes its entry
there, so a unit that finished survives a killed job, and running the same units again
only loads them. An :class:`Executor` only decides where ``fn(item)`` is called:

- ``inline``: a plain loop in this process (the default).
- ``local``: a pool of ``spawn``-ed worker processes on this machine, each with its share
  of the cores (:mod:`drsl_utils.resources`).
- ``slurm``: one Slurm job array per :meth:`Executor.map` call, through submitit's own
  job API (``done()``, ``result()``, ``exception()``, ``helpers.as_completed``). The one
  thing added to submitit is :class:`QueueWatcher`, which asks ``squeue`` where
  submitit asks ``sacct``: without Slurm accounting, submitit's own watcher never sees
  a job that Slurm killed end. On top come this project's policy, a deadline per unit
  and ``retries`` for jobs that Slurm ended without a result, and its report: what
  still fails is raised as one :class:`UnitFailed` after the other units finished.

:func:`fan_out` is how the engines use an executor: the units missing from the cache
run there first, then the caller loads every entry in its own pass (``train_many``,
``experiments.attack_zoo``).

``fn`` must be a picklable top-level function (importable by name in the workers and in
the Slurm jobs), and ``items`` picklable values. Choose an executor with
:func:`get_executor` (argument, else ``$DRSL_EXECUTOR``, else ``inline``); cluster
settings come from :class:`SlurmConfig` (``slurm.toml``).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import os
import re
import shutil
import subprocess
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import as_completed
from submitit.slurm.slurm import SlurmInfoWatcher
from tqdm.auto import tqdm

from .resources import available_cores, env_int, threads_per_worker, use_threads

__all__ = [
    "EXECUTORS",
    "SlurmConfig",
    "UnitFailed",
    "Failure",
    "Executor",
    "InlineExecutor",
    "LocalExecutor",
    "SlurmExecutor",
    "QueueWatcher",
    "get_executor",
    "fan_out",
    "current_job_id",
    "slurm_available",
]

EXECUTORS = ("inline", "local", "slurm")

_REPO_ROOT = Path(__file__).resolve().parent.parent

#: Slurm job states in which a job may still produce its result (``UNKNOWN``: not yet
#: seen in the queue).
_ACTIVE_STATES = frozenset({
    "UNKNOWN", "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
    "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
})
#: States in which a job has not started yet (the deadline then waits on the queue).
_WAITING_STATES = frozenset({"UNKNOWN", "PENDING", "REQUEUED"})
#: Slurm's default MaxArraySize is 1001: bigger calls are split into arrays of this size.
_MAX_ARRAY = 1000
#: ``sinfo`` node states in which a node takes jobs (flags such as ``~`` stripped).
_USABLE_NODE_STATES = ("idle", "mix", "mixed", "alloc", "allocated")
#: Bounds of the whole-number settings of :class:`SlurmConfig`.
_AT_LEAST = {"time_min": 1, "cpus_per_task": 1, "max_parallel": 1, "gpus_per_node": 0,
             "retries": 0}


# ------------------------------------------------------------------------ configuration


@dataclass
class SlurmConfig:
    """How units are submitted to Slurm (one job per unit, in one array per call).

    Attributes:
        partition: the Slurm partition (None: the cluster's default).
        time_min: time limit of one unit, in minutes.
        cpus_per_task: cores per unit; the unit's torch uses as many threads.
        gpus_per_node: GPUs per unit (0: none requested).
        mem_gb: memory per unit, in GB.
        max_parallel: at most this many units of one array run at a time.
        folder: where submitit writes job scripts, pickles and logs; must be on a
            filesystem the nodes share (default ``<cache root>/slurm``).
        poll_s: seconds between two looks at the queue.
        deadline_s: the longest wait for one unit: a job running longer than this, or
            a job still queued while nothing of its call started or ended for this long,
            is cancelled and reported (None: ``time_min * 60 * 2 + 300``). It guards
            against waiting forever; Slurm's own time limit normally ends a job first.
        retries: how many times a job that Slurm ended without a result (failed,
            cancelled, out of time or memory, gone from the queue) is submitted again.
            A unit that raised a Python exception is not retried.
        extra: more submitit Slurm parameters, e.g. ``{"slurm_account": "lab"}``
            (the ``slurm_`` prefix may be left out).
    """

    partition: str | None = None
    time_min: int = 60
    cpus_per_task: int = 2
    gpus_per_node: int = 0
    mem_gb: float = 8
    max_parallel: int = 64
    folder: Path | None = None
    poll_s: float = 1.0
    deadline_s: float | None = None
    retries: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, low in _AT_LEAST.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}={value!r}: must be an integer >= {low}")
        for name in ("mem_gb", "poll_s", "deadline_s"):
            value = getattr(self, name)
            if not (value is None and name == "deadline_s") and not value > 0:
                raise ValueError(f"{name}={value!r}: must be > 0")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra={self.extra!r}: must be a table of submitit parameters")
        if self.folder is not None:
            self.folder = Path(self.folder).expanduser()

    @property
    def log_folder(self) -> Path:
        """The folder submitit writes to (``folder``, or ``<cache root>/slurm``)."""
        if self.folder is not None:
            return self.folder
        from .cache import default_cache_dir

        return default_cache_dir() / "slurm"

    @property
    def deadline(self) -> float:
        """``deadline_s``, or its default ``time_min * 60 * 2 + 300`` seconds."""
        if self.deadline_s is not None:
            return float(self.deadline_s)
        return self.time_min * 60 * 2 + 300.0

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The settings a config file may hold."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> SlurmConfig:
        """Read a config file, then apply ``overrides`` (those that are None are ignored).

        The file is ``path``, else ``$DRSL_SLURM_CONFIG``, else ``slurm.toml`` in the
        repository root if there is one (else the defaults). It is TOML with the
        attribute names as keys; ``extra`` is a table::

            partition = "gpu"
            time_min = 120
            gpus_per_node = 1
            [extra]
            slurm_account = "lab"

        Raises:
            ValueError: a key that is not a setting (the message lists the valid ones),
                or a value out of range.
            FileNotFoundError: an explicitly named file does not exist.
        """
        if path is None and os.environ.get("DRSL_SLURM_CONFIG"):
            path = os.environ["DRSL_SLURM_CONFIG"]
        values: dict[str, Any] = {}
        if path is not None:
            file = Path(path).expanduser()
            if not file.is_file():
                raise FileNotFoundError(f"Slurm config {file} does not exist")
        else:
            file = _REPO_ROOT / "slurm.toml"
        if file.is_file():
            with file.open("rb") as fh:
                values = tomllib.load(fh)
            cls._check_keys(values, f"in {file}")
        given = {k: v for k, v in overrides.items() if v is not None}
        cls._check_keys(given, "in the overrides")
        return cls(**(values | given))

    @classmethod
    def _check_keys(cls, values: dict[str, Any], where: str) -> None:
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise ValueError(f"unknown Slurm setting(s) {unknown} {where}; "
                             f"valid keys: {', '.join(cls.keys())}")


# ------------------------------------------------------------------------------ errors


@dataclass(frozen=True)
class Failure:
    """One unit that did not produce a result.

    Attributes:
        unit: ``describe(item)``.
        index: the item's position in the call.
        job_id: the Slurm job of the last attempt (None inline and local).
        state: the final state (``FAILED``, ``CANCELLED``, ``TIMEOUT``, ...,
            ``EXCEPTION`` when the function raised).
        attempts: how many times the unit was run.
        logs: paths of the last attempt's stdout and stderr logs.
        traceback: the Python traceback, when the function raised.
        log_tail: the end of the stderr log, when there is no traceback.
    """

    unit: str
    index: int
    job_id: str | None
    state: str
    attempts: int = 1
    logs: tuple[str, ...] = ()
    traceback: str | None = None
    log_tail: str | None = None

    def describe(self) -> str:
        """A few lines for an error message."""
        where = f"Slurm job {self.job_id}" if self.job_id else "local run"
        tries = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
        lines = [f"unit {self.unit}: {where}, state {self.state} after {tries}"]
        if self.logs:
            lines.append(f"  logs: {', '.join(self.logs)}")
        if self.traceback:
            lines.append("  " + self.traceback.rstrip().replace("\n", "\n  "))
        elif self.log_tail:
            lines.append("  end of stderr:\n    " + self.log_tail.rstrip().replace("\n", "\n    "))
        return "\n".join(lines)


class UnitFailed(RuntimeError):
    """Some units of one :meth:`Executor.map` call failed; the others finished.

    Attributes:
        failures: one :class:`Failure` per failed unit.
        results: the results in item order, None where the unit failed.
    """

    def __init__(self, failures: Sequence[Failure], results: Sequence[Any] = ()):
        self.failures = list(failures)
        self.results = list(results)
        total = len(self.results) or len(self.failures)
        head = f"{len(self.failures)} of {total} unit(s) failed"
        super().__init__(head + ":\n" + "\n".join(f.describe() for f in self.failures))


# ------------------------------------------------------------------------- job identity


def current_job_id() -> str | None:
    """The Slurm job this process runs in: ``"<array job>_<task>"`` for an array task,
    the plain job id otherwise, None outside Slurm. Units store it in their metadata."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def slurm_available() -> bool:
    """True when ``sbatch`` exists and ``sinfo`` answers within 5 s with a node that is
    idle, mixed or allocated (that is, one that runs jobs)."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    if out.returncode != 0:
        return False
    for line in out.stdout.split():
        state = line.strip()
        if "*" in state:  # the node does not respond
            continue
        if state.rstrip("~#!%$@^-+") in _USABLE_NODE_STATES:
            return True
    return False


# ---------------------------------------------------------------------------- helpers


def _run_unit(fn: Callable[[Any], Any], item: Any, threads: int | None) -> Any:
    """What a worker process or a Slurm job runs: set the thread count, call ``fn``."""
    if threads is not None:
        use_threads(threads)
    return fn(item)


def _square(x: float) -> float:
    """A trivial unit (for tests and for measuring the executors' overhead)."""
    return x * x


def _getpid(_: Any) -> int:
    """A trivial unit that reports which process ran it (for tests)."""
    return os.getpid()


def _describe_safe(describe: Callable[[Any], str], item: Any) -> str:
    try:
        return str(describe(item))
    except Exception as error:  # noqa: BLE001 - a message must not fail
        return f"<item: describe failed with {error!r}>"


def _job_name(desc: str) -> str:
    return "drsl-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", desc).strip("-") or "units")[:40]


# --------------------------------------------------------------------------- executors


class Executor:
    """Runs ``fn(item)`` for every item and returns the results in item order.

    Attributes:
        name: ``"inline"``, ``"local"`` or ``"slurm"``.
        last_jobs: per item of the last :meth:`map` call, the Slurm job that produced
            its result (``"123_4"``), or None (inline, local, or the unit failed
            before it was submitted).
    """

    name = ""

    def __init__(self) -> None:
        self.last_jobs: list[str | None] = []

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *,
            describe: Callable[[Any], str] = repr, desc: str = "units") -> list[Any]:
        """Run ``fn(item)`` for each item; results in the order of ``items``.

        Args:
            fn: a picklable top-level function of one argument.
            items: picklable arguments, one per unit.
            describe: names a unit in progress output and error messages.
            desc: label of the progress bar (and of the Slurm jobs).

        Raises:
            UnitFailed: (local, slurm) some units failed; raised after all others ended.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class InlineExecutor(Executor):
    """A plain loop in this process; an exception in a unit propagates at once."""

    name = "inline"

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *,
            describe: Callable[[Any], str] = repr, desc: str = "units") -> list[Any]:
        items = list(items)
        self.last_jobs = [None] * len(items)
        return [fn(item) for item in items]


class LocalExecutor(Executor):
    """``workers`` spawned processes on this machine, ``threads`` torch threads each.

    Args:
        workers: number of worker processes (at most one per unit is started).
        threads: torch threads per worker (default ``$DRSL_THREADS``, else the cores
            divided by ``workers``, at least 1).
    """

    name = "local"

    def __init__(self, workers: int, threads: int | None = None) -> None:
        super().__init__()
        if workers < 1:
            raise ValueError(f"workers={workers!r}: must be >= 1")
        self.workers = workers
        self.threads = threads or env_int("DRSL_THREADS") or threads_per_worker(workers)

    def __repr__(self) -> str:
        return f"LocalExecutor(workers={self.workers}, threads={self.threads})"

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *,
            describe: Callable[[Any], str] = repr, desc: str = "units") -> list[Any]:
        items = list(items)
        self.last_jobs = [None] * len(items)
        if not items:
            return []
        results: list[Any] = [None] * len(items)
        failures: list[Failure] = []
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(self.workers, len(items)),
                                    mp_context=context, initializer=use_threads,
                                    initargs=(self.threads,)) as pool:
            futures = {pool.submit(_run_unit, fn, item, self.threads): i
                       for i, item in enumerate(items)}
            try:
                with tqdm(total=len(items), desc=desc, unit="unit") as bar:
                    for future in cf.as_completed(futures):
                        i = futures[future]
                        try:
                            results[i] = future.result()
                        except BrokenProcessPool as error:
                            failures.append(Failure(_describe_safe(describe, items[i]), i, None,
                                                    "CRASHED", traceback=repr(error)))
                        except Exception as error:
                            text = "".join(traceback.format_exception(error))
                            failures.append(Failure(_describe_safe(describe, items[i]), i, None,
                                                    "EXCEPTION", traceback=text))
                        bar.update(1)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        if failures:
            raise UnitFailed(sorted(failures, key=lambda f: f.index), results)
        return results


class QueueWatcher(SlurmInfoWatcher):
    """submitit's Slurm watcher, asking ``squeue`` instead of ``sacct``.

    submitit's own watcher asks only ``sacct``, which fails without Slurm accounting (a
    single-node Slurm has none), and counts the resulting ``UNKNOWN`` as still running:
    ``result()`` then waits forever for a job that Slurm killed. ``squeue`` answers
    everywhere and keeps an ended job's state for ``MinJobAge`` (300 s by default); a
    registered job that it no longer lists has left the queue (``VANISHED``), which
    counts as ended. Installed on a job (``job.watcher``), it makes submitit's own
    ``done()``, ``result()``, ``exception()`` and ``helpers.as_completed`` see such ends.

    Args:
        delay_s: the longest pause between two ``squeue`` calls (submitit asks more
            often just after a job was registered).
    """

    def __init__(self, delay_s: float = 1.0) -> None:
        super().__init__(delay_s=delay_s)  # type: ignore[arg-type]  # a float works
        self.jobs: set[str] = set()

    def register_job(self, job_id: str) -> None:
        """Watch ``job_id`` (as submitit does), and remember it to tell a job that left
        the queue from one never seen."""
        super().register_job(job_id)
        self.jobs.add(job_id)

    # submitit's hook for the command that ``update()`` runs: an underscore method of a
    # class meant to be subclassed (SlurmInfoWatcher overrides it to ask sacct). This is
    # the only private name used, and tests/test_executor.py fails if submitit renames it.
    def _make_command(self) -> list[str] | None:
        if not self.jobs:
            return None
        # Ask for all of this user's jobs, not ``-j``: squeue fails as a whole when one
        # of the given ids has left the queue.
        return ["squeue", "--me", "-h", "-r", "-t", "all", "-o", "%i|%T|%r"]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        """``{job id: {"State": ..., "Reason": ...}}`` for every watched job, from the
        output of the command above (a watched job missing from it: ``VANISHED``)."""
        text = string.decode() if isinstance(string, bytes) else string
        info = {job: {"JobID": job, "State": "VANISHED", "Reason": ""} for job in self.jobs}
        for line in text.splitlines():
            job_id, state, reason = (line.strip().split("|") + ["", ""])[:3]
            if job_id in info:
                info[job_id] = {"JobID": job_id, "State": (state.split() or ["UNKNOWN"])[0],
                                "Reason": reason.strip()}
        return info

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        """True once the job left every state in which it may still produce a result."""
        return self.get_state(job_id, mode=mode) not in _ACTIVE_STATES


@dataclass(eq=False)
class _Attempt:
    """One submission of one unit (compared by identity)."""

    index: int
    job: Any  # submitit.SlurmJob
    number: int
    submitted: float
    started: float | None = None  # when the queue first showed it past PENDING


class SlurmExecutor(Executor):
    """One submitit job array per :meth:`map` call, watched by a :class:`QueueWatcher`.

    Args:
        config: the cluster settings (default: :meth:`SlurmConfig.load`).

    Raises:
        RuntimeError: no Slurm here (``sbatch`` is not on the PATH).
    """

    name = "slurm"

    def __init__(self, config: SlurmConfig | None = None) -> None:
        super().__init__()
        if shutil.which("sbatch") is None:
            raise RuntimeError(
                "executor 'slurm' needs Slurm, but there is no 'sbatch' on the PATH. Use "
                "'--executor local' (or DRSL_EXECUTOR=local) to run units in worker "
                "processes here, or start a single-node cluster on this machine with "
                "'bash scripts/slurm-local.sh start' (as root).")
        self.config = config if config is not None else SlurmConfig.load()

    def __repr__(self) -> str:
        return f"SlurmExecutor({self.config!r})"

    def _submitit_executor(self, desc: str) -> submitit.SlurmExecutor:
        # submitit's Slurm executor itself, not its AutoExecutor: the latter finds its
        # executors through plugins (submitit 1.4 needs pkg_resources for that).
        cfg = self.config
        folder = cfg.log_folder
        folder.mkdir(parents=True, exist_ok=True)
        ex = submitit.SlurmExecutor(folder=folder / "%j")
        params: dict[str, Any] = {
            "job_name": _job_name(desc),
            "time": cfg.time_min,
            "cpus_per_task": cfg.cpus_per_task,
            "mem": f"{round(cfg.mem_gb * 1024)}MB",
            "array_parallelism": cfg.max_parallel,
        }
        if cfg.gpus_per_node:
            params["gpus_per_node"] = cfg.gpus_per_node
        if cfg.partition:
            params["partition"] = cfg.partition
        for key, value in cfg.extra.items():
            params[key.removeprefix("slurm_")] = value
        ex.update_parameters(**params)
        return ex

    def _submit(self, ex: submitit.SlurmExecutor, watcher: QueueWatcher,
                fn: Callable[[Any], Any], items: Sequence[Any], indices: Sequence[int],
                number: int = 1) -> list[_Attempt]:
        """Submit ``items[i]`` for each index, as one array (or a few, for huge calls),
        with ``watcher`` installed on every job."""
        threads = self.config.cpus_per_task
        jobs = []
        for lo in range(0, len(indices), _MAX_ARRAY):
            part = indices[lo:lo + _MAX_ARRAY]
            jobs += ex.map_array(_run_unit, [fn] * len(part), [items[i] for i in part],
                                 [threads] * len(part))
        now = time.monotonic()
        for i, job in zip(indices, jobs):
            job.watcher = watcher
            watcher.register_job(job.job_id)
            self.last_jobs[i] = job.job_id
        return [_Attempt(i, job, number, now) for i, job in zip(indices, jobs)]

    @staticmethod
    def _cancel(job_ids: Iterable[str]) -> None:
        """One ``scancel`` for all of them (a call per job is slow for big arrays)."""
        ids = sorted(set(job_ids))
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=30, check=False)

    @staticmethod
    def _failure(attempt: _Attempt, unit: str, state: str,
                 trace: str | None = None) -> Failure:
        job = attempt.job
        tail = None if trace else "\n".join((job.stderr() or "").rstrip().splitlines()[-20:])
        return Failure(unit, attempt.index, job.job_id, state, attempt.number,
                       (str(job.paths.stdout), str(job.paths.stderr)), trace, tail or None)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *,
            describe: Callable[[Any], str] = repr, desc: str = "units") -> list[Any]:
        items = list(items)
        self.last_jobs = [None] * len(items)
        if not items:
            return []
        ex = self._submitit_executor(desc)
        watcher = QueueWatcher(delay_s=self.config.poll_s)
        results: list[Any] = [None] * len(items)
        failures: list[Failure] = []
        active = self._submit(ex, watcher, fn, items, range(len(items)))
        moved = time.monotonic()  # when a unit of this call last started or ended
        try:
            with tqdm(total=len(items), desc=desc, unit="unit") as bar:
                while active:
                    ended, again = self._collect(active, items, results, failures, describe)
                    bar.update(len(ended) - len(again))
                    if ended:
                        moved = time.monotonic()
                    if again:
                        bar.write(f"{desc}: submitting again: " + "; ".join(
                            f"{_describe_safe(describe, items[a.index])} (job {a.job.job_id} "
                            f"{a.job.state})" for a in again))
                    active = [a for a in active if a not in ended]
                    for number in sorted({a.number for a in again}):
                        active += self._submit(ex, watcher, fn, items,
                                               [a.index for a in again if a.number == number],
                                               number + 1)
                    late, moved = self._late(active, moved)
                    for attempt, what in late:
                        self._cancel([attempt.job.job_id])
                        unit = _describe_safe(describe, items[attempt.index])
                        failures.append(self._failure(attempt, unit,
                                                      f"DEADLINE ({what}; cancelled)"))
                    bar.update(len(late))
                    active = [a for a in active if all(a is not x for x, _ in late)]
                    running = sum(a.started is not None for a in active)
                    bar.set_postfix_str(f"{running} running, {len(active) - running} queued",
                                        refresh=False)
        except BaseException:
            # Interrupted (Ctrl-C) or broken: leave no jobs behind in the queue.
            self._cancel(a.job.job_id for a in active)
            raise
        if failures:
            raise UnitFailed(sorted(failures, key=lambda f: f.index), results)
        return results

    def _collect(self, active: list[_Attempt], items: Sequence[Any], results: list[Any],
                 failures: list[Failure], describe: Callable[[Any], str]
                 ) -> tuple[list[_Attempt], list[_Attempt]]:
        """Wait (at most a few polls) for jobs to end, through submitit's own
        ``as_completed``, ``exception()`` and ``result()``; returns the attempts that
        ended, and among them those to submit again.

        A job whose result file holds a value is done; one holding a traceback failed
        (not retried: the code raised). A job that ended without a result file (after
        submitit's grace for a lagging shared filesystem) is submitted again while
        ``retries`` allow, else reported with its last Slurm state.
        """
        by_job = {id(a.job): a for a in active}
        ended: list[_Attempt] = []
        again: list[_Attempt] = []
        try:
            for job in as_completed([a.job for a in active], poll_frequency=self.config.poll_s,
                                    timeout=10 * self.config.poll_s):
                attempt = by_job[id(job)]
                ended.append(attempt)
                error = job.exception()
                if error is None:
                    results[attempt.index] = job.result()
                    continue
                unit = _describe_safe(describe, items[attempt.index])
                if job.paths.result_pickle.exists():  # the unit itself raised
                    failures.append(self._failure(attempt, unit, "FAILED (exception)",
                                                  str(error)))
                elif attempt.number <= self.config.retries:
                    again.append(attempt)
                else:
                    failures.append(self._failure(attempt, unit, job.state))
        except TimeoutError:  # the rest are still out: time to check the deadlines
            pass
        return ended, again

    def _late(self, active: list[_Attempt], moved: float
              ) -> tuple[list[tuple[_Attempt, str]], float]:
        """The attempts past the deadline, each with what it was doing, and when a unit
        last started or ended (``moved``, updated).

        The deadline counts a job's time from when it started; a job still queued may
        wait for it as long as the queue moves (some unit of this call started or ended
        within the deadline), so throttled arrays are not cut short.
        """
        deadline = self.config.deadline
        now = time.monotonic()
        late = []
        for attempt in active:
            job = attempt.job
            state = job.state
            if attempt.started is None and state not in _WAITING_STATES:
                attempt.started = moved = now
            if attempt.started is not None:
                if now - attempt.started > deadline:
                    late.append((attempt, f"still {state} {deadline:.0f} s after it started"))
            elif now - max(attempt.submitted, moved) > deadline:
                reason = job.watcher.get_info(job.job_id, mode="cache").get("Reason")
                why = f" ({reason})" if reason else ""
                late.append((attempt, f"still {state}{why}, nothing in the queue moved for "
                                      f"{deadline:.0f} s"))
        return late, moved


# ----------------------------------------------------------------------------- factory


def get_executor(name: str | None = None, *, workers: int | None = None,
                 slurm: SlurmConfig | None = None) -> Executor:
    """The executor called ``name`` (else ``$DRSL_EXECUTOR``, else ``"inline"``).

    Args:
        name: ``"inline"``, ``"local"`` or ``"slurm"``.
        workers: ``local`` worker processes (default ``$DRSL_WORKERS``, else the cores
            divided by ``$DRSL_THREADS`` (1 if unset), at least 1).
        slurm: cluster settings for ``slurm`` (default :meth:`SlurmConfig.load`).

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
        RuntimeError: ``slurm`` where no Slurm is reachable.
    """
    if name is None:
        name = os.environ.get("DRSL_EXECUTOR", "").strip() or "inline"
    key = name.strip().lower()
    if key not in EXECUTORS:
        raise ValueError(f"executor={name!r}: must be one of {', '.join(EXECUTORS)}")
    if key == "inline":
        return InlineExecutor()
    if key == "local":
        if workers is None:
            workers = env_int("DRSL_WORKERS")
        if workers is None:
            workers = max(1, available_cores() // (env_int("DRSL_THREADS") or 1))
        return LocalExecutor(workers)
    return SlurmExecutor(slurm)


def fan_out(fn: Callable[[Any], Any], missing: Callable[[], Iterable[Any]], *,
            describe: Callable[[Any], str], desc: str, executor: str | None = None
            ) -> list[Any]:
    """Run ``fn`` on ``executor`` for each item of ``missing()`` (the units whose cache
    entries are not there yet), so that the caller's own pass over its grid then only
    loads them; the cache is the hand-over. Inline, nothing runs and ``missing`` is not
    called: the caller's pass computes each entry itself. ``describe`` and ``desc`` are
    :meth:`Executor.map`'s, ``executor`` :func:`get_executor`'s.

    Returns ``fn``'s results in the order of ``missing()`` ([] when nothing ran).

    Raises:
        UnitFailed: (local, slurm) some units failed; raised after all others ended.
    """
    runner = get_executor(executor)
    items = [] if runner.name == "inline" else list(missing())
    return runner.map(fn, items, describe=describe, desc=desc) if items else []
