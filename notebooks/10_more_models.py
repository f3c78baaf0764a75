# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · More models: does the DRSL comparison carry over to other architectures?
#
# **Question.** The slides close with "DRSL can be extended to more models". We repeat
# the main comparison, CE, GCE and DRSL at the same settings, on other architectures:
# the small 2-conv CNN in `quick` and `paper`, and ResNet-18 (adapted to small inputs)
# in `paper`, on CIFAR-10 when its files are available and otherwise on the profile's
# dataset. A convolutional network is much slower on CPU than the MLP, so `quick`
# trains it on a 10k-image subset for 3 epochs and attacks half of the usual test
# subset (all printed below); the numbers are about the *comparison* between losses, not
# about the best accuracy a CNN can reach.

# %% tags=["parameters"]
profile = "quick"
dataset = None
device = "auto"
seeds = None
figures_dir = None

# %%
import dataclasses

import pandas as pd

from drsl_utils import experiments as ex
from drsl_utils import plots, stats
from drsl_utils.attacks import AttackSpec
from drsl_utils.report import describe_diff, mean_ci, verdict_from_interval

P, report = ex.setup("10_more_models", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir)
S = P.sweep()
NAMES = list(ex.MAIN_LOSSES)
EPS = P.eps_grid[1:3]
setups = []
for arch in P.more_models:
    data = P.dataset
    if arch == "resnet18" and ex.dataset_available("cifar10"):
        data = "cifar10"
    quick = P.name == "quick"
    setups.append(dataclasses.replace(S, model=arch, dataset=data,
                                      epochs=3 if quick else S.epochs,
                                      train_size=10000 if quick else S.train_size,
                                      eval_size=max(100, P.eval_size // 2)))
for s in setups:
    print(f"{s.model} on {s.dataset}: {s.epochs} epochs, {s.train_size or 'all'} training "
          f"images, seeds {list(s.seeds)}, {s.eval_size} attacked test samples")

# %%
frames, robust_frames = [], []
for s in setups:
    zoo = ex.train_zoo(s, NAMES, device=device)
    frames.append(ex.runs_table(zoo).assign(architecture=s.model, dataset=s.dataset))
    result = ex.attack_zoo(s, zoo, [AttackSpec("pgd", {"steps": P.pgd_steps})], eps_grid=EPS,
                           device=device)
    robust_frames.append(stats.robust_accuracy(result.records).assign(architecture=s.model))
runs = pd.concat(frames, ignore_index=True)
robust = pd.concat(robust_frames, ignore_index=True)
robust["setting"] = robust["architecture"] + ", eps=" + robust["eps"].astype(str)
table = stats.format_seed_table(stats.seed_table(robust, ["setting", "model"],
                                                 ["clean_accuracy", "robust_accuracy"]))
table

# %%
fig = plots.plot_table(table, title="CE, GCE and DRSL on other architectures (PGD)")
report.figure(fig, "more_models_table", "Clean and PGD robust accuracy of CE, GCE and DRSL on "
              + ", ".join(f"{s.model} ({s.dataset}, {s.epochs} epochs)" for s in setups)
              + f", mean ± std over {S.n_seeds} seeds.", close=False)
fig

# %%
fig = plots.plot_seed_curves(robust, x="eps", y="robust_accuracy", panel_by="architecture",
                             xlabel="ε", ylabel="robust accuracy", ylim=(-0.02, 1.02),
                             title="PGD robust accuracy on other architectures")
report.figure(fig, "more_models_robust_accuracy", "PGD robust accuracy against eps of CE, GCE "
              "and DRSL per architecture, mean over seeds with the seed range as a band.",
              close=False)
fig

# %% [markdown]
# ## What we found

# %%
for s in setups:
    sub = robust[(robust["architecture"] == s.model) & (robust["eps"] == max(EPS))]
    d_rob = ex.per_seed_diff(sub, "robust_accuracy", "DRSL", "CE")
    d_acc = ex.per_seed_diff(sub, "clean_accuracy", "DRSL", "CE")
    report.claim(
        f"drsl-more-models-{s.model}", "DRSL slides (conclusion)",
        f"DRSL's robustness gain over CE carries over to the {s.model} ({s.dataset}).",
        f"PGD eps={max(EPS)}: robust accuracy DRSL - CE = "
        f"{describe_diff(d_rob, scale=100, unit=' pp', digits=1)}; clean accuracy DRSL - CE "
        f"= {describe_diff(d_acc, scale=100, unit=' pp', digits=1)}",
        verdict_from_interval(*mean_ci(d_rob)[2:], 0.0), S.n_seeds)
