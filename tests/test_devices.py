"""Device choice: ``"auto"`` picks CUDA, then Apple's MPS, then the CPU; ``"mps"`` is
validated like ``"cuda"``. This machine has neither, so availability is simulated."""

from __future__ import annotations

import warnings

import pytest
import torch

from drsl_utils import runtime
from drsl_utils.runtime import resolve_device


@pytest.fixture()
def machine(monkeypatch):
    """Set which accelerators this process believes it has."""
    def set_(cuda: bool = False, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.setenv("PYTORCH_ENABLE_MPS_FALLBACK", "1")  # no notice unless a test asks
    return set_


@pytest.mark.parametrize("cuda, mps, expected", [
    (True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu"),
])
def test_auto_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert resolve_device("auto") == resolve_device(None) == torch.device(expected)


def test_mps_is_accepted_where_available_and_refused_clearly_elsewhere(machine):
    machine(mps=True)
    assert resolve_device("mps") == resolve_device(torch.device("mps")) == torch.device("mps")
    machine(mps=False)
    with pytest.raises(ValueError, match=r"device='mps' was asked for.*MPS backend is not "
                                         r"available.*device='cpu'"):
        resolve_device("mps")
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_an_unknown_device_names_the_allowed_ones(machine):
    machine()
    with pytest.raises(ValueError, match=r"device='gpu' is not valid; choose one of: "
                                         r"'auto', 'cpu', 'cuda', 'cuda:<index>', 'mps'"):
        resolve_device("gpu")


def test_choosing_mps_without_the_cpu_fallback_says_so_once(machine, monkeypatch):
    machine(mps=True)
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's default: once per warning and line
        resolve_device("auto")
        resolve_device("mps")
        resolve_device("cpu")
    notices = [w for w in caught if "PYTORCH_ENABLE_MPS_FALLBACK=1" in str(w.message)]
    assert len(notices) == 1 and "not been verified on real MPS" in str(notices[0].message)
    monkeypatch.setenv("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve_device("mps")
    assert not caught  # with PyTorch's own fallback on, PyTorch reports each operation


def test_mps_probe_survives_a_torch_without_the_backend(monkeypatch):
    monkeypatch.delattr(torch.backends, "mps")
    assert runtime._mps_available() is False
