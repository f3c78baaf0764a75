"""Models: shapes, penultimate features, normalisation inside the model."""

from __future__ import annotations

import pytest
import torch

from drsl_utils.models import MODELS, build_model, predict_logits
from drsl_utils.runtime import seeded


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dataset", ["digits", "fashion-mnist", "cifar10"])
def test_shapes_and_features(name, dataset):
    if name == "resnet18" and dataset == "digits":
        pytest.skip("resnet18 is meant for 28x28 and larger inputs")
    with seeded(0):
        model = build_model(name, dataset).eval()
    shape = {"digits": (1, 8, 8), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}[dataset]
    x = torch.rand(3, *shape)
    feats = model.features(x)
    assert feats.dim() == 2 and feats.shape[0] == 3
    logits = model(x)
    assert logits.shape == (3, 10)
    torch.testing.assert_close(model.head(feats), logits)


def test_normalisation_is_inside():
    model = build_model("mlp", "fashion-mnist")
    x = torch.full((1, 1, 28, 28), 0.2860)
    assert torch.allclose(model.normalize(x), torch.zeros_like(x), atol=1e-6)


def test_seeded_init_is_reproducible_and_leaves_rng():
    state = torch.get_rng_state()
    with seeded(5):
        a = build_model("cnn", "digits")
    with seeded(5):
        b = build_model("cnn", "digits")
    assert torch.equal(state, torch.get_rng_state())
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_predict_logits_restores_mode():
    model = build_model("mlp", "digits").train()
    out = predict_logits(model, torch.rand(10, 1, 8, 8), batch_size=3)
    assert out.shape == (10, 10) and model.training
    feats = predict_logits(model, torch.rand(4, 1, 8, 8), features=True)
    assert feats.shape == (4, 256)


def test_bad_model_name():
    with pytest.raises(ValueError, match="name='vgg'.*mlp"):
        build_model("vgg", "digits")


def test_bad_model_name_is_an_unknown_name_listing_every_model():
    from drsl_utils.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"^model name='vgg' is not valid; choose one "
                                               r"of: 'mlp', 'cnn', 'resnet18'$"):
        build_model("vgg", "digits")


def test_a_registered_factory_builds_like_a_builtin_one():
    from torch import nn

    from drsl_utils.errors import ModelTypeError
    from drsl_utils.models import register_model

    @register_model("flat-linear")
    def flat_linear(info, bias=True):
        c, h, w = info.shape
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, info.num_classes, bias=bias))

    try:
        assert "flat-linear" in MODELS and not MODELS.is_builtin("flat-linear")
        model = build_model("flat-linear", "cifar10", bias=False)
        # num_classes is set for attacks to read, where the module has none
        assert model.num_classes == 10 and model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
        assert model[1].bias is None
        register_model("flat-linear", lambda info: "not a module", replace=True)
        with pytest.raises(ModelTypeError, match="model 'flat-linear': its factory returned "
                                                 "str"):
            build_model("flat-linear", "digits")
    finally:
        MODELS.unregister("flat-linear")
    assert "flat-linear" not in MODELS
