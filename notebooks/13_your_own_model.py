# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 13 · Your own model: a classifier trained in plain PyTorch, analysed by the toolkit
#
# **Question.** Does label smoothing make a small CNN harder to attack with PGD, and what
# does it do to the second-largest softmax `p2` and the logit gap before and after the
# attack?
#
# Nothing here is trained by the toolkit. The model is a plain `nn.Module` defined in
# this notebook and trained by a plain PyTorch loop, as you would train your own; the
# toolkit only loads the images and analyses the trained models:
#
# 1. `evaluation.evaluate(models, attacks, images, labels, features=...)` attacks any
#    `nn.Module` (or a dict of name -> module) and returns per-sample records;
# 2. `plots.plot_second_softmax_before_after` and `plots.plot_logit_gap_before_after`
#    draw `p2` and the logit gap and margin before and after the attack;
# 3. `embed.umap_panel(result, model, attack, eps)` lays out the model's features with
#    UMAP and places its adversarial examples in that layout;
# 4. `explore.sweep(records)` is an explorer over the records;
# 5. `stats.compare(records, a, b, sesoi=...)` judges a claim of your own by the same
#    rule as the claims report.
#
# Two variants of one model, each trained with the same seeds: **plain** cross-entropy and
# cross-entropy with **label smoothing** (the targets put `1 - s` on the true class and
# spread `s` over all classes). Training is cheap on purpose (a few thousand images, two
# epochs): the point is the path from your model to the analysis, not the best model.

# %% tags=["parameters"]
profile = "quick"
dataset = None
device = "auto"
executor = None  # where missing units run: "inline", "local" or "slurm" (None: $DRSL_EXECUTOR)
seeds = None
figures_dir = None  # None: build/figures/<profile>; the main job passes figures/
train_size = 3000  # training images per model (a fixed subset of the train split)
epochs = 2
smoothing = 0.2  # label smoothing of the second variant
attack_size = 500  # images of the profile's fixed test subset that are attacked

# %%
import pandas as pd
import torch
from torch import nn

from drsl_utils import embed, evaluation, explore, plots, stats
from drsl_utils import experiments as ex
from drsl_utils.data import load_dataset

P, report = ex.setup("13_your_own_model", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir, executor=executor)
SEEDS = P.seeds[:P.figure_seeds]
train = load_dataset(P.dataset, "train").subset(train_size, seed=0)
test = ex.eval_subset(P).subset(attack_size, seed=0)
print(f"{P.dataset}: train on {len(train)} images of shape "
      f"{tuple(train.images.shape[1:])}, attack {len(test)} test images; seeds {list(SEEDS)}")


# %% [markdown]
# ## 1. A model of your own, trained in plain PyTorch
# A small CNN that sizes itself from the images it will see (28 x 28 Fashion-MNIST, or
# the 8 x 8 digits of the smoke profile). Its hidden layer is named, so the toolkit can
# read features there for UMAP.

# %%
class SmallCNN(nn.Module):
    """Two conv blocks, a hidden layer and a linear head; input C x H x W in [0, 1]."""

    def __init__(self, shape, n_classes, width=8, hidden=32):
        super().__init__()
        c, h, w = shape
        self.conv = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(2 * width * (h // 4) * (w // 4), hidden),
                                    nn.ReLU())
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        return self.head(self.hidden(self.conv(x)))


def train_model(seed, label_smoothing):
    """Adam, batches of 32, a fixed initialisation and shuffling per seed."""
    torch.manual_seed(seed)
    model = SmallCNN(tuple(train.images.shape[1:]), train.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    for _ in range(epochs):
        for idx in torch.randperm(len(train)).split(32):
            opt.zero_grad()
            loss_fn(model(train.images[idx]), train.labels[idx]).backward()
            opt.step()
    return model.eval()


VARIANTS = {"plain": 0.0, "smoothed": smoothing}
models = {f"{variant} s{seed}": train_model(seed, s)
          for seed in SEEDS for variant, s in VARIANTS.items()}
# Which variant and seed each model is: data beside the records, never parsed from a name.
who = pd.DataFrame([{"model": f"{variant} s{seed}", "variant": variant, "seed": seed}
                    for seed in SEEDS for variant in VARIANTS])
who

# %% [markdown]
# ## 2. Attack it with `evaluate`
# PGD (L-inf, cross-entropy, random start) at every eps of the profile's grid. The dict's
# keys name the models in the records; `features="hidden"` says where UMAP reads
# features (the output of that layer, read by a forward hook in the same call that makes
# the logits, which always come from `model(x)`). The toolkit cannot know how a model of
# yours was trained, so its records carry `seed = -1`; the merge on the model's name puts
# in its variant and its training seed, which pairs the two variants later.

# %%
result = evaluation.evaluate(models, [ex.pgd_spec(P)], test.images, test.labels,
                             eps_grid=P.eps_grid, features="hidden", device=device,
                             progress=False)
records = result.records.drop(columns="seed").merge(who, on="model")
acc = stats.robust_accuracy(records).merge(who, on=["model", "seed"])
table = acc.pivot_table(index="variant", columns="eps", values="robust_accuracy")
print("clean accuracy (mean over seeds):",
      acc.groupby("variant")["clean_accuracy"].mean().round(3).to_dict())
table.round(3)

# %% [markdown]
# ## 3. `p2` and the logit gap before and after the attack
# Clean-correct samples of every seed, one panel per variant: filled is the clean input,
# the black outline the adversarial input at the middle eps. A successful attack moves
# the margin (true-class logit minus the largest other) below zero.

# %%
MID = P.eps_mid
report.figure(plots.plot_second_softmax_before_after(records, "pgd", MID, hue="variant"),
              "own_model_p2_before_after",
              f"{P.dataset}: second-largest softmax of a small CNN trained in plain PyTorch, "
              f"with and without label smoothing ({smoothing}), before (filled) and after "
              f"(outline) PGD at eps={MID}; clean-correct samples of seeds {list(SEEDS)}.")
report.figure(plots.plot_logit_gap_before_after(records, "pgd", MID, hue="variant"),
              "own_model_gap_before_after",
              f"{P.dataset}: logit gap (top-1 minus top-2) and margin (true minus largest "
              f"other) of the same models before (filled) and after (outline) PGD at "
              f"eps={MID}.")

# %% [markdown]
# ## 4. Where its adversarial examples go
# UMAP of the clean hidden-layer features of the first seed's two models; each diamond
# is a successful PGD example at the middle eps, placed in that layout, joined to its clean
# original and coloured by the class it landed on.

# %%
panels = [embed.umap_panel(result, f"{variant} s{SEEDS[0]}", "pgd", MID, progress=False)
          for variant in VARIANTS]
report.figure(embed.plot_adversarial_umap(panels, class_names=test.classes),
              "own_model_umap",
              f"{P.dataset}: UMAP of the hidden-layer features of the plain and the "
              f"label-smoothed CNN (seed {SEEDS[0]}) on {len(test)} test images, with their "
              f"successful PGD examples at eps={MID} (diamonds, coloured by the adversarial "
              "label).")

# %% [markdown]
# ## 5. Explore the records
# Pick the variant and eps: robust accuracy along eps, `p2` before and after, and where
# the attacks land. In JupyterLab this is a live widget; a headless run (the main job,
# the book) shows a kernel-free figure with the same controls and a picture of the first
# view.

# %%
sweep = explore.sweep(records, line="variant",
                      title=f"{P.dataset}: a small CNN of your own, plain vs label smoothing")
report.figure(sweep.static_figure(), "own_model_explorer",
              f"{P.dataset}: the sweep explorer's first view over the records of the plain "
              "and the label-smoothed CNN (robust accuracy along eps; p2 before and after "
              "PGD; where successful attacks land).")
sweep

# %% [markdown]
# ## 6. A claim of your own, and its verdict
# *Label smoothing raises robust accuracy under PGD at the middle eps by at least 2
# percentage points.* `stats.compare` pairs the two variants by their training seed (the
# `seed` column) and judges the difference by the claims rule: the same tests, bounds and verdict labels
# as every row of the claims report.
#
# **This row is exploratory.** It stands outside the report's declared Holm family (its
# bounds are not adjusted for multiplicity), it is not added to the declaration, and it
# rests on few seeds of a cheaply trained model. To make a claim part of the report,
# put its `claims.register(claims.Claim(...))` call in a module of your own, name the
# module in the environment variable `DRSL_CLAIMS` (for example
# `DRSL_CLAIMS=my_claims make figures`), record its per-seed values with
# `report.claim(...)` in your notebook, and freeze `claims.declaration_hash(profile=...)`
# before the run, as the project's `figures/confirmatory.json` does. A claim registered
# only inside a notebook is unknown to the process that writes the report, which then
# names its evidence under "Not in this report" instead of judging it.

# %%
row = stats.compare(records, {"variant": "smoothed"}, {"variant": "plain"}, sesoi=2.0,
                    attack="pgd", eps=MID,
                    why="less than 2 pp of robust accuracy would not justify changing the "
                        "loss of a small model")
row[["a", "b", "verdict", "mean", "low", "high", "replication", "note"]].T

# %% [markdown]
# ## What we found

# %%
r = row.iloc[0]
gap = records[records["clean_correct"] & (records["eps"] == MID)].groupby("variant")[
    ["clean_gap", "adv_gap", "clean_p_second", "adv_p_second"]].median()
print(f"PGD at eps={MID}: robust accuracy {table.loc['plain', MID]:.3f} (plain) vs "
      f"{table.loc['smoothed', MID]:.3f} (label smoothing {smoothing}), mean over "
      f"{len(SEEDS)} seeds; the difference is {r['mean']:+.2f} pp "
      f"[{r['low']:.2f}, {r['high']:.2f}], verdict: {r['verdict']} (exploratory).")
for variant, g in gap.iterrows():
    print(f"{variant}: median logit gap {g['clean_gap']:.2f} clean -> {g['adv_gap']:.2f} "
          f"after PGD; median p2 {g['clean_p_second']:.3g} -> {g['adv_p_second']:.3g}.")
report.finish()
