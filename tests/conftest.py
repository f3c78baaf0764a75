"""Shared fixtures: a small trained model on digits, and a private cache directory."""

from __future__ import annotations

import os

import pytest
import torch

# Keep the suite quiet. One intra-op thread: the models here are tiny, and two threads
# on a 2-core machine shared with other work can be 10x slower than one.
os.environ.setdefault("TQDM_DISABLE", "1")
torch.set_num_threads(1)


@pytest.fixture()
def cache_dir(tmp_path):
    """A fresh cache root per test."""
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory):
    """An MLP trained 8 epochs with CE on sklearn digits (about 95 % test accuracy)."""
    from drsl_utils.training import TrainConfig, train

    cache = tmp_path_factory.mktemp("digits-cache")
    return train(TrainConfig(dataset="digits", epochs=8, seed=0), progress=False,
                 cache_dir=cache, device="cpu")
