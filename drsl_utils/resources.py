"""Cores and threads, decided in one place: how many cores this process may use, how
many threads each of several side-by-side workers gets, and the environment that hands
that number to child processes.

Every thread pool in the stack needs the cap: torch's own (set in-process), and OpenMP,
OpenBLAS, MKL and numba (UMAP, pynndescent), which read their variables when they start.
The suite, the executors' workers and jobs, and the notebooks (through
``runtime.set_threads``, which ``experiments.setup`` calls) all go through
:func:`use_threads` and :func:`thread_env`, so a worker and a notebook kernel started
for the same share of the machine see the same caps.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping

__all__ = ["THREAD_VARIABLES", "TRAIN_THREADS", "available_cores", "env_int",
           "threads_per_worker", "default_threads", "thread_env", "use_threads",
           "train_threads", "torch_threads", "child_env"]

#: The variables that cap the thread pools torch does not own. Each library reads its
#: own when it starts, so they matter for child processes (kernels, workers, jobs).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


#: torch's threads while a model trains on the CPU, whatever the machine or this
#: process's share of it. With 1 and 2 threads the same seed trains a different model
#: (reductions run in another order and the difference grows over training: test
#: accuracy 0.8732 vs 0.8716 for one GCE model), so the trained model, and every verdict
#: drawn from it, would depend on the core count and on how many notebooks run side by
#: side. One fixed count makes a model a function of its configuration (and the CPU's
#: instruction set) only. Parallelism comes from training models side by side: the
#: suite's jobs, the executors' workers. ``$DRSL_TRAIN_THREADS`` overrides it, at the
#: price of that guarantee.
TRAIN_THREADS = 1


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which honours a cgroup or
    ``taskset``), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def env_int(name: str) -> int | None:
    """``$name`` as a whole number >= 1, None when unset or empty.

    Raises:
        ValueError: the variable holds something else (the message names it).
    """
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"${name}={value!r}: must be a whole number >= 1") from None
    if number < 1:
        raise ValueError(f"${name}={value!r}: must be a whole number >= 1")
    return number


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Each of ``workers`` side-by-side processes gets an equal share of ``cores``
    (default :func:`available_cores`), at least one thread."""
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}: must be a whole number >= 1")
    return max(1, (cores if cores is not None else available_cores()) // workers)


def default_threads() -> int:
    """This process's thread count: ``$DRSL_THREADS`` (set by whoever started it for a
    share of the machine), else every core it may use."""
    return env_int("DRSL_THREADS") or available_cores()


def thread_env(threads: int) -> dict[str, str]:
    """The environment that gives a child process ``threads`` threads in every pool:
    ``DRSL_THREADS`` (read by :func:`default_threads` there) and
    :data:`THREAD_VARIABLES`."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads={threads!r}: must be a whole number >= 1")
    return {"DRSL_THREADS": str(threads), **{k: str(threads) for k in THREAD_VARIABLES}}


def use_threads(threads: int | None = None) -> int:
    """Give this process, and the processes it starts, ``threads`` threads (default
    :func:`default_threads`); returns the count.

    torch is capped at once if it is imported (and reads ``DRSL_THREADS`` through
    ``runtime.set_threads`` otherwise). ``NUMBA_NUM_THREADS`` is left alone once numba
    is imported: numba refuses a new value after its workers started, and its pool is
    already sized.
    """
    threads = default_threads() if threads is None else threads
    env = thread_env(threads)
    if "numba" in sys.modules:
        env.pop("NUMBA_NUM_THREADS")
    os.environ.update(env)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def train_threads() -> int:
    """torch's thread count while a model trains on the CPU: ``$DRSL_TRAIN_THREADS``,
    else :data:`TRAIN_THREADS`."""
    return env_int("DRSL_TRAIN_THREADS") or TRAIN_THREADS


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads in this process and restore the
    previous count after; ``None`` leaves the count alone (a GPU's arithmetic does not
    depend on it). Child processes' caps (:func:`thread_env`) are not touched."""
    if threads is None:
        yield
        return
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads={threads!r}: must be a whole number >= 1")
    import torch

    previous = torch.get_num_threads()
    if previous != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


@contextlib.contextmanager
def child_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the processes started in the block (notebook
    kernels inherit this process's environment), and restore them after."""
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
