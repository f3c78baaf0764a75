"""Device, thread and random-state helpers shared by training, attacks and embeddings.

Nothing here keeps global state: every function takes the seed or device it needs.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import torch

from .errors import DeviceError, UnknownNameError

__all__ = ["resolve_device", "module_device", "set_threads", "preserve_rng", "seeded",
           "check_choice"]


def module_device(model: torch.nn.Module) -> torch.device:
    """The device ``model`` lives on: its first parameter's, else its first buffer's,
    else the CPU. A model with no parameters (a fixed function of the input, a wrapper
    around a non-torch classifier) is a model too, and ``next(model.parameters())``
    would raise ``StopIteration`` on it."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if first is None else first.device


def _mps_available() -> bool:
    """Whether Apple's Metal (MPS) backend can run here (Apple silicon, macOS 12.3+, a
    torch built with MPS)."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"`` (or ``None``) into ``cuda`` when a GPU is present, else ``mps``
    on Apple silicon, else ``cpu``.

    Anything else (``"gpu"``, ``"tpu"``, ``"meta"``) and an explicit ``"cuda"`` or
    ``"mps"`` on a machine without one raise :class:`~drsl_utils.errors.DeviceError`
    (a ``ValueError``) naming the value and the allowed ones, instead of failing later
    inside a kernel.

    On MPS, the package keeps float32 on the device (Metal has no float64; every float64
    step runs on CPU arrays). An operation Metal lacks raises ``NotImplementedError``
    unless PyTorch's own CPU fallback is on (``PYTORCH_ENABLE_MPS_FALLBACK=1``, which
    must be set before Python starts); choosing MPS without it warns once. No path has
    been verified on real MPS hardware yet.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        dev = torch.device("mps" if _mps_available() else "cpu")
    else:
        dev = _parse_device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise DeviceError(f"device={device!r} was asked for, but no CUDA device is "
                              "available; use device='cpu' or device='auto'")
        if dev.type == "cuda" and dev.index is not None and \
                dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device={device!r} was asked for, but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s) (allowed: "
                              f"'cuda:0' to 'cuda:{torch.cuda.device_count() - 1}')")
        if dev.type == "mps" and not _mps_available():
            raise DeviceError(f"device={device!r} was asked for, but Apple's MPS backend is "
                              "not available here (it needs Apple silicon, macOS 12.3 or "
                              "later and a torch built with MPS); use device='cpu' or "
                              "device='auto'")
    if dev.type == "mps":
        _note_mps_fallback()
    return dev


_DEVICE_TYPES = ("cpu", "cuda", "mps")
_DEVICES = "'auto', 'cpu', 'cuda', 'cuda:<index>', 'mps'"


def _parse_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` of a type the package runs on; torch itself
    accepts ``"meta"`` or ``"xla"``, which would fail later inside a kernel."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"device={device!r} is not valid; choose one of: {_DEVICES}") \
            from exc
    if dev.type not in _DEVICE_TYPES:
        raise DeviceError(f"device={device!r} is not valid; choose one of: {_DEVICES}")
    return dev


def _note_mps_fallback() -> None:
    """Say once per process (Python's default warning filter shows a warning from one
    line once) that operations Metal lacks will fail unless PyTorch falls back to the
    CPU for them."""
    import os
    import warnings

    if os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK", "0") != "1":
        warnings.warn("device='mps': an operation that Metal lacks will raise "
                      "NotImplementedError; start Python with PYTORCH_ENABLE_MPS_FALLBACK=1 "
                      "to run such operations on the CPU instead (PyTorch then warns once "
                      "per operation). drsl_utils has not been verified on real MPS "
                      "hardware.", UserWarning, stacklevel=1)


def set_threads(n: int | None = None) -> int:
    """Use ``n`` threads in this process and the ones it starts (default:
    ``$DRSL_THREADS`` if set, else the cores this process may use); returns the count.

    On shared many-core hosts torch may start more threads than the cgroup allows, which
    hurts; the main job sets ``DRSL_THREADS`` when it runs notebooks side by side. The
    decision and the environment it hands on live in :mod:`drsl_utils.resources`.
    """
    from .resources import use_threads

    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n={n!r} threads: must be >= 1")
    return use_threads(n)


@contextlib.contextmanager
def preserve_rng(device: torch.device | None = None) -> Iterator[None]:
    """Restore the global torch RNG state (CPU, and the CUDA or MPS device when used)
    on exit.

    torchattacks' APGD, FAB and Square call ``torch.manual_seed`` on the global RNG,
    which reseeds every device's generator; wrapping them here keeps later training and
    shuffling unaffected.
    """
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type in ("cuda", "mps"):
        with torch.random.fork_rng(devices=[dev.index or 0], enabled=True,
                                   device_type=dev.type):
            yield
        return
    with torch.random.fork_rng(devices=[], enabled=True):
        yield


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run a block with the global RNG seeded to ``seed``, restoring the old state after."""
    with preserve_rng(device):
        torch.manual_seed(seed)
        yield


def check_choice(param: str, value: object, allowed: tuple | list | dict) -> None:
    """Raise :class:`~drsl_utils.errors.UnknownNameError` (a ``ValueError``) naming the
    parameter, the value and the allowed values."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise UnknownNameError(f"{param}={value!r} is not valid; choose one of: {choices}")
