"""Experiment profiles and the model zoo that every notebook shares.

A *profile* fixes the sizes of an experiment: which dataset and model, how many epochs
and seeds, how many test samples are attacked, and the eps grid.

- ``smoke``: seconds, on ``digits``; what the tests execute.
- ``quick``: the default of the main job on CPU: Fashion-MNIST, an MLP, 8 seeds for the
  main comparison (CE, GCE, DRSL) and 5 for every other comparison.
- ``paper``: the full-size profile for a GPU: the CNN, 8 and 5 seeds, the whole test
  set for every attack.

The *zoo* maps display names (``"CE"``, ``"DRSL"``, ...) to a loss and its parameters,
so a name means the same model in every notebook and figure.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import DatasetSplit, load_dataset
from .report import Report
from .runtime import check_choice
from .training import TrainConfig, TrainedModel, train_many

__all__ = [
    "PROFILES",
    "Profile",
    "get_profile",
    "ZOO",
    "MAIN_LOSSES",
    "model_config",
    "train_zoo",
    "repo_root",
    "figures_dir",
    "setup",
    "eval_subset",
    "attack_zoo",
    "clean_stats",
    "flatten_zoo",
    "AT_ZOO",
    "AT_CONTROL",
    "eval_data",
    "validation_split",
    "scratch_figures_dir",
    "pgd_spec",
    "dlr_spec",
    "accuracy_on",
    "calibration_split",
    "calibration_seeds",
    "standard_autoattack_spec",
    "distillation_zoo",
    "SEEDS_USED",
]


@dataclass(frozen=True)
class Profile:
    """The sizes of an experiment. Every field can be overridden in ``get_profile``.

    Attributes:
        name: ``smoke``, ``quick`` or ``paper``.
        dataset: dataset name (``data.DATASETS``).
        model: architecture (``models.MODELS``).
        arch_params: size options per architecture (``models.build_model``), e.g.
            ``{"mlp": {"hidden": 128}}``.
        epochs: training epochs of standard models.
        seeds: the seeds of the main comparison (CE, GCE, DRSL).
        other_seeds: how many of ``seeds`` every other comparison that yields a verdict
            uses (the other losses, adversarial training, the sweeps, distillation).
        figure_seeds: how many of ``seeds`` the models and attacks that no verdict rests
            on use (they only draw a figure or a table row); at most ``other_seeds``.
        batch_size, lr: optimiser settings (Adam).
        train_size: train on a fixed subset of this size (None: the whole train split).
        eval_size: size of the fixed test subset that the expensive attacks (APGD,
            Square, FAB, AutoAttack, CW, DeepFool) and UMAP use; FGSM and PGD run on
            the whole test set.
        eps_grid: L-inf radii of the eps sweep, in [0, 1] pixel units.
        pgd_steps: PGD iterations for sweeps.
        at_epochs: epochs of adversarial training (it costs steps+1 passes per batch).
        at_steps: PGD steps inside adversarial training.
        at_eps: eps of adversarial training.
        at_train_size: training-set size of adversarial training (None: all).
        embed_size: clean points per UMAP panel.
        sweep_train_size: training-set size of the large grids (label noise, tau sweep,
            distillation, more models); None: all.
        sweep_epochs: epochs of those grids (None: ``epochs``).
        validation_size: held-out training images (never trained on by the grids) for
            choices that must not look at the test set, such as tau in ``07``.
        more_models: the architectures of the "more models" comparison (notebook 10): CE
            against DRSL on ``seeds``, the main comparison's seeds.
        more_models_train_size, more_models_epochs: their training (None: the grids').
        memorise_train_size, memorise_epochs: the label-noise claims' memorisation regime
            (:meth:`memorisation`): so few images trained so long that CE fits the
            flipped labels. Measured on Fashion-MNIST with 40 % symmetric noise (one
            seed, MLP-128): 2,000 images x 60 epochs, CE memorises 98 % of the flipped
            labels; 5,000 x 24, 19 %; the grid's 20,000 x 6, 2 %. Each model costs about
            as much as one of the grid's (the same number of gradient steps).
        calibration_size, calibration_seeds: the attack calibration (``12``): standard
            AutoAttack beside the cheap attacks on this many images of the fixed test
            subset, for the first this-many seeds of every model in a primary
            robustness claim. Standard AutoAttack costs about ten times a reduced one
            (28-33 s per MLP on 300 images on two cores, measured). A calibrated row's
            degrees of freedom are the calibration's seeds less one, so ``quick`` takes
            5 seeds x 60 images: about the cost of 2 x 200 (standard AutoAttack on 80
            images costs half of 200, measured on a PGD-AT and a DRSL MLP: a fixed
            cost per model), and 4 degrees of freedom instead of 1, which left the
            calibrated rows unable to leave *inconclusive* (methods review 2, point 1). ``smoke`` takes 12
            images: on its digits, standard AutoAttack on the adversarially trained
            models runs every Square query on every robust image, about a minute per
            model at 40 images, which made notebook 12 the slowest smoke test.
        subset_seed: the seed that draws the fixed attack subset and the calibration's
            images from the test set (:func:`eval_subset`). ``quick`` draws a fresh
            subset for each confirmatory run (seed 1 for the second, seed 2 for the
            third), so that its attacked images are a new draw as well as its training
            seeds (methods review 2, point 10); a fresh draw of 1,000 shares about 100
            images with any earlier one, as chance implies.
    """

    name: str
    dataset: str
    model: str
    epochs: int
    seeds: tuple[int, ...]
    other_seeds: int = 5
    figure_seeds: int = 3
    arch_params: dict[str, dict[str, int]] = field(default_factory=dict)
    batch_size: int = 128
    lr: float = 1e-3
    train_size: int | None = None
    eval_size: int = 1000
    eps_grid: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1)
    pgd_steps: int = 10
    at_epochs: int = 5
    at_steps: int = 5
    at_eps: float = 0.1
    at_train_size: int | None = None
    embed_size: int = 2000
    sweep_train_size: int | None = None
    sweep_epochs: int | None = None
    validation_size: int = 5000
    more_models: tuple[str, ...] = ("cnn",)
    more_models_train_size: int | None = None
    more_models_epochs: int | None = None
    memorise_train_size: int = 2000
    memorise_epochs: int = 60
    calibration_size: int = 200
    calibration_seeds: int = 2
    subset_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def seeds_other(self) -> tuple[int, ...]:
        """The seeds of every comparison other than the main one."""
        return self.seeds[:self.other_seeds]

    @property
    def seeds_reference(self) -> tuple[int, ...]:
        """One seed per seed of :attr:`seeds_other`, none of them among :attr:`seeds`:
        the next ones after the largest. They train independent reference models, so
        that comparisons of two models per seed share no model across seeds."""
        start = max(self.seeds) + 1
        return tuple(range(start, start + len(self.seeds_other)))

    @property
    def seeds_all(self) -> tuple[int, ...]:
        """Every seed a run of this profile trains a model with: :attr:`seeds` and
        :attr:`seeds_reference` (every other seed set is a prefix of :attr:`seeds`)."""
        return tuple(sorted({*self.seeds, *self.seeds_reference}))

    @property
    def seeds_figure(self) -> tuple[int, ...]:
        """The seeds of models and attacks that only draw a figure (no verdict)."""
        return self.seeds[:min(self.figure_seeds, self.other_seeds)]

    @property
    def eps_mid(self) -> float:
        """The middle of the eps grid: the eps of the loss comparisons' claims."""
        return self.eps_grid[len(self.eps_grid) // 2]

    def sweep(self) -> Profile:
        """This profile as the large grids use it: the other seeds, maybe fewer images."""
        return dataclasses.replace(self, seeds=self.seeds_other,
                                   train_size=self.sweep_train_size or self.train_size,
                                   epochs=self.sweep_epochs or self.epochs)

    def memorisation(self) -> Profile:
        """The label-noise claims' memorisation regime: :meth:`sweep` with
        ``memorise_train_size`` images trained ``memorise_epochs`` epochs."""
        return dataclasses.replace(self.sweep(), train_size=self.memorise_train_size,
                                   epochs=self.memorise_epochs)

    def params_for(self, model: str) -> dict[str, int]:
        """The size options of architecture ``model`` under this profile."""
        return dict(self.arch_params.get(model, {}))


# quick is sized for two CPU cores: an MLP with 128 hidden units trained 6 epochs reaches
# the same clean accuracy as 256 units trained 8 (0.880 vs 0.883 on Fashion-MNIST,
# measured) in 40 % of the time, which pays for 8 seeds instead of 3.
PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", "digits", "mlp", epochs=6, seeds=(0, 1), other_seeds=2,
                     batch_size=64, lr=2e-3, eval_size=150, eps_grid=(0.05, 0.1, 0.2),
                     pgd_steps=5, at_epochs=4, at_steps=3, at_eps=0.1, embed_size=300,
                     sweep_epochs=3, validation_size=200, sweep_train_size=1000,
                     memorise_train_size=300, memorise_epochs=10,
                     calibration_size=12,
                     more_models_train_size=1000, more_models_epochs=2,
                     arch_params={"cnn": {"width": 8, "hidden": 32}}),
    # The confirmatory block (issue 21, item 8): seeds 7000-7012 (main 7000-7007,
    # references 7008-7012), unseen when the declaration was frozen, with a fresh image
    # subset (subset_seed 5). Used before (:data:`SEEDS_USED`): 0-12 by the exploratory
    # runs, 1000-1012, 3000-3012, 4000-4012, 5000-5012 and 6000-6012 by the confirmatory
    # runs of earlier declarations.
    "quick": Profile("quick", "fashion-mnist", "mlp", epochs=6,
                     seeds=tuple(range(7000, 7008)), subset_seed=5,
                     calibration_size=60, calibration_seeds=5,
                     other_seeds=5, arch_params={"mlp": {"hidden": 128},
                                                 "cnn": {"width": 16, "hidden": 64}},
                     eval_size=1000, eps_grid=(0.01, 0.02, 0.05, 0.1), pgd_steps=10,
                     at_epochs=5, at_steps=5, at_eps=0.1, at_train_size=20000,
                     embed_size=2000, sweep_train_size=20000,
                     more_models_train_size=10000, more_models_epochs=3),
    "paper": Profile("paper", "fashion-mnist", "cnn", epochs=30, seeds=tuple(range(8)),
                     other_seeds=5, figure_seeds=5, eval_size=10000,
                     eps_grid=(0.01, 0.02, 0.03, 0.05, 0.1, 0.15), pgd_steps=20,
                     at_epochs=20, at_steps=10, at_eps=0.1, embed_size=5000,
                     sweep_train_size=55000, more_models=("cnn", "resnet18"),
                     calibration_size=1000, calibration_seeds=5),
}


#: ``confirm``: the claims report's power analysis made concrete, for a cluster or a
#: GPU (``docs/cluster.md`` has its cost; ``benchmarks/confirm_power.py`` the sizing).
#: The same estimands as ``quick`` (its models, training, attacks and eps), with 256
#: seeds for every comparison. It was first sized at 64 from the exploratory 5-8-seed
#: sds; at the fifth confirmatory run's spreads (seeds 6000-6012, rule v9, which counts
#: the calibration's per-seed variance) 64 seeds reach power 0.8 at the SESOI for only
#: 14 of 19 primary findings, the point estimates of the seeds needed reaching 202
#: (``drsl-noise-pair``), 142, 125, 108 and 92 (methods review). The attack calibration
#: runs on every seed and 1,000 images (a calibrated row's degrees of freedom are the
#: calibration's), and the attacks on the whole test set, where the image term vanishes
#: (the estimands' population is the test set). Seeds 2000-2511 (main 2000-2255,
#: references 2256-2511): a block of its own, unseen, disjoint from :data:`SEEDS_USED`
#: and below 3000, so a run of it can be confirmatory.
PROFILES["confirm"] = dataclasses.replace(
    PROFILES["quick"], name="confirm", seeds=tuple(range(2000, 2256)), other_seeds=256,
    figure_seeds=5, eval_size=10000, calibration_size=1000, calibration_seeds=256)

#: Every seed a run has trained a model with before the claims' declaration was last
#: frozen: quick and paper 0-7 with references 8-12, smoke 0-1 with references 2-3 (the
#: exploratory runs), 1000-1012 (the confirmatory run of declaration
#: 824732c6f8b2c955, whose report the next declaration was revised after), 3000-3012
#: (the confirmatory run of declaration 18d59a949a48a8b0, likewise, rule v7) and
#: 4000-4012 (the confirmatory run of declaration b03ad4e8a0595b52, likewise, rule v8),
#: 5000-5012 (declaration 721bc7a8e9708ffa, rule v8, likewise) and 6000-6012
#: (declaration 6b30b6b860f29f55, rule v9, likewise). A
#: confirmatory run must use seeds outside this ledger, so that no choice of the
#: declaration could have been tuned on them (``figures/confirmatory.json`` records its
#: block; ``tests/test_experiments.py`` checks the two are disjoint and that every seed
#: in any report ever committed lies in the ledger). Never remove a seed.
SEEDS_USED: frozenset[int] = (frozenset(range(13)) | frozenset(range(1000, 1013))
                              | frozenset(range(3000, 3013)) | frozenset(range(4000, 4013))
                              | frozenset(range(5000, 5013)) | frozenset(range(6000, 6013)))


def get_profile(name: str = "quick", **overrides: Any) -> Profile:
    """The profile ``name``, with any field overridden; ``None`` values are ignored,
    so a notebook's ``dataset=None`` keeps the profile's dataset."""
    check_choice("profile", name, tuple(PROFILES))
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "seeds" in changes:
        changes["seeds"] = tuple(int(s) for s in changes["seeds"])
        if not changes["seeds"]:
            raise ValueError("seeds=() is not valid: give at least one seed")
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(Profile)})
    if unknown:
        raise ValueError(f"unknown profile field(s) {unknown}; the fields are: "
                         f"{', '.join(f.name for f in dataclasses.fields(Profile))}")
    return dataclasses.replace(PROFILES[name], **changes)


# The DRSL authors add the penalty summed over the batch with weight b = 0.001 next to a
# batch-mean CE; with a batch-mean penalty that is tau = b * batch_size (0.128 at 128).
DRSL_B = 0.001

ZOO: dict[str, tuple[str, dict[str, Any]]] = {
    "CE": ("ce", {}),
    "GCE": ("gce", {"q": 0.7}),
    "MAE": ("mae", {}),
    "DRSL": ("drsl", {"space": "logit"}),
    "DRSL-prob": ("drsl", {"space": "prob", "tau": 1.0}),
    "I-SCE": ("isce", {"m": 1.0, "s": 1.0}),
    "OVR": ("ovr", {}),
    "SOVR": ("sovr", {"M": 0.4}),
}
MAIN_LOSSES = ("CE", "GCE", "DRSL")

# Adversarially trained models: display name -> (zoo loss, adversarial method).
AT_ZOO: dict[str, tuple[str, str]] = {
    "PGD-AT": ("CE", "pgd"),
    "TRADES": ("CE", "trades"),
    "SOVR-AT": ("SOVR", "pgd"),
}
# The control of adversarial training: CE trained on the same images for the same
# epochs as the AT models, so that AT vs standard compares the training method only.
AT_CONTROL = "CE (AT data)"


def model_config(profile: Profile, name: str, seed: int = 0, **changes: Any) -> TrainConfig:
    """The training configuration of zoo model ``name`` under ``profile``.

    ``changes`` override TrainConfig fields (e.g. ``noise="pair", noise_rate=0.2``,
    or ``loss_params={"tau": 1.0}`` merged into the zoo's parameters).
    """
    check_choice("name", name, tuple(ZOO) + tuple(AT_ZOO) + (AT_CONTROL,))
    if name == AT_CONTROL:
        control = {"epochs": profile.at_epochs, "train_size": profile.at_train_size}
        return model_config(profile, "CE", seed, **(control | changes))
    if name in AT_ZOO:
        base_name, method = AT_ZOO[name]
        at = {"adversarial": method, "epochs": profile.at_epochs,
              "train_size": profile.at_train_size,
              "adversarial_params": {"eps": profile.at_eps, "steps": profile.at_steps}}
        return model_config(profile, base_name, seed, **(at | changes))
    loss, params = ZOO[name]
    params = dict(params)
    if loss == "drsl" and params.get("space", "logit") == "logit" and "tau" not in params:
        params["tau"] = DRSL_B * profile.batch_size
    params.update(changes.pop("loss_params", {}))
    base = TrainConfig(dataset=profile.dataset, model=profile.model,
                       model_params=profile.params_for(profile.model), loss=loss,
                       loss_params=params, epochs=profile.epochs, seed=seed,
                       batch_size=profile.batch_size, lr=profile.lr,
                       train_size=profile.train_size)
    return base.replace(**changes) if changes else base


def train_zoo(profile: Profile, names: Iterable[str], *, seeds: Sequence[int] | None = None,
              drawn: Iterable[str] = (), device: str = "auto", progress: bool = True,
              **changes: Any) -> dict[str, list[TrainedModel]]:
    """Train (or load from the cache) every zoo model in ``names`` for every seed.

    ``drawn``: those of ``names`` that no verdict rests on; they get only the first
    ``len(profile.seeds_figure)`` of the seeds.

    Returns ``{name: [one TrainedModel per seed]}``, in the order of ``names``.
    """
    names = list(names)
    seeds = tuple(profile.seeds if seeds is None else seeds)
    drawn = set(drawn)
    pairs = [(n, s) for n in names
             for s in (seeds[:len(profile.seeds_figure)] if n in drawn else seeds)]
    configs = [model_config(profile, n, s, **dict(changes)) for n, s in pairs]
    trained = train_many(configs, device=device, progress=progress)
    out: dict[str, list[TrainedModel]] = {n: [] for n in names}
    for (name, _), tm in zip(pairs, trained):
        out[name].append(tm)
    return out


def repo_root() -> Path:
    """The repository root (the parent of the package directory)."""
    return Path(__file__).resolve().parent.parent


def figures_dir(profile: str | Profile) -> Path:
    """Where the main job puts a profile's gallery: ``figures/`` for ``quick``
    (committed), else ``build/figures/<profile>`` (ignored by git)."""
    name = profile.name if isinstance(profile, Profile) else profile
    if name == "quick":
        return repo_root() / "figures"
    return scratch_figures_dir(name)


def scratch_figures_dir(profile: str | Profile) -> Path:
    """Where a notebook run by hand writes: ``build/figures/<profile>`` (ignored by git),
    so that interactive use never touches the committed gallery."""
    name = profile.name if isinstance(profile, Profile) else profile
    return repo_root() / "build" / "figures" / name


def setup(notebook: str, profile: str = "quick", *, dataset: str | None = None,
          seeds: Sequence[int] | None = None, figures_dir_: str | Path | None = None,
          executor: str | None = None, **overrides: Any) -> tuple[Profile, Report]:
    """The first call of every notebook: the profile (with the notebook's parameters
    applied) and the :class:`report.Report` its figures and findings go to.

    Figures go to ``figures_dir_`` when given (the main job passes ``figures/``), else
    to :func:`scratch_figures_dir`, so a notebook run by hand never writes into the
    committed gallery. ``executor`` (``"inline"``, ``"local"``, ``"slurm"``; default
    ``$DRSL_EXECUTOR``, else inline) says where missing models and attack units run."""
    from .executor import get_executor
    from .runtime import set_threads

    set_threads()
    if executor is not None:
        get_executor(executor)  # validates the name
        # Where this kernel's missing training and attack units run (executor.py).
        os.environ["DRSL_EXECUTOR"] = executor
    prof = get_profile(profile, dataset=dataset, seeds=seeds, **overrides)
    out = Path(figures_dir_) if figures_dir_ else scratch_figures_dir(prof)
    context = tuple(d for d in (figures_dir(prof),) if d.resolve() != out.resolve())
    print(f"profile={prof.name}: {prof.dataset}, {prof.model}{prof.params_for(prof.model) or ''}, "
          f"{prof.epochs} epochs, {prof.n_seeds} seeds (main comparison) and "
          f"{len(prof.seeds_other)} (others), {prof.eval_size}-image attack subset; "
          f"figures -> {out}")
    return prof, Report(notebook, prof.name, out, context_dirs=context)


def eval_subset(profile: Profile) -> DatasetSplit:
    """The fixed test subset the expensive attacks of this profile run on."""
    return load_dataset(profile.dataset, "test").subset(profile.eval_size,
                                                        seed=profile.subset_seed)


def eval_data(profile: Profile, on: str = "subset") -> DatasetSplit:
    """The attacked images: ``"subset"`` (:func:`eval_subset`), ``"test"`` (the whole
    test split) or ``"calibration"`` (:func:`calibration_split`)."""
    check_choice("on", on, ("subset", "test", "calibration"))
    if on == "test":
        return load_dataset(profile.dataset, "test")
    if on == "calibration":
        return calibration_split(profile)
    return eval_subset(profile)


def calibration_split(profile: Profile) -> DatasetSplit:
    """The attack calibration's images: a fixed random ``calibration_size`` of the
    fixed test subset, the same for every model and seed."""
    return eval_subset(profile).subset(profile.calibration_size, seed=profile.subset_seed)


def calibration_seeds(profile: Profile) -> tuple[int, ...]:
    """The seeds the attack calibration runs on (the first ``calibration_seeds``)."""
    return profile.seeds[:min(profile.calibration_seeds, profile.other_seeds)]


def standard_autoattack_spec(eps: Sequence[float]) -> Any:
    """Standard AutoAttack (Croce & Hein 2020: APGD-CE, APGD-T, FAB-T, Square; 100
    steps, 5,000 queries), the calibration's reference (record name
    ``autoattack-standard``) in every profile."""
    from .attacks import AttackSpec

    return AttackSpec("autoattack", {"version": "standard"}, eps=tuple(eps))


def distillation_zoo(profile: Profile, *, seeds: Sequence[int] | None = None,
                     variants: Sequence[str] | None = None, with_teachers: bool = True,
                     device: str = "auto") -> dict[str, list[TrainedModel]]:
    """The distillation comparison (``09``): a CE student trained on labels
    (``"CE (labels)"``), the PGD-AT teachers (``"teacher PGD-AT"``, one per seed; left
    out with ``with_teachers=False``, e.g. beside the PGD-AT models themselves) and a
    student per teacher for each distillation variant (``"student <variant>"``), trained
    on the grids' images (:meth:`Profile.sweep`). Cached like every model."""
    from .distill import DISTILL_VARIANTS

    sweep = profile.sweep()
    seeds = tuple(sweep.seeds if seeds is None else seeds)
    teachers = train_zoo(profile, ["PGD-AT"], seeds=seeds, device=device)["PGD-AT"]
    zoo = {"CE (labels)": train_zoo(sweep, ["CE"], seeds=seeds, device=device)["CE"]}
    if with_teachers:
        zoo["teacher PGD-AT"] = teachers
    for variant in (DISTILL_VARIANTS if variants is None else variants):
        zoo[f"student {variant}"] = [
            train_zoo(sweep, ["CE"], seeds=[t.config.seed], device=device,
                      teacher=t.config, distill_variant=variant)["CE"][0]
            for t in teachers]
    return zoo


def validation_split(profile: Profile) -> DatasetSplit:
    """``profile.validation_size`` training images that the grids (``sweep()``) never
    train on: the next ones in the fixed order their training subset is drawn from."""
    train_size = profile.sweep().train_size
    train = load_dataset(profile.dataset, "train")
    if train_size is None or train_size + profile.validation_size > len(train):
        raise ValueError(f"profile {profile.name!r} trains its grids on {train_size or 'all'} "
                         f"of {len(train)} images, which leaves no {profile.validation_size} "
                         "held-out images; lower sweep_train_size")
    return train.holdout(train_size, profile.validation_size, seed=0)


def flatten_zoo(zoo: dict[str, list[TrainedModel]]) -> tuple[list[TrainedModel], list[str]]:
    """``{name: [models]}`` as parallel lists of models and names."""
    names = [name for name, tms in zoo.items() for _ in tms]
    models = [tm for tms in zoo.values() for tm in tms]
    return models, names


def attack_zoo(profile: Profile, zoo: dict[str, list[TrainedModel]], attacks: Sequence[Any],
               *, eps_grid: Sequence[float] | None = None, on: str = "subset",
               device: str = "auto", progress: bool = True) -> Any:
    """Attack every model of ``zoo`` (cached per model, attack and eps).

    Args:
        on: ``"subset"`` (the profile's fixed test subset) or ``"test"`` (the whole
            test set, for the cheap attacks FGSM and PGD).

    Returns an ``evaluation.AttackResult`` whose ``model`` column holds the zoo names.
    """
    from .evaluation import evaluate, missing_units
    from .executor import fan_out

    sub = eval_data(profile, on)
    models, names = flatten_zoo(zoo)
    grid = profile.eps_grid if eps_grid is None else eps_grid

    def missing() -> list[tuple[Any, ...]]:
        # Every model with a missing unit is one unit of work: all its attacks and eps.
        todo = set(missing_units([m.key for m in models], attacks, sub.images, sub.labels,
                                 eps_grid=grid))
        return [(m.config, list(attacks), profile, on, tuple(grid), device)
                for m in models if m.key in todo]

    fan_out(_attack_unit, missing, desc="attacks",
            describe=lambda u: f"attack {u[0].label} (key {u[0].key}) with "
                               f"{[getattr(a, 'record_name', a) for a in u[1]]}")
    return evaluate(models, attacks, sub.images, sub.labels, eps_grid=grid,
                    names=names, device=device, progress=progress)


def _attack_unit(unit: tuple[Any, ...]) -> str | None:
    """One attack unit for an executor: every attack and eps of one model (a picklable
    top-level function); returns the Slurm job it ran in, if any."""
    from .evaluation import evaluate
    from .executor import current_job_id
    from .training import train

    config, attacks, profile, on, grid, device = unit
    tm = train(config, device=device, progress=False)
    sub = eval_data(profile, on)
    evaluate([tm], attacks, sub.images, sub.labels, eps_grid=list(grid), device=device,
             progress=False)
    return current_job_id()


def clean_stats(profile: Profile, zoo: dict[str, list[TrainedModel]],
                split: str = "test") -> Any:
    """Per-sample softmax/logit statistics of every model on a whole clean split, as one
    tidy frame (``stats.stack_stats``) with ``model`` = zoo name, ``seed`` and the rest
    of each model's identity (``evaluation.IDENTITY_COLUMNS``), which figures read."""
    from .evaluation import model_identity
    from .models import predict_logits
    from .stats import stack_stats

    ds = load_dataset(profile.dataset, split)
    runs = []
    for name, tms in zoo.items():
        for tm in tms:
            runs.append({**model_identity(tm, name).columns(),
                         "logits": predict_logits(tm.model, ds.images).numpy(),
                         "labels": ds.labels.numpy()})
    return stack_stats(runs)


# The clean-accuracy table on the DRSL slides (mean ± std over runs; datasets unnamed).
# Rows 3-4 (about 0.89) fit Fashion-MNIST with a small network.
PAPER_CLEAN_ACCURACY = [
    {"row": 1, "CE": "0.953 ± 0.0013", "GCE": "0.953 ± 0.0024", "DRSL": "0.952 ± 0.0016"},
    {"row": 2, "CE": "0.964 ± 0.0011", "GCE": "0.963 ± 0.0013", "DRSL": "0.962 ± 0.0012"},
    {"row": 3, "CE": "0.894 ± 0.0012", "GCE": "0.896 ± 0.0017", "DRSL": "0.893 ± 0.0023"},
    {"row": 4, "CE": "0.883 ± 0.0014", "GCE": "0.883 ± 0.0016", "DRSL": "0.881 ± 0.0017"},
]


def pgd_spec(profile: Profile) -> Any:
    """PGD (L-inf, cross-entropy, random start) with the profile's steps."""
    from .attacks import AttackSpec

    return AttackSpec("pgd", {"steps": profile.pgd_steps})


def dlr_spec(profile: Profile, eps: Sequence[float] | None = None) -> Any:
    """APGD on the DLR margin loss (Croce & Hein 2020), by default at the middle eps: it
    does not depend on the scale of the logits, so a saturated softmax cannot mask it.
    The loss comparisons' primary robustness claims rest on it."""
    from .attacks import AttackSpec

    steps = {"smoke": 5, "quick": 50}.get(profile.name, 100)
    return AttackSpec("apgd-dlr", {"steps": steps},
                      eps=tuple(eps) if eps is not None else (profile.eps_mid,))


def accuracy_on(zoo: dict[str, list[TrainedModel]], split: DatasetSplit) -> Any:
    """Clean accuracy of every model of ``zoo`` on ``split``: one row per model and seed
    (``model``, ``seed``, ``accuracy``)."""
    import pandas as pd

    from .training import accuracy

    return pd.DataFrame([{"model": name, "seed": tm.config.seed,
                          "accuracy": accuracy(tm.model, split.images, split.labels)}
                         for name, tms in zoo.items() for tm in tms])


def test_population(profile: Profile) -> int:
    """The number of test images of ``profile``'s dataset: the image population every
    claim's estimand is defined on (``claims.image_variance(..., population=...)``)."""
    return len(load_dataset(profile.dataset, "test"))


def robust_image_var(records: Any, a: str, b: str | None = None, *, attack: str | None = None,
                     eps: float | None = None, model: str | None = None,
                     by: str = "model", population: int | None = None) -> float:
    """The image-sampling variance of a robust-accuracy row measured on the fixed test
    subset: :func:`claims.image_variance` of the per-sample robustness (clean-correct and
    not flipped, as in ``stats.robust_accuracy``) of ``a - b`` (or ``a`` alone), over the
    records of ``attack`` at ``eps`` (and of ``model``, when ``by="attack"`` compares two
    attacks on one model), with the finite-population correction for a subset of
    ``population`` test images (:func:`test_population`; None: none). Pass it to
    ``Report.claim(..., image_var=...)``."""
    import numpy as np

    from .claims import image_variance

    sel = records
    if attack is not None:
        sel = sel[sel["attack"] == attack]
    if eps is not None:
        sel = sel[np.isclose(sel["eps"], eps)]
    if model is not None:
        sel = sel[sel["model"] == model]
    robust = sel["clean_correct"].astype(bool) & ~sel["success"].astype(bool)
    return image_variance(sel.assign(robust=robust.astype(float)), "robust", a, b, by=by,
                          population=population)


def runs_table(zoo: dict[str, list[TrainedModel]]) -> Any:
    """One row per trained model: ``model`` (zoo name), ``loss``, ``seed``,
    ``test_accuracy``, ``train_seconds``, ``final_loss``, ``from_cache``, ``key``."""
    import pandas as pd

    return pd.DataFrame([{"model": name, "loss": tm.config.loss, "seed": tm.config.seed,
                          "test_accuracy": tm.test_accuracy,
                          "train_seconds": tm.train_seconds,
                          "final_loss": tm.history["loss"][-1],
                          "from_cache": tm.from_cache, "key": tm.key}
                         for name, tms in zoo.items() for tm in tms])


def attack_suite(profile: Profile) -> list[Any]:
    """Every attack of the toolkit, with settings sized for the profile.

    FGSM, PGD and PGD-L2 sweep the whole eps grid; the iterative minimum-norm,
    score-based and ensemble attacks (CW, DeepFool, APGD, Square, FAB, AutoAttack) run
    at the middle eps only, except in ``paper``. L2 attacks use 4x the L-inf radii
    (for 28x28 inputs an L-inf ball of eps contains L2 perturbations up to 28*eps).
    ``smoke`` cuts steps and queries to the bone; ``quick`` uses fewer steps and queries
    than the papers (Square 500 queries, FAB 10 steps, AutoAttack in its reduced
    version, named ``autoattack-reduced`` in every table); ``paper`` uses the standard
    budgets and the standard AutoAttack. ``benchmarks/autoattack_reference.py`` checks
    the standard AutoAttack against the reference implementation.
    """
    from .attacks import AttackSpec

    smoke, paper = profile.name == "smoke", profile.name == "paper"
    grid = tuple(profile.eps_grid)
    mid = grid if paper else (grid[len(grid) // 2],)
    def l2(eps: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(4 * e for e in eps)

    def n(smoke_: int, quick_: int, paper_: int) -> int:
        return smoke_ if smoke else paper_ if paper else quick_

    autoattack = autoattack_spec(profile, mid)
    return [
        AttackSpec("fgsm", eps=grid),
        AttackSpec("pgd", {"steps": profile.pgd_steps}, eps=grid),
        AttackSpec("pgd-l2", {"steps": profile.pgd_steps}, eps=l2(grid)),
        AttackSpec("cw", {"steps": n(10, 30, 100)}, eps=l2(mid)),
        AttackSpec("deepfool", {"steps": n(10, 50, 50)}, eps=l2(mid)),
        AttackSpec("apgd-ce", {"steps": n(5, 50, 100)}, eps=mid),
        dlr_spec(profile, mid),
        AttackSpec("square", {"steps": n(50, 500, 5000)}, eps=mid),
        AttackSpec("fab", {"steps": n(5, 10, 100)}, eps=mid),
        autoattack,
    ]


def autoattack_spec(profile: Profile, eps: Sequence[float]) -> Any:
    """AutoAttack sized for the profile: the standard version (Croce & Hein's settings)
    in ``paper``; the reduced one in ``quick``; a token version in ``smoke``. The record
    name says which (``autoattack-standard`` / ``autoattack-reduced``)."""
    from .attacks import AttackSpec

    params: dict[str, Any] = {"version": "standard" if profile.name == "paper" else "reduced"}
    if profile.name == "smoke":
        params |= {"steps": 5, "n_queries": 50, "n_target_classes": 1}
    elif profile.name == "quick":
        params |= {"steps": 20, "n_queries": 300, "n_target_classes": 3}
    return AttackSpec("autoattack", params, eps=tuple(eps))


def umap_panels(profile: Profile, result: Any, zoo: dict[str, list[TrainedModel]], *,
                attack: str, eps: float, seed_index: int = 0, progress: bool = True) -> list[Any]:
    """One ``embed.UmapPanel`` per zoo model (its ``seed_index``-th seed): UMAP fitted on
    the clean penultimate features of the attacked subset, and the successful
    adversarial examples of ``attack`` at ``eps`` placed with ``transform``. Cached."""
    import numpy as np

    from .embed import UmapPanel, embed_clean_and_adv

    panels = []
    labels = np.asarray(result.labels)
    for name, tms in zoo.items():
        key = tms[min(seed_index, len(tms) - 1)].key
        rec = result.records
        rec = rec[(rec["model_key"] == key) & (rec["attack"] == attack)
                  & np.isclose(rec["eps"], eps)].sort_values("sample")
        if rec.empty:
            raise ValueError(f"no records for model {name!r}, attack={attack!r}, eps={eps!r}")
        success = rec["success"].to_numpy(bool)
        clean_x = result.clean_features(key)
        adv_x = result.adv_features(key, attack, eps)[success]
        clean_2d, adv = embed_clean_and_adv(clean_x, {"adv": adv_x}, seed=profile.seeds[0],
                                            progress=progress)
        panels.append(UmapPanel(name, clean_2d, labels, adv["adv"],
                                rec["sample"].to_numpy()[success],
                                rec["adv_pred"].to_numpy()[success]))
    return panels


def class_names(profile: Profile) -> tuple[str, ...]:
    """The class names of the profile's dataset."""
    from .data import dataset_info

    return dataset_info(profile.dataset).classes


def memorisation(tm: TrainedModel) -> dict[str, float]:
    """How much label noise a model memorised, on its own (noisy) training set.

    Returns ``memorised``: the fraction of flipped training samples on which the model
    predicts the noisy label; ``recovered``: the fraction on which it predicts the
    clean label; and ``train_clean_accuracy`` on the unflipped samples.
    """
    from .models import predict_logits
    from .training import training_data

    images, noisy, clean, flipped = training_data(tm.config)
    pred = predict_logits(tm.model, images).argmax(1)
    nan = float("nan")
    return {
        "memorised": float((pred[flipped] == noisy[flipped]).float().mean()) if flipped.any()
        else nan,
        "recovered": float((pred[flipped] == clean[flipped]).float().mean()) if flipped.any()
        else nan,
        "train_clean_accuracy": float((pred[~flipped] == clean[~flipped]).float().mean()),
    }


def dataset_available(name: str) -> bool:
    """Whether ``load_dataset(name)`` works here (on disk, or downloadable)."""
    from .data import DatasetNotFoundError

    try:
        load_dataset(name, "test")
    except DatasetNotFoundError:
        return False
    return True
