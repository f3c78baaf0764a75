"""Datasets as in-memory tensors in [0, 1], and label noise.

One entry point, :func:`load_dataset`, returns float32 images shaped ``N x C x H x W``
in [0, 1], int64 labels and the class names. Normalisation is left to the model (see
``models.py``), because torchattacks expects inputs in [0, 1].

Where the data comes from:

- ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images), always available,
  with a fixed stratified split (75 % train, 25 % test, ``random_state=0``).
- ``fashion-mnist``: the full 60k/10k set. Looked for in ``root`` first, then in the
  Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), then
  by a torchvision download.
- ``mnist`` and ``cifar10``: torchvision, from ``root`` or by download.
- your own: :func:`register_dataset` (a name of your choice) or :func:`in_memory` (a
  name made from the content) put tensors in :data:`DATASETS` beside these four; the
  training engine then trains on them by name, and caches what it trains under a key
  that covers their content.
"""

from __future__ import annotations

import functools
import gzip
import shutil
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ShapeError, check_batch, check_labels, check_pixels
from .registry import Registry
from .runtime import check_choice

__all__ = [
    "DATASETS",
    "DatasetEntry",
    "DatasetInfo",
    "DatasetSplit",
    "DatasetNotFoundError",
    "dataset_info",
    "load_dataset",
    "register_dataset",
    "in_memory",
    "default_data_root",
    "add_label_noise",
    "NOISE_KINDS",
]

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLITS = ("train", "test")
NOISE_KINDS = ("symmetric", "pair")


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: input shape, classes, and the normalisation
    statistics (per channel, of the training split) that models apply internally."""

    name: str
    shape: tuple[int, int, int]
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is neither on disk nor downloadable from here."""


@dataclass(frozen=True)
class DatasetSplit:
    """One split of a dataset, held in memory.

    Attributes:
        images: float32 tensor ``N x C x H x W`` with values in [0, 1].
        labels: int64 tensor ``N``.
        classes: class names, indexed by label.
        name: the dataset's registry name.
        split: ``"train"`` or ``"test"``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str
    split: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, n: int | None, seed: int = 0) -> DatasetSplit:
        """A fixed random subset of ``n`` samples (all of them if ``n`` is None or >= N).

        The same ``(n, seed)`` always gives the same indices, so every model is
        evaluated on the same samples.
        """
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise ValueError(f"n={n!r}: a subset needs n >= 1")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].sort().values
        return DatasetSplit(self.images[idx], self.labels[idx], self.classes, self.name,
                            self.split)

    def holdout(self, n_used: int, n: int, seed: int = 0) -> DatasetSplit:
        """``n`` samples that ``subset(n_used, seed)`` leaves out: the next ``n`` in the
        same fixed random order, so a model trained on that subset never saw them."""
        if n < 1 or n_used < 0 or n_used + n > len(self):
            raise ValueError(f"holdout(n_used={n_used!r}, n={n!r}) is not valid for a split "
                             f"of {len(self)} samples: need n >= 1 and n_used + n <= "
                             f"{len(self)}")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[n_used:n_used + n].sort().values
        return DatasetSplit(self.images[idx], self.labels[idx], self.classes, self.name,
                            self.split)


def dataset_info(name: str) -> DatasetInfo:
    """Static information about dataset ``name`` (no loading).

    Raises:
        UnknownNameError: ``name`` is not in :data:`DATASETS` (a ``ValueError``).
    """
    return DATASETS.get(name).info


_MEMO: weakref.WeakKeyDictionary[DatasetEntry, dict[tuple[str, str], DatasetSplit]] = \
    weakref.WeakKeyDictionary()


def default_data_root() -> Path:
    """``$DRSL_DATA_DIR`` if set, else ``data/`` at the repository root (whatever the
    working directory, so notebooks and scripts share one copy)."""
    import os

    env = os.environ.get("DRSL_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def load_dataset(name: str, split: str = "train",
                 root: str | Path | None = None) -> DatasetSplit:
    """Load a dataset split as in-memory tensors in [0, 1].

    Args:
        name: one of ``DATASETS`` (``digits``, ``fashion-mnist``, ``mnist``, ``cifar10``,
            or one registered with :func:`register_dataset`).
        split: ``"train"`` or ``"test"``.
        root: directory searched first and where downloads or unpacked files go
            (default :func:`default_data_root`).

    Returns:
        A :class:`DatasetSplit` with ``images`` (float32, N x C x H x W), ``labels``
        (int64) and ``classes``. Loaded splits are memoised per process; treat the
        tensors as read-only.

    Raises:
        UnknownNameError: unknown ``name`` or ``split`` (a ``ValueError``).
        DatasetNotFoundError: the data is not on disk and cannot be downloaded; the
            message lists the places searched and what to do.
    """
    entry = DATASETS.get(name)
    check_choice("split", split, SPLITS)
    if entry.splits is not None:
        return entry.splits[split]
    root = Path(root).expanduser() if root is not None else default_data_root()
    # Per entry, so a name registered anew never serves the splits of the old entry.
    memo = _MEMO.setdefault(entry, {})
    memo_key = (split, str(root.resolve()))
    if memo_key not in memo:
        assert entry.loader is not None
        images, labels = entry.loader(split, root)
        memo[memo_key] = DatasetSplit(images, labels, entry.info.classes, name, split)
    return memo[memo_key]


def _load_digits(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0,
                                              stratify=y)
    x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)


def _read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (optionally gzipped): big-endian header, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte
        raise ValueError(f"{path} is not an unsigned-byte idx file (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_pair(split: str, directory: Path) -> tuple[Path, Path] | None:
    found = [_find_idx(directory, stem) for stem in _IDX_FILES[split]]
    return (found[0], found[1]) if all(found) else None


def _from_idx(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = _read_idx(images_path)
    labels = _read_idx(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images_path} has {images.shape[0]} images but {labels_path} "
                         f"has {labels.shape[0]} labels")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x.contiguous(), torch.from_numpy(labels.astype(np.int64))


def _load_fashion_mnist(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    raw_dir = root / "FashionMNIST" / "raw"
    searched = [raw_dir, DEBIAN_FASHION_DIR]
    pair = _idx_pair(split, raw_dir)
    if pair is None and _idx_pair(split, DEBIAN_FASHION_DIR) is not None:
        # Unpack into torchvision's layout so torchvision's FashionMNIST(root) also works.
        raw_dir.mkdir(parents=True, exist_ok=True)
        for stem in _IDX_FILES[split]:
            src = _find_idx(DEBIAN_FASHION_DIR, stem)
            assert src is not None
            _gunzip_into(src, raw_dir / stem)
        pair = _idx_pair(split, raw_dir)
    if pair is None:
        return _torchvision_load("fashion-mnist", split, root, searched)
    return _from_idx(*pair)


def _gunzip_into(src: Path, dst: Path) -> None:
    from .cache import atomic_write

    def write(tmp: Path) -> None:
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)

    atomic_write(dst, write)


def _load_mnist(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return _torchvision_load("mnist", split, root, [root / "MNIST" / "raw"])


def _load_cifar10(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return _torchvision_load("cifar10", split, root, [root / "cifar-10-batches-py"])


def _torchvision_load(name: str, split: str, root: Path,
                      searched: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision import datasets

    cls = {"fashion-mnist": datasets.FashionMNIST, "mnist": datasets.MNIST,
           "cifar10": datasets.CIFAR10}[name]
    train = split == "train"
    try:
        ds = cls(str(root), train=train, download=False)
    except RuntimeError:
        try:
            ds = cls(str(root), train=train, download=True)
        except Exception as exc:  # network errors come in many types
            raise DatasetNotFoundError(_not_found_message(name, searched, exc)) from exc
    data = ds.data
    if isinstance(data, np.ndarray):  # CIFAR-10: N x H x W x C uint8
        x = torch.from_numpy(data).permute(0, 3, 1, 2).float().div_(255.0)
    else:  # MNIST family: N x H x W uint8
        x = data.float().div_(255.0).unsqueeze(1)
    y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return x.contiguous(), y


def _not_found_message(name: str, searched: list[Path], exc: BaseException) -> str:
    places = "\n".join(f"  - {p}" for p in searched)
    lines = [
        f"Dataset {name!r} was not found and could not be downloaded ({type(exc).__name__}: "
        f"{exc}).",
        f"Places searched:\n{places}",
        "What to do:",
    ]
    if name == "fashion-mnist":
        lines += [
            "  - offline: install the Debian package (apt-get install -y "
            "dataset-fashion-mnist), which puts the idx files in "
            f"{DEBIAN_FASHION_DIR};",
            "  - or drop the four idx files (train-images-idx3-ubyte[.gz], ...) into "
            f"{searched[0]};",
            "  - or run again with internet access so torchvision can download them.",
        ]
    else:
        lines += [
            "  - run once with internet access so torchvision can download it into "
            f"{searched[0].parent};",
            "  - or copy torchvision's files for it into that directory;",
            "  - offline alternatives: dataset='fashion-mnist' (Debian package "
            "dataset-fashion-mnist) or dataset='digits' (ships with scikit-learn).",
        ]
    return "\n".join(lines)


# ------------------------------------------------------------------------- registry


@dataclass(frozen=True, eq=False)
class DatasetEntry:
    """What :data:`DATASETS` holds for one name: the dataset's static facts and either
    a ``loader(split, root) -> (images, labels)`` (the built-in ones, read from disk) or
    the two splits themselves (one registered with :func:`register_dataset`)."""

    info: DatasetInfo
    loader: Callable[[str, Path], tuple[torch.Tensor, torch.Tensor]] | None = None
    splits: Mapping[str, DatasetSplit] | None = None

    @functools.cached_property
    def fingerprint(self) -> str:
        """The content of an in-memory dataset for cache keys (its classes and the
        bytes of both splits); "" for a built-in one, whose loading code is part of the
        package's code fingerprint. Computed once: the registered tensors are private
        copies."""
        if self.splits is None:
            return ""
        return _content(self.info.classes, [(s.images, s.labels) for s in
                                            (self.splits["train"], self.splits["test"])])


#: Datasets by name. The four built-in ones load from disk (see the module docstring);
#: :func:`register_dataset` adds tensors of your own.
DATASETS: Registry[DatasetEntry] = Registry("dataset", {
    "digits": DatasetEntry(DatasetInfo("digits", (1, 8, 8), tuple(str(i) for i in range(10)),
                                       (0.3053,), (0.3760,)), _load_digits),
    "fashion-mnist": DatasetEntry(DatasetInfo(
        "fashion-mnist", (1, 28, 28),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
         "Sneaker", "Bag", "Ankle boot"),
        (0.2860,), (0.3530,)), _load_fashion_mnist),
    "mnist": DatasetEntry(DatasetInfo("mnist", (1, 28, 28), tuple(str(i) for i in range(10)),
                                      (0.1307,), (0.3081,)), _load_mnist),
    "cifar10": DatasetEntry(DatasetInfo(
        "cifar10", (3, 32, 32),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck"),
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)), _load_cifar10),
})

DataLike = DatasetSplit | tuple[Any, Any]


def register_dataset(name: str, train: DataLike, test: DataLike | None = None, *,
                     classes: Sequence[str] | None = None, replace: bool = False
                     ) -> DatasetEntry:
    """Register images and labels of your own as dataset ``name``, so that
    ``load_dataset(name, split)``, ``models.build_model(..., dataset=name)`` and
    ``training.TrainConfig(dataset=name)`` use them like the built-in datasets.

    Args:
        name: the name to register (``replace=True`` to replace a registered one).
        train: the training split: a :class:`DatasetSplit` or ``(images, labels)``
            (tensors or arrays): images ``N x C x H x W`` in [0, 1], integer labels.
        test: the test split, the same way; None: the training split serves as the test
            split too (the "test accuracy" of a model trained on it is then its accuracy
            on the data it was trained on).
        classes: class names, indexed by label; default the classes of a
            :class:`DatasetSplit` given, else ``"0"`` to ``"K-1"`` with K one more than
            the largest label.
        replace: replace an entry already registered under ``name``.

    Returns:
        The :class:`DatasetEntry`. The tensors are copied (float32 images, int64
        labels), so later edits to yours do not reach it. Its
        :attr:`~DatasetEntry.fingerprint` hashes the content into the cache key of
        every model trained on it: two datasets registered under one name never share
        a cached model. Normalisation statistics (``info.mean``, ``info.std``) are the
        training split's per-channel mean and standard deviation.

    Raises:
        ShapeError: images not ``N x C x H x W``, a label count that differs from the
            image count, or two splits of different image shapes.
        PixelRangeError: images outside [0, 1].
        LabelRangeError: labels that are not integers, negative, or not below
            ``len(classes)``.
        DuplicateNameError: ``name`` is taken and ``replace`` is False.
    """
    pairs, classes = _checked(train, test, classes, f"dataset {name!r}")
    entry = _entry(name, pairs, classes)
    DATASETS.register(name, entry, replace=replace)
    return entry


def in_memory(train: DataLike, test: DataLike | None = None, *,
              classes: Sequence[str] | None = None) -> str:
    """Register ``train`` (and ``test``) under a name made from their content,
    ``"memory-<hash>"``, and return that name (see :func:`register_dataset` for the
    arguments): the same tensors always give the same name, so a ``TrainConfig``
    built on it keys the same cache entry in every process that registers them."""
    pairs, classes = _checked(train, test, classes, "an in-memory dataset")
    name = f"memory-{_content(classes, pairs)[:12]}"
    if name not in DATASETS:
        DATASETS.register(name, _entry(name, pairs, classes))
    return name


def _checked(train: DataLike, test: DataLike | None, classes: Sequence[str] | None,
             what: str) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], tuple[str, ...]]:
    """Private, checked copies of the ``(images, labels)`` of the training and test
    splits (the training split twice when ``test`` is None), and the class names."""
    given = [train] if test is None else [train, test]
    pairs = [_tensors(d, split) for d, split in zip(given, SPLITS)]
    if classes is None:
        classes = next((d.classes for d in given if isinstance(d, DatasetSplit)), None)
    if classes is None:
        classes = [str(i) for i in range(max(int(y.max()) for _, y in pairs) + 1)]
    classes = tuple(str(c) for c in classes)
    for (_, y), split in zip(pairs, SPLITS):
        check_labels(y, len(classes), f"{what} ({split} split)")
    shape = tuple(pairs[0][0].shape[1:])
    if tuple(pairs[-1][0].shape[1:]) != shape:
        raise ShapeError(f"{what}: test images of shape {tuple(pairs[-1][0].shape[1:])} "
                         f"differ from the training images' {shape}")
    if test is None:
        pairs.append(pairs[0])
    return pairs, classes


def _entry(name: str, pairs: list[tuple[torch.Tensor, torch.Tensor]],
           classes: tuple[str, ...]) -> DatasetEntry:
    x = pairs[0][0]
    mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
    # A constant channel has no spread; dividing by 1 leaves it as it is.
    std = tuple(float(v) if float(v) > 0 else 1.0 for v in x.std(dim=(0, 2, 3)))
    info = DatasetInfo(name, tuple(x.shape[1:]), classes, mean, std)  # type: ignore[arg-type]
    splits = {split: DatasetSplit(px, py, classes, name, split)
              for (px, py), split in zip(pairs, SPLITS)}
    return DatasetEntry(info, splits=splits)


def _tensors(data: DataLike, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``data``'s images (float32) and labels (int64) as private copies, checked."""
    if isinstance(data, DatasetSplit):
        images, labels = data.images, data.labels
    elif isinstance(data, tuple | list) and len(data) == 2:
        images, labels = data
    else:
        raise ValueError(f"{split}={type(data).__name__} is not valid: give a "
                         "data.DatasetSplit or an (images, labels) pair")
    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    check_batch(images, labels)
    if images.dim() != 4:
        raise ShapeError(f"{split} images of shape {tuple(images.shape)} are not valid: "
                         "expected N x C x H x W (add a channel axis with "
                         "images.unsqueeze(1))")
    check_labels(labels)
    check_pixels(images)
    return (images.detach().to(torch.float32).clone().contiguous(),
            labels.detach().to(torch.int64).clone())


def _content(classes: tuple[str, ...], pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]
             ) -> str:
    """The cache-key identity of a dataset's content (``cache.user_fingerprint``)."""
    from .cache import user_fingerprint

    return user_fingerprint([list(classes), [list(p) for p in pairs[:2]]])


def add_label_noise(labels: torch.Tensor, rate: float, kind: str = "symmetric",
                    num_classes: int | None = None,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt a fraction ``rate`` of the labels.

    Exactly ``round(rate * N)`` samples, chosen at random, get a wrong label, so the
    realised noise rate equals ``rate`` (up to rounding).

    - ``symmetric``: the new label is uniform over the K-1 other classes.
    - ``pair``: pair-flip, class ``c`` becomes ``(c + 1) mod K`` (Han et al., 2018).

    Args:
        labels: int64 tensor of clean labels.
        rate: fraction in [0, 1).
        kind: ``"symmetric"`` or ``"pair"``.
        num_classes: K; defaults to ``labels.max() + 1``.
        seed: seed of a private generator (the global RNG is untouched).

    Returns:
        ``(noisy_labels, flipped)``: the new labels and a boolean mask of the samples
        whose label was changed.
    """
    check_choice("kind", kind, NOISE_KINDS)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate={rate!r}: the noise rate must be in [0, 1)")
    labels = torch.as_tensor(labels, dtype=torch.int64)
    k = int(num_classes if num_classes is not None else int(labels.max()) + 1)
    if k < 2:
        raise ValueError(f"num_classes={k!r}: label noise needs at least 2 classes")
    if labels.numel() and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must lie in [0, {k - 1}] for num_classes={k}")
    g = torch.Generator().manual_seed(seed)
    n = labels.shape[0]
    n_flip = int(round(rate * n))
    idx = torch.randperm(n, generator=g)[:n_flip]
    noisy = labels.clone()
    if kind == "symmetric":
        offset = torch.randint(1, k, (n_flip,), generator=g)
        noisy[idx] = (labels[idx] + offset) % k
    else:
        noisy[idx] = (labels[idx] + 1) % k
    flipped = noisy != labels
    return noisy, flipped
