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
# # 04 · Max logits, logit gaps and logit margins: standard vs adversarial training
#
# **Question.** Two related papers describe what adversarial training (AT) does to the
# logits. Seguin et al. (arXiv 2108.12001) argue that AT lowers the **max logit** and the
# **logit gap** (max minus runner-up), and that AT and standard models disagree about
# which samples are confident. Kanai et al. (SOVR) observe that under AT the histogram of
# **logit margins** `z_y - max_{k != y} z_k` has **two peaks** (hard samples near the
# boundary and easy ones far out), and that the switching one-vs-rest loss (SOVR) moves
# mass away from small margins. We train CE and DRSL normally and CE with PGD-AT, TRADES
# and SOVR inside PGD-AT, with the same MLP, and compare these distributions on the
# clean test set.

# %% tags=["parameters"]
profile = "quick"
dataset = None
device = "auto"
seeds = None
figures_dir = None

# %%
import numpy as np

from drsl_utils import experiments as ex
from drsl_utils import plots, stats
from drsl_utils.report import describe_diff, mean_ci, verdict_from_interval

P, report = ex.setup("04_logit_gaps_and_margins", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir)
STANDARD = ["CE", "DRSL"]
AT = list(ex.AT_ZOO)
print(f"adversarial training: PGD eps={P.at_eps}, {P.at_steps} steps, {P.at_epochs} epochs, "
      f"{P.at_train_size or 'all'} training images")

# %%
zoo = ex.train_zoo(P, STANDARD + AT, device=device)
runs = ex.runs_table(zoo)
stats.format_seed_table(stats.seed_table(runs, ["model"], ["test_accuracy", "train_seconds"]))

# %%
clean = ex.clean_stats(P, zoo)
clean["training"] = np.where(clean["model"].isin(AT), "adversarial", "standard")
fig = plots.plot_logit_distributions(clean, ("max_logit", "logit_gap"), col=None)
report.figure(fig, "logit_distributions", f"{P.dataset}: distributions of the max logit "
              "and the logit gap (max minus second) on the clean test set, standard (CE, "
              "DRSL) and adversarially trained models (PGD-AT, TRADES, SOVR-AT), seeds "
              "pooled.", close=False)
fig

# %%
fig = plots.plot_margin_hist(clean, col="training")
report.figure(fig, "margin_histograms", f"{P.dataset}: histograms of the logit margin "
              "z_y - max_(k!=y) z_k on the clean test set; left standard, right "
              "adversarially trained models. The dashed line is the decision boundary.",
              close=False)
fig

# %% [markdown]
# ## Do standard and AT models agree on which samples are confident?
# Spearman rank correlation of the per-sample top-class probability between two models,
# for the same seed; a second CE seed gives the baseline agreement of two standard
# models.

# %%
corr = stats.rank_agreement(clean, "CE", ["CE", "DRSL", "PGD-AT", "TRADES", "SOVR-AT"])
corr

# %% [markdown]
# ## Two peaks? A bimodality check on the margins
# Sarle's bimodality coefficient `b = (skew^2 + 1) / kurtosis` (5/9 for a uniform
# distribution; above it suggests two modes), per model and seed, on the margins of
# the whole clean test set.

# %%
bimodal = stats.bimodality(clean, "logit_margin")
stats.format_seed_table(stats.seed_table(bimodal, ["model"], ["bimodality", "median",
                                                               "frac_below_1"]))

# %% [markdown]
# ## What we found

# %%
summary = stats.seed_table(clean, ["model"], ["max_logit", "logit_gap", "logit_margin"])
for q in ("max_logit", "logit_gap"):
    d = ex.per_seed_diff(clean, q, "PGD-AT", "CE")
    report.claim(
        f"seguin-{q.replace('_', '-')}", "Seguin et al. 2021",
        f"Adversarial training lowers the {q.replace('_', ' ')} (PGD-AT vs CE).",
        f"mean {q} PGD-AT - CE = {describe_diff(d, digits=2)}",
        verdict_from_interval(*mean_ci(d)[2:], 0.0, direction="less"), P.n_seeds)

c = corr.set_index("other")
base, at = c.loc["CE", "spearman_mean"], c.loc["PGD-AT", "spearman_mean"]
report.claim(
    "seguin-confidence-disagree", "Seguin et al. 2021",
    "AT and standard models disagree on which samples are confident.",
    f"Spearman rank correlation of top-class probability: CE vs another CE seed "
    f"{base:.3f}, CE vs PGD-AT {at:.3f}",
    "holds" if at < base - 0.1 else ("does not hold" if at >= base - 0.02 else
                                     "inconclusive"), P.n_seeds)

bm = bimodal.groupby("model")["bimodality"].mean()
report.claim(
    "sovr-two-peaks", "Kanai et al. (SOVR)",
    "Under adversarial training the logit-margin histogram has two peaks.",
    f"bimodality coefficient (5/9 = 0.556 is the uniform level): PGD-AT {bm['PGD-AT']:.3f}, "
    f"TRADES {bm['TRADES']:.3f}, CE {bm['CE']:.3f}",
    "holds" if bm["PGD-AT"] > 5 / 9 else ("inconclusive" if bm["PGD-AT"] > 0.5 else
                                          "does not hold"), P.n_seeds)

d = ex.per_seed_diff(bimodal, "frac_below_1", "SOVR-AT", "PGD-AT")
report.claim(
    "sovr-raises-margins", "Kanai et al. (SOVR)",
    "SOVR moves mass away from small logit margins compared with PGD-AT.",
    f"fraction of test samples with margin < 1, SOVR-AT - PGD-AT = "
    f"{describe_diff(d, digits=3)}",
    verdict_from_interval(*mean_ci(d)[2:], 0.0, direction="less"), P.n_seeds)
