"""Fault injection with real files and processes: killed runs, damaged cache entries of
every kind, code edits, and a notebook that fails inside the main job."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from drsl_utils import cache as C
from drsl_utils import embed
from drsl_utils.evaluation import evaluate
from drsl_utils.training import TrainConfig, train

PKG = Path(__file__).resolve().parent.parent / "drsl_utils"


def _python(code: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    full = os.environ | {"DRSL_THREADS": "1", "PYTHONUNBUFFERED": "1"} | (env or {})
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


# ---------------------------------------------------------------- kill -9 mid-training


@pytest.mark.slow
def test_kill_9_during_training_loses_only_the_unit_in_progress(tmp_path):
    code = f"""
        from drsl_utils.training import TrainConfig, train
        train(TrainConfig(dataset="digits", epochs=1, seed=0), cache_dir={str(tmp_path)!r},
              progress=False, device="cpu")
        print("first done", flush=True)
        train(TrainConfig(dataset="digits", epochs=400, seed=1), cache_dir={str(tmp_path)!r},
              progress=False, device="cpu")
        print("second done", flush=True)
    """
    proc = _python(code, start_new_session=True)
    assert proc.stdout.readline().strip() == "first done"
    time.sleep(2.0)  # well inside the second (400-epoch) unit
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    models = C.entry_dir("models", tmp_path)
    assert len(list(models.glob("*.pt"))) == 1  # the finished unit, nothing half-written
    ok, broken = C.verify(tmp_path)
    assert ok == 1 and broken == []
    start = time.perf_counter()
    first = train(TrainConfig(dataset="digits", epochs=1, seed=0), cache_dir=tmp_path,
                  progress=False, device="cpu")
    assert first.from_cache and time.perf_counter() - start < 5
    # The killed unit's lock died with its process: the re-run does not wait for it.
    second = train(TrainConfig(dataset="digits", epochs=2, seed=1), cache_dir=tmp_path,
                   progress=False, device="cpu")
    assert not second.from_cache


# ------------------------------------------------------- damaged entries of every kind


@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_damaged_attack_record_warns_and_is_recomputed(tmp_path, damage):
    tm = train(TrainConfig(dataset="digits", epochs=1, seed=0), cache_dir=tmp_path,
               progress=False, device="cpu")
    from drsl_utils.data import load_dataset

    test = load_dataset("digits", "test").subset(64, seed=0)
    kw = dict(eps_grid=[0.1], device="cpu", cache_dir=tmp_path, progress=False)
    first = evaluate([tm], [("pgd", {"steps": 3})], test.images, test.labels, **kw)
    path = Path(first.units["path"].iloc[0])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"")
    with pytest.warns(C.CacheWarning, match=path.name):
        again = evaluate([tm], [("pgd", {"steps": 3})], test.images, test.labels, **kw)
    assert not again.units["from_cache"].iloc[0]
    np.testing.assert_array_equal(again.records["adv_pred"], first.records["adv_pred"])
    third = evaluate([tm], [("pgd", {"steps": 3})], test.images, test.labels, **kw)
    assert third.units["from_cache"].all()


@pytest.mark.slow
@pytest.mark.parametrize("target", ["npy", "joblib"])
def test_damaged_embedding_or_reducer_warns_and_is_recomputed(tmp_path, target):
    x = np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32)
    first = embed.fit_embedding(x, n_epochs=30, cache_dir=tmp_path, progress=False)
    path = embed.entry_dir("embeddings", tmp_path) / f"{first.key}.{target}"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.warns(C.CacheWarning, match=path.name):
        second = embed.fit_embedding(x, n_epochs=30, cache_dir=tmp_path, progress=False)
        second.transform(x[:5] + 0.1)  # needs the reducer
    assert second.clean_2d.shape == (120, 2) and np.isfinite(second.clean_2d).all()
    third = embed.fit_embedding(x, n_epochs=30, cache_dir=tmp_path, progress=False)
    assert third.from_cache
    third.transform(x[:5] + 0.1)


# ----------------------------------------------------------------------- code edits


_KEYS = """
    import json
    from drsl_utils.training import TrainConfig, train
    out = {}
    for loss in ("ce", "drsl"):
        tm = train(TrainConfig(dataset="digits", epochs=1, seed=0, loss=loss),
                   cache_dir=CACHE, progress=False, device="cpu")
        out[loss] = [tm.key, tm.from_cache]
    print(json.dumps(out))
"""


def _keys_in_copy(copy: Path, cache: Path) -> dict[str, list]:
    proc = _python(_KEYS.replace("CACHE", repr(str(cache))), env={"PYTHONPATH": str(copy)},
                   cwd=copy)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_editing_a_loss_retrains_only_its_models_and_plots_retrain_nothing(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(PKG, copy / "drsl_utils", ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    base = _keys_in_copy(copy, cache)
    assert not base["ce"][1] and not base["drsl"][1]

    plots = copy / "drsl_utils" / "plots.py"
    plots.write_text(plots.read_text() + "\n\ndef an_edited_plot():\n    return 1\n")
    after_plot = _keys_in_copy(copy, cache)
    assert after_plot == {k: [v[0], True] for k, v in base.items()}

    losses = copy / "drsl_utils" / "losses.py"
    text = losses.read_text()
    marker = "class DRSL(Loss):"
    assert marker in text
    losses.write_text(text.replace(marker, marker + "\n    edited_penalty = 2.0", 1))
    after_loss = _keys_in_copy(copy, cache)
    assert after_loss["ce"] == [base["ce"][0], True]  # reused
    assert after_loss["drsl"][0] != base["drsl"][0] and not after_loss["drsl"][1]


def test_plot_and_report_code_are_in_no_cache_key():
    for modules in C.KINDS.values():
        assert not {"plots", "report", "claims", "stats", "suite", "explore"} & set(modules)


# ------------------------------------------------------ a notebook that fails in the job


def _notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\nfigures_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(textwrap.dedent(body))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


_FIGURE = """
    import time
    import matplotlib.pyplot as plt
    from drsl_utils.report import Report
    report = Report(NAME, profile, figures_dir)
    fig, ax = plt.subplots()
    ax.plot(range(50), [i * i for i in range(50)])
    ax.set_title(NAME)
    time.sleep(SLEEP)
    report.figure(fig, NAME + "_fig", "A figure.")
    report.finish()
"""


@pytest.mark.slow
def test_a_failing_notebook_is_reported_at_once_and_the_rest_still_runs(tmp_path):
    nbs, figs = tmp_path / "nbs", tmp_path / "figs"
    nbs.mkdir()
    _notebook(nbs / "21_slow_ok.ipynb",
              _FIGURE.replace("NAME", '"21_slow_ok"').replace("SLEEP", "8"))
    _notebook(nbs / "22_fails.ipynb", 'x = 1\nraise ValueError("made to fail")\n')
    # The failing notebook's last good record, from an earlier run.
    (figs / "meta").mkdir(parents=True)
    (figs / "meta" / "22_fails.json").write_text(json.dumps(
        {"notebook": "22_fails", "profile": "smoke", "status": "ok", "figures": [],
         "evidence": []}))
    proc = _python(f"""
        import sys
        from drsl_utils.suite import main
        sys.exit(main(["--profile", "smoke", "--figures-dir", {str(figs)!r},
                       "--notebook-dir", {str(nbs)!r}, "--jobs", "2"]))
    """)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
    proc.wait(300)
    text = "\n".join(lines)
    assert proc.returncode == 1, text
    failed_at = next(i for i, line in enumerate(lines) if "22_fails: FAILED" in line)
    ok_at = next(i for i, line in enumerate(lines) if "21_slow_ok: done" in line)
    assert failed_at < ok_at, text  # reported while the other notebook was still running
    assert 'raise ValueError("made to fail")' in text and "ValueError: made to fail" in text
    assert (figs / "21_slow_ok_fig.png").exists()
    assert (figs / "README.md").exists() and (figs / "claims.md").exists()
    assert json.loads((figs / "meta" / "22_fails.json").read_text())["status"] == "failed"
    assert json.loads((figs / "meta" / "21_slow_ok.json").read_text())["status"] == "ok"
