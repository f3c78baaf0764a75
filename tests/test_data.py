"""Data loading: digits always, Fashion-MNIST when present, the torchvision MNIST path on
tiny idx files written in torchvision's layout, and label noise."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from drsl_utils import data
from drsl_utils.data import DatasetNotFoundError, add_label_noise, load_dataset

FASHION_PRESENT = (data.DEBIAN_FASHION_DIR / "train-images-idx3-ubyte.gz").exists()


def _check_split(ds, n, shape, k=10):
    assert len(ds) == n
    assert ds.images.dtype == torch.float32 and ds.labels.dtype == torch.int64
    assert tuple(ds.images.shape) == (n, *shape)
    assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
    assert set(ds.labels.unique().tolist()) <= set(range(k))
    assert len(ds.classes) == k


def test_digits_fixed_split(tmp_path):
    train = load_dataset("digits", "train", root=tmp_path)
    test = load_dataset("digits", "test", root=tmp_path)
    _check_split(train, 1347, (1, 8, 8))
    _check_split(test, 450, (1, 8, 8))
    # Stratified and disjoint sizes add up to the 1,797 images.
    assert len(train) + len(test) == 1797
    again = load_dataset("digits", "test", root=tmp_path / "elsewhere")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)


@pytest.mark.skipif(not FASHION_PRESENT, reason="Debian package dataset-fashion-mnist is not "
                    "installed (apt-get install -y dataset-fashion-mnist)")
def test_fashion_mnist_full(tmp_path):
    train = load_dataset("fashion-mnist", "train", root=tmp_path)
    test = load_dataset("fashion-mnist", "test", root=tmp_path)
    _check_split(train, 60000, (1, 28, 28))
    _check_split(test, 10000, (1, 28, 28))
    # Balanced classes: 6,000 and 1,000 per class.
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    # Unpacked into torchvision's layout, which torchvision itself can read.
    raw = tmp_path / "FashionMNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte").exists()
    from torchvision.datasets import FashionMNIST

    tv = FashionMNIST(str(tmp_path), train=False, download=False)
    assert torch.equal(tv.data.float().div(255).unsqueeze(1), test.images)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_via_torchvision_layout(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = {"train": rng.integers(0, 256, (12, 28, 28)), "t10k": rng.integers(0, 256, (5, 28, 28))}
    labs = {"train": rng.integers(0, 10, 12), "t10k": rng.integers(0, 10, 5)}
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", imgs[prefix])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labs[prefix])
    ds = load_dataset("mnist", "test", root=tmp_path)
    _check_split(ds, 5, (1, 28, 28))
    np.testing.assert_allclose(ds.images[:, 0].numpy(), imgs["t10k"] / 255.0, atol=1e-6)
    assert ds.labels.tolist() == labs["t10k"].tolist()


def test_missing_dataset_error_names_places_and_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "nope")

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    import torchvision.datasets.mnist as tv_mnist

    monkeypatch.setattr(tv_mnist.MNIST, "download", no_network)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", "train", root=tmp_path / "root")
    msg = str(info.value)
    assert "fashion-mnist" in msg and "dataset-fashion-mnist" in msg
    assert str(tmp_path / "nope") in msg and str(tmp_path / "root") in msg
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "train", root=tmp_path / "root2")
    assert "digits" in str(info.value) and "fashion-mnist" in str(info.value)


@pytest.mark.parametrize("kwargs, param", [
    ({"name": "svhn"}, "name"), ({"name": "digits", "split": "val"}, "split")])
def test_bad_names(kwargs, param, tmp_path):
    with pytest.raises(ValueError, match=param) as info:
        load_dataset(root=tmp_path, **kwargs)
    assert "digits" in str(info.value) or "train" in str(info.value)


@pytest.mark.parametrize("kind", ["symmetric", "pair"])
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4])
def test_label_noise_rate_and_mask(kind, rate):
    labels = torch.arange(10).repeat(500)
    noisy, flipped = add_label_noise(labels, rate, kind, num_classes=10, seed=3)
    assert flipped.dtype == torch.bool
    assert torch.equal(flipped, noisy != labels)
    assert abs(float(flipped.float().mean()) - rate) < 1e-3
    assert noisy.min() >= 0 and noisy.max() <= 9
    if kind == "pair":
        assert torch.equal(noisy[flipped], (labels[flipped] + 1) % 10)
    else:
        # Flipped labels spread over the other classes, never onto the true one.
        if rate > 0:
            offsets = (noisy[flipped] - labels[flipped]) % 10
            assert set(offsets.unique().tolist()) == set(range(1, 10))
    again, _ = add_label_noise(labels, rate, kind, num_classes=10, seed=3)
    assert torch.equal(noisy, again)


def test_label_noise_leaves_global_rng():
    state = torch.get_rng_state()
    add_label_noise(torch.zeros(100, dtype=torch.long), 0.3, "symmetric", num_classes=10)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("kwargs, param", [
    ({"rate": 1.0}, "rate"), ({"rate": -0.1}, "rate"), ({"kind": "asym"}, "kind"),
    ({"num_classes": 1}, "num_classes")])
def test_label_noise_bad_input(kwargs, param):
    args = {"rate": 0.2, "kind": "symmetric", "num_classes": 10} | kwargs
    with pytest.raises(ValueError, match=param):
        add_label_noise(torch.zeros(10, dtype=torch.long), **args)


def test_subset_is_fixed():
    ds = load_dataset("digits", "test")
    a, b = ds.subset(100, seed=1), ds.subset(100, seed=1)
    assert len(a) == 100 and torch.equal(a.labels, b.labels)
    assert not torch.equal(ds.subset(100, seed=2).images, a.images)
    assert ds.subset(None) is ds


# --- datasets of your own ------------------------------------------------------------

def test_a_registered_dataset_loads_like_a_builtin_one():
    from drsl_utils.errors import DuplicateNameError

    x = torch.rand(30, 3, 4, 5)
    y = torch.arange(30) % 3
    entry = data.register_dataset("tiny-rgb", (x, y), (x[:6], y[:6]),
                                  classes=("cat", "dog", "eel"))
    try:
        info = data.dataset_info("tiny-rgb")
        assert info.shape == (3, 4, 5) and info.classes == ("cat", "dog", "eel")
        torch.testing.assert_close(torch.tensor(info.mean), x.mean(dim=(0, 2, 3)))
        torch.testing.assert_close(torch.tensor(info.std), x.std(dim=(0, 2, 3)))
        train, test = load_dataset("tiny-rgb", "train"), load_dataset("tiny-rgb", "test")
        assert len(train) == 30 and len(test) == 6 and train.name == "tiny-rgb"
        x[0] = 0.5  # the registered copy is private
        assert not torch.equal(train.images[0], x[0])
        assert entry.fingerprint and data.DATASETS.get("digits").fingerprint == ""
        with pytest.raises(DuplicateNameError, match="replace=True"):
            data.register_dataset("tiny-rgb", (x, y))
    finally:
        data.DATASETS.unregister("tiny-rgb")


def test_in_memory_names_come_from_the_content():
    x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 4
    name = data.in_memory((x, y))
    assert name.startswith("memory-") and data.in_memory((x.clone(), y.clone())) == name
    assert data.in_memory((x, (y + 1) % 4)) != name
    assert data.in_memory((x, y), classes=list("abcd")) != name
    ds = load_dataset(name, "test")  # no test split given: the training split serves
    assert torch.equal(ds.images, x) and ds.classes == ("0", "1", "2", "3")


@pytest.mark.parametrize("train, error, message", [
    ((torch.rand(5, 8, 8), torch.zeros(5, dtype=torch.long)), "ShapeError",
     r"train images of shape \(5, 8, 8\) are not valid: expected N x C x H x W"),
    ((torch.rand(5, 1, 8, 8), torch.zeros(4, dtype=torch.long)), "ShapeError",
     "do not match"),
    ((torch.rand(5, 1, 8, 8) * 255, torch.zeros(5, dtype=torch.long)), "PixelRangeError",
     r"must lie in \[0, 1\]"),
    ((torch.rand(5, 1, 8, 8), torch.zeros(5)), "LabelRangeError", "dtype torch.float32"),
    ((torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 7])), "LabelRangeError",
     r"label 7 at index 4 is not valid for dataset 'bad' \(train split\) with n_classes=4"),
    ("images.npy", "ValueError", "train=str is not valid"),
])
def test_bad_data_is_refused_at_registration(train, error, message):
    from drsl_utils import errors

    cls = getattr(errors, error, ValueError)
    with pytest.raises(cls, match=message):
        data.register_dataset("bad", train, classes=list("abcd"))
    assert "bad" not in data.DATASETS
