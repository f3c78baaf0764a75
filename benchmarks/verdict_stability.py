"""Do two runs of the main job agree on the verdicts? Kept for old command lines: it is
now ``python -m drsl_utils.report diff A B`` (see the README, "Comparing two runs"),
which reads ``claims.json`` or, for a figures folder from before that table, assesses
the recorded evidence in ``meta/*.json``.

Run: ``python benchmarks/verdict_stability.py FIGURES_A FIGURES_B [--labels A B]``
"""

from __future__ import annotations

import sys

from drsl_utils.report import main as report_main


def main(argv: list[str] | None = None) -> int:
    return report_main(["diff", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
