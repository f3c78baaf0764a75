"""The cache: keys that carry the code, guarded reads, one computation per key, tools."""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from drsl_utils import cache as C
from drsl_utils.errors import UnknownNameError
from drsl_utils.training import TrainConfig, train


def test_numbers_have_one_spelling_in_keys():
    assert C.stable_hash({"tau": 1}) == C.stable_hash({"tau": 1.0})
    assert C.stable_hash({"tau": np.float32(0.5)}) == C.stable_hash({"tau": 0.5})
    assert C.stable_hash({"tau": 1}) != C.stable_hash({"tau": 1.5})
    assert C.stable_hash(True) != C.stable_hash(1)


PACKAGE = Path(C.__file__).resolve().parent
#: The module that writes each kind (by ``entry_dir(kind)``).
WRITERS = {"models": "training", "attacks": "evaluation", "embeddings": "embed"}


def _edited(tmp_path: Path, label: str, module: str | None = None, old: str = "",
            new: str = "") -> Path:
    """A copy of the package (in its own folder, so its fingerprints are computed
    afresh) with ``old`` replaced by ``new`` in ``module``."""
    copy = tmp_path / label / PACKAGE.name
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    if module is not None:
        path = copy / f"{module}.py"
        text = path.read_text()
        assert old in text, f"{old!r} not in {module}.py"
        path.write_text(text.replace(old, new, 1))
    return copy


def _fingerprints(package: Path) -> dict[str, str]:
    return {kind: C.code_fingerprint(kind, package) for kind in WRITERS}


def test_the_kinds_are_the_ones_the_code_writes():
    assert sorted(C.KINDS) == sorted(WRITERS)
    for kind, module in WRITERS.items():
        assert module in C.kind_modules(kind) and "cache" in C.kind_modules(kind)


def test_every_module_a_kind_imports_is_in_its_fingerprint():
    """Checked against Python itself: the package modules that importing each writer
    loads in a fresh interpreter must all enter that kind's fingerprint. Imports inside
    functions count as well (training imports adversarial and distill inside train)."""
    code = ("import importlib, json, sys\n"
            f"out = {{}}\nfor kind, module in {WRITERS!r}.items():\n"
            "    importlib.import_module('drsl_utils.' + module)\n"
            "    out[kind] = sorted(m.split('.')[1] for m in sys.modules\n"
            "                       if m.startswith('drsl_utils.'))\n"
            "print(json.dumps(out))\n")
    for kind, module in WRITERS.items():
        one = code.replace(f"{WRITERS!r}", repr({kind: module}))
        loaded = json.loads(subprocess.run([sys.executable, "-c", one], check=True,
                                           capture_output=True, text=True).stdout)[kind]
        missing = set(loaded) - set(C.kind_modules(kind))
        assert not missing, f"{kind}: {sorted(missing)} imported but not in the fingerprint"
    assert {"adversarial", "distill"} <= set(C.kind_modules("models"))
    assert set(C.kind_modules("models")) <= set(C.kind_modules("attacks"))


def test_editing_runtime_changes_the_kinds_that_import_it_and_nothing_else(tmp_path):
    base = _fingerprints(_edited(tmp_path, "base"))
    runtime = _fingerprints(_edited(tmp_path, "runtime", "runtime", "import torch\n",
                                    "import torch\n\nEDITED = 1\n"))
    for kind in WRITERS:
        assert (runtime[kind] != base[kind]) == ("runtime" in C.kind_modules(kind)), kind
    assert runtime["embeddings"] != base["embeddings"]  # embed.py imports runtime.py
    embed = _fingerprints(_edited(tmp_path, "embed", "embed", "import numpy as np\n",
                                  "import numpy as np\n\nEDITED = 1\n"))
    assert {k for k in WRITERS if embed[k] != base[k]} == {"embeddings"}


@pytest.mark.parametrize("module", ["claims", "claim_table", "report", "plots"])
def test_the_report_and_plot_code_is_in_no_fingerprint(tmp_path, module):
    base = _fingerprints(_edited(tmp_path, "base"))
    edited = _fingerprints(_edited(tmp_path, "edited", module, "from __future__ import "
                                   "annotations\n", "from __future__ import annotations\n"
                                                     "\nEDITED = 1\n"))
    assert edited == base


def test_code_fingerprint_follows_code_not_comments(tmp_path):
    base = _fingerprints(_edited(tmp_path, "base"))
    doc = _fingerprints(_edited(tmp_path, "doc", "runtime", '"""Use ``n`` threads',
                                '"""(A docstring edit.) Use ``n`` threads'))
    note = _fingerprints(_edited(tmp_path, "note", "runtime", "import torch\n",
                                 "import torch  # a comment\n"))
    assert base == doc == note


def test_every_kind_has_a_current_folder(tmp_path):
    for kind in C.KINDS:
        d = C.entry_dir(kind, tmp_path)
        assert d.parent == tmp_path / kind and len(d.name) == 10
    with pytest.raises(UnknownNameError, match="kind='nope' is not valid; choose one of"):
        C.code_fingerprint("nope")


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_a_broken_entry_is_named_quarantined_and_recomputed(tmp_path, damage):
    path = C.entry_dir("attacks", tmp_path) / "k" / "unit.npz"
    C.save_npz(path, {"logits": np.arange(6.0).reshape(2, 3)})
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "empty": b"",
                      "garbage": b"not a zip"}[damage])
    calls = []
    with pytest.warns(C.CacheWarning, match="unit.npz"):
        value, from_cache = C.compute_once(path, lambda p: C.load_npz(p, ["logits"]),
                                           lambda: calls.append(1) or {"logits": np.ones(3)},
                                           C.save_npz)
    assert not from_cache and calls == [1] and list(value["logits"]) == [1, 1, 1]
    assert len(list((tmp_path / "quarantine").iterdir())) == 1
    again, from_cache = C.compute_once(path, lambda p: C.load_npz(p, ["logits"]),
                                       lambda: pytest.fail("recomputed"), C.save_npz)
    assert from_cache and list(again["logits"]) == [1, 1, 1]


def test_a_missing_field_counts_as_broken(tmp_path):
    path = tmp_path / "attacks" / "x" / "u.npz"
    C.save_npz(path, {"logits": np.zeros(2)})
    with pytest.warns(C.CacheWarning, match="KeyError"):
        assert C.load_entry(path, lambda p: C.load_npz(p, ["features"])) is None


def test_corrupted_model_checkpoint_is_retrained_not_a_crash(tmp_path):
    cfg = TrainConfig(dataset="digits", epochs=1, seed=0)
    first = train(cfg, cache_dir=tmp_path, progress=False, device="cpu")
    assert first.path.parent == C.entry_dir("models", tmp_path)
    first.path.write_bytes(first.path.read_bytes()[:500])  # a killed copy, say
    with pytest.warns(C.CacheWarning, match=first.path.name):
        second = train(cfg, cache_dir=tmp_path, progress=False, device="cpu")
    assert not second.from_cache
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)  # retrained bit-identically
    assert train(cfg, cache_dir=tmp_path, progress=False, device="cpu").from_cache


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "d" / "f.bin"
    C.atomic_write(target, lambda p: p.write_bytes(b"x" * 10))
    with pytest.raises(RuntimeError):
        C.atomic_write(target, lambda p: (p.write_bytes(b"half"), (_ for _ in ()).throw(
            RuntimeError("killed"))))
    assert target.read_bytes() == b"x" * 10
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def _slow_compute(path: str, log: str) -> None:
    def compute():
        with open(log, "a") as fh:
            fh.write("computed\n")
        time.sleep(1.0)
        return {"v": np.arange(3)}

    C.compute_once(Path(path), lambda p: C.load_npz(p, ["v"]), compute, C.save_npz)


def test_two_processes_compute_a_key_once(tmp_path):
    path = C.entry_dir("models", tmp_path) / "same.npz"
    log = tmp_path / "log.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_slow_compute, args=(str(path), str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert log.read_text().count("computed") == 1
    assert list(C.load_npz(path, ["v"])["v"]) == [0, 1, 2]


def test_info_verify_and_prune(tmp_path, capsys):
    current = C.entry_dir("embeddings", tmp_path)
    old = tmp_path / "embeddings" / "0000000000"
    C.save_npz(current / "a.npz", {"x": np.zeros(4)})
    C.save_npz(old / "b.npz", {"x": np.zeros(4)})
    (current / "broken.npy").write_bytes(b"\x93NUMPY broken")
    rows = {r["code"]: r for r in C.info(tmp_path)}
    assert rows[current.name]["current"] and not rows["0000000000"]["current"]
    assert rows[current.name]["entries"] == 2
    assert C.main(["--root", str(tmp_path), "info"]) == 0
    assert "stale" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok, broken = C.verify(tmp_path)
    assert ok == 2 and [p.name for p in broken] == ["broken.npy"]
    assert C.main(["--root", str(tmp_path), "verify"]) == 0  # already quarantined
    removed = C.prune(tmp_path, dry_run=True)
    assert old in removed and old.exists()
    assert C.main(["--root", str(tmp_path), "prune"]) == 0
    assert not old.exists() and (current / "a.npz").exists()
    assert not (tmp_path / "quarantine").exists()
    C.prune(tmp_path, older_than_days=0)
    assert not (current / "a.npz").exists()


_FOREIGN = ("import torch\nfrom torch import nn\nfrom drsl_utils import cache as C\n"
            "torch.manual_seed(0)\n"
            "m = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), "
            "nn.Linear(8, 3))\n"
            "print(C.foreign_model_key(m, 'layer'), C.weights_fingerprint(m.to(torch.bfloat16)))")


def test_foreign_model_keys_are_the_same_in_every_process():
    """A foreign model is keyed by its contents (class, module tree, weights), not by
    anything of the process (object ids, hash seeds, the package's code)."""
    runs = {subprocess.run([sys.executable, "-c", _FOREIGN], check=True, capture_output=True,
                           text=True, env={**__import__("os").environ,
                                           "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")}
    assert len(runs) == 1
    here: dict = {}
    exec(_FOREIGN.replace("\nprint(", "\nout = ("), here)  # noqa: S102 - the same lines here
    assert runs.pop().split() == list(here["out"])


# --------------------------------------------- what a user registers: code and content


def _exec(source: str, name: str):
    """A function or class defined where Python cannot read its source (as in a shell)."""
    scope: dict = {"torch": torch, "nn": torch.nn}
    exec(source, scope)  # noqa: S102 - the point: code without a file
    return scope[name]


def test_user_data_is_keyed_by_its_bytes():
    x = torch.rand(4, 1, 3, 3)
    assert C.user_fingerprint([x, x[:2]]) == C.user_fingerprint([x.clone(), x[:2].clone()])
    y = x.clone()
    y[3, 0, 2, 2] += 1e-3
    assert C.user_fingerprint(x) != C.user_fingerprint(y)
    assert C.user_fingerprint(x) != C.user_fingerprint(x.double())
    assert C.user_fingerprint(x.numpy()) == C.tensor_fingerprint(x.numpy())


def test_user_code_is_keyed_by_its_source_else_its_bytecode():
    import functools

    def f(info, width=8):
        return width + 1

    def g(info, width=8):
        return width + 2

    assert C.user_fingerprint(f) == C.user_fingerprint(f) != C.user_fingerprint(g)
    assert C.user_fingerprint(functools.partial(f, width=3)) != C.user_fingerprint(
        functools.partial(f, width=4))
    # No source (typed into a shell): the bytecode and constants decide.
    src = "def h(info, width=8):\n    return width + {}\n"
    one, same, other = (_exec(src.format(k), "h") for k in (1, 1, 2))
    assert C.source_digest(one) == ""
    assert C.user_fingerprint(one) == C.user_fingerprint(same) != C.user_fingerprint(other)


def test_a_class_without_source_is_keyed_by_its_methods():
    src = ("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
           "        self.lin = nn.Linear(2, 2)\n    def forward(self, x):\n"
           "        return {} * self.lin(x)\n")
    one, same, other = (_exec(src.format(k), "Net") for k in (1.0, 1.0, 10.0))
    assert C.user_fingerprint(one) == C.user_fingerprint(same) != C.user_fingerprint(other)
    # The same layers and weights, another forward: a module counts its classes' code.
    torch.manual_seed(0)
    a = one()
    torch.manual_seed(0)
    b = other()
    assert C.weights_fingerprint(a) == C.weights_fingerprint(b) and repr(a) == repr(b)
    assert C.user_fingerprint(a) != C.user_fingerprint(b)


def test_code_that_cannot_be_read_is_keyed_by_name_with_a_warning():
    with pytest.warns(C.CacheWarning, match="name alone"):
        key = C.user_fingerprint(len)
    assert key == C.stable_hash("name-only", "builtins.len")


_USER = ("import json, torch\nfrom drsl_utils import cache as C, data\n"
         "x = torch.arange(128.0).view(2, 1, 8, 8) / 128\n"
         "print(data.in_memory((x, torch.tensor([0, 1]))), C.user_fingerprint(json.dumps))")


def test_user_keys_are_the_same_in_another_process():
    import json

    from drsl_utils import data

    there = subprocess.run([sys.executable, "-c", _USER], check=True, capture_output=True,
                           text=True, env={**__import__("os").environ,
                                           "PYTHONHASHSEED": "7"}).stdout.split()
    x = torch.arange(128.0).view(2, 1, 8, 8) / 128
    assert there == [data.in_memory((x, torch.tensor([0, 1]))), C.user_fingerprint(json.dumps)]


def test_a_foreign_model_of_a_notebook_class_is_keyed_by_its_forward():
    """A class typed into a notebook cell has no readable source; an edited ``forward``
    with the same layers and weights still gives another key (the issue's temperature
    model: logits off by up to 9.09 under a shared key)."""
    src = ("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
           "        self.lin = nn.Linear(2, 2)\n    def forward(self, x):\n"
           "        return self.lin(x){}\n")
    plain, tempered = (_exec(src.format(t), "Net") for t in ("", " / 10"))
    torch.manual_seed(0)
    a = plain()
    torch.manual_seed(0)
    b = tempered()
    assert C.foreign_model_key(a) != C.foreign_model_key(b)
    torch.manual_seed(0)
    assert C.foreign_model_key(a) == C.foreign_model_key(_exec(src.format(""), "Net")())
