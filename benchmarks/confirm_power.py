"""How much evidence the ``confirm`` profile buys: each primary finding's design power
at its SESOI under the profile that wrote a claims table, and under ``confirm``.

Reads a machine-readable claims table (``figures/claims.json`` by default) and, for each
declared primary finding, recomputes the design power with :func:`claims.design_power`
(the report's own function, at the pre-specified level alpha / m) three ways:

- as measured: the row's seeds, its observed sd, its image term and calibration;
- under ``confirm``: that profile's seeds for the comparison, no image term (every
  attack runs on the whole test set, the estimands' population), and for a calibrated
  row the calibration's per-seed variance added to the seed term (``confirm``
  calibrates every seed, so the degrees of freedom are the seeds');
- the seeds needed for power 0.8 under ``confirm``'s design, as a range from the sd's
  95 % chi-square interval (:func:`claims.seeds_needed`).

The observed sd is an estimate from 5-8 seeds, so every number here is itself uncertain
by the range printed. Usage::

    .venv/bin/python benchmarks/confirm_power.py [figures/claims.json]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from drsl_utils import claims as C
from drsl_utils import experiments as ex


def main(path: str = "figures/claims.json") -> None:
    rows = {r["id"]: r for r in json.loads(Path(path).read_text())["claims"]}
    family = C.declared_family()
    level = C.ALPHA / len(family)
    confirm = ex.get_profile("confirm")
    n_conf = len(confirm.seeds_other)  # = len(confirm.seeds): every comparison
    n_cal = len(ex.calibration_seeds(confirm))
    print(f"primary findings: {len(family)}; level alpha/m = {level:.4f}; confirm: "
          f"{n_conf} seeds, calibration {n_cal} seeds x {confirm.calibration_size} images")
    print(f"{'claim':32s} {'n':>3s} {'power now':>9s} {'confirm':>8s} "
          f"{'seeds for 0.8 (confirm design)':>30s}")
    for cid in family:
        r = rows.get(cid)
        if r is None or r.get("sd") is None or not math.isfinite(r["sd"]):
            print(f"{cid:32s} not run")
            continue
        sesoi, direction = r["sesoi"], r["direction"]
        sd = r["sd"]  # display units
        if r.get("cal_seeds"):
            # The calibrated effect theta* = m - m_delta. Under confirm the calibration
            # runs on every seed, so its per-seed variance adds to the seed term (its
            # sd from the one-sided bound on cal_seeds - 1 df; the 200-image term kept,
            # which overstates it for 1,000 images; the correlation between the cheap
            # effect and its differential ignored, which also errs high).
            t = float(C.sps.t.isf(C.ALPHA, r["cal_seeds"] - 1))
            se_cal = (r["cal_high"] - r["cal_mean"]) / t
            sd = math.sqrt(sd ** 2 + se_cal ** 2 * r["cal_seeds"])
            assert n_cal >= n_conf, "confirm calibrates every seed of a comparison"
        power_conf = C.design_power(sd, n_conf, sesoi, direction, alpha=level)
        lo, pt, hi = C.seeds_needed(sd, r["n_seeds"], sesoi, direction, alpha=level)
        need = "unreachable" if pt is None else f"{pt} ({lo}-{hi})"
        print(f"{cid:32s} {r['n_seeds']:3d} {r['power']:9.2f} {power_conf:8.2f} "
              f"{need:>30s}")


if __name__ == "__main__":
    main(*sys.argv[1:])
