"""Executors: name resolution, Slurm config files, inline vs local worker processes, and
(when a Slurm answers, e.g. after ``scripts/slurm-local.sh start``) real Slurm job arrays,
failures with tracebacks, and jobs cancelled behind the executor's back."""

from __future__ import annotations

import functools
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from drsl_utils import executor as ex_mod
from drsl_utils import resources
from drsl_utils.executor import (
    EXECUTORS,
    InlineExecutor,
    LocalExecutor,
    QueueWatcher,
    SlurmConfig,
    SlurmExecutor,
    UnitFailed,
    current_job_id,
    fan_out,
    get_executor,
    slurm_available,
)

TESTS_DIR = Path(__file__).resolve().parent


# ------------------------------------------------------ units (top level: picklable by name)


def train_unit(item: tuple[int, str]) -> tuple[str, float, bool, str | None]:
    """Train (or load) a 1-epoch digits MLP; report its key, accuracy, and where it ran."""
    from drsl_utils.runtime import set_threads
    from drsl_utils.training import TrainConfig, train

    seed, cache_dir = item
    set_threads()  # $DRSL_THREADS: one thread everywhere, so all executors agree bit for bit
    model = train(TrainConfig(dataset="digits", epochs=1, seed=seed), cache_dir=cache_dir,
                  progress=False, device="cpu")
    return model.key, model.test_accuracy, model.from_cache, current_job_id()


def fail_if_negative(x: int) -> int:
    if x < 0:
        raise ValueError(f"boom: {x} is negative")
    return x * 10


def sleep_unit(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


# ------------------------------------------------------------------------- pure tests


def test_names_resolve_from_argument_env_and_default(monkeypatch):
    monkeypatch.delenv("DRSL_EXECUTOR", raising=False)
    assert EXECUTORS == ("inline", "local", "slurm")
    assert isinstance(get_executor(), InlineExecutor)
    assert isinstance(get_executor("inline"), InlineExecutor)
    monkeypatch.setenv("DRSL_EXECUTOR", "local")
    assert isinstance(get_executor(), LocalExecutor)
    assert isinstance(get_executor("inline"), InlineExecutor)  # the argument wins


def test_bad_name_lists_the_valid_ones(monkeypatch):
    with pytest.raises(ValueError, match="inline, local, slurm"):
        get_executor("cluster")
    monkeypatch.setenv("DRSL_EXECUTOR", "kubernetes")
    with pytest.raises(ValueError, match="kubernetes"):
        get_executor()


def test_local_workers_and_threads(monkeypatch):
    monkeypatch.setattr(resources, "available_cores", lambda: 8)
    monkeypatch.setattr(ex_mod, "available_cores", lambda: 8)
    monkeypatch.delenv("DRSL_WORKERS", raising=False)
    monkeypatch.delenv("DRSL_THREADS", raising=False)
    ex = get_executor("local")
    assert (ex.workers, ex.threads) == (8, 1)
    monkeypatch.setenv("DRSL_THREADS", "2")
    ex = get_executor("local")
    assert (ex.workers, ex.threads) == (4, 2)
    monkeypatch.setenv("DRSL_WORKERS", "3")
    assert get_executor("local").workers == 3
    assert get_executor("local", workers=5).workers == 5
    monkeypatch.delenv("DRSL_THREADS")
    assert get_executor("local", workers=2).threads == 4  # the cores, shared out
    monkeypatch.setenv("DRSL_WORKERS", "zero")
    with pytest.raises(ValueError, match="DRSL_WORKERS"):
        get_executor("local")


def test_slurm_without_sbatch_says_what_to_do(monkeypatch):
    monkeypatch.setattr(ex_mod.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="--executor local") as info:
        get_executor("slurm")
    assert "scripts/slurm-local.sh start" in str(info.value)
    assert not slurm_available()


def test_slurm_config_from_file_with_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("DRSL_CACHE_DIR", str(tmp_path / "cache"))
    file = tmp_path / "slurm.toml"
    file.write_text('partition = "gpu"\ntime_min = 30\ngpus_per_node = 1\n'
                    '[extra]\nslurm_account = "lab"\n')
    cfg = SlurmConfig.load(file, time_min=90, mem_gb=None)
    assert (cfg.partition, cfg.time_min, cfg.gpus_per_node, cfg.mem_gb) == ("gpu", 90, 1, 8)
    assert cfg.extra == {"slurm_account": "lab"}
    assert cfg.log_folder == tmp_path / "cache" / "slurm"
    assert cfg.deadline == 90 * 60 * 2 + 300
    assert SlurmConfig(deadline_s=12).deadline == 12
    monkeypatch.setenv("DRSL_SLURM_CONFIG", str(file))
    assert SlurmConfig.load().partition == "gpu"
    assert SlurmConfig.load(folder=tmp_path / "logs").log_folder == tmp_path / "logs"


def test_slurm_config_rejects_unknown_keys(tmp_path):
    file = tmp_path / "slurm.toml"
    file.write_text("partiton = 'gpu'\n")
    with pytest.raises(ValueError, match="partiton") as info:
        SlurmConfig.load(file)
    assert "partition" in str(info.value) and "max_parallel" in str(info.value)
    with pytest.raises(ValueError, match="walltime"):
        SlurmConfig.load(walltime=5)
    with pytest.raises(FileNotFoundError):
        SlurmConfig.load(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="cpus_per_task"):
        SlurmConfig(cpus_per_task=0)


def _fake_squeue(folder: Path, output: str) -> str:
    """A PATH whose ``squeue`` prints ``output`` and records its arguments."""
    script = folder / "squeue"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {folder / 'args'}\nprintf '{output}'\n")
    script.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_queue_watcher_is_the_one_submitit_calls(tmp_path, monkeypatch):
    """submitit's ``InfoWatcher.update()`` runs the command of ``_make_command``, the one
    underscore hook this project overrides: if submitit renames it, ``update()`` runs
    another method and this test fails (no squeue call, or NotImplementedError)."""
    monkeypatch.setenv("PATH", _fake_squeue(tmp_path, "41_0|RUNNING|None\\n41_1|PENDING|"
                                                      "Resources\\n41_2|CANCELLED|None\\n"
                                                      "99|RUNNING|None\\n"))
    watcher = QueueWatcher(delay_s=0.1)
    assert watcher.update() is None  # nothing registered: nothing asked
    assert not (tmp_path / "args").exists()
    for job in ("41_0", "41_1", "41_2", "41_3"):
        watcher.register_job(job)
    watcher.update()
    assert "--me" in (tmp_path / "args").read_text()  # squeue, not sacct, and no -j
    states = {j: watcher.get_state(j, mode="cache") for j in sorted(watcher.jobs)}
    assert states == {"41_0": "RUNNING", "41_1": "PENDING", "41_2": "CANCELLED",
                      "41_3": "VANISHED"}  # gone from the queue: ended
    assert watcher.get_info("41_1", mode="cache")["Reason"] == "Resources"
    assert [watcher.is_done(j, mode="cache") for j in sorted(watcher.jobs)] == [
        False, False, True, True]
    assert not watcher.is_done("41_9", mode="cache")  # registered now, never asked: waits


def test_current_job_id(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    assert current_job_id() is None
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert current_job_id() == "123"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "120")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")
    assert current_job_id() == "120_4"


def test_inline_and_local_agree_and_local_uses_other_processes():
    items = [3, 1, 4, 1, 5]
    inline = get_executor("inline")
    local = get_executor("local", workers=2)
    assert inline.map(ex_mod._square, items) == local.map(ex_mod._square, items) == [
        9, 1, 16, 1, 25]
    assert local.last_jobs == inline.last_jobs == [None] * 5
    pids = local.map(ex_mod._getpid, range(4))
    assert os.getpid() not in pids
    assert local.map(ex_mod._square, []) == []


def test_local_collects_failures_and_keeps_the_rest():
    local = get_executor("local", workers=2)
    with pytest.raises(UnitFailed) as info:
        local.map(fail_if_negative, [1, -2, 3], describe=lambda x: f"number {x}")
    err = info.value
    assert [f.unit for f in err.failures] == ["number -2"]
    assert err.results == [10, None, 30]
    assert "ValueError: boom: -2 is negative" in str(err)


def test_local_training_units_equal_inline(tmp_path, monkeypatch):
    monkeypatch.setenv("DRSL_THREADS", "1")
    seeds = [0, 1]
    inline = get_executor("inline").map(train_unit, [(s, str(tmp_path / "a")) for s in seeds])
    local = get_executor("local", workers=2).map(train_unit,
                                                 [(s, str(tmp_path / "b")) for s in seeds])
    assert [r[:2] for r in local] == [r[:2] for r in inline]
    assert not any(r[2] for r in local + inline)  # both trained (separate caches)
    assert all(r[3] is None for r in local)
    # The cache is the source of truth: what the workers wrote loads here.
    again = get_executor("inline").map(train_unit, [(s, str(tmp_path / "b")) for s in seeds])
    assert [r[:3] for r in again] == [(k, a, True) for k, a, _, _ in local]


# ----------------------------------------------------------------------- real Slurm


@functools.cache
def _slurm_up() -> bool:
    return slurm_available()


@pytest.fixture()
def slurm(tmp_path, monkeypatch):
    """Settings for a real Slurm (skips when none answers); the jobs can import this
    module (PYTHONPATH is exported to them) and use one thread each."""
    if not _slurm_up():
        pytest.skip("no Slurm answers here (sbatch missing, or sinfo shows no usable node); "
                    "start one with `bash scripts/slurm-local.sh start` as root")
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR) + (os.pathsep + path if path else ""))
    monkeypatch.setenv("DRSL_THREADS", "1")
    return SlurmConfig(folder=tmp_path / "slurm", cpus_per_task=1, mem_gb=1, time_min=5,
                       poll_s=0.25, deadline_s=300, retries=1)


@pytest.mark.slurm
def test_slurm_training_units_equal_inline(slurm, tmp_path):
    seeds = [0, 1]
    inline = get_executor("inline").map(train_unit, [(s, str(tmp_path / "a")) for s in seeds])
    ex = get_executor("slurm", slurm=slurm)
    assert isinstance(ex, SlurmExecutor)
    on_slurm = ex.map(train_unit, [(s, str(tmp_path / "b")) for s in seeds], desc="train")
    assert [r[:2] for r in on_slurm] == [r[:2] for r in inline]
    assert all(job and job.split("_")[0].isdigit() for job in ex.last_jobs)
    assert [r[3] for r in on_slurm] == ex.last_jobs  # each unit knew its own job


@pytest.mark.slurm
def test_slurm_exception_reports_traceback_and_unit(slurm):
    ex = get_executor("slurm", slurm=slurm)
    with pytest.raises(UnitFailed) as info:
        ex.map(fail_if_negative, [2, -7], describe=lambda x: f"number {x}")
    err = info.value
    assert err.results == [20, None]
    (failure,) = err.failures
    assert failure.unit == "number -7" and failure.attempts == 1  # exceptions: no retry
    assert failure.job_id == ex.last_jobs[1]
    text = str(err)
    assert "number -7" in text and failure.job_id in text
    assert "ValueError: boom: -7 is negative" in text and "Traceback" in text


def _running_jobs(name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-t", "RUNNING", "-n", name, "-o", "%i"],
                         capture_output=True, text=True, timeout=10, check=False)
    return out.stdout.split()


@pytest.mark.slurm
def test_slurm_cancelled_job_is_retried_then_reported(slurm):
    start = time.monotonic()
    desc = f"cancel-{uuid.uuid4().hex[:8]}"
    name = ex_mod._job_name(desc)
    ex = get_executor("slurm", slurm=slurm)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = ex.map(sleep_unit, [30.0], describe=lambda s: f"sleep {s}",
                                       desc=desc)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    cancelled: list[str] = []
    while len(cancelled) < 2 and time.monotonic() - start < 100:
        for job in _running_jobs(name):
            if job not in cancelled:
                subprocess.run(["scancel", job], check=True, timeout=10)
                cancelled.append(job)
        time.sleep(0.25)
    thread.join(timeout=110 - (time.monotonic() - start))
    assert not thread.is_alive(), "the executor did not notice the cancelled jobs"
    assert len(cancelled) == 2, f"expected to cancel the job and its retry, got {cancelled}"
    err = outcome.get("error")
    assert isinstance(err, UnitFailed), outcome
    (failure,) = err.failures
    assert failure.state == "CANCELLED" and failure.attempts == 2
    assert failure.job_id == cancelled[1] == ex.last_jobs[0]
    log = Path(failure.logs[0])
    assert log.parent.is_dir() and str(log) in str(err)
    assert "sleep 30.0" in str(err) and "CANCELLED" in str(err)
    assert time.monotonic() - start < 120


@pytest.mark.slurm
def test_slurm_smoke_models_and_attacks_equal_inline_and_record_their_jobs(slurm, tmp_path,
                                                                           monkeypatch,
                                                                           request):
    """The smoke profile's own training and attack units, through attack_zoo with the
    Slurm executor: the records equal the inline run's, and every model and attack unit
    in the cache names the Slurm job that computed it."""
    import numpy as np

    from drsl_utils import experiments as ex
    from drsl_utils.evaluation import unit_job

    config = tmp_path / "slurm.toml"
    config.write_text(f'cpus_per_task = 1\nmem_gb = 1\ntime_min = 5\npoll_s = 0.25\n'
                      f'deadline_s = 300\nfolder = "{tmp_path / "jobs"}"\n')
    monkeypatch.setenv("DRSL_SLURM_CONFIG", str(config))
    import torch

    from drsl_utils.runtime import set_threads

    request.addfinalizer(functools.partial(torch.set_num_threads, torch.get_num_threads()))
    set_threads(1)  # as the Slurm units (cpus_per_task = 1): same numerics
    P = ex.get_profile("smoke")
    runs = {}
    for executor in ("inline", "slurm"):
        monkeypatch.setenv("DRSL_CACHE_DIR", str(tmp_path / executor))
        monkeypatch.setenv("DRSL_EXECUTOR", executor)
        zoo = ex.train_zoo(P, ["CE", "DRSL"], seeds=[0], device="cpu", progress=False)
        result = ex.attack_zoo(P, zoo, [ex.pgd_spec(P)], device="cpu", progress=False)
        runs[executor] = (zoo, result)
    (zoo_i, res_i), (zoo_s, res_s) = runs["inline"], runs["slurm"]
    for name in ("CE", "DRSL"):
        assert zoo_i[name][0].key == zoo_s[name][0].key
        assert zoo_i[name][0].test_accuracy == zoo_s[name][0].test_accuracy
    cols = ["model", "eps", "sample", "adv_pred", "success"]
    assert res_i.records[cols].equals(res_s.records[cols])
    assert np.array_equal(res_i.records["adv_p_top"].to_numpy(),
                          res_s.records["adv_p_top"].to_numpy())
    assert all(tms[0].job and tms[0].job.split("_")[0].isdigit() for tms in zoo_s.values())
    assert all(tms[0].job is None for tms in zoo_i.values())
    slurm_units = list(res_s.units["path"])
    assert slurm_units and all(unit_job(p) and unit_job(p).split("_")[0].isdigit()
                               for p in slurm_units)
    assert all(unit_job(p) is None for p in res_i.units["path"])


@pytest.mark.slurm
def test_runs_with_submitit_one_minor_release_older(slurm, tmp_path):
    """The watcher hook and a real Slurm array with a failing unit, under submitit 1.4
    (the lock pins 1.5): installed into a folder of its own, first on the path of a
    child pytest and of its jobs. Skipped where no installer or no package index
    answers."""
    import shutil
    import sys

    pip = shutil.which("pip") or shutil.which("pip3")
    if pip is None:
        pytest.skip("no pip on the PATH to fetch another submitit release")
    site = tmp_path / "site"
    # submitit 1.4 finds its plugins (the job environment too) through pkg_resources,
    # which it does not declare and this lock does not hold: setuptools before 81 has it.
    got = subprocess.run([pip, "install", "-q", "--no-deps", "--target", str(site),
                          "submitit>=1.4,<1.5", "setuptools<81"], capture_output=True,
                         text=True, timeout=180, check=False)
    if got.returncode != 0:
        pytest.skip(f"submitit 1.4 could not be installed here: {got.stderr[-300:]}")
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), os.environ["PYTHONPATH"]])}
    code = ("import submitit, sys, pytest\n"
            "assert submitit.__version__.startswith('1.4.'), submitit.__version__\n"
            f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {__file__!r}, '-k', "
            "'queue_watcher or exception_reports']))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=400, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "2 passed" in run.stdout


def test_fan_out_runs_the_missing_units_off_inline_only(monkeypatch):
    """Inline, fan_out does nothing (the caller's own pass computes each entry) and
    never lists what is missing; elsewhere it maps the missing items, if any."""
    monkeypatch.setenv("DRSL_WORKERS", "1")
    listed = []

    def missing():
        listed.append(True)
        return [2, 3]

    kw = {"describe": str, "desc": "t"}
    assert fan_out(ex_mod._square, missing, executor="inline", **kw) == []
    assert listed == []
    assert fan_out(ex_mod._square, missing, executor="local", **kw) == [4, 9]
    assert fan_out(fail_if_negative, list, executor="local", **kw) == []
    with pytest.raises(UnitFailed, match="boom"):
        fan_out(fail_if_negative, lambda: [-1], executor="local", **kw)
