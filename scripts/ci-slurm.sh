#!/usr/bin/env bash
# CI, before the tests: start a single-node Slurm on the CI machine (as root, with apt),
# so the tests marked `slurm` run against a real queue. Never fails CI: where Slurm
# cannot start, it says why, and those tests skip with a reason.
set -u
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "ci-slurm: not root: no local Slurm; the tests marked 'slurm' will skip"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 && ! command -v sbatch >/dev/null 2>&1; then
    echo "ci-slurm: no apt-get (and no Slurm installed): the tests marked 'slurm' will skip"
    exit 0
fi
if SLURM_WAIT_S=${SLURM_WAIT_S:-60} timeout 600 bash scripts/slurm-local.sh start; then
    echo "ci-slurm: a single-node Slurm is up; the tests marked 'slurm' will run"
else
    echo "ci-slurm: WARNING: Slurm did not start (see the lines above and /var/log/slurm/);" \
         "the tests marked 'slurm' will skip" >&2
fi
exit 0
