"""Device, thread and random-state helpers shared by training, attacks and embeddings.

Nothing here keeps global state: every function takes the seed or device it needs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

__all__ = ["resolve_device", "set_threads", "preserve_rng", "seeded", "check_choice"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"`` (or ``None``) into ``cuda`` when a GPU is present, else ``cpu``.

    An explicit ``"cuda"`` on a machine without one raises a ``ValueError`` instead of
    failing later inside a kernel.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but no CUDA device is available; "
                         "use device='cpu' or device='auto'")
    return dev


def set_threads(n: int | None = None) -> int:
    """Use ``n`` intra-op threads (default: ``$DRSL_THREADS`` if set, else the cores this
    process may use).

    On shared many-core hosts torch may start more threads than the cgroup allows, which
    hurts; the main job sets ``DRSL_THREADS`` when it runs notebooks side by side.
    """
    if n is None and os.environ.get("DRSL_THREADS"):
        n = int(os.environ["DRSL_THREADS"])
    if n is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            n = os.cpu_count() or 1
    if n < 1:
        raise ValueError(f"n={n!r} threads: must be >= 1")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def preserve_rng(device: torch.device | None = None) -> Iterator[None]:
    """Restore the global torch RNG state (CPU, and CUDA when used) on exit.

    torchattacks' APGD, FAB and Square call ``torch.manual_seed`` on the global RNG;
    wrapping them here keeps later training and shuffling unaffected.
    """
    devices = []
    if device is not None and torch.device(device).type == "cuda":
        devices = [torch.device(device).index or 0]
    with torch.random.fork_rng(devices=devices, enabled=True):
        yield


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run a block with the global RNG seeded to ``seed``, restoring the old state after."""
    with preserve_rng(device):
        torch.manual_seed(seed)
        yield


def check_choice(param: str, value: object, allowed: tuple | list | dict) -> None:
    """Raise a ``ValueError`` naming the parameter, the value and the allowed values."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{param}={value!r} is not valid; choose one of: {choices}")
