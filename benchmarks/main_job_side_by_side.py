"""The main job of two commits side by side: cold `make figures` in two fresh clones,
started at the same moment on the same machine, with the ratio of their times.

    python benchmarks/main_job_side_by_side.py --baseline 2ae1966
    python benchmarks/main_job_side_by_side.py --baseline 2ae1966 --candidate HEAD \
        --suite-args "--jobs 2" --keep

These machines are shared and their speed drifts by 10-25 % within an hour, so one cold
run of the main job is not a measurement of a speed-up. Two runs started together meet
the same drift. The ratio to read is the CPU time (user + system, of `make` and every
process under it): time-slicing between the two runs does not inflate it. The wall-time
ratio is printed too, but it leans towards 1: the run that finishes first leaves the
whole machine to the other. Each clone builds its own environment and caches (cold), as
a new user's clone would; the environment is part of both times.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _clone(rev: str, where: Path) -> Path:
    repo = where / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", rev], check=True)
    shared = ROOT.parent / "shared"
    if shared.is_dir():  # what the machines keep beside a checkout
        (where / "shared").symlink_to(shared)
    return repo


def _resolve(rev: str) -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="commit to compare against")
    ap.add_argument("--candidate", default="HEAD", help="commit measured (default HEAD)")
    ap.add_argument("--suite-args", default="", help="SUITE_ARGS for both runs")
    ap.add_argument("--keep", action="store_true", help="keep the clones (and galleries)")
    args = ap.parse_args()

    revs = {"baseline": _resolve(args.baseline), "candidate": _resolve(args.candidate)}
    base = Path(tempfile.mkdtemp(prefix="drsl-side-by-side-"))
    procs: dict[int, tuple[str, subprocess.Popen, float, Path]] = {}
    for role, rev in revs.items():
        repo = _clone(rev, base / role)
        log = base / f"{role}.log"
        cmd = ["make", "figures"] + ([f"SUITE_ARGS={args.suite_args}"] if args.suite_args else [])
        print(f"{role}: {rev} in {repo}: {shlex.join(cmd)} (log {log})", flush=True)
        with open(log, "w") as fh:
            p = subprocess.Popen(cmd, cwd=repo, stdout=fh, stderr=subprocess.STDOUT,
                                 env=os.environ | {"PYTHONUNBUFFERED": "1"})
        procs[p.pid] = (role, p, time.perf_counter(), repo)
    results: dict[str, dict[str, float]] = {}
    while procs:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in procs:
            continue
        role, p, start, repo = procs.pop(pid)
        p.returncode = os.waitstatus_to_exitcode(status)
        results[role] = {"wall": time.perf_counter() - start,
                         "cpu": usage.ru_utime + usage.ru_stime, "rc": p.returncode}
        print(f"{role} finished: rc {p.returncode}, wall {results[role]['wall']:.0f} s, "
              f"cpu {results[role]['cpu']:.0f} s", flush=True)
    print()
    print("| run | commit | wall | CPU (user+sys) |\n|---|---|---|---|")
    for role in revs:
        r = results[role]
        print(f"| {role} | {revs[role]} | {r['wall']:.0f} s | {r['cpu']:.0f} s |")
    b, c = results["baseline"], results["candidate"]
    print(f"\ncandidate / baseline: CPU {c['cpu'] / b['cpu']:.3f}, wall {c['wall'] / b['wall']:.3f}"
          " (the wall ratio leans towards 1; see the module docstring)")
    if args.keep:
        print(f"clones kept under {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if b["rc"] == 0 and c["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
