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
# # 03 · The second-largest softmax: does a small p2 make an attack harder?
#
# **Question.** The DRSL slides state a hypothesis: "as the second largest softmax
# probability decreases, it becomes more difficult for an adversarial attack to
# manipulate it into becoming the largest one". We test it with numbers, not by eye. For
# every clean-correct test sample we know its clean second-largest probability `p2`
# and whether PGD flipped it. If the hypothesis holds, attack success rises with `p2`
# (binned curves with confidence intervals), and `p2` separates attacked from surviving
# samples (an AUC above 0.5, with a bootstrap interval). We also look at the whole
# `p2` distribution before and after the attack: a successful attack makes the old
# runner-up the new top class.

# %% tags=["parameters"]
profile = "quick"
dataset = None
device = "auto"
seeds = None
figures_dir = None

# %%
from drsl_utils import experiments as ex
from drsl_utils import plots, stats
from drsl_utils.attacks import AttackSpec
from drsl_utils.report import verdict_from_interval

P, report = ex.setup("03_second_softmax", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir)
NAMES = ["CE", "GCE", "DRSL", "DRSL-prob"]
EPS_MID = P.eps_grid[len(P.eps_grid) // 2]
zoo = ex.train_zoo(P, NAMES, device=device)
result = ex.attack_zoo(P, zoo, [AttackSpec("pgd", {"steps": P.pgd_steps})], device=device)
records = result.records

# %% [markdown]
# ## p2 before and after a PGD attack (clean-correct samples)

# %%
fig = plots.plot_second_softmax_before_after(records, "pgd", EPS_MID)
report.figure(fig, "second_softmax_before_after", f"{P.dataset}: second-largest softmax "
              f"probability on clean inputs (filled) and after PGD-{P.pgd_steps} at "
              f"eps={EPS_MID} (outline), clean-correct samples, seeds pooled.", close=False)
fig

# %% [markdown]
# ## Attack success against the clean p2

# %%
binned = stats.success_vs_p2(records[records["eps"] == EPS_MID], bins=8)
fig = plots.plot_success_vs_p2(binned)
report.figure(fig, "success_vs_p2", f"{P.dataset}: PGD success rate (eps={EPS_MID}) among "
              "clean-correct samples against their clean second-largest softmax "
              "probability, in equal-count bins per model, with 95% Wilson intervals.",
              close=False)
fig

# %% [markdown]
# ## How well does p2 predict success? (AUC, 0.5 = not at all)
# Per model (seeds pooled) and per eps. The AUC is the probability that a successfully
# attacked sample had a larger clean `p2` than a surviving one.

# %%
assoc = stats.success_association(records, "clean_p_second", log_stat=True)
assoc[["model", "eps", "n", "n_success", "auc", "auc_low", "auc_high", "r"]].round(3)

# %% [markdown]
# The same for other clean statistics: the logit gap (max minus runner-up) and the top
# probability. A statistic that only restates confidence would do as well as `p2`.

# %%
mid = records[records["eps"] == EPS_MID]
others = {s: stats.success_association(mid, s) for s in ("clean_gap", "clean_p_top")}
for s, df in others.items():
    print(s, df[["model", "auc", "auc_low", "auc_high"]].round(3).to_string(index=False))

# %% [markdown]
# ## What we found

# %%
pooled = stats.success_association(mid, "clean_p_second", by=("attack", "eps")).iloc[0]
per_model = assoc[assoc["eps"] == EPS_MID].set_index("model")
report.claim(
    "drsl-2-p2-success", "DRSL slides (finding 2)",
    "The smaller the clean second-largest softmax p2, the harder the attack "
    "(success rises with p2).",
    f"PGD eps={EPS_MID}, AUC of success vs clean p2 = {pooled['auc']:.3f} "
    f"[{pooled['auc_low']:.3f}, {pooled['auc_high']:.3f}] pooled over "
    f"{', '.join(NAMES)} ({int(pooled['n'])} clean-correct samples); per model: "
    + ", ".join(f"{m} {r['auc']:.2f}" for m, r in per_model.iterrows()),
    verdict_from_interval(pooled["auc_low"], pooled["auc_high"], 0.5), P.n_seeds)

gap = stats.success_association(mid, "clean_gap", by=("attack", "eps")).iloc[0]
report.claim(
    "drsl-2b-p2-vs-gap", "DRSL slides (finding 2), our check",
    "p2 predicts attack success better than the logit gap does.",
    f"AUC(p2) = {pooled['auc']:.3f} [{pooled['auc_low']:.3f}, {pooled['auc_high']:.3f}] vs "
    f"AUC(small gap) = {1 - gap['auc']:.3f} [{1 - gap['auc_high']:.3f}, "
    f"{1 - gap['auc_low']:.3f}] (the gap predicts success when it is small)",
    "holds" if pooled["auc_low"] > 1 - gap["auc_low"] else
    ("does not hold" if pooled["auc_high"] < 1 - gap["auc_high"] else "inconclusive"),
    P.n_seeds)
