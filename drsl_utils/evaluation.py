"""Run attacks over models x eps on a test set, with per-sample records and a cache.

:func:`evaluate` attacks every model with every attack (:mod:`drsl_utils.attacks`) at
every eps of its grid, in large batches and with one progress bar, and caches every
(model, attack, eps) *unit* on disk as soon as it finishes. It returns an
:class:`AttackResult`: a tidy ``records`` DataFrame with one row per (model, attack,
eps, sample) (columns :data:`RECORD_COLUMNS`), plus the clean and adversarial logits,
penultimate features and, for small test sets, the adversarial images themselves
(which the explorers show). Only clean-correct samples are attacked; a clean error
keeps its clean image. Statistics and plots read the records
(:mod:`drsl_utils.stats`); nothing here summarises them. Every record carries its
model's identity as data (:class:`ModelIdentity`: key, display name, architecture, loss
and its parameters, training regime, seed, a foreign model's weights hash; the columns
:data:`IDENTITY_COLUMNS`), so nothing downstream parses a display name.

Any classifier goes in: a ``training.TrainedModel``, a plain ``nn.Module`` or one
wrapped by :func:`foreign` (with its number of classes and a feature source: a layer
name or module read by a forward hook, or a callable), alone, in a list or in a dict of
name -> model. Logits always come from ``model(x)``. Bad input (image shape, pixel
range, labels, device) raises a named error of :mod:`drsl_utils.errors` before any work.

Cache: ``<cache>/attacks/<code>/<model key>/`` (see :mod:`drsl_utils.cache`). A unit's
name hashes every effective attack parameter, eps, the fingerprint of the attacked
images and labels, and the torchattacks version; the folder's ``<code>`` fingerprint
covers the attack and model code, and the model key covers the model: a toolkit
model's configuration, or a foreign model's class, source and weights.
A broken unit is quarantined and recomputed; two processes never compute the same unit.
Inside, an evaluation is planned (``_plan``: every entry's path, shared with
:func:`missing_units`), run (``_run_model``: each entry loaded or computed through one
store, which saves nothing when ``cache=False``) and assembled (``_assemble``).
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .attacks import (
    Attack,
    AttackSpec,
    _check_eps,
    _check_positive_int,
    _num_classes,
    build_attack,
    record_name,
)
from .cache import (
    callable_fingerprint,
    compute_once,
    entry_dir,
    foreign_model_key,
    load_entry,
    load_npz,
    save_npz,
    stable_hash,
    tensor_fingerprint,
    weights_fingerprint,
)
from .errors import (
    FeatureSourceError,
    ModelTypeError,
    ShapeError,
    UnknownNameError,
    check_batch,
    check_input_shape,
    check_labels,
    check_pixels,
)
from .runtime import module_device, resolve_device

__all__ = ["RECORD_COLUMNS", "IDENTITY_COLUMNS", "MODEL_COLUMNS", "ModelIdentity",
           "model_identity", "AttackResult", "ForeignModel", "foreign", "evaluate",
           "missing_units", "unit_job", "ADV_IMAGES_MAX"]

#: A model's structured identity, beside every record (and in ``AttackResult.models``):
#: what statistics, plots and explorers read about a model. The display name (``model``)
#: is a label only; nothing parses it. See :class:`ModelIdentity`.
IDENTITY_COLUMNS = (
    "model", "model_key", "architecture", "loss", "loss_params", "training",
    "adversarial", "distilled", "seed", "weights",
)

#: The identity columns that say what a model *is*: the same for every seed of one
#: configuration, so statistics pooled over seeds carry them (``stats.with_identity``).
MODEL_COLUMNS = ("architecture", "loss", "loss_params", "training", "adversarial",
                 "distilled")

RECORD_COLUMNS = (
    *IDENTITY_COLUMNS, "attack", "eps", "sample", "label",
    "clean_pred", "adv_pred", "clean_second",
    "clean_p_true", "clean_p_top", "clean_p_second",
    "adv_p_true", "adv_p_top", "adv_p_second",
    "clean_gap", "adv_gap", "linf", "l2",
    "clean_correct", "success", "adv_is_clean_second",
)

#: Test sets up to this size keep penultimate features and adversarial images in the
#: cache (for UMAP and the explorers); larger ones (the whole test set under FGSM and
#: PGD) keep logits and distances only.
ADV_IMAGES_MAX = 2000

@dataclass
class AttackResult:
    """What :func:`evaluate` returns.

    Attributes:
        records: one row per (model, attack, eps, sample), columns :data:`RECORD_COLUMNS`
            (each model's identity, :data:`IDENTITY_COLUMNS`, beside each of its rows).
        labels: the attacked set's labels (int64, length n).
        models: one row per model: its :data:`IDENTITY_COLUMNS`, ``num_classes`` and
            ``features`` (whether it has a feature source).
        attacks: record name -> every effective parameter of that attack, plus ``eps``
            (its grid).
        units: one row per (model, attack, eps): ``seconds`` spent (0 when cached),
            ``from_cache`` and the cache ``path``.
        images: the attacked clean images when the set is small enough to keep
            (:data:`ADV_IMAGES_MAX`), else None.
    """

    records: pd.DataFrame
    labels: np.ndarray
    models: pd.DataFrame
    attacks: dict[str, dict[str, Any]]
    units: pd.DataFrame
    images: np.ndarray | None = None
    _clean: dict[str, dict[str, np.ndarray]] = field(repr=False, default_factory=dict)
    _adv: dict[tuple[str, str, float], dict[str, np.ndarray]] = field(repr=False,
                                                                       default_factory=dict)
    _paths: dict[tuple[str, str, float], Path | None] = field(repr=False,
                                                               default_factory=dict)

    def _key(self, model: str) -> str:
        keys = list(self.models["model_key"])
        if model in keys:
            return model
        match = self.models.loc[self.models["model"] == model, "model_key"].tolist()
        if len(match) == 1:
            return match[0]
        detail = "is ambiguous (several models share that name)" if match else "is unknown"
        raise KeyError(f"model {model!r} {detail}; model keys: {keys}")

    def _unit_key(self, model: str, attack: str, eps: float) -> tuple[str, str, float]:
        key = self._key(model)
        for k, a, e in self._adv:
            if k == key and a == attack and math.isclose(e, float(eps), rel_tol=1e-9,
                                                         abs_tol=1e-12):
                return k, a, e
        have = sorted({(a, e) for k, a, e in self._adv if k == key})
        raise KeyError(f"no unit ({attack!r}, eps={eps!r}) for model {model!r}; "
                       f"available: {have}")

    def _unit(self, model: str, attack: str, eps: float) -> dict[str, np.ndarray]:
        return self._adv[self._unit_key(model, attack, eps)]

    def clean_logits(self, model: str) -> np.ndarray:
        """Clean logits ``[n, K]`` of a model (its key, or its name when unique)."""
        return self._clean[self._key(model)]["logits"]

    def clean_features(self, model: str) -> np.ndarray:
        """Clean features ``[n, F]`` from the model's feature source (a toolkit model's
        penultimate layer, the input of ``model.head``; a foreign model's ``features``).

        Raises:
            FeatureSourceError: the model has no feature source (a ``ValueError``).
            KeyError: the set was too large to keep features (:data:`ADV_IMAGES_MAX`).
        """
        key = self._key(model)
        return _need(self._clean[key], "features", len(self.labels), self._source(key))

    def adv_logits(self, model: str, attack: str, eps: float) -> np.ndarray:
        """Logits ``[n, K]`` on the adversarial inputs of ``attack`` at ``eps``."""
        return self._unit(model, attack, eps)["logits"]

    def adv_features(self, model: str, attack: str, eps: float) -> np.ndarray:
        """Features ``[n, F]`` of the adversarial inputs (see :meth:`clean_features`)."""
        return _need(self._unit(model, attack, eps), "features", len(self.labels),
                     self._source(self._key(model)))

    def _source(self, key: str) -> str | None:
        """The model's name when it has no feature source, else None."""
        row = self.models.loc[self.models["model_key"] == key].iloc[0]
        return None if row.get("features", True) else str(row["model"])

    def adv_images(self, model: str, attack: str, eps: float) -> np.ndarray:
        """The adversarial inputs ``[n, C, H, W]`` themselves (read from the cache on
        first use; kept only for small sets, see :data:`ADV_IMAGES_MAX`)."""
        key = self._unit_key(model, attack, eps)
        arrays = self._adv[key]
        if "images" not in arrays:
            path = self._paths.get(key)
            loaded = load_entry(path, lambda p: load_npz(p, ("images",))) if path else None
            if loaded is None:
                raise KeyError(f"adversarial images of ({model!r}, {attack!r}, eps={eps!r}) "
                               f"are not kept: only sets of up to {ADV_IMAGES_MAX} images "
                               "with the cache on keep them")
            arrays["images"] = loaded["images"]
        return arrays["images"]


def _need(arrays: Mapping[str, np.ndarray], name: str, n: int,
          sourceless: str | None = None) -> np.ndarray:
    if sourceless is not None or (name in arrays and arrays[name].shape[1] == 0):
        raise FeatureSourceError(
            f"model {sourceless or '(this one)'!r} has no feature source, so it has no "
            f"{name} (for UMAP or the explorers): name one, e.g. evaluate(..., "
            "features='layer name') or evaluation.foreign(model, features=<layer name, "
            "module or callable>)")
    if name not in arrays:
        raise KeyError(f"{name} are not kept for a set of {n} images (only up to "
                       f"{ADV_IMAGES_MAX}); attack a smaller subset for them")
    return arrays[name]


#: How a model's features are read in the forward pass that makes its logits: None (no
#: features), ``(layer, "input")`` / ``(layer, "output")`` (a forward hook on a
#: submodule), or a callable applied to the same inputs.
_Tap = tuple[nn.Module, str] | Callable[[torch.Tensor], torch.Tensor] | None


def _forward(model: nn.Module, x: torch.Tensor, tap: _Tap = None
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, features or None). The logits always come from ``model(x)``, never from
    a re-composition of the model's parts: a model whose ``forward`` does more than
    ``head(features(x))`` (a temperature, an ensemble) must be measured as it predicts.
    A layer's features are read by a forward hook in that same call (None when the
    forward never reached the layer); a callable runs on the same inputs."""
    if tap is None:
        return model(x), None
    if not isinstance(tap, tuple):
        return model(x), tap(x).flatten(1)
    layer, side = tap
    seen: list[Any] = []
    if side == "input":
        handle = layer.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    else:
        handle = layer.register_forward_hook(lambda _m, _args, out: seen.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if not seen:
        return logits, None
    if not isinstance(seen[-1], torch.Tensor):
        raise FeatureSourceError(f"the feature layer returned {type(seen[-1]).__name__}, "
                                 "not a tensor: name a layer whose output is one")
    return logits, seen[-1].flatten(1)


def _top2(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Prediction, runner-up, softmax of the true/top/second class and logit gap."""
    z = torch.from_numpy(logits).double()
    top = z.topk(2, dim=1)
    probs = z.softmax(dim=1)
    rows = torch.arange(z.shape[0])
    y = torch.from_numpy(labels)
    return {
        "pred": top.indices[:, 0].numpy(),
        "second": top.indices[:, 1].numpy(),
        "p_true": probs[rows, y].numpy(),
        "p_top": probs[rows, top.indices[:, 0]].numpy(),
        "p_second": probs[rows, top.indices[:, 1]].numpy(),
        "gap": (top.values[:, 0] - top.values[:, 1]).numpy(),
    }


def _unit_records(meta: Mapping[str, Any], attack: str, eps: float, labels: np.ndarray,
                  clean: Mapping[str, np.ndarray], adv: Mapping[str, np.ndarray],
                  linf: np.ndarray, l2: np.ndarray) -> pd.DataFrame:
    """The records of one unit; ``meta`` is the model's :meth:`ModelIdentity.columns`."""
    correct = clean["pred"] == labels
    return pd.DataFrame({
        **{c: meta[c] for c in IDENTITY_COLUMNS}, "seed": np.int64(meta["seed"]),
        "attack": attack, "eps": float(eps),
        "sample": np.arange(labels.shape[0], dtype=np.int64),
        "label": labels,
        "clean_pred": clean["pred"], "adv_pred": adv["pred"],
        "clean_second": clean["second"],
        "clean_p_true": clean["p_true"], "clean_p_top": clean["p_top"],
        "clean_p_second": clean["p_second"],
        "adv_p_true": adv["p_true"], "adv_p_top": adv["p_top"],
        "adv_p_second": adv["p_second"],
        "clean_gap": clean["gap"], "adv_gap": adv["gap"],
        "linf": linf.astype(np.float64), "l2": l2.astype(np.float64),
        "clean_correct": correct,
        "success": correct & (adv["pred"] != labels),
        "adv_is_clean_second": adv["pred"] == clean["second"],
    })


@dataclass(frozen=True)
class ForeignModel:
    """A classifier this package did not train, as :func:`evaluate` takes it (built by
    :func:`foreign`; a plain ``nn.Module`` given to :func:`evaluate` becomes one).

    Attributes:
        model: the classifier; its logits are ``model(x)`` for images in [0, 1].
        name: the ``model`` column of its records.
        n_classes: the number of classes; None: the width of ``model(x)``'s logits.
        features: where its features come from (None: it has none; see :func:`foreign`).

    Its records carry ``loss="unknown"`` (and ``training``, ``adversarial`` and
    ``distilled`` unknown: the toolkit cannot know how it was trained), ``seed=-1``, its
    class name as ``architecture`` and the hash of its weights as ``weights``; its
    ``model_key`` is :func:`cache.foreign_model_key` of the model as it is when
    :func:`evaluate` runs: its class, module tree, source and weights, so two models
    under one name (an untrained and a trained copy) never share a cache entry.
    """

    model: nn.Module
    name: str
    n_classes: int | None = None
    features: str | nn.Module | Callable[[torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise ModelTypeError(f"model={type(self.model).__name__} is not valid: expected "
                                 "a torch.nn.Module")
        if self.n_classes is not None:
            _check_positive_int("n_classes", self.n_classes)
        self.tap  # validates the feature source now  # noqa: B018

    @property
    def tap(self) -> _Tap:
        source = self.features
        if source is None:
            return None
        if isinstance(source, str):
            layers = dict(self.model.named_modules())
            if source not in layers or not source:
                names = [n for n in layers if n]
                raise UnknownNameError(f"features={source!r} is not a layer of model "
                                       f"{self.name!r}; choose one of: {names}")
            return layers[source], "output"
        if isinstance(source, nn.Module):
            if not any(m is source for m in self.model.modules()) or source is self.model:
                raise FeatureSourceError(
                    f"features={type(source).__name__} is not a submodule of model "
                    f"{self.name!r}: give one of its layers (by name or as a module), or "
                    "a callable features(x) for any other extractor")
            return source, "output"
        if callable(source):
            return source
        raise FeatureSourceError(f"features={source!r} is not valid: give a layer name, "
                                 "a submodule of the model, a callable features(x) or None")

    def _source_id(self) -> Any:
        """What of the feature source enters the cache key."""
        source = self.features
        if source is None or isinstance(source, str):
            return source
        if isinstance(source, nn.Module):
            return next(n for n, m in self.model.named_modules() if m is source)
        return ["callable", callable_fingerprint(source)]

    @property
    def key(self) -> str:
        """:func:`cache.foreign_model_key` of the model now (weights read on each call)."""
        return foreign_model_key(self.model, self._source_id())


def foreign(model: nn.Module, *, name: str | None = None, n_classes: int | None = None,
            features: str | nn.Module | Callable[[torch.Tensor], torch.Tensor] | None = None
            ) -> ForeignModel:
    """Wrap a classifier this package did not train for :func:`evaluate`.

    Args:
        model: any ``nn.Module`` that maps images in [0, 1] (N x C x H x W) to logits
            (N x K); normalisation belongs inside it. Its logits are always ``model(x)``.
        name: the ``model`` column of its records; default: its class name.
        n_classes: K. None: taken from the width of ``model(x)``, which is unambiguous
            (the logits are what is measured); when given, :func:`evaluate` checks that
            the model returns that many logits.
        features: where its features (for UMAP and the explorers) come from: the name
            of a layer (``dict(model.named_modules())``; its *output*, flattened, read
            by a forward hook in the call that makes the logits), that layer as a
            module, or a callable ``features(x) -> [N, ...]`` run on the same inputs.
            None: the model has no features, and asking for them raises
            :class:`~drsl_utils.errors.FeatureSourceError`.

    Raises:
        UnknownNameError: ``features`` names no layer of the model (the message lists
            them). FeatureSourceError: a module that is not part of the model.
        ModelTypeError: ``model`` is not an ``nn.Module``.
    """
    return ForeignModel(model, name if name is not None else type(model).__name__,
                        n_classes, features)


@dataclass(frozen=True)
class ModelIdentity:
    """What a model is, as data: the columns :data:`IDENTITY_COLUMNS` beside each of its
    records, so that statistics, plots and explorers read a model's loss or training
    regime from a column instead of parsing its display name (a name is a label only;
    ``"DRSL-prob tau=1"`` and ``"my model"`` are equally good names).

    Attributes:
        model: the display name (the ``model`` column).
        model_key: the model's key: a toolkit model's ``TrainConfig.key``, a foreign
            model's :func:`cache.foreign_model_key`.
        architecture: ``TrainConfig.model`` (``"mlp"``, ``"cnn"``, ...), or a foreign
            model's class name.
        loss: the training loss (``TrainConfig.loss``), ``"unknown"`` for a foreign model.
        loss_params: every parameter of that loss, its defaults filled in (DRSL without
            ``space`` is ``space="logit"``); empty for a foreign model.
        adversarial: the adversarial training method (``TrainConfig.adversarial``:
            ``"pgd"``, ``"trades"``), ``"none"`` for standard training, ``"unknown"``
            for a foreign model.
        distilled: the distillation variant (``TrainConfig.distill_variant``) of a
            student trained from a teacher, else ``"none"`` (``"unknown"``: foreign).
        seed: the training seed (-1: a foreign model, whose seed the toolkit cannot know).
        weights: a foreign model's weights hash (:func:`cache.weights_fingerprint`);
            ``""`` for a toolkit model, which its configuration key identifies.
    """

    model: str
    model_key: str
    architecture: str
    loss: str
    loss_params: Mapping[str, Any] = field(default_factory=dict)
    adversarial: str = "none"
    distilled: str = "none"
    seed: int = -1
    weights: str = ""

    @property
    def training(self) -> str:
        """``"standard"``, ``"adversarial"`` or ``"unknown"`` (the ``training`` column,
        which figures facet by)."""
        if self.adversarial in ("none", "unknown"):
            return "standard" if self.adversarial == "none" else "unknown"
        return "adversarial"

    def columns(self) -> dict[str, Any]:
        """The identity as one record's columns, in :data:`IDENTITY_COLUMNS` order;
        ``loss_params`` as canonical JSON text (sorted keys), which groups and joins."""
        values = {**{f.name: getattr(self, f.name) for f in fields(self)},
                  "training": self.training,
                  "loss_params": json.dumps(dict(self.loss_params), sort_keys=True,
                                            default=str)}
        return {c: values[c] for c in IDENTITY_COLUMNS}


def _loss_params(loss: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the loss's defaults filled in (read from its constructor)."""
    from .losses import get_loss

    signature = inspect.signature(type(get_loss(loss, **params)).__init__)
    defaults = {n: p.default for n, p in signature.parameters.items()
                if n != "self" and p.default is not inspect.Parameter.empty}
    return {**defaults, **params}


def model_identity(model: Any, name: str | None = None) -> ModelIdentity:
    """The :class:`ModelIdentity` of a model as :func:`evaluate` records it.

    Args:
        model: a ``training.TrainedModel`` (read from its ``config``), a
            :class:`ForeignModel` or a plain ``nn.Module`` (its weights are hashed).
        name: the display name; default: ``TrainConfig.label``, ``ForeignModel.name`` or
            the module's class name.

    Raises:
        ModelTypeError: ``model`` is none of these.
    """
    from .training import TrainedModel

    if isinstance(model, TrainedModel):
        cfg = model.config
        return ModelIdentity(
            model=name if name is not None else cfg.label, model_key=model.key,
            architecture=cfg.model, loss=cfg.loss,
            loss_params=_loss_params(cfg.loss, cfg.loss_params),
            adversarial=cfg.adversarial or "none",
            distilled=cfg.distill_variant if cfg.teacher is not None else "none",
            seed=int(cfg.seed))
    if isinstance(model, nn.Module):
        model = foreign(model, name=name)
    if not isinstance(model, ForeignModel):
        raise ModelTypeError(f"model={type(model).__name__} is not valid: expected a "
                             "torch.nn.Module, evaluation.ForeignModel or "
                             "training.TrainedModel")
    return ModelIdentity(
        model=name if name is not None else model.name, model_key=model.key,
        architecture=type(model.model).__name__, loss="unknown", adversarial="unknown",
        distilled="unknown", weights=weights_fingerprint(model.model))


@dataclass
class _Entry:
    """One model as :func:`evaluate` runs it: the module, its cache key, its identity
    (record columns), how its features are read, and its declared number of classes."""

    model: nn.Module
    key: str
    meta: dict[str, Any]
    tap: _Tap
    n_classes: int | None


def _entry(obj: Any, name: str | None, n_classes: int | None, features: Any) -> _Entry:
    from .training import TrainedModel

    if isinstance(obj, TrainedModel):
        head = getattr(obj.model, "head", None)
        tap = (head, "input") if isinstance(head, nn.Module) else None
        return _Entry(obj.model, obj.key, model_identity(obj, name).columns(), tap,
                      _num_classes(obj.model, None))
    if isinstance(obj, nn.Module):
        obj = foreign(obj, name=name, n_classes=n_classes, features=features)
    if not isinstance(obj, ForeignModel):
        raise ModelTypeError(f"models contains {type(obj).__name__}: expected torch.nn.Module, "
                             "evaluation.ForeignModel or training.TrainedModel objects (or "
                             "a dict of name -> one of them)")
    meta = model_identity(obj, name).columns()
    return _Entry(obj.model, meta["model_key"], meta, obj.tap, obj.n_classes)


def _as_entries(models: Any, names: Sequence[str] | None, n_classes: int | None,
                features: Any) -> list[_Entry]:
    """Every model given to :func:`evaluate` as an :class:`_Entry`, in order."""
    from .training import TrainedModel

    if isinstance(models, Mapping):
        items = [(str(k), v) for k, v in models.items()]
    elif isinstance(models, TrainedModel | ForeignModel | nn.Module):
        items = [(None, models)]
    elif isinstance(models, Iterable) and not isinstance(models, str):
        items = [(None, m) for m in models]
    else:
        raise ModelTypeError(f"models={type(models).__name__} is not valid: give a model, "
                             "a list of models or a dict of name -> model")
    if not items:
        raise ValueError("models is empty: give at least one model")
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(items):
            raise ValueError(f"names has {len(names)} entries for {len(items)} models")
        items = [(n, m) for n, (_, m) in zip(names, items)]
    entries = [_entry(m, n, n_classes, features) for n, m in items]
    keys = [e.key for e in entries]
    if len(set(keys)) != len(keys):
        raise ValueError("models contains the same model twice (equal model keys: the "
                         "same configuration, or the same weights and feature source)")
    return entries


def _check_models(entries: Sequence[_Entry], images: torch.Tensor, labels: torch.Tensor
                  ) -> list[int]:
    """Each model's number of classes, after checking (one image, no work yet) that it
    takes these images, returns the number of logits it declares, and that every label
    is one of its classes."""
    out = []
    for e in entries:
        what = f"model {e.meta['model']!r}"
        width = check_input_shape(e.model, images, what)
        if e.n_classes is not None and width != e.n_classes:
            raise ShapeError(f"{what} returns {width} logits per image, but "
                             f"n_classes={e.n_classes} was given")
        check_labels(labels, width, what)
        out.append(width)
    return out


def _job() -> np.ndarray:
    """The Slurm job computing this unit ("" outside Slurm), stored with the unit."""
    from .executor import current_job_id

    return np.array(current_job_id() or "")


def unit_job(path: str | Path) -> str | None:
    """The Slurm job that computed the cached attack unit at ``path`` (None: not under
    Slurm, or an entry written before job ids were recorded)."""
    with np.load(path, allow_pickle=False) as z:
        job = str(z["job"]) if "job" in z.files else ""
    return job or None


def _torchattacks_version() -> str:
    import torchattacks

    return str(getattr(torchattacks, "__version__", "unknown"))


def _check_subset(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.as_tensor(images).detach().cpu()
    labels = torch.as_tensor(labels).detach().cpu()
    check_batch(images, labels)
    images = images.float()
    check_pixels(images)
    check_labels(labels)  # integers; their range is checked against each model
    return images.contiguous(), labels.long().contiguous()


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int,
             tap: _Tap = None) -> dict[str, np.ndarray]:
    """Logits, and features when ``tap`` reads some, in batches and in eval mode."""
    was_training = model.training
    model.eval()
    try:
        logits, feats = zip(*(_forward(model, x[s:s + batch_size], tap)
                              for s in range(0, x.shape[0], batch_size)))
    finally:
        model.train(was_training)
    out = {"logits": torch.cat(logits).float().cpu().numpy()}
    if tap is not None:
        out["features"] = (torch.cat(feats).float().cpu().numpy()
                           if all(f is not None for f in feats)
                           else np.zeros((x.shape[0], 0), np.float32))
    return out


def _attack_unit(atk: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 todo: torch.Tensor, batch_size: int, bar: Any,
                 keep: bool, tap: _Tap) -> dict[str, np.ndarray]:
    """Attack the samples marked in ``todo`` (the clean-correct ones) in batches of
    ``batch_size``; every other sample keeps its clean image (the centre of its eps ball,
    already misclassified). Returns logits (and features and images if ``keep``) of
    every sample, and the L-inf and L2 size of each perturbation."""
    adv_all = x.clone()
    rows = todo.nonzero().squeeze(1)
    for s in range(0, rows.numel(), batch_size):
        r = rows[s:s + batch_size]
        adv_all[r] = atk(x[r], y[r])
        bar.update(1)
    # the bar counts batches of the whole set: add those the skipped samples would take
    bar.update(max(1, math.ceil(x.shape[0] / batch_size)) - math.ceil(rows.numel() / batch_size))
    parts: dict[str, list[torch.Tensor]] = {"logits": [], "features": [], "linf": [], "l2": [],
                                            "images": []}
    for s in range(0, x.shape[0], batch_size):
        xb, adv = x[s:s + batch_size], adv_all[s:s + batch_size]
        out = _predict(model, adv, batch_size, tap if keep else None)
        delta = (adv - xb).flatten(1)
        parts["logits"].append(torch.from_numpy(out["logits"]))
        parts["linf"].append(delta.abs().amax(1).cpu())
        parts["l2"].append(delta.norm(dim=1).cpu())
        if keep:
            if "features" in out:
                parts["features"].append(torch.from_numpy(out["features"]))
            parts["images"].append(adv.detach().float().cpu())
    return {k: torch.cat(v).numpy() for k, v in parts.items() if v}


def _grids(specs: Sequence[AttackSpec], eps_grid: Any, images: torch.Tensor
           ) -> list[tuple[float, ...]]:
    dim = int(np.prod(images.shape[1:]))
    grids = []
    for spec in specs:
        grid = spec.eps if spec.eps is not None else eps_grid
        if grid is None:
            raise ValueError(f"attack {spec.record_name!r} has no eps grid: give "
                             "AttackSpec(eps=[...]) or evaluate(eps_grid=[...])")
        grid = [grid] if np.isscalar(grid) else list(grid)
        grids.append(tuple(dict.fromkeys(_check_eps(e, spec.norm, dim) for e in grid)))
    return grids


@dataclass(frozen=True)
class _Plan:
    """What an evaluation loads or computes, fixed before any work: the checked attacks,
    eps grids and attacked set, and where each model's clean pass and (attack, eps) units
    live in the cache. ``root`` None is the cache off: every path is None."""

    specs: tuple[AttackSpec, ...]
    grids: tuple[tuple[float, ...], ...]
    images: torch.Tensor
    labels: torch.Tensor
    subset: str
    keep: bool
    root: Path | None

    def _path(self, key: str, stem: str, *hashed: Any) -> Path | None:
        return None if self.root is None else self.root / key / f"{stem}_{stable_hash(*hashed)}.npz"

    def clean_path(self, key: str) -> Path | None:
        return self._path(key, "clean", "clean", key, self.subset, self.keep)

    def units(self, key: str) -> list[tuple[AttackSpec, float, Path | None]]:
        """(attack, eps, cache path) of every unit of the model with this key."""
        return [(spec, eps, self._path(key, f"{record_name(spec.resolved)}_eps{eps:.6g}",
                                       "attack-unit", key, spec.resolved, eps, self.subset,
                                       _torchattacks_version(), self.keep))
                for spec, grid in zip(self.specs, self.grids) for eps in grid]


def _plan(attacks: Sequence[Any], images: torch.Tensor, labels: torch.Tensor,
          eps_grid: Any, root: Path | None) -> _Plan:
    """The :class:`_Plan` of :func:`evaluate` and of :func:`missing_units` (one, so that
    both name the same entries)."""
    specs = [AttackSpec.coerce(a) for a in attacks]
    if not specs:
        raise ValueError("attacks is empty: give at least one attack")
    record_names = [s.record_name for s in specs]
    if len(set(record_names)) != len(record_names):
        raise ValueError(f"attacks have repeated record names {record_names}: give each "
                         "AttackSpec a distinct label")
    images, labels = _check_subset(images, labels)
    grids = _grids(specs, eps_grid, images)
    subset = stable_hash("subset", tensor_fingerprint(images), tensor_fingerprint(labels))
    return _Plan(tuple(specs), tuple(grids), images, labels, subset,
                 labels.shape[0] <= ADV_IMAGES_MAX, root)


def missing_units(model_keys: Sequence[str], attacks: Sequence[Any], images: torch.Tensor,
                  labels: torch.Tensor, *, eps_grid: Sequence[float] | None = None,
                  cache_dir: str | Path | None = None) -> list[str]:
    """The model keys (of ``model_keys``) with at least one attack unit not yet in the
    cache: what an executor has to compute before :func:`evaluate` can load the rest."""
    plan = _plan(attacks, images, labels, eps_grid, entry_dir("attacks", cache_dir))
    return [key for key in model_keys
            if any(not path.exists() for _, _, path in plan.units(key))]


def _load_or_run(path: Path | None, keys: Sequence[str],
                 compute: Callable[[], dict[str, np.ndarray]],
                 save: Callable[[Path, dict[str, np.ndarray]], Any]
                 ) -> tuple[dict[str, np.ndarray], bool]:
    """``(arrays, from_cache)`` of one entry, through :func:`cache.compute_once` (and its
    per-key lock); no path (the cache off) is a store that holds and saves nothing."""
    if path is None:
        return compute(), False
    return compute_once(path, lambda p: load_npz(p, keys), compute, save)


#: One unit after :func:`_run_model`: (attack, eps, path, arrays, from_cache, seconds).
_Done = tuple[AttackSpec, float, Path | None, dict[str, np.ndarray], bool, float]


def _run_model(entry: _Entry, k: int, plan: _Plan, x: torch.Tensor, y: torch.Tensor,
               batch_size: int, bar: Any) -> tuple[dict[str, np.ndarray], list[_Done]]:
    """A model's clean pass, then each of its units, on the device of ``x`` (the model
    is put back on its own device afterwards). Each entry is saved as it finishes."""
    model, meta = entry.model, entry.meta
    tap = entry.tap if plan.keep else None
    keys = ("logits", "linf", "l2") if tap is None else ("logits", "features", "linf", "l2")
    n_batches = max(1, math.ceil(x.shape[0] / batch_size))
    home = module_device(model)
    model.to(x.device)
    try:
        clean, _ = _load_or_run(plan.clean_path(entry.key), keys[:1 if tap is None else 2],
                                lambda: _predict(model, x, batch_size, tap), save_npz)
        # Only clean-correct samples are attacked (as in AutoAttack's reference code): a
        # clean error already counts against robust accuracy, and every adversarial
        # statistic is taken over clean-correct samples.
        y_np = plan.labels.numpy()
        todo = torch.from_numpy(_top2(clean["logits"], y_np)["pred"] == y_np).to(x.device)
        done = []
        for spec, eps, path in plan.units(entry.key):
            bar.set_postfix_str(f"{meta['model']} s{meta['seed']} {spec.record_name} "
                                f"eps={eps:g}")
            start = time.perf_counter()
            arrays, from_cache = _load_or_run(
                path, keys, lambda spec=spec, eps=eps: _attack_unit(
                    build_attack(spec.name, model, eps, n_classes=k, **spec.params),
                    model, x, y, todo, batch_size, bar, plan.keep, tap),
                lambda p, a: save_npz(p, {**a, "job": _job()}, compress=plan.keep))
            if from_cache:
                bar.update(n_batches)
            done.append((spec, eps, path, arrays, from_cache,
                         0.0 if from_cache else time.perf_counter() - start))
        return clean, done
    finally:
        model.to(home)


def _assemble(plan: _Plan, entries: Sequence[_Entry], widths: Sequence[int],
              runs: Sequence[tuple[dict[str, np.ndarray], list[_Done]]]) -> AttackResult:
    """The :class:`AttackResult` of every model's clean pass and units, in run order."""
    y = plan.labels.numpy()
    frames, unit_rows, adv, paths = [], [], {}, {}
    for entry, (clean, done) in zip(entries, runs):
        clean_stats = _top2(clean["logits"], y)
        for spec, eps, path, arrays, from_cache, seconds in done:
            name = spec.record_name
            adv[(entry.key, name, eps)], paths[(entry.key, name, eps)] = arrays, path
            unit_rows.append({"model": entry.meta["model"], "model_key": entry.key,
                              "attack": name, "eps": eps, "seconds": seconds,
                              "from_cache": from_cache,
                              "path": None if path is None else str(path)})
            frames.append(_unit_records(entry.meta, name, eps, y, clean_stats,
                                        _top2(arrays["logits"], y), arrays["linf"],
                                        arrays["l2"]))
    records = pd.concat(frames, ignore_index=True)[list(RECORD_COLUMNS)]
    models = pd.DataFrame([{**e.meta, "num_classes": k, "features": e.tap is not None}
                           for e, k in zip(entries, widths)])
    if models["num_classes"].nunique() == 1:
        records.attrs["num_classes"] = int(models["num_classes"].iloc[0])
    attack_params = {s.record_name: {**s.resolved, "eps": g}
                     for s, g in zip(plan.specs, plan.grids)}
    return AttackResult(records, y.copy(), models, attack_params, pd.DataFrame(unit_rows),
                        plan.images.numpy() if plan.keep else None,
                        {e.key: clean for e, (clean, _) in zip(entries, runs)}, adv, paths)


def evaluate(models: Any, attacks: Sequence[AttackSpec | str | Sequence[Any]],
             images: torch.Tensor, labels: torch.Tensor, *,
             eps_grid: Sequence[float] | None = None, device: str | torch.device = "auto",
             batch_size: int = 1000, cache_dir: str | Path | None = None, cache: bool = True,
             progress: bool = True, names: Sequence[str] | None = None,
             n_classes: int | None = None,
             features: str | nn.Module | Callable[[torch.Tensor], torch.Tensor] | None = None
             ) -> AttackResult:
    """Attack every model with every attack at every eps, on one fixed test set.

    Only the samples a model classifies correctly when clean are attacked, as in
    AutoAttack's reference code; a clean error keeps its clean image as its
    "adversarial" one (zero perturbation). It counts as a failure in robust accuracy
    either way, and every adversarial statistic (success, the softmax after the attack)
    is taken over clean-correct samples, so attacking it would only cost time.

    Every input is checked before any work (each model runs on one image to check the
    image shape); bad input raises a ``ValueError`` of :mod:`drsl_utils.errors` that
    names the value.

    Args:
        models: one model, a list of them, or a dict of name -> model (the name labels
            its records); a model is any ``nn.Module`` (its logits are ``model(x)``), a
            :class:`ForeignModel` from :func:`foreign`, or a ``training.TrainedModel``,
            mixed as you like. Each is attacked in eval mode on ``device`` and put back
            on its own device and mode afterwards.
        attacks: :class:`~drsl_utils.attacks.AttackSpec` objects, names,
            ``(name, params)`` or ``(name, params, eps)`` tuples, e.g.
            ``[("pgd", {"steps": 10}), "fgsm"]``. Record names must be distinct.
        images, labels: the attacked set, e.g. ``load_dataset(...).subset(n, seed=0)``'s
            ``images`` (float in [0, 1], N x C x H x W) and ``labels`` (int, N).
        eps_grid: eps values for every attack without its own ``AttackSpec.eps``.
        device: ``"auto"`` (GPU if present), ``"cpu"`` or ``"cuda"``.
        batch_size: samples per attack call; large batches are far faster than 128.
            Random starts are drawn per batch, so results depend on it (and on the
            device); cached units are reused whatever the batch size and device.
        cache_dir: cache root (default ``cache.default_cache_dir()``).
        cache: read and write the cache; False recomputes everything and writes nothing.
        progress: one tqdm bar over models x attacks x eps x batches.
        names: model names for the records (overriding a dict's keys); default: the
            dict's keys, ``TrainedModel.config.label``, ``ForeignModel.name``, or a
            plain module's class name.
        n_classes: for every plain ``nn.Module`` in ``models``: its number of classes,
            checked against the width of its logits; None: that width.
        features: for every plain ``nn.Module``: its feature source (see
            :func:`foreign`); None: no features. Wrap models in :func:`foreign` to give
            each its own. A toolkit model's features are its penultimate layer.

    Raises:
        ModelTypeError: something in ``models`` that is not a model.
        ShapeError: images not N x C x H x W with one label each, or of a shape a model
            cannot take (found by running each model on one image), or a model whose
            logits are not ``n_classes`` wide.
        PixelRangeError: images outside [0, 1].
        LabelRangeError: a label outside ``[0, K)`` of some model.
        DeviceError: ``device`` is not one of the allowed values, or not present.
        UnknownNameError: an unknown attack, option or feature layer.

    Returns:
        An :class:`AttackResult`. Each unit and each model's clean pass is cached as
        soon as it finishes, so a warm re-run takes seconds and a killed run loses at
        most the unit in progress. Sets of up to :data:`ADV_IMAGES_MAX` images also keep
        features (of models that have a feature source) and the adversarial images.
        A foreign model's key covers its weights (:func:`cache.foreign_model_key`).
    """
    from tqdm.auto import tqdm

    entries = _as_entries(models, names, n_classes, features)
    _check_positive_int("batch_size", batch_size)
    plan = _plan(attacks, images, labels, eps_grid,
                 entry_dir("attacks", cache_dir) if cache else None)
    dev = resolve_device(device)
    widths = _check_models(entries, plan.images, plan.labels)
    n_batches = max(1, math.ceil(len(plan.labels) / batch_size))
    bar = tqdm(total=len(entries) * sum(map(len, plan.grids)) * n_batches, desc="attacks",
               disable=not progress, mininterval=0.5)
    x, y = plan.images.to(dev), plan.labels.to(dev)
    try:
        runs = [_run_model(e, k, plan, x, y, batch_size, bar) for e, k in zip(entries, widths)]
    finally:
        bar.close()
    return _assemble(plan, entries, widths, runs)
