"""Cores and threads, decided once: the shares, the environment handed to children, and
a local worker and a notebook kernel of the main job seeing the same caps."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from drsl_utils import resources, suite
from drsl_utils.executor import LocalExecutor
from drsl_utils.resources import THREAD_VARIABLES

CAPS = ("DRSL_THREADS", *THREAD_VARIABLES)


def caps(_: object = None) -> dict[str, object]:
    """What a process runs with: torch's thread count and the variables its children
    inherit (a top-level function, so worker processes can run it)."""
    return {"torch": torch.get_num_threads(), **{k: os.environ.get(k) for k in CAPS}}


def test_shares_and_the_environment_they_hand_on():
    assert resources.threads_per_worker(3, cores=8) == 2
    assert resources.threads_per_worker(4, cores=2) == 1  # never zero
    with pytest.raises(ValueError, match="workers=0"):
        resources.threads_per_worker(0)
    env = resources.thread_env(3)
    assert env == {k: "3" for k in CAPS}
    with pytest.raises(ValueError, match="threads=0"):
        resources.thread_env(0)


def test_env_int_names_the_variable(monkeypatch):
    monkeypatch.setenv("DRSL_WORKERS", "")
    assert resources.env_int("DRSL_WORKERS") is None
    monkeypatch.setenv("DRSL_WORKERS", "3")
    assert resources.env_int("DRSL_WORKERS") == 3
    for bad in ("zero", "0"):
        monkeypatch.setenv("DRSL_WORKERS", bad)
        with pytest.raises(ValueError, match=f"DRSL_WORKERS='{bad}'"):
            resources.env_int("DRSL_WORKERS")


def test_use_threads_caps_torch_and_the_children(monkeypatch, request):
    request.addfinalizer(functools.partial(torch.set_num_threads, torch.get_num_threads()))
    for key in CAPS:
        monkeypatch.delenv(key, raising=False)
    assert resources.use_threads(1) == 1
    # numba, once imported (umap imports it in other tests), keeps its pool and its value
    numba_value = None if "numba" in sys.modules else "1"
    assert caps() == {"torch": 1, **{k: "1" for k in CAPS}, "NUMBA_NUM_THREADS": numba_value}
    monkeypatch.setenv("DRSL_THREADS", "2")
    assert resources.default_threads() == 2
    with resources.child_env({"DRSL_THREADS": "5", "DRSL_NEW": "x"}):
        assert os.environ["DRSL_THREADS"] == "5" and os.environ["DRSL_NEW"] == "x"
    assert os.environ["DRSL_THREADS"] == "2" and "DRSL_NEW" not in os.environ


def _probe_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\nfigures_dir = None')
    params.metadata["tags"] = ["parameters"]
    body = ("import json, os, torch\n"
            "from drsl_utils import experiments as ex\n"
            "P, report = ex.setup('99_probe', profile, figures_dir_=figures_dir)\n"
            f"keys = {CAPS!r}\n"
            "caps = {'torch': torch.get_num_threads(), **{k: os.environ.get(k) for k in keys}}\n"
            "open('caps.json', 'w').write(json.dumps(caps))\n")
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


def test_a_local_worker_and_a_notebook_kernel_see_the_same_caps(tmp_path, monkeypatch):
    """Two side-by-side units of each kind: two local workers, and a kernel of the main
    job run with ``--jobs 2`` (which calls ``experiments.setup``, as every notebook
    does). Both get ``cores // 2`` threads in torch and in every child's pool."""
    for key in CAPS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DRSL_CACHE_DIR", str(tmp_path / "cache"))
    _probe_notebook(tmp_path / "99_probe.ipynb")
    suite.run_suite("smoke", fig_dir=tmp_path / "figures", jobs=2, notebook_dir=tmp_path)
    kernel = json.loads((tmp_path / "caps.json").read_text())
    workers = LocalExecutor(workers=2).map(caps, [0, 1])
    share = resources.threads_per_worker(2)
    assert kernel == workers[0] == workers[1] == {"torch": share,
                                                   **{k: str(share) for k in CAPS}}
    # The suite recorded how long the kernel took, for ordering the next run.
    times = json.loads((tmp_path / "executed" / "times.json").read_text())
    assert list(times) == ["99_probe"] and times["99_probe"] > 0


def test_torch_threads_sets_and_restores(monkeypatch, request):
    request.addfinalizer(functools.partial(torch.set_num_threads, torch.get_num_threads()))
    torch.set_num_threads(2)
    with resources.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with resources.torch_threads(None):
        assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads=0"):
        with resources.torch_threads(0):
            pass
    monkeypatch.setenv("DRSL_TRAIN_THREADS", "3")
    assert resources.train_threads() == 3
    monkeypatch.setenv("DRSL_TRAIN_THREADS", "x")
    with pytest.raises(ValueError, match="DRSL_TRAIN_THREADS"):
        resources.train_threads()
