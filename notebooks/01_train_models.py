# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,mystnb,-all
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
# # 01 · Training the loss zoo: do all losses reach the same clean accuracy?
#
# **Question.** The DRSL slides compare robustness "at the same precision level": CE,
# GCE and DRSL reach the same clean accuracy (e.g. 0.894 / 0.896 / 0.893 ± ~0.002), so
# any robustness difference is not bought with accuracy. Is that true here, and where do
# MAE, DRSL on probabilities, the I-SCE-style margin loss and one-vs-rest land? Every
# model below uses the same architecture, optimiser, epochs and seeds; only the loss
# changes. CE, GCE and DRSL are trained with every seed of the profile (the main
# comparison); the other losses with fewer. We report the clean test accuracy as
# mean ± std over seeds, in the slides' format, next to the slides' own table, and look
# at how each loss shapes the softmax over the wrong classes, which is what DRSL is
# designed to restrain.

# %% tags=["parameters"]
profile = "quick"   # "smoke" | "quick" | "paper"
dataset = None      # None: the profile's dataset
device = "auto"
executor = None  # where missing units run: "inline", "local" or "slurm" (None: $DRSL_EXECUTOR)
seeds = None        # None: the profile's seeds
figures_dir = None  # None: build/figures/<profile>; the main job passes figures/

# %%
import pandas as pd

from drsl_utils import claims, plots, stats
from drsl_utils import experiments as ex

P, report = ex.setup("01_train_models", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir, executor=executor)
MAIN = list(ex.MAIN_LOSSES)
OTHERS = ["MAE", "DRSL-prob", "I-SCE", "OVR"]
{n: ex.model_config(P, n).loss_params for n in MAIN + OTHERS}

# %% [markdown]
# ## Train (or load from the cache) every loss over its seeds

# %%
zoo = (ex.train_zoo(P, MAIN, device=device)
       | ex.train_zoo(P, OTHERS, seeds=P.seeds_other, device=device))
runs = ex.runs_table(zoo)
wide = stats.format_seed_table(stats.seed_table(runs, ["model"], ["test_accuracy"]))
report.table(wide.rename(columns={"test_accuracy": "clean accuracy"}), "accuracy_table",
             f"Clean test accuracy of every loss on {P.dataset} ({P.model}, {P.epochs} "
             f"epochs, Adam lr {P.lr}), mean ± std over seeds (the seeds column counts "
             "them).",
             title=f"Clean test accuracy, {P.dataset}, {P.model}, {P.epochs} epochs")
wide

# %% [markdown]
# The slides' table (mean ± std over runs; the datasets are not named on the slides;
# rows 3 and 4, at about 0.89, fit Fashion-MNIST with a small network):

# %%
pd.DataFrame(ex.PAPER_CLEAN_ACCURACY).set_index("row")

# %% [markdown]
# ## How each loss spreads the softmax over the wrong classes
# Per test sample: the second-largest softmax probability `p2`, and the spread of the K-1
# non-true entries (their entropy after renormalising, high = uniform). DRSL's penalty
# pulls the non-true logits together, so it should raise that entropy and lower `p2`.

# %%
clean = ex.clean_stats(P, zoo)
report.figure(plots.plot_second_softmax_hist(clean, col=None), "second_softmax_clean",
              f"Clean test set of {P.dataset}: distribution of log10 of the second-largest "
              "softmax probability per loss (all seeds pooled).")

# %%
spread = stats.seed_table(clean, ["model"], ["p_top2", "nontrue_entropy", "logit_gap"])
stats.format_seed_table(spread, digits=3)

# %% [markdown]
# ## What we found
# Equivalence within the slides' 0.3 pp is tested with two one-sided tests on the
# per-seed differences (the seed is the unit; models of the same seed are paired).

# %%
acc = stats.describe_means(runs, "test_accuracy", MAIN)
for claim_id, other in [("drsl-same-accuracy-gce", "GCE"),
                        ("drsl-same-accuracy-drsl", "DRSL")]:
    report.claim(claim_id, claims.paired(runs, "test_accuracy", other, "CE"),
                 detail=f"full-test clean accuracy {acc}")
report.claim("drsl-mechanism-entropy", claims.paired(clean, "nontrue_entropy", "DRSL", "CE"),
             detail="non-true entropy (nats) "
             + stats.describe_means(clean, "nontrue_entropy", ["CE", "DRSL"]))
report.claim("drsl-mechanism-p2", claims.paired(clean, "p_top2", "DRSL", "CE"),
             detail="mean clean p2 " + stats.describe_means(clean, "p_top2", ["CE", "DRSL"],
                                                           digits=4))
report.finish()

# %% [markdown]
# ## Exercises
# Write down your prediction first, then run the solution (in the book, click "Show the
# solution"). The solutions reuse the models and statistics above; the last one trains
# two small models for a few seconds.

# %% [markdown]
# ### Exercise 1 · Rank the losses by p2 before you look
# DRSL is designed to pull the non-true logits together. **Predict first:** order the
# seven losses by their mean clean `p2` and by their non-true entropy. Is DRSL lowest in
# `p2` and highest in entropy, or does a loss that was not designed for it (MAE, GCE, OVR)
# do more of the same thing?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
ranks = clean.groupby(["model", "seed"], sort=False)[["p_top2", "nontrue_entropy",
                                                       "correct"]].mean()
ranks = ranks.groupby("model", sort=False).mean().sort_values("p_top2")
print("lowest mean p2: " + ", ".join(ranks.index[:3])
      + "; highest non-true entropy: "
      + ", ".join(ranks.sort_values("nontrue_entropy", ascending=False).index[:3]))
print("DRSL has " + ("a lower" if ranks.loc["DRSL", "p_top2"] < ranks.loc["CE", "p_top2"]
                     else "a higher")
      + " mean p2 than CE and "
      + ("a higher" if ranks.loc["DRSL", "nontrue_entropy"] > ranks.loc["CE", "nontrue_entropy"]
         else "a lower") + " non-true entropy")
ranks.rename(columns={"correct": "clean accuracy"}).round(4)

# %% [markdown]
# ### Exercise 2 · How much mass sits outside the top two classes?
# `p2` and the top probability `p1` leave `1 - p1 - p2` for the other eight classes.
# **Predict first:** on a typical test sample, is that rest closer to 0.1, 0.01 or
# 0.0001? Which loss leaves the most? (Notebook 03 explains why this decides whether
# `p2` says anything that confidence does not.)

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
rest = clean.assign(rest=1.0 - clean["p_top1"] - clean["p_top2"])
rest_table = rest.groupby("model", sort=False)["rest"].describe(
    percentiles=[0.5, 0.99])[["50%", "mean", "99%"]]
print(f"the most mass outside the top two: {rest_table['mean'].idxmax()} "
      f"(mean {rest_table['mean'].max():.2g}); the least: {rest_table['mean'].idxmin()} "
      f"(mean {rest_table['mean'].min():.2g})")
rest_table.rename(columns={"50%": "median", "99%": "99th percentile"})

# %% [markdown]
# ### Exercise 3 · Change tau and predict what happens to p2
# Train DRSL on the first seed with `tau` at the default and at 30 times the default, in a
# short run (2000 images, two epochs; notebook 07 sweeps `tau` properly). **Predict
# first:** at the large `tau`, does the median clean `p2` fall, and does the clean
# accuracy pay for it?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
tau = ex.model_config(P, "DRSL").loss_params["tau"]
short = {"train_size": min(P.train_size or 2000, 2000), "epochs": min(P.epochs, 2)}
by_tau = {f"DRSL(tau={t:g})": ex.train_zoo(P, ["DRSL"], seeds=P.seeds[:1], device=device,
                                           progress=False, loss_params={"tau": t},
                                           **short)["DRSL"]
          for t in (tau, 30 * tau)}
tau_table = ex.clean_stats(P, by_tau).groupby("model", sort=False).agg(
    accuracy=("correct", "mean"), median_p2=("p_top2", "median"),
    nontrue_entropy=("nontrue_entropy", "mean"))
p2, acc = tau_table["median_p2"].to_numpy(), tau_table["accuracy"].to_numpy()
print(f"tau {tau:g} -> {30 * tau:g}: median clean p2 "
      + ("falls" if p2[1] < p2[0] else "rises") + f" ({p2[0]:.2e} -> {p2[1]:.2e}),\n"
      f"clean accuracy {acc[0]:.3f} -> {acc[1]:.3f} (one seed, a short run)")
tau_table.round(4)
