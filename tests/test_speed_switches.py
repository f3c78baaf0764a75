"""The speed switches (bf16 autocast, channels-last, torch.compile) must not change
results beyond numerical noise. Checked on CPU, where CI runs."""

from __future__ import annotations

import pytest

from drsl_utils.training import TrainConfig, train

CONFIG = TrainConfig(dataset="digits", epochs=4, batch_size=64)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return train(CONFIG, cache_dir=tmp_path_factory.mktemp("ref"), progress=False,
                 device="cpu", amp=False, channels_last=False)


@pytest.mark.parametrize("switch", [{"amp": True}, {"channels_last": True},
                                    pytest.param({"compile": True}, marks=pytest.mark.slow)],
                         ids=["amp-bf16", "channels-last", "compile"])
def test_switch_keeps_loss_and_accuracy(switch, reference, tmp_path):
    cfg = CONFIG if "channels_last" not in switch else CONFIG.replace(model="cnn")
    ref = reference if cfg is CONFIG else train(cfg, cache_dir=tmp_path / "ref", progress=False,
                                                device="cpu", amp=False, channels_last=False)
    other = train(cfg, cache_dir=tmp_path, progress=False, device="cpu", force=True,
                  **({"amp": False} | switch))
    # bf16 carries ~3 significant digits, so the loss drifts a little over 4 epochs.
    assert other.history["loss"][-1] == pytest.approx(ref.history["loss"][-1], rel=0.05)
    assert abs(other.test_accuracy - ref.test_accuracy) <= 0.02
