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
# # 03 · The second-largest softmax: does a small p2 make an attack harder?
#
# **Question.** The DRSL slides state a hypothesis: "as the second largest softmax
# probability decreases, it becomes more difficult for an adversarial attack to
# manipulate it into becoming the largest one". We test it with numbers, not by eye. For
# every clean-correct test sample we know its clean second-largest probability `p2`
# and whether PGD flipped it. If the hypothesis holds, attack success rises with `p2`
# (binned curves with confidence intervals), and `p2` separates attacked from surviving
# samples: an AUC above 0.5, computed for each model and seed. Then the sharper
# question: does `p2` carry information beyond plain confidence? We compare it, on the
# same samples, with the logit gap (max minus runner-up), by a paired bootstrap of the
# difference of the two AUCs.

# %% tags=["parameters"]
profile = "quick"
dataset = None
device = "auto"
executor = None  # where missing units run: "inline", "local" or "slurm" (None: $DRSL_EXECUTOR)
seeds = None
figures_dir = None  # None: build/figures/<profile>; the main job passes figures/

# %%
from drsl_utils import claims, explore, plots, stats
from drsl_utils import experiments as ex

P, report = ex.setup("03_second_softmax", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir, executor=executor)
MAIN = list(ex.MAIN_LOSSES)
zoo = ex.train_zoo(P, MAIN, device=device)
result = ex.attack_zoo(P, zoo, [ex.pgd_spec(P)], on="test", device=device)
records = result.records
mid = records[records["eps"] == P.eps_mid]

# %% [markdown]
# ## p2 before and after a PGD attack (clean-correct samples)

# %%
report.figure(plots.plot_second_softmax_before_after(records, "pgd", P.eps_mid),
              "second_softmax_before_after",
              f"{P.dataset}: second-largest softmax probability on clean inputs (filled) "
              f"and after PGD-{P.pgd_steps} at eps={P.eps_mid} (outline), clean-correct "
              "samples of the whole test set, seeds pooled.")

# %% [markdown]
# ## Attack success against the clean p2

# %%
report.figure(plots.plot_success_vs_p2(stats.success_vs_p2(mid, bins=8)), "success_vs_p2",
              f"{P.dataset}: PGD success rate (eps={P.eps_mid}) among clean-correct samples "
              "against their clean second-largest softmax probability, in equal-count bins "
              "per model (seeds pooled), with 95% Wilson intervals.")

# %% [markdown]
# ## How well do p2 and the logit gap predict success? (AUC, 0.5 = not at all)
# Per model and seed, on the same clean-correct samples: the AUC of `p2`, the AUC of a
# *small* logit gap, and their paired difference with a 95 % bootstrap interval.

# %%
aucs = stats.paired_auc(mid, "clean_p_second", "clean_gap", sign_b=-1.0, n_boot=200)
aucs.groupby("model", sort=False)[["auc_a", "auc_b", "diff"]].agg(["mean", "std"]).round(4)

# %%
aucs[["model", "seed", "n", "auc_a", "auc_b", "diff", "diff_low", "diff_high"]].round(4)

# %% [markdown]
# ## What we found
# The estimands average the three models within each seed; the seed is the unit.
#
# Why p2 and the logit gap rank the samples alike: `p1 = p2 * exp(gap)`, so
# `p2 = (1 - rest) / (1 + exp(gap))`, where `rest` is the mass outside the top two classes.
# When `rest` is small on clean-correct samples, p2 is almost a decreasing function of the
# gap, and the two AUCs agree to a few parts in 100,000: the first claim measures
# confidence, and the second (our check) asks whether p2 adds anything to it.

# %%
correct = mid[mid["clean_correct"].astype(bool)]
rest = 1.0 - correct["clean_p_top"] - correct["clean_p_second"]
report.claim("drsl-p2-predicts-success", claims.per_seed(aucs, "auc_a", reference=0.5),
             detail=f"PGD eps={P.eps_mid}, AUC of p2 per model: "
             + stats.describe_means(aucs, "auc_a", MAIN)
             + f"; |AUC(p2) - AUC(small gap)| at most {aucs['diff'].abs().max():.1e} in any "
             f"model and seed; mass outside the top two classes on clean-correct samples: "
             f"mean {rest.mean():.4f}, 99th percentile {rest.quantile(0.99):.4f}")
report.claim("drsl-p2-vs-gap", claims.per_seed(aucs, "diff"),
             detail="AUC of a small logit gap per model: "
             + stats.describe_means(aucs, "auc_b", MAIN))
report.finish()

# %% [markdown]
# ## Explore
# The p2 histograms before and after PGD for each loss and eps; watch how the "after"
# histogram moves as eps grows, and how often the attack lands on the runner-up.

# %%
explore.sweep(records, title="PGD on the whole test set")

# %% [markdown]
# ## Exercises
# Write down your prediction first, then run the solution (in the book, click "Show the
# solution"). The solutions reuse the PGD records above; nothing is trained or attacked.

# %% [markdown]
# ### Exercise 1 · Does p2 still predict success at a larger eps?
# The AUCs above are at the middle eps. **Predict first:** at the largest eps of the grid,
# where the attack flips most samples, does the AUC of `p2` rise, stay, or fall towards
# 0.5? And at the smallest eps?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
by_eps = stats.success_association(records, "clean_p_second", n_boot=0)
by_eps = by_eps.pivot_table(index="model", columns="eps", values="auc", sort=False)
rate = stats.robust_accuracy(records).groupby("eps")["success_rate"].mean()
print("mean PGD success rate per eps: "
      + ", ".join(f"{e:g}: {r:.2f}" for e, r in rate.items()))
for model, row in by_eps.iterrows():
    print(f"{model}: AUC of p2 {row.iloc[0]:.3f} at eps {by_eps.columns[0]:g} -> "
          f"{row.iloc[-1]:.3f} at eps {by_eps.columns[-1]:g}")
by_eps.round(3)

# %% [markdown]
# ### Exercise 2 · p2 from the logit gap alone
# If the mass outside the top two classes were zero, `p2` would be `1 / (1 + exp(gap))`.
# **Predict first:** on the clean-correct samples at the middle eps, how far is that
# formula from the real `p2`: off by a factor of 2, or within 1 %? What does your answer
# say about the two AUCs in the table above?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
import numpy as np

from_gap = 1.0 / (1.0 + np.exp(correct["clean_gap"].to_numpy()))
ratio = correct.assign(ratio=correct["clean_p_second"].to_numpy() / from_gap)
off = ratio.groupby("model", sort=False)["ratio"].describe(percentiles=[0.01, 0.5])
print("p2 / (1 / (1 + exp(gap))): median "
      + ", ".join(f"{m} {v:.4f}" for m, v in off["50%"].items())
      + ";\nthe worst 1 %: " + ", ".join(f"{m} {v:.3f}" for m, v in off["1%"].items()))
off[["1%", "50%", "min"]].round(4)

# %% [markdown]
# ### Exercise 3 · Where do the low-p2 successes land?
# Split the successful attacks at the middle eps into those with a clean `p2` below and
# above its median. **Predict first:** does an attack on a sample with a small `p2` still
# land on the runner-up as often, or does it spread over the other classes?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
hits = mid[mid["success"].astype(bool)]
hits = hits.assign(p2_half=np.where(
    hits["clean_p_second"] <= hits.groupby("model")["clean_p_second"].transform("median"),
    "small p2", "large p2"))
halves = stats.second_class_fraction_ci(hits, by=("model", "p2_half"))
halves = halves.pivot_table(index="model", columns="p2_half", values="fraction", sort=False)
for model, row in halves.iterrows():
    print(f"{model}: runner-up share {row['small p2']:.2f} (small p2) vs "
          f"{row['large p2']:.2f} (large p2)")
halves.round(3)
