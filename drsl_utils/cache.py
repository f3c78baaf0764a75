"""Content-addressed on-disk cache: stable hashing of configurations and atomic writes.

Every cached artefact (trained weights, attack records, embeddings) lives under a file
name made from a hash of everything that determines it, plus the package version, so a
change of any input or of the code's version never returns a stale result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["stable_hash", "atomic_write", "tensor_fingerprint", "default_cache_dir"]

DEFAULT_CACHE_DIR = Path("data") / "cache"


def default_cache_dir() -> Path:
    """The cache root: ``$DRSL_CACHE_DIR`` if set, else ``data/cache`` under the repo root."""
    env = os.environ.get("DRSL_CACHE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / DEFAULT_CACHE_DIR


def _canonical(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__dc__": type(obj).__name__, **{k: _canonical(v) for k, v in
                                                 dataclasses.asdict(obj).items()}}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, int | float | np.integer | np.floating):
        # One spelling per number: tau=1 and tau=1.0 are the same configuration.
        return repr(float(obj))
    if isinstance(obj, np.ndarray | torch.Tensor):
        return tensor_fingerprint(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A hex digest of ``parts`` that is stable across processes and machines."""
    from . import __version__

    payload = json.dumps([_canonical(p) for p in parts] + [__version__], sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def tensor_fingerprint(x: np.ndarray | torch.Tensor) -> str:
    """Hash of an array's dtype, shape and bytes (for keys that depend on data)."""
    arr = x.detach().cpu().contiguous().numpy() if isinstance(x, torch.Tensor) else np.ascontiguousarray(x)
    h = hashlib.sha256()
    h.update(str(arr.dtype).encode())
    h.update(str(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()[:16]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and then rename the result onto ``path``.

    A reader never sees a half-written file, and a killed job leaves at most a stray
    temporary file behind, never a corrupt cache entry.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes files private (0600)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
