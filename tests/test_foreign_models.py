"""A model the toolkit did not train is measured as it predicts: its logits come from
``model(x)``, and the eps guarantee of an attack holds only for [0, 1] inputs, which
is checked at the boundary."""

import pytest
import torch
from torch import nn

from drsl_utils.attacks import build_attack
from drsl_utils.evaluation import _forward


class _Tempered(nn.Module):
    """``forward`` differs from ``head(features(x))``: it divides by a temperature."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) / 10.0


def test_logits_come_from_model_call_not_from_its_parts():
    model = _Tempered().eval()
    x = torch.rand(5, 1, 4, 4)
    logits, feats = _forward(model, x)
    torch.testing.assert_close(logits, model(x))
    assert not torch.allclose(logits, model.head(model.features(x)))
    # The features are the head's input in that same call.
    torch.testing.assert_close(feats, model.features(x))


def test_model_without_head_has_no_features():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = torch.rand(4, 1, 4, 4)
    logits, feats = _forward(model, x)
    torch.testing.assert_close(logits, model(x))
    assert feats.shape == (4, 0)


def test_attack_refuses_images_outside_unit_range():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    atk = build_attack("fgsm", model, eps=0.1, n_classes=3)
    x = torch.rand(4, 1, 4, 4) * 255
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        atk(x, y)
    adv = atk(x / 255, y)
    assert float((adv - x / 255).abs().max()) <= 0.1 + 1e-6
