"""UMAP views of where adversarial examples land, with numbers to back the picture.

DRSL's fifth finding: in a 2-D UMAP of the features, adversarial examples of CE/GCE
models spread out, while DRSL's sit at the tips of the class clusters. This module

- fits UMAP once on clean features (:func:`fit_embedding`) and maps adversarial
  features into the same layout (:meth:`Embedding.transform`), or does both in one
  cached call (:func:`embed_clean_and_adv`);
- draws one panel per model (:func:`plot_adversarial_umap`);
- measures the picture (:func:`cluster_metrics`, :func:`cluster_metrics_table`), with
  the per-sample values behind the numbers (:func:`cluster_metrics_samples`).

Caching: results live in ``<cache_dir>/embeddings/<code>/`` (``cache.py``: the folder
carries a fingerprint of this module's code) under keys that hash the input bytes
(``tensor_fingerprint``), the UMAP parameters and the umap-learn version. Unreadable
entries are quarantined and recomputed. A warm :func:`embed_clean_and_adv` reads one ``.npz`` and
never imports umap, so it returns in well under a second.

Compile time: umap-learn's numba kernels compile on first use in each process (about
35 s on the project machines; pynndescent's own kernels are cached on disk by
pynndescent). umap-learn does not ask numba to cache its kernels, so
:func:`enable_numba_cache` turns numba's on-disk cache on for them before the first
compile (numba stores it in ``__pycache__`` beside umap's sources, or under
``$NUMBA_CACHE_DIR`` if set). Measured on the 2-core project machine, a 200-point fit
plus transform in a fresh process took 12 s without it and 0.3 s with a warm cache.
:func:`warm_up` pays the compile up front with a visible message.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from scipy.spatial import cKDTree

from .cache import (
    atomic_write,
    compute_once,
    entry_dir,
    load_entry,
    load_npz,
    save_npz,
    stable_hash,
    tensor_fingerprint,
)
from .runtime import check_choice

__all__ = [
    "Embedding",
    "UmapPanel",
    "enable_numba_cache",
    "warm_up",
    "fit_embedding",
    "embed_clean_and_adv",
    "plot_adversarial_umap",
    "umap_panel",
    "cluster_metrics",
    "cluster_metrics_table",
    "cluster_metrics_samples",
    "SAMPLE_METRICS",
    "CLASS_COLORS",
]

#: Ten qualitative colours for class labels (matplotlib's tab10).
CLASS_COLORS: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

MODES = ("transform", "joint")

# umap-learn modules whose numba kernels a fit or transform compiles.
_KERNEL_MODULES = ("umap.distances", "umap.sparse", "umap.utils", "umap.layouts",
                   "umap.spectral", "umap.umap_")

# Process state, not configuration: whether the kernels are compiled here already.
_STATE = {"numba_cache": False, "warm": False}


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def _umap_version() -> str:
    try:
        return importlib.metadata.version("umap-learn")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def enable_numba_cache() -> int:
    """Turn on numba's on-disk cache for umap-learn's kernels (once per process).

    umap-learn compiles about a hundred numba functions without ``cache=True``, so
    every new process recompiles them. Setting the cache on the dispatchers before
    their first compile makes later processes load machine code from disk instead.
    Results are unchanged: the same code compiles to the same kernels.

    Returns:
        The number of kernels switched to caching in this call (0 if done before).
    """
    if _STATE["numba_cache"]:
        return 0
    from numba.core.dispatcher import Dispatcher

    count = 0
    for name in _KERNEL_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, Dispatcher) and type(value._cache).__name__ == "NullCache":
                try:
                    value.enable_caching()
                    count += 1
                except Exception:  # a kernel numba cannot cache still compiles, uncached
                    pass
    _STATE["numba_cache"] = True
    return count


def _umap_module(numba_cache: bool) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Tensorflow not installed.*")
        warnings.simplefilter("ignore", ImportWarning)
        import umap
    if numba_cache:
        enable_numba_cache()
    return umap


def warm_up(progress: bool = True, *, numba_cache: bool = True) -> float:
    """Compile umap-learn's kernels now, with a message, on a tiny random data set.

    Call it at the top of a notebook so the first real fit does not sit silent for
    half a minute. Compiles the small-data path (under 4,096 points); larger data
    sets also use pynndescent, whose kernels pynndescent caches on disk itself.

    Returns:
        The seconds it took (about 35 s cold, under 1 s with a warm numba cache).
    """
    start = time.perf_counter()
    _say(progress, "compiling UMAP kernels, ~30 s the first time ...")
    umap = _umap_module(numba_cache)
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        reducer = umap.UMAP(n_neighbors=8, n_epochs=10, random_state=0).fit(x)
        reducer.transform(x[:4] + 0.01)
    _STATE["warm"] = True
    seconds = time.perf_counter() - start
    _say(progress, f"UMAP ready ({seconds:.1f} s)")
    return seconds


# ---------------------------------------------------------------------- inputs


def _as_features(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape [n, features] (or [n, ...] to flatten), "
                         f"got shape {arr.shape}")
    arr = np.ascontiguousarray(arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:]))),
                               dtype=np.float32)
    if arr.shape[1] == 0:
        from .errors import FeatureSourceError

        # Caught here rather than deep in scikit-learn ("Found array with 0 feature(s)").
        raise FeatureSourceError(f"{name} has shape {arr.shape}: no features, so no UMAP; "
                                 "give the model a feature source, e.g. "
                                 "evaluation.foreign(model, features='layer name')")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_params(n: int, n_neighbors: int, min_dist: float) -> None:
    if n < 3:
        raise ValueError(f"clean_X has {n} rows; UMAP needs at least 3")
    if not isinstance(n_neighbors, int | np.integer) or not 2 <= n_neighbors < n:
        raise ValueError(f"n_neighbors={n_neighbors!r}: must be an integer in [2, {n - 1}]")
    if not min_dist >= 0:
        raise ValueError(f"min_dist={min_dist!r}: must be >= 0")


def _cache_root(cache_dir: str | Path | None) -> Path:
    return entry_dir("embeddings", cache_dir)


def _params(n_neighbors: int, min_dist: float, metric: str, n_epochs: int | None,
            seed: int, umap_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"n_neighbors": int(n_neighbors), "min_dist": float(min_dist), "metric": metric,
            "n_epochs": n_epochs, "random_state": int(seed), **dict(umap_kwargs or {})}


def _fit(x: np.ndarray, params: Mapping[str, Any], progress: bool, numba_cache: bool
         ) -> tuple[Any, np.ndarray]:
    if not _STATE["warm"]:
        _say(progress, "compiling UMAP kernels, ~30 s the first time ...")
    _say(progress, f"fitting UMAP on {x.shape[0]} points x {x.shape[1]} features")
    umap = _umap_module(numba_cache)
    with warnings.catch_warnings():
        # random_state forces one thread; that is the point, not news.
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        reducer = umap.UMAP(n_components=2, **params)
        coords = reducer.fit_transform(x)
    _STATE["warm"] = True
    return reducer, np.asarray(coords, dtype=np.float32)


def _load_coords(n: int) -> Any:
    """A loader for ``[n, 2]`` coordinates that rejects anything else."""
    def load(path: Path) -> np.ndarray:
        coords = np.load(path)
        if coords.shape != (n, 2):
            raise ValueError(f"coordinates of shape {coords.shape}, expected {(n, 2)}")
        return coords

    return load


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array)

    atomic_write(path, write)


# ---------------------------------------------------------------------- embedding


@dataclass
class Embedding:
    """A UMAP layout fitted on clean features.

    Attributes:
        clean_2d: ``[n, 2]`` coordinates of the clean points.
        key: the cache key (hash of the inputs, parameters and versions).
        params: the UMAP parameters.
        n_features: the feature dimension it was fitted on.
        cache_dir: the ``embeddings`` directory, or None when caching is off.
        from_cache: whether the coordinates were loaded rather than fitted.
    """

    clean_2d: np.ndarray
    key: str
    params: dict[str, Any]
    n_features: int
    cache_dir: Path | None = None
    from_cache: bool = False
    progress: bool = field(default=True, repr=False)
    numba_cache: bool = field(default=True, repr=False)
    _reducer: Any = field(default=None, repr=False)
    _x: np.ndarray | None = field(default=None, repr=False)

    @property
    def reducer(self) -> Any:
        """The fitted ``umap.UMAP`` (loaded from the cache on first use; refitted, with
        the same seed, if the cached one is unreadable)."""
        if self._reducer is None:
            if self.cache_dir is None:  # pragma: no cover - cannot happen
                raise RuntimeError("embedding has neither a reducer nor a cache")
            import joblib

            _umap_module(self.numba_cache)
            path = self.cache_dir / f"{self.key}.joblib"
            self._reducer = load_entry(path, joblib.load)
            if self._reducer is None:
                if self._x is None:  # pragma: no cover - fit_embedding always keeps it
                    raise RuntimeError(f"the UMAP fit {path} is unreadable; fit again")
                self._reducer, _ = _fit(self._x, self.params, self.progress, self.numba_cache)
                atomic_write(path, lambda tmp: joblib.dump(self._reducer, tmp))
        return self._reducer

    def transform(self, adv_X: Any) -> np.ndarray:
        """Map new (e.g. adversarial) features into this layout: ``[m, 2]``.

        Cached under the embedding's key and the fingerprint of ``adv_X``.
        """
        x = _as_features(adv_X, "adv_X")
        if x.shape[1] != self.n_features:
            raise ValueError(f"adv_X has {x.shape[1]} features; the embedding was fitted on "
                             f"{self.n_features}")
        if x.shape[0] == 0:
            return np.zeros((0, 2), dtype=np.float32)
        def compute() -> np.ndarray:
            if not _STATE["warm"]:
                _say(self.progress, "compiling UMAP kernels, ~30 s the first time ...")
            _say(self.progress, f"placing {x.shape[0]} points into the UMAP layout")
            reducer = self.reducer
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*n_jobs value.*")
                coords = np.asarray(reducer.transform(x), dtype=np.float32)
            _STATE["warm"] = True
            return coords

        if self.cache_dir is None:
            return compute()
        path = self.cache_dir / f"{self.key}-t-{tensor_fingerprint(x)}.npy"
        coords, _ = compute_once(path, _load_coords(x.shape[0]), compute, _save_npy)
        return coords


def fit_embedding(clean_X: Any, *, n_neighbors: int = 15, min_dist: float = 0.1,
                  metric: str = "euclidean", n_epochs: int | None = None, seed: int = 0,
                  umap_kwargs: Mapping[str, Any] | None = None,
                  cache_dir: str | Path | None = None, use_cache: bool = True,
                  progress: bool = True, numba_cache: bool = True) -> Embedding:
    """Fit UMAP once on clean features (or load the fit from the cache).

    Args:
        clean_X: ``[n, d]`` features (numpy or torch; ``[n, ...]`` is flattened).
        n_neighbors, min_dist, metric, n_epochs: UMAP parameters (umap-learn's
            defaults, ``n_epochs=None``: 500 below 10,000 points, else 200).
        seed: UMAP's ``random_state``; fixing it makes the fit reproducible and
            single-threaded.
        umap_kwargs: further ``umap.UMAP`` keyword arguments (part of the cache key).
        cache_dir: cache root (default ``cache.default_cache_dir()``); files go to
            ``<cache_dir>/embeddings/``.
        use_cache: read and write the cache.
        progress: print what is happening (to stderr), including the compile notice.
        numba_cache: let numba cache umap-learn's compiled kernels on disk
            (:func:`enable_numba_cache`).

    Returns:
        An :class:`Embedding` whose ``transform`` maps adversarial points into the
        same layout. The fitted UMAP object is cached with joblib next to the
        coordinates so a later process can transform without refitting.
    """
    x = _as_features(clean_X, "clean_X")
    _check_params(x.shape[0], n_neighbors, min_dist)
    params = _params(n_neighbors, min_dist, metric, n_epochs, seed, umap_kwargs)
    key = stable_hash("umap-embedding", tensor_fingerprint(x), params, _umap_version())
    root = _cache_root(cache_dir) if use_cache else None
    d = x.shape[1]
    if root is None:
        reducer, coords = _fit(x, params, progress, numba_cache)
        return Embedding(coords, key, params, d, None, False, progress, numba_cache, reducer,
                         x)
    fitted: dict[str, Any] = {}

    def load(p: Path) -> np.ndarray:
        if not (root / f"{key}.joblib").exists():
            raise FileNotFoundError(f"{key}.joblib is missing beside {p.name}")
        return _load_coords(x.shape[0])(p)

    def compute() -> np.ndarray:
        fitted["reducer"], coords = _fit(x, params, progress, numba_cache)
        return coords

    def save(p: Path, coords: np.ndarray) -> None:
        import joblib

        # The reducer first: the .npy is what marks the entry complete.
        atomic_write(root / f"{key}.joblib", lambda tmp: joblib.dump(fitted["reducer"], tmp))
        _save_npy(p, coords)

    coords, from_cache = compute_once(root / f"{key}.npy", load, compute, save)
    return Embedding(coords, key, params, d, root, from_cache, progress, numba_cache,
                     fitted.get("reducer"), x)


def embed_clean_and_adv(clean_X: Any, adv_X: Mapping[str, Any] | Any, *,
                        n_neighbors: int = 15, min_dist: float = 0.1,
                        metric: str = "euclidean", n_epochs: int | None = None,
                        seed: int = 0, mode: str = "transform",
                        umap_kwargs: Mapping[str, Any] | None = None,
                        cache_dir: str | Path | None = None, use_cache: bool = True,
                        progress: bool = True, numba_cache: bool = True
                        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Clean and adversarial features in one 2-D layout; the whole result is cached.

    Args:
        clean_X: ``[n, d]`` clean features.
        adv_X: ``{name: [m_i, d]}`` adversarial features (e.g. one entry per attack),
            or a single array (returned under the name ``"adv"``).
        mode: ``"transform"`` (default): fit on the clean points only and place the
            adversarial points with ``UMAP.transform``, so the clean layout is the
            same whatever the attacks; ``"joint"``: fit on all points together, so
            adversarial points also shape the layout.
        other arguments: as in :func:`fit_embedding`.

    Returns:
        ``(clean_2d, {name: adv_2d})``. A warm call loads one ``.npz`` and does not
        import umap.
    """
    check_choice("mode", mode, MODES)
    adv = {"adv": adv_X} if not isinstance(adv_X, Mapping) else dict(adv_X)
    x = _as_features(clean_X, "clean_X")
    advs = {str(k): _as_features(v, f"adv_X[{k!r}]") for k, v in adv.items()}
    for name, a in advs.items():
        if a.shape[1] != x.shape[1]:
            raise ValueError(f"adv_X[{name!r}] has {a.shape[1]} features; clean_X has "
                             f"{x.shape[1]}")
    _check_params(x.shape[0], n_neighbors, min_dist)
    params = _params(n_neighbors, min_dist, metric, n_epochs, seed, umap_kwargs)
    names = list(advs)
    key = stable_hash("umap-clean-adv", mode, tensor_fingerprint(x),
                      [(n, tensor_fingerprint(advs[n])) for n in names], params,
                      _umap_version())
    root = _cache_root(cache_dir) if use_cache else None
    path = root / f"{key}-{mode}.npz" if root is not None else None
    wanted = ["clean", *(f"adv_{i}" for i in range(len(names)))]

    def compute() -> dict[str, np.ndarray]:
        clean_2d, out = _embed_both(x, advs, names, mode, params, n_neighbors, min_dist,
                                    metric, n_epochs, seed, umap_kwargs, cache_dir, use_cache,
                                    progress, numba_cache)
        return {"clean": clean_2d, **{f"adv_{i}": out[n] for i, n in enumerate(names)}}

    if path is None:
        data = compute()
    else:
        data, _ = compute_once(path, lambda p: load_npz(p, wanted), compute, save_npz)
    return data["clean"], {n: data[f"adv_{i}"] for i, n in enumerate(names)}


def _embed_both(x: np.ndarray, advs: Mapping[str, np.ndarray], names: Sequence[str],
                mode: str, params: Mapping[str, Any], n_neighbors: int, min_dist: float,
                metric: str, n_epochs: int | None, seed: int,
                umap_kwargs: Mapping[str, Any] | None, cache_dir: str | Path | None,
                use_cache: bool, progress: bool, numba_cache: bool
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if mode == "transform":
        emb = fit_embedding(x, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
                            n_epochs=n_epochs, seed=seed, umap_kwargs=umap_kwargs,
                            cache_dir=cache_dir, use_cache=use_cache, progress=progress,
                            numba_cache=numba_cache)
        clean_2d = emb.clean_2d
        out = {n: emb.transform(advs[n]) for n in names}
    else:
        stacked = np.concatenate([x, *advs.values()]) if advs else x
        _, coords = _fit(stacked, params, progress, numba_cache)
        clean_2d = coords[: x.shape[0]]
        out, start = {}, x.shape[0]
        for n in names:
            out[n] = coords[start: start + advs[n].shape[0]]
            start += advs[n].shape[0]
    return clean_2d, out


# ---------------------------------------------------------------------- metrics


def _class_geometry(points: np.ndarray, labels: np.ndarray, n_classes: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroids ``[C, 2]``, RMS radii ``[C]`` (NaN where < 2 points) and counts."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    sums = np.stack([np.bincount(labels, weights=points[:, j], minlength=n_classes)
                     for j in range(points.shape[1])], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroids = sums / counts[:, None]
        sq = ((points - centroids[labels]) ** 2).sum(axis=1)
        radii = np.sqrt(np.bincount(labels, weights=sq, minlength=n_classes) / counts)
    radii = np.where((counts >= 2) & (radii > 0), radii, np.nan)
    return centroids, radii, counts.astype(np.int64)


def cluster_metrics(clean_2d: Any, clean_labels: Any, adv_2d: Any, adv_orig_index: Any,
                    adv_pred: Any, *, k: int = 10) -> dict[str, float]:
    """Where adversarial points sit relative to the clean class clusters of one model.

    Each class cluster is summarised by its centroid ``c`` and RMS radius ``r``
    (``sqrt(mean |x - c|^2)`` over its clean points). For adversarial point ``a`` with
    true label ``y`` (the label of its clean original) and adversarial label ``t``:

    - ``true_dist``: mean ``|a - c_y| / r_y``; ``adv_dist``: mean ``|a - c_t| / r_t``.
      ``clean_dist`` is the same for the clean points themselves (at most 1, by the
      definition of ``r``), the yardstick.
    - ``true_radius_pct``: mean fraction of class ``y``'s clean points that are closer
      to ``c_y`` than ``a`` is: about 0.5 for a typical member, near 1 on the rim.
    - ``knn_adv_purity`` / ``knn_true_purity``: mean fraction of the ``k`` nearest
      clean neighbours whose label is ``t`` / ``y``.
    - ``shift``: mean distance from each adversarial point to its own clean original,
      in units of the mean RMS radius.

    Reading the numbers: adversarial points **at the tips of the clusters** (DRSL's
    claim) are still attached to a cluster: ``true_dist`` or ``adv_dist`` about 1-2,
    ``true_radius_pct`` high (on the rim of the true cluster) and one of the two
    purities high (neighbourhood = one cluster). **Spread out** points sit in the
    space between clusters: both distances well above 2 and neither purity high.

    Args:
        clean_2d: ``[n, 2]`` clean coordinates; clean_labels: ``[n]`` true labels.
        adv_2d: ``[m, 2]`` adversarial coordinates.
        adv_orig_index: ``[m]`` row in ``clean_2d`` of each adversarial point's
            clean original.
        adv_pred: ``[m]`` adversarial labels.
        k: neighbours for the purities (capped at n).

    Returns:
        A dict with ``n_adv`` and the metrics above; NaN metrics when ``m = 0``.
        Classes with fewer than 2 clean points have no radius and are left out of
        the distance means.
    """
    c2 = np.asarray(clean_2d, dtype=np.float64)
    if c2.ndim != 2 or c2.shape[0] == 0:
        raise ValueError(f"clean_2d must be a non-empty [n, dims] array, got shape {c2.shape}")
    n, dims = c2.shape
    lab = np.asarray(clean_labels).astype(np.int64)
    a2 = np.asarray(adv_2d, dtype=np.float64).reshape(-1, dims)
    orig = np.asarray(adv_orig_index).astype(np.int64).reshape(-1)
    pred = np.asarray(adv_pred).astype(np.int64).reshape(-1)
    m = a2.shape[0]
    if lab.shape != (n,):
        raise ValueError(f"clean_labels must have shape ({n},), got {lab.shape}")
    if lab.min() < 0 or (m and pred.min() < 0):
        raise ValueError("clean_labels and adv_pred must be non-negative class indices")
    if orig.shape != (m,) or pred.shape != (m,):
        raise ValueError(f"adv_orig_index and adv_pred must have shape ({m},) like adv_2d; "
                         f"got {orig.shape} and {pred.shape}")
    if m and (orig.min() < 0 or orig.max() >= n):
        raise ValueError(f"adv_orig_index out of range: must lie in [0, {n - 1}]")
    if k < 1:
        raise ValueError(f"k={k!r}: must be >= 1")

    n_classes = int(max(lab.max(), pred.max() if m else 0)) + 1
    centroids, radii, counts = _class_geometry(c2, lab, n_classes)
    clean_raw = np.linalg.norm(c2 - centroids[lab], axis=1)
    out: dict[str, float] = {"n_adv": float(m), "clean_dist": _nanmean(clean_raw / radii[lab])}
    if m == 0:
        out.update(true_dist=np.nan, adv_dist=np.nan, true_radius_pct=np.nan,
                   knn_adv_purity=np.nan, knn_true_purity=np.nan, shift=np.nan)
        return out

    per = _per_sample(c2, lab, a2, orig, pred, k, centroids, radii, counts, clean_raw)
    out.update(
        true_dist=_nanmean(per["true_dist"]),
        adv_dist=_nanmean(per["adv_dist"]),
        true_radius_pct=float(per["true_radius_pct"].mean()),
        knn_adv_purity=float(per["knn_adv_purity"].mean()),
        knn_true_purity=float(per["knn_true_purity"].mean()),
        shift=float(per["shift"].mean()),
    )
    return out


#: The per-sample columns of :func:`cluster_metrics_samples`, in order.
SAMPLE_METRICS = ("true_dist", "adv_dist", "true_radius_pct", "knn_true_purity",
                  "knn_adv_purity", "shift")


def _per_sample(c2: np.ndarray, lab: np.ndarray, a2: np.ndarray, orig: np.ndarray,
                pred: np.ndarray, k: int, centroids: np.ndarray, radii: np.ndarray,
                counts: np.ndarray, clean_raw: np.ndarray) -> dict[str, np.ndarray]:
    """Each adversarial point's contribution to :func:`cluster_metrics` (``m >= 1``):
    ``{metric: [m]}``, with the clean geometry (centroids, radii, neighbours) fixed."""
    n, m = c2.shape[0], a2.shape[0]
    y = lab[orig]
    d_true = np.linalg.norm(a2 - centroids[y], axis=1)
    # centroids/radii of a class without clean points are NaN, so those drop out.
    d_adv = np.linalg.norm(a2 - centroids[pred], axis=1)

    # Fraction of class-y clean points nearer their centroid than the adversarial
    # point: sort each class's clean distances once, then searchsorted per class.
    order = np.lexsort((clean_raw, lab))
    sorted_d = clean_raw[order]
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    pct = np.empty(m)
    for cls in np.unique(y):  # a loop over classes, not points
        sel = y == cls
        block = sorted_d[starts[cls]:starts[cls + 1]]
        pct[sel] = np.searchsorted(block, d_true[sel], side="left") / len(block)

    kk = min(k, n)
    _, idx = cKDTree(c2).query(a2, k=kk)
    neighbours = lab[np.asarray(idx).reshape(m, kk)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "true_dist": d_true / radii[y],
            "adv_dist": d_adv / radii[pred],
            "true_radius_pct": pct,
            "knn_true_purity": (neighbours == y[:, None]).mean(axis=1),
            "knn_adv_purity": (neighbours == pred[:, None]).mean(axis=1),
            "shift": np.linalg.norm(a2 - c2[orig], axis=1) / np.nanmean(radii),
        }


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


# ---------------------------------------------------------------------- panels & plot


@dataclass
class UmapPanel:
    """One model's view: clean points, and the adversarial points to draw.

    Attributes:
        name: panel title (the model name).
        clean_2d: ``[n, 2]``; clean_labels: ``[n]`` true labels.
        adv_2d: ``[m, 2]`` (usually the successful attacks only).
        adv_orig_index: ``[m]`` row of each one's clean original in ``clean_2d``.
        adv_pred: ``[m]`` adversarial labels (fill colour of the markers), or None.
    """

    name: str
    clean_2d: np.ndarray
    clean_labels: np.ndarray
    adv_2d: np.ndarray
    adv_orig_index: np.ndarray
    adv_pred: np.ndarray | None = None

    def metrics(self, k: int = 10) -> dict[str, float]:
        """:func:`cluster_metrics` of this panel (needs ``adv_pred``)."""
        if self.adv_pred is None:
            raise ValueError(f"panel {self.name!r} has no adv_pred; metrics need it")
        return cluster_metrics(self.clean_2d, self.clean_labels, self.adv_2d,
                               self.adv_orig_index, self.adv_pred, k=k)


def _as_panels(panels: Sequence[UmapPanel] | Mapping[str, UmapPanel]) -> list[UmapPanel]:
    items = list(panels.values()) if isinstance(panels, Mapping) else list(panels)
    if not items:
        raise ValueError("panels is empty: pass at least one UmapPanel")
    for i, p in enumerate(items):
        if not isinstance(p, UmapPanel):
            raise ValueError(f"panels[{i}] must be a UmapPanel, got {type(p).__name__}")
    return items


def _keep_samples(panel: UmapPanel, samples: set[int]) -> UmapPanel:
    """``panel`` with only the adversarial points whose clean original is in ``samples``."""
    keep = np.isin(panel.adv_orig_index, sorted(samples))
    return dataclasses.replace(
        panel, adv_2d=panel.adv_2d[keep], adv_orig_index=panel.adv_orig_index[keep],
        adv_pred=None if panel.adv_pred is None else panel.adv_pred[keep])


def cluster_metrics_table(panels: Sequence[UmapPanel] | Mapping[str, UmapPanel], *,
                          k: int = 10, common: bool = False) -> pd.DataFrame:
    """:func:`cluster_metrics` for each panel: one row per model, indexed by name.

    ``common=True`` keeps only the adversarial points whose clean original (the same
    ``adv_orig_index`` row of the same attacked subset) was attacked successfully in
    every panel, so that the models are compared on the same samples rather than each on
    the samples it happens to lose.
    """
    items = _as_panels(panels)
    if common:
        shared = set.intersection(*(set(p.adv_orig_index.tolist()) for p in items))
        items = [_keep_samples(p, shared) for p in items]
    rows = {p.name: p.metrics(k) for p in items}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "model"
    df["n_adv"] = df["n_adv"].astype(int)
    return df


def cluster_metrics_samples(panels: Sequence[UmapPanel] | Mapping[str, UmapPanel], *,
                            k: int = 10, common: bool = False) -> pd.DataFrame:
    """The per-sample values behind :func:`cluster_metrics_table`: one row per
    adversarial point of each panel, for image-sampling variances
    (``claims.image_variance(df, "adv_dist", "DRSL", "CE", population=...)``).

    Columns: ``model`` (the panel's name), ``sample`` (the point's ``adv_orig_index``:
    for the zoo's panels, ``experiments.umap_panels``, the ``sample`` column of the
    attack records, i.e. the image's row in the fixed attacked test subset, the same
    image for every model and seed), ``true_label``, ``adv_pred`` and one column per
    metric of :data:`SAMPLE_METRICS`. ``common`` selects the samples as in
    :func:`cluster_metrics_table`.

    For each model, the mean of a column over its rows equals the table's metric (up to
    float rounding); for ``true_dist`` and ``adv_dist`` the mean over the finite values,
    as the table drops points whose class has no radius (NaN here). ``knn_*_purity`` is
    the point's fraction of its ``k`` nearest clean neighbours with that label, so the
    table's purity (the fraction over all point-neighbour pairs) is their plain mean.

    The metrics are not plain means of independent per-sample values: the distances
    are in units of each class's RMS radius and measured from its centroid, ``shift``
    in units of the mean radius, the purities against the clean points' neighbourhoods,
    and all of it in a UMAP layout fitted on the same attacked subset. The values here
    hold that clean geometry (layout, centroids, radii, neighbours) fixed at the one
    computed from the subset. An image variance built on them (the spread of these
    contributions over the images) therefore covers which images' adversarial points
    enter the mean, but not the geometry's own dependence on which images were drawn:
    a fresh subset would also move the centroids and radii, the neighbour sets and the
    layout. That part is left out, not bounded, so on that account the term is **not
    conservative**: it understates the image term. The omitted part need not be small
    next to what is kept: with about 100 clean points per class (1,000 images), a
    centroid moves by about a tenth of a radius and a radius by several per cent, and
    such an error shifts the distances of all of a class's adversarial points together,
    so it does not average out over the points as the kept per-sample spread does (it
    averages over the ten classes only, and differs between the two models of a paired
    difference, so it does not cancel there either); the layout's dependence on the
    subset is not estimated at all. ``claims.image_variance``'s own double-counting of
    the seed-by-image interaction errs the other way; neither is shown to offset the
    other.
    """
    items = _as_panels(panels)
    if common:
        shared = set.intersection(*(set(p.adv_orig_index.tolist()) for p in items))
        items = [_keep_samples(p, shared) for p in items]
    frames = []
    for p in items:
        if p.adv_pred is None:
            raise ValueError(f"panel {p.name!r} has no adv_pred; metrics need it")
        c2 = np.asarray(p.clean_2d, dtype=np.float64)
        lab = np.asarray(p.clean_labels).astype(np.int64)
        a2 = np.asarray(p.adv_2d, dtype=np.float64).reshape(-1, c2.shape[1])
        orig = np.asarray(p.adv_orig_index).astype(np.int64).reshape(-1)
        pred = np.asarray(p.adv_pred).astype(np.int64).reshape(-1)
        cluster_metrics(c2, lab, a2, orig, pred, k=k)  # validates the panel
        frame = pd.DataFrame({"model": p.name, "sample": orig, "true_label": lab[orig],
                              "adv_pred": pred})
        if len(orig):
            n_classes = int(max(lab.max(), pred.max())) + 1
            centroids, radii, counts = _class_geometry(c2, lab, n_classes)
            clean_raw = np.linalg.norm(c2 - centroids[lab], axis=1)
            per = _per_sample(c2, lab, a2, orig, pred, k, centroids, radii, counts,
                              clean_raw)
        else:
            per = {name: np.zeros(0) for name in SAMPLE_METRICS}
        frames.append(frame.assign(**{name: per[name] for name in SAMPLE_METRICS}))
    return pd.concat(frames, ignore_index=True)


def plot_adversarial_umap(panels: Sequence[UmapPanel] | Mapping[str, UmapPanel], *,
                          class_names: Sequence[str] | None = None, ncols: int | None = None,
                          max_adv: int = 300, seed: int = 0, title: str | None = None
                          ) -> Figure:
    """Small multiples of UMAP layouts, one panel per model.

    Clean points are small dots coloured by class (10-colour qualitative palette).
    Adversarial points are drawn on top as black-edged diamonds filled with the colour
    of their adversarial label, each joined to its clean original by a thin grey line.

    Args:
        panels: :class:`UmapPanel` objects (or a mapping of them).
        class_names: legend labels for the classes (default ``"0"``, ``"1"``, ...).
        ncols: panels per row (default: a near-square grid).
        max_adv: draw at most this many adversarial points per panel (a fixed random
            subset chosen with ``seed``), so lines stay readable.
        title: figure title.
    """
    import matplotlib.pyplot as plt

    from .plots import figure_legend, figure_title, fit_text, use_style

    items = _as_panels(panels)
    if max_adv < 0:
        raise ValueError(f"max_adv={max_adv!r}: must be >= 0")
    n_classes = max(int(np.max(p.clean_labels)) + 1 for p in items)
    if class_names is not None and len(class_names) < n_classes:
        raise ValueError(f"class_names has {len(class_names)} entries; labels go up to "
                         f"{n_classes - 1}")
    names = list(class_names) if class_names is not None else [str(i) for i in
                                                               range(n_classes)]
    palette = [CLASS_COLORS[i % len(CLASS_COLORS)] for i in range(n_classes)]
    if ncols is None:
        ncols = int(np.ceil(np.sqrt(len(items))))
    ncols = max(1, min(ncols, len(items)))
    nrows = int(np.ceil(len(items) / ncols))
    with use_style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 3.1 * nrows),
                                 squeeze=False)
        for ax in axes.flat[len(items):]:
            ax.set_visible(False)
        for ax, p in zip(axes.flat, items):
            c2 = np.asarray(p.clean_2d)
            lab = np.asarray(p.clean_labels).astype(int)
            a2 = np.asarray(p.adv_2d).reshape(-1, 2)
            orig = np.asarray(p.adv_orig_index).astype(int)
            # Dots shrink as points get many, so clusters stay visible either way.
            ax.scatter(c2[:, 0], c2[:, 1], c=[palette[i] for i in lab],
                       s=float(np.clip(3000 / max(len(c2), 1), 2, 10)), alpha=0.55,
                       linewidths=0, rasterized=True)
            sel = np.arange(len(a2))
            if len(sel) > max_adv:
                sel = np.sort(np.random.default_rng(seed).choice(len(a2), max_adv,
                                                                 replace=False))
            if len(sel):
                segs = np.stack([c2[orig[sel]], a2[sel]], axis=1)
                ax.add_collection(LineCollection(segs, colors="0.35", linewidths=0.4,
                                                 alpha=0.6))
                fill = ([palette[int(t) % len(palette)] for t in np.asarray(p.adv_pred)[sel]]
                        if p.adv_pred is not None else "white")
                ax.scatter(a2[sel, 0], a2[sel, 1], c=fill, marker="D", s=14,
                           edgecolors="black", linewidths=0.6, zorder=3)
            shown = f"{len(sel)} of {len(a2)}" if len(sel) < len(a2) else f"{len(a2)}"
            ax.set_title(fit_text(f"{p.name}\n{shown} adversarial", 3.3, 9), fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal", adjustable="datalim")
            ax.grid(False)
            for spine in ax.spines.values():  # UMAP axes carry no units
                spine.set_visible(False)
        handles = [plt.Line2D([], [], ls="", marker="o", ms=5, color=palette[i])
                   for i in range(n_classes)]
        labels = list(names[:n_classes])
        handles += [plt.Line2D([], [], ls="", marker="D", ms=5, mfc="white", mec="black"),
                    plt.Line2D([], [], color="0.35", lw=0.8)]
        labels += ["adversarial\n(fill: adv. label)", "from clean original"]
        figure_title(fig, title or "UMAP of clean features with adversarial examples")
        figure_legend(fig, handles, labels, title="class")
    return fig


def umap_panel(result: Any, model: str, attack: str, eps: float, *,
               max_samples: int | None = None, seed: int = 0, name: str | None = None,
               n_neighbors: int = 15, min_dist: float = 0.1,
               cache_dir: str | Path | None = None, use_cache: bool = True,
               progress: bool = True) -> UmapPanel:
    """One model's UMAP panel straight from :func:`evaluation.evaluate`'s result: no
    profile and no zoo. Draw it with ``plot_adversarial_umap([panel])``.

    As for the zoo's panels, UMAP is fitted on the clean penultimate features of the
    attacked set, and the successful adversarial examples of ``attack`` at ``eps`` are
    placed into that layout with ``transform`` (:func:`embed_clean_and_adv`, cached), each
    tied to its clean original and filled with its adversarial label.

    Args:
        result: an ``evaluation.AttackResult`` of a set small enough to keep features
            (up to ``evaluation.ADV_IMAGES_MAX`` images).
        model: the model's name (the ``model`` column, when unique) or its ``model_key``.
        attack, eps: the setting whose adversarial examples are drawn (eps matched up to
            float rounding).
        max_samples: fit on at most this many clean points, a random subset chosen with
            ``seed`` (UMAP's time grows with the points); None: all of them.
        seed: UMAP's ``random_state`` and the subset's seed.
        name: the panel title; default: the model's name.
        n_neighbors, min_dist, cache_dir, use_cache, progress: as in :func:`fit_embedding`.

    Raises:
        ValueError: an unknown or ambiguous model, an attack or eps that was not run for
            it, or (``errors.FeatureSourceError``) a model whose result has no features.
    """
    from .errors import FeatureSourceError

    for attr in ("records", "models", "labels", "clean_features", "adv_features"):
        if not hasattr(result, attr):
            raise ValueError(f"result must be an evaluation.AttackResult (what evaluate "
                             f"returns); got {type(result).__name__}")
    key, label = _model_key(result.models, model)
    rec = result.records[result.records["model_key"] == key]
    check_choice("attack", attack, tuple(dict.fromkeys(rec["attack"].astype(str))))
    rec = rec[rec["attack"] == attack]
    rec = rec[np.isclose(rec["eps"].to_numpy(float), float(eps), rtol=1e-6, atol=1e-12)]
    if rec.empty:
        have = ", ".join(f"{e:g}" for e in sorted(result.records.loc[
            (result.records["model_key"] == key) & (result.records["attack"] == attack),
            "eps"].unique()))
        raise ValueError(f"eps={eps!r} was not run with attack {attack!r} for model "
                         f"{label!r}; eps values present: {have}")
    how = ("evaluate it with a feature source, e.g. evaluate(evaluation.foreign(model, "
           "features='<layer name>'), ...) (a layer name, a module or a callable from "
           "images to features), or give the model a `head` module whose input is its "
           "features")
    try:
        clean_x = np.asarray(result.clean_features(key))
    except FeatureSourceError as exc:
        raise FeatureSourceError(f"model {label!r} has no features in this result, so "
                                 f"there is nothing to embed: {how}") from exc
    except KeyError as exc:  # a set too large to keep features
        raise ValueError(f"model {label!r}: {exc.args[0]}") from exc
    if clean_x.ndim != 2 or clean_x.shape[1] == 0:
        raise FeatureSourceError(f"model {label!r} has no features in this result "
                                 f"(clean features of shape {clean_x.shape}), so there is "
                                 f"nothing to embed: {how}")
    n = clean_x.shape[0]
    rows = np.arange(n)
    if max_samples is not None:
        if max_samples < 3:
            raise ValueError(f"max_samples={max_samples!r}: must be at least 3 (or None)")
        if n > max_samples:
            rows = np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))
    rec = rec[rec["sample"].isin(rows) & rec["success"].astype(bool)].sort_values("sample")
    samples = rec["sample"].to_numpy(np.int64)
    adv_x = np.asarray(result.adv_features(key, attack, eps))[samples]
    clean_2d, adv = embed_clean_and_adv(clean_x[rows], {"adv": adv_x}, seed=seed,
                                        n_neighbors=n_neighbors, min_dist=min_dist,
                                        cache_dir=cache_dir, use_cache=use_cache,
                                        progress=progress)
    return UmapPanel(name or label, clean_2d, np.asarray(result.labels)[rows], adv["adv"],
                     np.searchsorted(rows, samples), rec["adv_pred"].to_numpy(np.int64))


def _model_key(models: pd.DataFrame, model: str) -> tuple[str, str]:
    """``(model_key, name)`` of a model given by its key or its (unique) name."""
    keys, names = list(models["model_key"]), list(models["model"])
    if model in keys:
        return model, str(names[keys.index(model)])
    match = [k for k, n in zip(keys, names) if n == model]
    if len(match) == 1:
        return match[0], str(model)
    if match:
        raise ValueError(f"model={model!r} names {len(match)} models; give one of their "
                         f"model keys: {match}")
    raise ValueError(f"model={model!r} is not in the result; models: {names} (or their "
                     f"model keys)")
