"""The training engine: in-memory batching, deterministic seeds, and a content-addressed
model cache.

``train(config)`` trains one model, or loads it when a model with the identical
configuration was trained before by the same code (the key carries a fingerprint of the
training code, see ``cache.py``). ``train_many(configs)`` runs a
grid; each finished run is cached on its own, so a killed job loses at most the run in
progress.

Your own architecture and data go through the same engine by name: register a model
factory (``models.register_model``) and a dataset (``data.register_dataset``), or give
``TrainConfig(dataset=...)`` the tensors themselves, and ``train`` trains, caches and
returns them like the built-in ones, for ``evaluation.evaluate`` to attack. Their cache
keys cover the factory's code and the data's content (``cache.user_fingerprint``).
Before it trains, ``train`` checks that the data fits the model
(:func:`check_training_inputs`)::

    @models.register_model("tinynet")
    def tinynet(info, width=64):   # info: the dataset's shape, classes, mean and std
        c, h, w = info.shape
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, width), nn.ReLU(),
                             nn.Linear(width, info.num_classes))

    trained = train(TrainConfig(dataset=(images, labels), model="tinynet", epochs=3))
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .cache import (
    atomic_write,
    code_fingerprint,
    compute_once,
    entry_dir,
    loss_fingerprint,
    stable_hash,
    user_fingerprint,
)
from .data import (
    DATASETS,
    NOISE_KINDS,
    SPLITS,
    DatasetSplit,
    add_label_noise,
    dataset_info,
    in_memory,
    load_dataset,
)
from .errors import ShapeError, check_input_shape, check_labels, check_pixels
from .losses import LOSSES, get_loss
from .models import MODELS, build_model, predict_logits
from .resources import torch_threads, train_threads
from .runtime import check_choice, module_device, resolve_device, seeded

__all__ = [
    "TrainConfig",
    "TrainedModel",
    "TrainingDivergedError",
    "train",
    "train_many",
    "training_data",
    "check_training_inputs",
    "accuracy",
]

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "cosine")


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; its hash is the cache key.

    Attributes:
        dataset: a name from ``data.DATASETS`` (the built-in ones, or one registered
            with ``data.register_dataset``). Given tensors instead, a
            ``data.DatasetSplit``, an ``(images, labels)`` pair or a pair of
            ``DatasetSplit`` (train, test), they are registered with
            ``data.in_memory`` and this field holds the name it returns.
        model: a name from ``models.MODELS``: ``"mlp"``, ``"cnn"``, ``"resnet18"`` or
            an architecture registered with ``models.register_model``.
        model_params: options passed to the model's factory (``models.build_model``).
        loss: a name from ``losses.LOSSES`` (``losses.register_loss`` adds one).
        loss_params: keyword parameters of the loss (e.g. ``{"tau": 0.1}``).
        noise: ``None``, ``"symmetric"`` or ``"pair"`` label noise on the training set.
        noise_rate: fraction of training labels flipped (with the run's seed).
        train_size: train on a fixed random subset of this many samples (None: all).
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9, Nesterov).
        lr, weight_decay, batch_size, epochs: the usual.
        schedule: ``"none"`` or ``"cosine"`` (per step, to zero).
        seed: seeds weight initialisation, shuffling, noise and training attacks.
        adversarial: ``None``, or a name from ``adversarial.ADVERSARIAL`` (``"pgd"``
            for PGD-AT with the configured loss, ``"trades"``).
        adversarial_params: keyword parameters of the adversarial training method.
        teacher: distil this (trained, cached) teacher into the model instead of
            training on labels alone; see ``distill.py``. The student sees clean images
            only.
        distill_variant: the teacher-logit manipulation (``distill.DISTILL_VARIANTS``).
        distill_temperature: the softmax temperature T of distillation.
        distill_alpha: weight of the distillation term (1 - alpha goes to CE on labels).
    """

    dataset: str = "fashion-mnist"
    model: str = "mlp"
    model_params: dict[str, Any] = field(default_factory=dict)
    loss: str = "ce"
    loss_params: dict[str, Any] = field(default_factory=dict)
    noise: str | None = None
    noise_rate: float = 0.0
    train_size: int | None = None
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 5
    schedule: str = "none"
    seed: int = 0
    adversarial: str | None = None
    adversarial_params: dict[str, Any] = field(default_factory=dict)
    teacher: TrainConfig | None = None
    distill_variant: str = "full"
    distill_temperature: float = 4.0
    distill_alpha: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str):
            object.__setattr__(self, "dataset", _in_memory_name(self.dataset))
        dataset_info(self.dataset)  # validates the name
        MODELS.get(self.model)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        if self.noise is not None:
            check_choice("noise", self.noise, NOISE_KINDS)
        if not 0.0 <= self.noise_rate < 1.0:
            raise ValueError(f"noise_rate={self.noise_rate!r}: must be in [0, 1)")
        if self.noise_rate > 0 and self.noise is None:
            raise ValueError("noise_rate > 0 needs noise='symmetric' or noise='pair'")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: must be an integer >= 1")
        if self.train_size is not None and self.train_size < 1:
            raise ValueError(f"train_size={self.train_size!r}: must be >= 1 or None")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr!r}: must be > 0")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay!r}: must be >= 0")
        get_loss(self.loss, **self.loss_params)  # validates name and parameters early
        if self.adversarial is not None:
            from .adversarial import get_adversarial

            get_adversarial(self.adversarial, **self.adversarial_params)
        elif self.adversarial_params:
            raise ValueError("adversarial_params given without adversarial: set "
                             "adversarial='pgd' or 'trades'")
        if self.teacher is not None:
            from .distill import DISTILL_VARIANTS

            check_choice("distill_variant", self.distill_variant, DISTILL_VARIANTS)
            if not self.distill_temperature > 0:
                raise ValueError(f"distill_temperature={self.distill_temperature!r}: "
                                 "must be > 0")
            if not 0.0 <= self.distill_alpha <= 1.0:
                raise ValueError(f"distill_alpha={self.distill_alpha!r}: must be in [0, 1]")
            if self.teacher.dataset != self.dataset:
                raise ValueError(f"teacher.dataset={self.teacher.dataset!r} differs from "
                                 f"dataset={self.dataset!r}")

    @property
    def key(self) -> str:
        """Hash of the whole configuration and of the code that trains it:
        ``cache.code_fingerprint("models")`` (models, data pipeline, engine, the shared
        part of ``losses.py``) and ``cache.loss_fingerprint`` of its own loss (and of its
        teacher's, for a distilled student). Editing the DRSL loss gives the DRSL models
        new keys and keeps every other model's.

        What a user registered enters too (:func:`_user_parts`): a model factory's code
        and the module it builds, a loss's or adversarial method's code, a dataset's
        content. A configuration of built-in parts only has no such part."""
        losses, user, cfg = [], [], self
        while cfg is not None:
            losses.append(loss_fingerprint(cfg.loss) if LOSSES.is_builtin(cfg.loss)
                          else user_fingerprint(LOSSES.get(cfg.loss)))
            user += _user_parts(cfg)
            cfg = cfg.teacher
        return stable_hash("train", self, code_fingerprint("models"), losses,
                           *([user] if user else []))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    @property
    def label(self) -> str:
        """A short human-readable name, e.g. ``"drsl(tau=0.1)"`` or ``"ce+pgd-at"``."""
        params = ",".join(f"{k}={v}" for k, v in sorted(self.loss_params.items()))
        text = f"{self.loss}({params})" if params else self.loss
        if self.adversarial:
            text += f"+{self.adversarial}-at" if self.adversarial != "trades" else "+trades"
        if self.teacher is not None:
            text = f"distill[{self.distill_variant}]<-{self.teacher.label}"
        return text


def _in_memory_name(data: Any) -> str:
    """``TrainConfig.dataset`` given as tensors: the ``data.in_memory`` name."""
    if isinstance(data, tuple | list) and len(data) == 2 and all(
            isinstance(d, DatasetSplit) for d in data):
        return in_memory(data[0], data[1])
    if isinstance(data, DatasetSplit | tuple | list):
        return in_memory(data)
    raise ValueError(f"dataset={type(data).__name__} is not valid: give a registered "
                     "name (data.DATASETS), a data.DatasetSplit, an (images, labels) "
                     "pair or a (train, test) pair of DatasetSplit")


def _user_parts(config: TrainConfig) -> list[tuple[str, str]]:
    """The parts of ``config`` (not its teacher) that a user registered, each with its
    ``cache.user_fingerprint``; [] for the package's own. A model factory counts with
    the module it builds for this configuration (made under the configuration's seed,
    so its initial weights are part of it): its classes' code is where an edit to a
    ``forward`` shows."""
    parts = []
    if not MODELS.is_builtin(config.model):
        parts.append(("model", user_fingerprint([MODELS.get(config.model),
                                                 _new_model(config)])))
    data = DATASETS.get(config.dataset).fingerprint
    if data:
        parts.append(("dataset", data))
    if config.adversarial is not None:
        from .adversarial import ADVERSARIAL

        if not ADVERSARIAL.is_builtin(config.adversarial):
            parts.append(("adversarial",
                          user_fingerprint(ADVERSARIAL.get(config.adversarial))))
    return parts


def _uses_user_parts(config: TrainConfig | None) -> bool:
    """Whether ``config`` or its teacher uses something registered in this process,
    which an executor's worker processes do not have."""
    while config is not None:
        if _user_parts(config) or not LOSSES.is_builtin(config.loss):
            return True
        config = config.teacher
    return False


@dataclass
class TrainedModel:
    """A trained classifier with its provenance.

    Attributes:
        config: the configuration it was trained with.
        model: the classifier, in eval mode, on the device it was trained on.
        key: the cache key (``config.key``).
        history: per-epoch ``loss`` and ``train_accuracy`` (on the labels trained on).
        test_accuracy: clean accuracy on the full test split.
        train_seconds: wall time the training took when it ran (also when loaded).
        from_cache: whether this call loaded it instead of training.
        path: the cache file.
        job: the Slurm job that trained it (``"<array job>_<task>"``), or None when it
            was trained outside Slurm.
    """

    config: TrainConfig
    model: nn.Module
    key: str
    history: dict[str, list[float]]
    test_accuracy: float
    train_seconds: float
    from_cache: bool
    path: Path | None = None
    job: str | None = None

    @property
    def device(self) -> torch.device:
        return module_device(self.model)


def training_data(config: TrainConfig,
                  data_root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor,
                                                           torch.Tensor, torch.Tensor]:
    """The exact training tensors a configuration sees.

    Returns:
        ``(images, labels, clean_labels, flipped)``: ``labels`` carry the configured
        noise, ``clean_labels`` do not, and ``flipped`` marks the corrupted ones.
    """
    ds = load_dataset(config.dataset, "train", root=data_root).subset(config.train_size, seed=0)
    clean = ds.labels
    if config.noise is not None and config.noise_rate > 0:
        noisy, flipped = add_label_noise(clean, config.noise_rate, config.noise,
                                         ds.num_classes, seed=config.seed)
    else:
        noisy, flipped = clean, torch.zeros_like(clean, dtype=torch.bool)
    return ds.images, noisy, clean, flipped


def check_training_inputs(config: TrainConfig, data_root: str | Path | None = None
                          ) -> None:
    """Check that ``config``'s dataset fits its model, before any training: pixels in
    [0, 1], images the model takes (one forward pass on one image of each split),
    logits as wide as the dataset has classes, and labels in ``[0, n_classes)``.

    :func:`train` calls this before it trains (not when it loads from the cache); it is
    public so that a grid can be checked up front.

    Raises:
        PixelRangeError, ShapeError, LabelRangeError: the named errors of
            :mod:`drsl_utils.errors` (each a ``ValueError``), naming the value.
    """
    info = dataset_info(config.dataset)
    model = _new_model(config)
    what = f"model {config.model!r}"
    for split in SPLITS:
        ds = load_dataset(config.dataset, split, root=data_root)
        check_pixels(ds.images)
        width = check_input_shape(model, ds.images, what)
        if width != info.num_classes:
            raise ShapeError(f"{what} returns {width} logits per image, but dataset "
                             f"{config.dataset!r} has {info.num_classes} classes: build "
                             "the model with info.num_classes outputs")
        check_labels(ds.labels, width, f"{what} on dataset {config.dataset!r} "
                                       f"({split} split)")


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 4096) -> float:
    """Fraction of ``images`` whose argmax logit equals ``labels``."""
    logits = predict_logits(model, images, batch_size=batch_size)
    return float((logits.argmax(1) == labels.cpu()).float().mean())


def _cache_path(config: TrainConfig, cache_dir: str | Path | None) -> Path:
    return entry_dir("models", cache_dir) / f"{config.dataset}_{config.model}_{config.loss}_{config.key}.pt"


def _make_optimizer(config: TrainConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        # The fused kernel updates every parameter in one pass: about 15 % faster per
        # step for the MLP on CPU than the per-tensor loop, same arithmetic up to rounding.
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                fused=True)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True,
                           weight_decay=config.weight_decay)


def _new_model(config: TrainConfig) -> nn.Module:
    with seeded(config.seed):
        return build_model(config.model, config.dataset, **config.model_params)


def train(config: TrainConfig, *, device: str | torch.device = "auto",
          data_root: str | Path | None = None, cache_dir: str | Path | None = None,
          progress: bool = True, force: bool = False, amp: bool | None = None,
          channels_last: bool | None = None, compile: bool = False) -> TrainedModel:
    """Train a classifier under ``config``, or load it from the cache.

    Args:
        config: what to train (its hash is the cache key).
        device: ``"auto"`` (GPU if present), ``"cpu"`` or ``"cuda"``.
        data_root: where datasets are looked for (see ``data.load_dataset``).
        cache_dir: cache root (default ``data/cache``, or ``$DRSL_CACHE_DIR``); models
            go to ``<root>/models/<code fingerprint>/``. An unreadable entry is
            quarantined and retrained; while one process trains a configuration,
            another that asks for it waits and then loads it.
        progress: show a tqdm progress bar.
        force: retrain even if a cached model exists (and overwrite it).
        amp: bf16 autocast; ``None`` turns it on for CUDA devices only.
        channels_last: channels-last memory format for conv nets; ``None``: on for CUDA.
        compile: wrap the model in ``torch.compile`` for training.

    Returns:
        A :class:`TrainedModel` with the model in eval mode.

    Raises:
        DeviceError: ``device`` is not one of the allowed values or not present (a
            ``ValueError``, :mod:`drsl_utils.errors`), before any work.
        PixelRangeError, ShapeError, LabelRangeError: the dataset does not fit the
            model (:func:`check_training_inputs`), before any training.
        TrainingDivergedError: the loss became NaN or infinite; the message names the
            epoch, the step and the loss value.
    """
    dev = resolve_device(device)
    path = _cache_path(config, cache_dir)

    def load(p: Path) -> tuple[dict[str, Any], nn.Module]:
        blob = torch.load(p, map_location="cpu", weights_only=True)
        model = _new_model(config)
        model.load_state_dict(blob["state_dict"])  # a mismatch means a broken entry
        if not (math.isfinite(float(blob["test_accuracy"])) and blob["history"]["loss"]):
            raise ValueError("incomplete entry")
        return blob, model

    def compute() -> tuple[dict[str, Any], nn.Module]:
        # On the CPU a model trains with a fixed thread count, so the same configuration
        # gives the same model on any core count (resources.TRAIN_THREADS).
        with torch_threads(train_threads() if dev.type == "cpu" else None):
            return _compute()

    def _compute() -> tuple[dict[str, Any], nn.Module]:
        from .executor import current_job_id

        check_training_inputs(config, data_root)
        teacher_probs = None
        if config.teacher is not None:
            teacher = train(config.teacher, device=dev, data_root=data_root,
                            cache_dir=cache_dir, progress=progress, amp=amp,
                            channels_last=channels_last)
            teacher_probs = _teacher_probs(config, teacher, data_root)
        start = time.perf_counter()
        model, history = _fit(config, dev, data_root, progress, amp, channels_last, compile,
                              teacher_probs)
        seconds = time.perf_counter() - start
        model.eval()
        test = load_dataset(config.dataset, "test", root=data_root)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        blob = {"state_dict": state, "history": history,
                "test_accuracy": accuracy(model, test.images, test.labels),
                "train_seconds": seconds, "job": current_job_id(),
                "config": json.dumps(dataclasses.asdict(config), sort_keys=True)}
        return blob, model

    def save(p: Path, value: tuple[dict[str, Any], nn.Module]) -> None:
        atomic_write(p, lambda tmp: torch.save(value[0], tmp))

    if force:
        path.unlink(missing_ok=True)
    (blob, model), from_cache = compute_once(path, load, compute, save)
    model.to(dev).eval()
    return TrainedModel(config, model, config.key, blob["history"],
                        float(blob["test_accuracy"]), float(blob["train_seconds"]),
                        from_cache=from_cache, path=path, job=blob.get("job"))


def _teacher_probs(config: TrainConfig, teacher: TrainedModel,
                   data_root: str | Path | None) -> torch.Tensor:
    from .distill import transform_teacher_logits

    images = training_data(config, data_root)[0]
    logits = predict_logits(teacher.model, images)
    logits = transform_teacher_logits(logits, config.distill_variant, seed=config.seed,
                                      temperature=config.distill_temperature)
    return torch.softmax(logits / config.distill_temperature, dim=1)


def _fit(config: TrainConfig, dev: torch.device, data_root: str | Path | None, progress: bool,
         amp: bool | None, channels_last: bool | None, compile: bool,
         teacher_probs: torch.Tensor | None = None) -> tuple[nn.Module, dict[str, list[float]]]:
    from tqdm.auto import tqdm

    images, labels, _, _ = training_data(config, data_root)
    if teacher_probs is not None:
        from .distill import distillation_loss

        teacher_probs = teacher_probs.to(dev)
    x = images.to(dev)
    y = labels.to(dev)
    n = x.shape[0]
    use_amp = (dev.type == "cuda") if amp is None else amp
    use_cl = (dev.type == "cuda" and config.model != "mlp") if channels_last is None else channels_last
    if use_cl:
        x = x.contiguous(memory_format=torch.channels_last)

    model = _new_model(config).to(dev)
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    step_model = torch.compile(model) if compile else model
    loss_fn = get_loss(config.loss, **config.loss_params).to(dev)
    adv = None
    if config.adversarial:
        from .adversarial import get_adversarial

        adv = get_adversarial(config.adversarial, **config.adversarial_params)

    optimizer = _make_optimizer(config, model.parameters())
    steps = math.ceil(n / config.batch_size)
    scheduler = None
    if config.schedule == "cosine":
        total = steps * config.epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))

    shuffle = torch.Generator().manual_seed(config.seed)
    attack_gen = torch.Generator(device=dev).manual_seed(config.seed + 7919)
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp)
    history: dict[str, list[float]] = {"loss": [], "train_accuracy": []}
    check_every = 50
    bar = tqdm(total=steps * config.epochs, desc=f"{config.label} s{config.seed}",
               disable=not progress, leave=False, mininterval=0.5)
    try:
        for epoch in range(config.epochs):
            perm = torch.randperm(n, generator=shuffle).to(dev)
            step_losses = torch.zeros(steps, device=dev)
            correct = torch.zeros((), device=dev, dtype=torch.long)
            for i in range(steps):
                idx = perm[i * config.batch_size:(i + 1) * config.batch_size]
                xb, yb = x[idx], y[idx]
                with autocast:
                    if teacher_probs is not None:
                        logits = step_model(xb)
                        loss = distillation_loss(logits.float(), teacher_probs[idx], yb,
                                                 config.distill_temperature,
                                                 config.distill_alpha)
                    elif adv is None:
                        logits = step_model(xb)
                        loss = loss_fn.per_sample(logits.float(), yb).mean()
                    else:
                        loss, logits = adv.loss(step_model, loss_fn, xb, yb,
                                                generator=attack_gen)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                step_losses[i] = loss.detach()
                correct += (logits.detach().argmax(1) == yb).sum()
                if (i + 1) % check_every == 0 or i + 1 == steps:
                    _check_finite(step_losses, i - i % check_every, i + 1, epoch, config)
                    bar.update((i % check_every) + 1)
            history["loss"].append(float(step_losses.mean()))
            history["train_accuracy"].append(float(correct) / n)
            bar.set_postfix(epoch=epoch + 1, loss=f"{history['loss'][-1]:.4f}")
    finally:
        bar.close()
    if use_cl:
        model = model.to(memory_format=torch.contiguous_format)
    return model, history


def _check_finite(step_losses: torch.Tensor, lo: int, hi: int, epoch: int,
                  config: TrainConfig) -> None:
    window = step_losses[lo:hi]
    finite = torch.isfinite(window)
    if bool(finite.all()):
        return
    bad = int((~finite).nonzero()[0])
    value = float(window[bad])
    raise TrainingDivergedError(
        f"training {config.label} (seed {config.seed}) diverged: loss = {value} at "
        f"epoch {epoch + 1}, step {lo + bad + 1}; try a smaller lr (now {config.lr}) "
        f"or a smaller loss weight")


def is_cached(config: TrainConfig, cache_dir: str | Path | None = None) -> bool:
    """Whether a model for ``config`` is in the cache (not whether it is readable)."""
    return _cache_path(config, cache_dir).exists()


def _train_unit(unit: tuple[TrainConfig, dict[str, Any]]) -> dict[str, Any]:
    """One training unit for an executor (a picklable top-level function)."""
    config, kwargs = unit
    tm = train(config, progress=False, **kwargs)
    return {"key": tm.key, "test_accuracy": tm.test_accuracy, "job": tm.job}


def train_many(configs: Sequence[TrainConfig], *, progress: bool = True,
               executor: str | None = None, **kwargs: Any) -> list[TrainedModel]:
    """Train (or load) each configuration; see :func:`train` for ``kwargs``.

    With ``executor`` ``"local"`` or ``"slurm"`` (default: ``$DRSL_EXECUTOR``, else
    ``"inline"``; see :mod:`drsl_utils.executor`), the configurations missing from the
    cache are first trained all at once by that executor (one Slurm job array), then
    every model is loaded here. Every finished run is cached as soon as it ends, so
    re-running a killed job only redoes the runs that were in progress. A configuration
    that uses a model, loss, adversarial method or dataset registered in this process
    is trained here, not by the executor: its worker processes start without them.
    """
    from tqdm.auto import tqdm

    from .cache import default_cache_dir
    from .executor import fan_out

    # A bad device string fails here, not once per job inside the executor's workers.
    resolve_device(kwargs.get("device", "auto"))

    def missing() -> list[tuple[TrainConfig, dict[str, Any]]]:
        unit_kwargs = {k: v for k, v in kwargs.items() if k in (
            "device", "data_root", "amp", "channels_last", "compile")}
        unit_kwargs["cache_dir"] = str(kwargs.get("cache_dir") or default_cache_dir())
        todo = {c.key: c for c in configs if not _uses_user_parts(c)
                and not is_cached(c, kwargs.get("cache_dir"))}
        return [(c, unit_kwargs) for c in todo.values()]

    fan_out(_train_unit, missing, describe=lambda u: f"train {u[0].label} (key {u[0].key})",
            desc="train", executor=executor)
    bar = tqdm(configs, desc="models", disable=not progress or len(configs) < 2, leave=False)
    return [train(config, progress=progress, **kwargs) for config in bar]
