"""One registry shape: the Registry class, every lookup through it, and a user's own
architecture and data in the training engine (trained, cached, attacked; keyed by their
code and content; checked before any training)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drsl_utils import adversarial, attacks, data, losses, models, training
from drsl_utils.errors import (
    DeviceError,
    DuplicateNameError,
    LabelRangeError,
    PixelRangeError,
    ShapeError,
    UnknownNameError,
)
from drsl_utils.registry import Registry
from drsl_utils.training import TrainConfig, train

# ------------------------------------------------------------------ the Registry class


def test_register_get_names_contains():
    reg: Registry[int] = Registry("thing", {"a": 1, "b": 2})
    assert reg.register("c", 3) == 3
    assert reg.names() == ("a", "b", "c") and list(reg) == ["a", "b", "c"] and len(reg) == 3
    assert reg.get("b") == 2 and reg["c"] == 3
    assert "a" in reg and "z" not in reg and ["unhashable"] not in reg
    assert reg.is_builtin("a") and not reg.is_builtin("c") and not reg.is_builtin("z")


def test_an_equal_declaration_again_is_a_no_op():
    """A notebook cell run twice declares an equal (not the same) dataclass again."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Claim:
        id: str
        sesoi: float

    reg: Registry[Claim] = Registry("claim")
    first = reg.register("c1", Claim("c1", 0.1))
    reg.register("c1", Claim("c1", 0.1))
    assert reg.get("c1") is first and reg.values() == [first]
    with pytest.raises(DuplicateNameError):
        reg.register("c1", Claim("c1", 0.2))


def test_register_as_a_decorator_returns_the_object():
    reg: Registry = Registry("factory")

    @reg.register("f")
    def f():
        return 1

    assert reg.get("f") is f and f() == 1


def test_unknown_name_lists_the_choices_and_is_a_value_error():
    reg = Registry("widget", {"x": 1, "y": 2})
    with pytest.raises(UnknownNameError, match=r"widget name='q' is not valid; choose one of: "
                                               r"'x', 'y'$"):
        reg.get("q")
    with pytest.raises(ValueError, match="widget kind='q'"):
        reg.get("q", param="kind")


def test_a_taken_name_needs_replace_and_the_same_object_is_a_no_op():
    reg = Registry("thing", {"a": 1})
    reg.register("a", 1)  # the same object again: nothing happens
    with pytest.raises(DuplicateNameError):
        reg.register("a", 1.0)  # equal, but of another type
    with pytest.raises(DuplicateNameError, match=r"thing name='a' is already registered.*"
                                                 r"replace=True"):
        reg.register("a", 5)
    reg.register("a", 5, replace=True)
    assert reg.get("a") == 5 and not reg.is_builtin("a")
    assert reg.unregister("a") == 5 and reg.get("a") == 1 and reg.is_builtin("a")
    reg.register("n", 7)
    reg.unregister("n")
    assert "n" not in reg
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("", 3)


# ------------------------------------------------------ every lookup goes through one


@pytest.mark.parametrize("call, kind, choices", [
    (lambda: losses.get_loss("focal"), "loss", ["'ce'", "'drsl'", "'sovr'"]),
    (lambda: models.build_model("vgg", "digits"), "model", ["'mlp'", "'cnn'", "'resnet18'"]),
    (lambda: data.load_dataset("svhn"), "dataset", ["'digits'", "'fashion-mnist'"]),
    (lambda: data.dataset_info("svhn"), "dataset", ["'digits'", "'cifar10'"]),
    (lambda: attacks.AttackSpec("pgdd"), "attack", ["'fgsm'", "'autoattack'"]),
    (lambda: adversarial.get_adversarial("fgsm"), "adversarial training",
     ["'pgd'", "'trades'"]),
    (lambda: TrainConfig(dataset="digits", model="vgg"), "model", ["'mlp'"]),
    (lambda: TrainConfig(dataset="digits", loss="focal"), "loss", ["'ce'"]),
])
def test_unknown_names_give_one_error_listing_the_registered_ones(call, kind, choices):
    with pytest.raises(UnknownNameError, match=rf"^{kind} name='\w+' is not valid; choose "
                                               "one of: ") as info:
        call()
    assert all(c in str(info.value) for c in choices)


@pytest.mark.parametrize("call, message", [
    (lambda: losses.get_loss("drsl", q=0.1), "loss 'drsl' has no parameter 'q'; its "
                                             "parameters are: tau, space"),
    (lambda: losses.get_loss("ce", tau=1.0), "loss 'ce' has no parameter 'tau'; its "
                                             r"parameters are: \(none\)"),
    (lambda: adversarial.get_adversarial("pgd", beta=1.0), "adversarial training 'pgd' has "
                                                           "no parameter 'beta'"),
    (lambda: models.build_model("mlp", "digits", width=3), "model 'mlp' has no parameter "
                                                           "'width'; its parameters are: "
                                                           "hidden"),
])
def test_unknown_keywords_name_the_entry_and_its_parameters(call, message):
    with pytest.raises(UnknownNameError, match=message):
        call()


def test_the_attack_table_is_closed_to_new_names():
    attacks.ATTACKS.register("mine", attacks.ATTACKS.get("fgsm"))
    try:
        with pytest.raises(ValueError, match="constructs only the built-in attacks"):
            attacks.AttackSpec("mine")
    finally:
        attacks.ATTACKS.unregister("mine")


# ------------------------------------------- a user's architecture and data, trained


class TinyNet(nn.Module):
    """A user's own architecture: no ``num_classes``, no ``features``, no ``head``."""

    def __init__(self, shape: tuple[int, int, int], k: int, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(shape[0] * shape[1] * shape[2], width),
                                 nn.ReLU(), nn.Linear(width, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def tiny(info: data.DatasetInfo, width: int = 16) -> nn.Module:
    return TinyNet(info.shape, info.num_classes, width)


def tiny_doubled(info: data.DatasetInfo, width: int = 16) -> nn.Module:
    return TinyNet(info.shape, info.num_classes, 2 * width)


@pytest.fixture()
def registered():
    """Registers ``tinynet`` (and whatever a test adds to ``names``) and removes it
    afterwards, so no other test sees it."""
    names: list[tuple[Registry, str]] = [(models.MODELS, "tinynet")]
    models.register_model("tinynet", tiny)
    yield names
    for reg, name in names:
        if name in reg:
            reg.unregister(name)


def _digits(n: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    ds = data.load_dataset("digits", split).subset(n, seed=0)
    return ds.images, ds.labels


def _config(dataset, **changes) -> TrainConfig:
    return TrainConfig(dataset=dataset, model="tinynet", epochs=1, batch_size=50,
                       **changes)


def test_a_user_model_on_in_memory_data_trains_caches_and_is_attacked(registered, cache_dir,
                                                                     monkeypatch):
    x, y = _digits(200)
    xt, yt = _digits(60, "test")
    config = _config((data.DatasetSplit(x, y, tuple("0123456789"), "mine", "train"),
                      data.DatasetSplit(xt, yt, tuple("0123456789"), "mine", "test")))
    assert config.dataset.startswith("memory-") and data.dataset_info(config.dataset).shape \
        == (1, 8, 8)
    first = train(config, cache_dir=cache_dir, device="cpu", progress=False)
    assert not first.from_cache and len(first.history["loss"]) == 1
    assert isinstance(first.model, TinyNet) and first.model.num_classes == 10
    assert 0.0 <= first.test_accuracy <= 1.0 and first.path.exists()

    monkeypatch.setattr(training, "_fit", lambda *a, **k: pytest.fail("trained again"))
    # The same tensors, registered again (as a new process would): the same name and key.
    again = _config((data.DatasetSplit(x.clone(), y.clone(), tuple("0123456789"), "m", "train"),
                     data.DatasetSplit(xt, yt, tuple("0123456789"), "m", "test")))
    second = train(again, cache_dir=cache_dir, device="cpu", progress=False)
    assert again.dataset == config.dataset and second.key == first.key
    assert second.from_cache and second.test_accuracy == first.test_accuracy
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)

    atk = attacks.build_attack("pgd", second.model, 0.1, steps=3)
    adv = atk(xt, yt)
    assert float((adv - xt).abs().max()) <= 0.1 + 1e-6
    from drsl_utils.evaluation import evaluate

    result = evaluate(second, ["fgsm"], xt, yt, eps_grid=[0.1], cache_dir=cache_dir,
                      device="cpu", progress=False)
    assert set(result.records["model_key"]) == {first.key}
    assert len(result.records) == 60


def test_a_registered_dataset_trains_a_builtin_model(registered, cache_dir):
    x, y = _digits(200)
    data.register_dataset("digits-200", (x, y), _digits(60, "test"))
    registered.append((data.DATASETS, "digits-200"))
    result = train(TrainConfig(dataset="digits-200", model="mlp", epochs=1,
                               model_params={"hidden": 32}),
                   cache_dir=cache_dir, device="cpu", progress=False)
    assert result.model.num_classes == 10 and len(result.history["loss"]) == 1


def test_two_factories_under_one_name_never_share_a_key(registered, monkeypatch):
    x, y = _digits(200)
    name = data.in_memory((x, y))
    key = _config(name).key
    assert _config(name).key == key  # stable
    models.register_model("tinynet", tiny_doubled, replace=True)
    assert _config(name).key != key
    models.register_model("tinynet", tiny, replace=True)
    assert _config(name).key == key
    # The same factory building another class of the same name and layers: the
    # class's code is part of the key, through the module the factory builds.

    class TinyNet(nn.Module):
        def __init__(self, shape, k, width=16):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(shape[0] * shape[1] * shape[2],
                                                             width), nn.ReLU(),
                                     nn.Linear(width, k))

        def forward(self, x):
            return 10.0 * self.net(x)

    monkeypatch.setitem(globals(), "TinyNet", TinyNet)
    assert type(models.build_model("tinynet", name)).forward is TinyNet.forward
    assert _config(name).key != key


def test_two_datasets_under_one_name_never_share_a_key(registered):
    x, y = _digits(200)
    data.register_dataset("mine", (x, y))
    registered.append((data.DATASETS, "mine"))
    key = _config("mine").key
    flipped = x.flip(-1)
    data.register_dataset("mine", (flipped, y), replace=True)
    assert _config("mine").key != key
    data.register_dataset("mine", (x.clone(), y.clone()), replace=True)
    assert _config("mine").key == key


def test_builtin_configurations_carry_no_user_part():
    config = TrainConfig(dataset="digits", loss="drsl", adversarial="pgd")
    assert training._user_parts(config) == [] and not training._uses_user_parts(config)


def test_configurations_with_user_parts_stay_out_of_executors(registered, cache_dir,
                                                              monkeypatch):
    name = data.in_memory(_digits(100))
    sent = []
    monkeypatch.setattr("drsl_utils.executor.fan_out",
                        lambda fn, missing, **kw: sent.extend(missing()) or [])
    training.train_many([_config(name), TrainConfig(dataset="digits", epochs=1)],
                        cache_dir=cache_dir, device="cpu", progress=False,
                        executor="local")
    assert [c.model for c, _ in sent] == ["mlp"]  # the built-in one only


# ------------------------------------------------- checked before any training starts


def _no_fit(monkeypatch):
    monkeypatch.setattr(training, "_fit", lambda *a, **k: pytest.fail("training started"))


def test_images_the_model_cannot_take_fail_before_training(registered, cache_dir,
                                                           monkeypatch):
    _no_fit(monkeypatch)

    def fixed_28(info):  # ignores the data's shape
        return TinyNet((1, 28, 28), info.num_classes)

    models.register_model("fixed28", fixed_28)
    registered.append((models.MODELS, "fixed28"))
    config = TrainConfig(dataset=data.in_memory(_digits(100)), model="fixed28", epochs=1)
    with pytest.raises(ShapeError, match=r"images of shape \(100, 1, 8, 8\).*do not fit "
                                         r"model 'fixed28'"):
        train(config, cache_dir=cache_dir, device="cpu", progress=False)


def test_logits_narrower_than_the_classes_fail_before_training(registered, cache_dir,
                                                               monkeypatch):
    _no_fit(monkeypatch)

    def five(info):
        return TinyNet(info.shape, 5)

    models.register_model("five", five)
    registered.append((models.MODELS, "five"))
    config = TrainConfig(dataset=data.in_memory(_digits(100)), model="five", epochs=1)
    with pytest.raises(ShapeError, match="model 'five' returns 5 logits per image, but "
                                         r"dataset 'memory-\w+' has 10 classes"):
        train(config, cache_dir=cache_dir, device="cpu", progress=False)


def test_bad_pixels_labels_and_device_fail_before_training(registered, cache_dir,
                                                          monkeypatch):
    _no_fit(monkeypatch)
    x, y = _digits(100)
    with pytest.raises(PixelRangeError, match=r"\[0, 1\] \(got \[0, 255\]\)"):
        _config((x * 255, y))
    with pytest.raises(LabelRangeError, match=r"label 10 at index \d+ is not valid.*"
                                              r"n_classes=10"):
        data.register_dataset("bad", (x, torch.where(y == 3, 10, y)),
                              classes=tuple("0123456789"))
    assert "bad" not in data.DATASETS
    with pytest.raises(DeviceError, match="device='gpu' is not valid"):
        train(_config(data.in_memory((x, y))), cache_dir=cache_dir, device="gpu",
              progress=False)
    assert not list(cache_dir.rglob("*.pt"))


def test_a_user_loss_is_registered_and_keyed_by_its_code(registered):
    class Halved(losses.Loss):
        def per_sample(self, logits, labels):
            return 0.5 * torch.nn.functional.cross_entropy(logits, labels, reduction="none")

    class Doubled(losses.Loss):
        def per_sample(self, logits, labels):
            return 2.0 * torch.nn.functional.cross_entropy(logits, labels, reduction="none")

    losses.register_loss("scaled", Halved)
    registered.append((losses.LOSSES, "scaled"))
    assert isinstance(losses.get_loss("scaled"), Halved)
    key = TrainConfig(dataset="digits", loss="scaled").key
    losses.register_loss("scaled", Doubled, replace=True)
    assert TrainConfig(dataset="digits", loss="scaled").key != key
    assert training._uses_user_parts(TrainConfig(dataset="digits", loss="scaled"))
