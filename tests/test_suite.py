"""The main job's scheduler: dependencies respected, errors surface, up-to-date skips."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from drsl_utils import suite


def test_schedule_respects_dependencies():
    keys = ["00", "01", "02", "03", "04", "05", "08", "09"]
    paths = {k: Path(f"{k}_x.ipynb") for k in keys}
    finished: dict[str, float] = {}
    started: dict[str, float] = {}
    lock = threading.Lock()

    def run(key):
        with lock:
            started[key] = time.perf_counter()
        time.sleep(0.02)
        with lock:
            finished[key] = time.perf_counter()
        return 1.0

    times, done = {}, set()
    suite._schedule(run, sorted(keys, key=suite.PRIORITY.index), paths, 2, times, done)
    assert done == set(keys) and len(times) == len(keys)
    for key, deps in suite.DEPENDS.items():
        for d in deps:
            if key in started and d in finished:
                assert started[key] >= finished[d], f"{key} started before {d} finished"


def test_schedule_reraises_a_failed_notebook():
    paths = {"00": Path("00_a.ipynb"), "01": Path("01_b.ipynb")}

    def run(key):
        if key == "01":
            raise RuntimeError("cell failed")
        return 0.0

    with pytest.raises(RuntimeError, match="cell failed"):
        suite._schedule(run, ["01", "00"], paths, 2, {}, set())


def test_inputs_hash_and_up_to_date(tmp_path):
    nb = tmp_path / "99_x.ipynb"
    nb.write_text("{}")
    digest = suite._inputs_hash(nb, "smoke", tmp_path)
    assert digest == suite._inputs_hash(nb, "smoke", tmp_path)
    assert digest != suite._inputs_hash(nb, "quick", tmp_path)
    stamp = tmp_path / ".99_x.inputs"
    assert not suite._up_to_date(nb, stamp, digest, tmp_path)
    stamp.write_text(digest)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "99_x.json").write_text('{"figures": [{"name": "f"}]}')
    assert not suite._up_to_date(nb, stamp, digest, tmp_path)  # figure missing
    (tmp_path / "f.png").write_bytes(b"png")
    assert suite._up_to_date(nb, stamp, digest, tmp_path)
    nb.write_text('{"changed": 1}')
    assert not suite._up_to_date(nb, stamp, suite._inputs_hash(nb, "smoke", tmp_path),
                                 tmp_path)
