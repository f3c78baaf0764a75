"""The vectorised DeepFool is torchattacks' DeepFool, batch for batch."""

from __future__ import annotations

import torch
import torchattacks

from drsl_utils.data import load_dataset
from drsl_utils.deepfool import deepfool


def test_batched_deepfool_matches_torchattacks(digits_model):
    ds = load_dataset("digits", "test").subset(48, seed=0)
    x, y = ds.images, ds.labels
    model = digits_model.model
    ours = deepfool(model, x[:16], y[:16], steps=5, overshoot=0.02, num_classes=10)
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    ref = torchattacks.DeepFool(model, steps=5, overshoot=0.02)(x[:16], y[:16])
    assert torch.allclose(ours, ref, atol=1e-4)
    for p, g in zip(model.parameters(), grads):  # torchattacks' DeepFool adds to .grad
        p.grad = g
