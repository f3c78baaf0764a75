"""Models the toolkit did not train: any ``nn.Module`` goes into ``evaluate``, its logits
come from ``model(x)``, its cache key covers its weights, and bad input fails at the
boundary with a named error (``drsl_utils.errors``) that names the value.

The models here are a small CNN and an MLP defined in this file and trained (where
needed) in plain PyTorch, on a few hundred Fashion-MNIST test images."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from drsl_utils import cache as C
from drsl_utils import data
from drsl_utils import evaluation as E
from drsl_utils.attacks import build_attack
from drsl_utils.errors import (
    DeviceError,
    FeatureSourceError,
    InputError,
    LabelRangeError,
    ModelTypeError,
    PixelRangeError,
    ShapeError,
    UnknownNameError,
)

FASHION_PRESENT = (data.DEBIAN_FASHION_DIR / "train-images-idx3-ubyte.gz").exists()
needs_fashion = pytest.mark.skipif(not FASHION_PRESENT, reason="Debian package "
                                   "dataset-fashion-mnist is not installed")
N = 300
TOL = 1e-5


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


class SmallCNN(nn.Module):
    """A user's CNN: its own class, a ``body`` and a ``head``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Flatten())
        self.head = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 5) -> nn.Module:
    """Plain PyTorch training, as a user would write it."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for s in range(0, x.shape[0], 100):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[s:s + 100]), y[s:s + 100]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def fashion():
    """``(x, y)``: N attacked test images, and ``(tx, ty)``: 1,000 other test images to
    train on (the test split loads in a second; the training split takes longer)."""
    ds = data.load_dataset("fashion-mnist", "test").subset(N + 1000, seed=0)
    return (ds.images[:N], ds.labels[:N]), (ds.images[N:], ds.labels[N:])


@pytest.fixture(scope="module")
def models(fashion):
    """An untrained MLP, the same MLP trained, and a trained CNN."""
    torch.manual_seed(0)
    untrained = _mlp().eval()
    tx, ty = fashion[1]
    trained = _fit(copy.deepcopy(untrained), tx, ty)
    torch.manual_seed(1)
    cnn = _fit(SmallCNN(), tx, ty, epochs=3)
    return untrained, trained, cnn


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


# ------------------------------------------------------------------ logits, features


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
    logits, feats = E._forward(model, x, (model.head, "input"))
    torch.testing.assert_close(logits, model(x))
    assert not torch.allclose(logits, model.head(model.features(x)))
    torch.testing.assert_close(feats, model.features(x))  # the head's input, same call
    # The same through evaluate, with the feature source given as a layer name.
    y = model(x).argmax(1)
    res = E.evaluate(E.foreign(model, name="tempered", features="body"), ["fgsm"], x, y,
                     eps_grid=[0.0], cache=False, progress=False, device="cpu")
    np.testing.assert_allclose(res.clean_logits("tempered"), model(x).detach().numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(res.clean_features("tempered"),
                               model.features(x).detach().numpy(), rtol=1e-6)


def test_a_model_without_a_feature_source_has_no_features_and_says_so(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = torch.rand(6, 1, 4, 4)
    logits, feats = E._forward(model, x)
    torch.testing.assert_close(logits, model(x))
    assert feats is None
    res = E.evaluate({"plain": model}, ["fgsm"], x, model(x).argmax(1), eps_grid=[0.1],
                     cache=False, progress=False, device="cpu")
    with pytest.raises(FeatureSourceError, match="'plain' has no feature source"):
        res.clean_features("plain")
    with pytest.raises(FeatureSourceError, match="features="):
        res.adv_features("plain", "fgsm", 0.1)
    from drsl_utils.embed import fit_embedding

    with pytest.raises(FeatureSourceError, match=r"shape \(6, 0\)"):  # not deep in sklearn
        fit_embedding(np.zeros((6, 0)), cache_dir=tmp_path, progress=False)


class _NoParameters(nn.Module):
    """A fixed function of the input: a model with no parameters and no buffers."""

    def forward(self, x):
        return 5 * x.flatten(1)[:, :3]


def test_a_model_without_parameters_is_evaluated_and_attacked():
    """``next(model.parameters())`` raised StopIteration on such a model; its device is
    the CPU, and its logits and attack records come out like any other's."""
    from drsl_utils.models import predict_logits
    from drsl_utils.runtime import module_device

    model = _NoParameters()
    assert module_device(model) == torch.device("cpu")
    x = torch.rand(8, 1, 4, 4)
    y = model(x).argmax(1)
    torch.testing.assert_close(predict_logits(model, x), model(x))
    res = E.evaluate({"fixed": model}, ["fgsm"], x, y, eps_grid=[0.1], cache=False,
                     progress=False, device="cpu", n_classes=3)
    rec = res.records
    assert len(rec) == 8 and rec["clean_correct"].all()
    adv = build_attack("fgsm", model, eps=0.1, n_classes=3)(x, y)
    assert float((adv - x).abs().max()) <= 0.1 + 1e-6


@needs_fashion
def test_any_module_in_records_out(fashion, models):
    (x, y), _ = fashion
    _, mlp, cnn = models
    res = E.evaluate({"cnn": E.foreign(cnn, features="body"),
                      "mlp": E.foreign(mlp, n_classes=10, features=lambda v: v.flatten(1)),
                      "mlp-bare": copy.deepcopy(mlp)},
                     [("pgd", {"steps": 3})], x, y, eps_grid=[0.05], cache=False,
                     progress=False, device="cpu", batch_size=150)
    rec = res.records
    assert len(rec) == 3 * N and list(rec.columns) == list(E.RECORD_COLUMNS)
    assert list(res.models["model"]) == ["cnn", "mlp", "mlp-bare"]
    assert (res.models["num_classes"] == 10).all()
    assert list(res.models["features"]) == [True, True, False]
    assert (rec["loss"] == "unknown").all() and (rec["seed"] == -1).all()
    assert rec["model_key"].str.startswith("foreign-").all()
    # the same weights under two names are one model for the cache, two for the records
    assert res.models["model_key"].nunique() == 3  # the callable source makes mlp differ
    for name, model in (("cnn", cnn), ("mlp", mlp)):
        with torch.no_grad():
            np.testing.assert_allclose(res.clean_logits(name), model(x).numpy(), rtol=1e-5,
                                       atol=1e-6)
        clean = rec[rec["model"] == name]
        assert clean["clean_correct"].mean() == pytest.approx(_accuracy(model, x, y))
    assert res.clean_features("cnn").shape == (N, 16 * 7 * 7)
    assert res.adv_features("mlp", "pgd", 0.05).shape == (N, 784)
    assert (rec["linf"] <= 0.05 + TOL).all()


def test_toolkit_and_foreign_models_mix(digits_model):
    ds = data.load_dataset("digits", "test").subset(40, seed=0)
    torch.manual_seed(0)
    mine = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    res = E.evaluate([digits_model, mine], ["fgsm"], ds.images, ds.labels, eps_grid=[0.1],
                     cache=False, progress=False, device="cpu")
    assert list(res.models["model"]) == [digits_model.config.label, "Sequential"]
    assert res.models["model_key"].iloc[0] == digits_model.key  # toolkit keys unchanged
    assert res.models["weights"].iloc[0] == "" and len(res.models["weights"].iloc[1]) == 16
    assert res.clean_features(digits_model.key).shape == (40, 256)


# ------------------------------------------------------------------------ cache keys


def test_foreign_key_covers_weights_class_and_structure():
    torch.manual_seed(0)
    a = _mlp()
    assert C.foreign_model_key(a) == C.foreign_model_key(copy.deepcopy(a))  # stable
    assert C.weights_fingerprint(a) == C.weights_fingerprint(a.to(torch.float64).float())
    b = copy.deepcopy(a)
    with torch.no_grad():
        b[1].weight[0, 0] += 1e-3  # one weight
    assert C.foreign_model_key(b) != C.foreign_model_key(a)
    c = copy.deepcopy(a)
    c[2] = nn.Tanh()  # same weights, another activation
    assert C.weights_fingerprint(c) == C.weights_fingerprint(a)
    assert C.foreign_model_key(c) != C.foreign_model_key(a)
    assert C.foreign_model_key(a, "layer") != C.foreign_model_key(a)  # feature source
    # the key is read when evaluate runs: training in place after wrapping changes it
    fm = E.foreign(a, name="mine")
    before = fm.key
    with torch.no_grad():
        a[3].bias += 1.0
    assert fm.key != before


_ENCODER = nn.Linear(16, 4)


def _closing_over(module: nn.Module):
    return lambda v: module(v.flatten(1))


def test_a_callable_feature_source_is_keyed_by_its_code_and_what_it_holds():
    """Features are cached with the model: two extractors must not share a key because
    both are ``<lambda>``s of one module."""
    fp = C.callable_fingerprint
    flat, flat2 = (lambda v: v.flatten(1)), (lambda v: v.flatten(2))  # noqa: E731
    assert fp(flat) == fp(flat) and fp(flat) != fp(flat2)
    torch.manual_seed(0)
    a, b = nn.Linear(16, 4), nn.Linear(16, 4)
    assert fp(_closing_over(a)) != fp(_closing_over(b))  # closure: by weights
    assert fp(_closing_over(a)) == fp(_closing_over(copy.deepcopy(a)))
    assert fp(a.forward) != fp(b.forward)  # a bound method: by its module's weights
    reads_global = lambda v: _ENCODER(v.flatten(1))  # noqa: E731
    before = fp(reads_global)
    with torch.no_grad():
        _ENCODER.bias += 1.0  # the global it reads was trained further
    assert fp(reads_global) != before
    model = _mlp()
    keys = {E.foreign(model, features=f).key for f in (flat, flat2, _closing_over(a))}
    assert len(keys) == 3


@needs_fashion
def test_same_name_different_weights_never_share_a_cache_entry(fashion, models, cache_dir):
    """The issue's scenario: an untrained model evaluated under the name of a trained
    one came back from_cache=True with the trained model's accuracy."""
    (x, y), _ = fashion
    untrained, trained, _ = models

    def run(model):
        return E.evaluate({"mine": model}, ["fgsm"], x, y, eps_grid=[0.05],
                          cache_dir=cache_dir, progress=False, device="cpu")

    first = run(trained)
    assert not first.units["from_cache"].any()
    second = run(untrained)
    assert not second.units["from_cache"].any()  # its own units, not the trained ones
    assert first.models["model_key"][0] != second.models["model_key"][0]
    for res, model in ((first, trained), (second, untrained)):
        acc = res.records["clean_correct"].mean()
        assert acc == pytest.approx(_accuracy(model, x, y))
    assert first.records["clean_correct"].mean() > 0.5 > second.records["clean_correct"].mean()
    again = run(copy.deepcopy(untrained))  # same weights, another object: a cache hit
    assert again.units["from_cache"].all()
    np.testing.assert_array_equal(again.clean_logits("mine"), second.clean_logits("mine"))


# --------------------------------------------------------------- the eps guarantee


@needs_fashion
@pytest.mark.parametrize("name,eps,params", [
    ("fgsm", 0.1, {}), ("pgd", 0.1, {"steps": 5}), ("pgd-l2", 1.0, {"steps": 5}),
    ("cw", 0.5, {"steps": 20}), ("deepfool", 0.5, {"steps": 10}),
    ("apgd-ce", 0.1, {"steps": 5}), ("square", 0.1, {"steps": 30})])
def test_eps_guarantee_through_build_attack(fashion, models, name, eps, params):
    (x, y), _ = fashion
    cnn = models[2]
    atk = build_attack(name, cnn, eps, n_classes=10, **params)
    adv = atk(x[:64], y[:64])
    delta = (adv - x[:64]).flatten(1)
    size = delta.abs().amax(1) if atk.norm == "Linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps + TOL
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    with pytest.raises(PixelRangeError, match=r"\[0, 255\]"):
        atk((x[:8] * 255).round(), y[:8])


@needs_fashion
def test_eps_guarantee_through_evaluate_with_a_foreign_model(fashion, models):
    (x, y), _ = fashion
    res = E.evaluate(models[2], [("pgd", {"steps": 3}), ("pgd-l2", {"steps": 3}, [0.5])],
                     x, y, eps_grid=[0.03, 0.1], cache=False, progress=False, device="cpu")
    rec = res.records
    linf = rec[rec["attack"] == "pgd"]
    assert (linf["linf"] <= linf["eps"] + TOL).all() and linf["linf"].max() > 0.09
    l2 = rec[rec["attack"] == "pgd-l2"]
    assert (l2["l2"] <= 0.5 + TOL).all()
    with pytest.raises(PixelRangeError, match=r"\[0, 255\]"):
        E.evaluate(models[2], ["fgsm"], (x * 255).round(), y, eps_grid=[0.1], cache=False,
                   progress=False, device="cpu")


# ------------------------------------------------------------------------ bad input
# Every bad input of the issue, with the class and the message it now gets.

def _bad_evaluate(fashion, models):
    (x, y), _ = fashion
    _, mlp, cnn = models
    y10 = y.clone()
    y10[7] = 10
    return {
        "labels one short": (dict(labels=y[:-1]), ShapeError,
                             r"images of shape \(300, 1, 28, 28\) and labels of shape "
                             r"\(299,\) do not match"),
        "3x32x32 into a 28x28 MLP": (dict(images=torch.rand(N, 3, 32, 32)), ShapeError,
                                     r"a batch of 300 images of shape \(3, 32, 32\)\) do "
                                     r"not fit model 'mine'"),
        "3x32x32 into a 28x28 CNN": (dict(images=torch.rand(N, 3, 32, 32), model=cnn),
                                     ShapeError, r"do not fit model 'mine'.*one image"),
        "no channel axis, into a CNN": (dict(images=x[:, 0], model=cnn), ShapeError,
                                        r"a batch of 300 images of shape \(28, 28\)\) do "
                                        r"not fit model 'mine'"),
        "label 10 on a 10-class model": (dict(labels=y10), LabelRangeError,
                                         r"label 10 at index 7 is not valid for model 'mine' with n_classes=10: "
                                         r"labels must lie in \[0, 9\] \(1 of 300 are outside\)"),
        "negative label": (dict(labels=y - 1), LabelRangeError, r"label -1 .*\[0, 9\]"),
        "float labels": (dict(labels=y.float()), LabelRangeError, r"labels of dtype torch.float32 are not valid"),
        "0-255 images": (dict(images=(x * 255).round()), PixelRangeError,
                         r"\[0, 1\] \(got \[0, 255\]\); scale them"),
        "NaN pixel": (dict(images=torch.where(torch.arange(N).view(-1, 1, 1, 1) == 3,
                                              float("nan"), x)),
                      PixelRangeError, "NaN"),
        "device='gpu'": (dict(device="gpu"), DeviceError,
                         r"device='gpu' is not valid; choose one of: 'auto', 'cpu', 'cuda'"),
        "device='meta'": (dict(device="meta"), DeviceError, r"device='meta' is not valid"),
        "n_classes=5 for 10 logits": (dict(n_classes=5), ShapeError,
                                      r"model 'mine' returns 10 logits per image, but "
                                      r"n_classes=5"),
        "unknown feature layer": (dict(features="fc9"), UnknownNameError,
                                  r"features='fc9' is not a layer of model 'mine'; choose "
                                  r"one of: \['0', '1', '2', '3'\]"),
        "a feature module from elsewhere": (dict(features=nn.Linear(2, 2)),
                                            FeatureSourceError,
                                            r"features=Linear is not a submodule"),
        "not a model": (dict(model="resnet"), ModelTypeError,
                        r"models contains str: expected torch.nn.Module"),
        "unknown attack": (dict(attacks=["pgdd"]), UnknownNameError,
                           r"name='pgdd' is not valid; choose one of: 'fgsm'"),
    }


BAD_EVALUATE = ["labels one short", "3x32x32 into a 28x28 MLP", "3x32x32 into a 28x28 CNN",
                "no channel axis, into a CNN", "label 10 on a 10-class model",
                "negative label", "float labels", "0-255 images", "NaN pixel",
                "device='gpu'", "device='meta'", "n_classes=5 for 10 logits",
                "unknown feature layer", "a feature module from elsewhere", "not a model",
                "unknown attack"]


@needs_fashion
@pytest.mark.parametrize("case", BAD_EVALUATE)
def test_bad_input_to_evaluate_is_named_before_any_work(fashion, models, case, cache_dir,
                                                        monkeypatch):
    (x, y), _ = fashion
    kw, cls, message = _bad_evaluate(fashion, models)[case]
    monkeypatch.setattr(E, "build_attack", lambda *a, **k: pytest.fail("work started"))
    model = kw.pop("model", models[1])
    with pytest.raises(cls, match=message) as info:
        E.evaluate({"mine": model}, kw.pop("attacks", ["fgsm"]), kw.pop("images", x),
                   kw.pop("labels", y), eps_grid=[0.1], cache_dir=cache_dir,
                   progress=False, device=kw.pop("device", "cpu"), **kw)
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
    assert not cache_dir.exists()  # nothing was computed or written


def test_model_type_error_is_also_a_type_error():
    with pytest.raises(TypeError):
        E.foreign("not a module")


@needs_fashion
def test_bad_input_to_an_attack_is_named(fashion, models):
    (x, y), _ = fashion
    mlp = models[1]
    atk = build_attack("pgd", mlp, 0.1, steps=2, n_classes=10)
    cases = [
        ((x[:8] * 255).round(), y[:8], PixelRangeError, r"\[0, 1\] \(got \[0, 255\]\)"),
        (torch.rand(8, 3, 32, 32), y[:8], ShapeError,
         r"a batch of 8 images of shape \(3, 32, 32\)\) do not fit the model of attack 'pgd'"),
        (x[:8], y[:7], ShapeError, r"labels of shape \(7,\) do not match"),
        (x[:8], torch.full((8,), 10), LabelRangeError,
         r"label 10 at index 0 .*n_classes=10.*\(8 of 8 are outside\)"),
    ]
    for images, labels, cls, message in cases:
        with pytest.raises(cls, match=message):
            atk(images, labels)
    with pytest.raises(UnknownNameError, match=r"unknown option\(s\) \['stpes'\]"):
        build_attack("pgd", mlp, 0.1, stpes=3, n_classes=10)


def test_bad_device_at_the_training_entry(tmp_path):
    from drsl_utils.training import TrainConfig, train, train_many

    cfg = TrainConfig(dataset="digits", epochs=1)
    with pytest.raises(DeviceError, match="device='gpu' is not valid"):
        train(cfg, device="gpu", cache_dir=tmp_path / "a", progress=False)
    with pytest.raises(DeviceError, match="device='gpu' is not valid"):
        train_many([cfg], device="gpu", executor="local", cache_dir=tmp_path / "b",
                   progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
