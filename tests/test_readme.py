"""The README's "Use it on your own model" block runs as printed, in a fresh Python, on
the toolkit's Fashion-MNIST, after a user's own model is defined: a README example that
rots fails here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## Use it on your own model"

# What a user has defined before pasting the block: a plain module this package never
# trained (1 x 28 x 28 in [0, 1] -> 10 logits), trained for a few steps so that some test
# images are classified correctly and the before/after plot has samples.
USER_MODEL = """\
import torch
from torch import nn

from drsl_utils.data import load_dataset

torch.manual_seed(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
_train = load_dataset("fashion-mnist", "train").subset(1000, seed=0)
_opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for _idx in torch.randperm(len(_train)).split(50):
    _opt.zero_grad()
    nn.functional.cross_entropy(model(_train.images[_idx]), _train.labels[_idx]).backward()
    _opt.step()
model.eval()
"""


def readme_block(text: str, heading: str = HEADING) -> str:
    """The first ```python block of the section under ``heading`` (up to the next
    ``## `` heading)."""
    start = text.index(heading + "\n")
    section = text[start + len(heading):]
    end = section.find("\n## ")
    section = section if end < 0 else section[:end]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)
    if not blocks:
        raise AssertionError(f"the README section {heading!r} has no ```python block")
    return blocks[0]


def test_readme_block_is_found_and_short():
    block = readme_block((ROOT / "README.md").read_text())
    assert len(block.strip().splitlines()) <= 12, "the README block is over 12 lines"
    assert "model" in block and "evaluate" in block


def test_readme_block_extractor_stops_at_the_next_section():
    text = "## Use it on your own model\nno code here\n\n## Next\n```python\nx = 1\n```\n"
    with pytest.raises(AssertionError, match="no ```python block"):
        readme_block(text)


@pytest.mark.slow
def test_readme_block_runs_as_printed_on_a_model_of_your_own(tmp_path):
    block = readme_block((ROOT / "README.md").read_text())
    script = tmp_path / "user.py"
    script.write_text(USER_MODEL + "\n" + block)
    env = dict(os.environ, DRSL_CACHE_DIR=str(tmp_path / "cache"), DRSL_THREADS="1",
               PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"the README block failed:\n{run.stderr[-3000:]}"
    assert "robust_accuracy" in run.stdout and "my model" in run.stdout, run.stdout
    # the printed robust accuracy is a fraction, and below the clean accuracy
    row = next(line for line in run.stdout.splitlines() if "my model" in line).split()
    clean, robust = float(row[-2]), float(row[-1])
    assert 0.0 <= robust <= clean <= 1.0 and clean > 0.3, run.stdout
    figures = list(tmp_path.glob("*.png"))
    assert figures and all(f.stat().st_size > 5000 for f in figures), figures
