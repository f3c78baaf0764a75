"""What a notebook reports: its figures with captions, and its verdicts on the papers'
claims. The main job (``suite.py``) gathers them into ``figures/README.md`` (the
gallery) and ``figures/claims.md`` (the claims report).

Each notebook writes ``<figures_dir>/meta/<notebook>.json``; nothing in it carries a
timestamp, so re-running with the same results changes no committed file.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .cache import atomic_write
from .runtime import check_choice

__all__ = ["VERDICTS", "Claim", "Report", "verdict_from_interval", "load_meta"]

VERDICTS = ("holds", "does not hold", "inconclusive")


@dataclass
class Claim:
    """One claim from the brief, with what our runs measured.

    Attributes:
        id: a short stable identifier, e.g. ``"drsl-1-second-class"``.
        source: the paper, e.g. ``"DRSL slides"``.
        claim: the claim in one sentence.
        measured: the numbers behind the verdict, as text (computed, never typed in).
        verdict: ``holds``, ``does not hold`` or ``inconclusive``.
        n_seeds: how many seeds the numbers are over.
        notebook: the notebook that measured it.
        profile: the profile it ran under.
    """

    id: str
    source: str
    claim: str
    measured: str
    verdict: str
    n_seeds: int
    notebook: str = ""
    profile: str = ""


@dataclass
class Report:
    """Collects a notebook's figures and claims and writes them to ``figures_dir``.

    Args:
        notebook: the notebook's name, e.g. ``"02_attacks"``.
        profile: the profile name it runs under.
        figures_dir: where figures and ``meta/`` go.
    """

    notebook: str
    profile: str
    figures_dir: Path
    figures: list[dict[str, str]] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.figures_dir = Path(self.figures_dir)
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        self._write()

    def figure(self, fig: Any, name: str, caption: str, close: bool = True) -> list[Path]:
        """Save ``fig`` as ``<name>.png`` and ``.pdf`` with its caption for the gallery."""
        from .plots import save_figure

        paths = save_figure(fig, name, directory=self.figures_dir)
        self.figures = [f for f in self.figures if f["name"] != name]
        self.figures.append({"name": name, "caption": caption})
        self._write()
        if close:
            import matplotlib.pyplot as plt

            plt.close(fig)
        return paths

    def claim(self, id: str, source: str, claim: str, measured: str, verdict: str,
              n_seeds: int) -> None:
        """Record a verdict on a claim (replacing an earlier one with the same id) and
        print it."""
        check_choice("verdict", verdict, VERDICTS)
        item = Claim(id, source, claim, measured, verdict, int(n_seeds), self.notebook,
                     self.profile)
        self.claims = [c for c in self.claims if c.id != id] + [item]
        self._write()
        print(f"[{verdict.upper()}] {claim}\n    {measured} (n_seeds={n_seeds})")

    def _write(self) -> None:
        payload = {"notebook": self.notebook, "profile": self.profile,
                   "figures": self.figures, "claims": [asdict(c) for c in self.claims]}
        text = json.dumps(payload, indent=1, sort_keys=True, default=_json_default)
        atomic_write(self.figures_dir / "meta" / f"{self.notebook}.json",
                     lambda tmp: tmp.write_text(text + "\n"))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def load_meta(figures_dir: str | Path) -> list[dict[str, Any]]:
    """Every notebook's recorded figures and claims under ``figures_dir``, by name."""
    meta_dir = Path(figures_dir) / "meta"
    if not meta_dir.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(meta_dir.glob("*.json"))]


def verdict_from_interval(low: float, high: float, threshold: float = 0.0,
                          direction: str = "greater") -> str:
    """``holds`` if the whole interval lies beyond ``threshold`` in ``direction``,
    ``does not hold`` if it lies wholly on the other side, else ``inconclusive``."""
    check_choice("direction", direction, ("greater", "less"))
    if any(math.isnan(v) for v in (low, high)):
        return "inconclusive"
    if direction == "less":
        low, high, threshold = -high, -low, -threshold
    if low > threshold:
        return "holds"
    if high < threshold:
        return "does not hold"
    return "inconclusive"


def mean_ci(values: Any, level: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, sample std and a t-interval for the mean of a few per-seed values.

    With 2-3 seeds the interval is wide on purpose: a verdict drawn from it is only
    ``holds`` when the effect is large against the seed-to-seed noise.

    Returns:
        ``(mean, std, low, high)``; std and the interval are NaN for one value.
    """
    import numpy as np
    from scipy import stats as sps

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (math.nan,) * 4
    m = float(x.mean())
    if x.size == 1:
        return m, math.nan, math.nan, math.nan
    s = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, x.size - 1)) * s / math.sqrt(x.size)
    return m, s, m - half, m + half


def describe_diff(values: Any, unit: str = "", scale: float = 1.0, digits: int = 3) -> str:
    """``"+0.012 ± 0.004 (95% CI [+0.003, +0.021])"``: a per-seed difference as text."""
    m, s, lo, hi = (v * scale for v in mean_ci(values))
    if math.isnan(s):
        return f"{m:+.{digits}f}{unit} (one seed)"
    return (f"{m:+.{digits}f}{unit} ± {s:.{digits}f} (95% CI [{lo:+.{digits}f}, "
            f"{hi:+.{digits}f}])")
