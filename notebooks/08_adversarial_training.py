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
# # 08 · Adversarial training and SOVR under AutoAttack
#
# **Question.** Kanai et al. (SOVR, ICML 2023) report that importance-aware adversarial
# training shrinks logit margins and stays weak under AutoAttack, and that switching to
# a one-vs-rest loss on the smallest-margin samples (SOVR) inside PGD-AT raises the
# margins and the AutoAttack robust accuracy. Here we compare standard CE and DRSL with
# PGD-AT (CE), TRADES and SOVR inside PGD-AT, trained with the same MLP. We measure
# clean accuracy, PGD robust accuracy over the eps grid and AutoAttack robust accuracy
# at the training eps, and how the logit margins of the test set change.
#
# Settings (cheap on CPU, stated so nobody mistakes them for the papers'): PGD inside
# training uses the profile's `at_eps`, `at_steps` and `at_epochs` (printed below), and
# the evaluation subset is the profile's fixed test subset. In `quick` AutoAttack is the
# reduced version (APGD-CE, APGD-T, FAB-T and Square with fewer steps and queries),
# named as such in every table; `paper` runs the standard version.

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
from drsl_utils.report import describe_diff, mean_ci, verdict_from_interval

P, report = ex.setup("08_adversarial_training", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir)
NAMES = ["CE", "DRSL", *ex.AT_ZOO]
print(f"adversarial training: PGD eps={P.at_eps}, {P.at_steps} steps, {P.at_epochs} epochs, "
      f"{P.at_train_size or 'all'} training images")
zoo = ex.train_zoo(P, NAMES, device=device)

# %% [markdown]
# ## PGD over the eps grid, and AutoAttack at the training eps

# %%
AA = ex.autoattack_spec(P, eps=(P.at_eps,))
result = ex.attack_zoo(P, zoo, [AttackSpec("pgd", {"steps": P.pgd_steps}), AA],
                       eps_grid=sorted(set(P.eps_grid) | {P.at_eps}), device=device)
robust = stats.robust_accuracy(result.records)
fig = plots.plot_robust_accuracy(robust)
report.figure(fig, "at_robust_accuracy", f"{P.dataset}: robust accuracy against eps under "
              f"PGD-{P.pgd_steps} and {AA.record_name} (at eps={P.at_eps}) for standard and "
              f"adversarially trained models, mean over {P.n_seeds} seeds with the seed "
              "range as a band.", close=False)
fig

# %%
at_eps = robust[robust["eps"] == P.at_eps]
table = stats.format_seed_table(stats.seed_table(at_eps, ["attack", "model"],
                                                 ["clean_accuracy", "robust_accuracy"]))
fig = plots.plot_table(table, title=f"Clean and robust accuracy at eps={P.at_eps}")
report.figure(fig, "at_accuracy_table", f"Clean and robust accuracy at eps={P.at_eps} under "
              f"PGD-{P.pgd_steps} and {AA.record_name}, mean ± std over {P.n_seeds} seeds.",
              close=False)
table

# %% [markdown]
# ## Logit margins on the test set, and under attack
# Margins of clean inputs, and the margin after PGD at the training eps (the true-class
# logit minus the best other logit of the adversarial input).

# %%
clean = ex.clean_stats(P, {n: zoo[n] for n in ex.AT_ZOO})
fig = plots.plot_margin_hist(clean, col=None)
report.figure(fig, "at_margin_histograms", f"{P.dataset}: logit-margin histograms of the "
              "adversarially trained models on the clean test set (seeds pooled).",
              close=False)
fig

# %%
margins = stats.bimodality(clean, "logit_margin")
stats.format_seed_table(stats.seed_table(margins, ["model"], ["median", "frac_below_1",
                                                               "bimodality"]))

# %% [markdown]
# ## What we found

# %%
aa = robust[(robust["attack"] == AA.record_name) & (robust["eps"] == P.at_eps)]
d_at = ex.per_seed_diff(aa, "robust_accuracy", "PGD-AT", "CE")
report.claim(
    "at-sanity", "Madry et al. 2018 (sanity check)",
    f"PGD-AT is more robust than standard CE under {AA.record_name}.",
    f"robust accuracy PGD-AT - CE at eps={P.at_eps} = "
    f"{describe_diff(d_at, scale=100, unit=' pp', digits=1)}",
    verdict_from_interval(*mean_ci(d_at)[2:], 0.0), P.n_seeds)

d_sovr = ex.per_seed_diff(aa, "robust_accuracy", "SOVR-AT", "PGD-AT")
means = aa.groupby("model")["robust_accuracy"].mean()
report.claim(
    "sovr-autoattack", "Kanai et al. (SOVR)",
    f"SOVR inside PGD-AT beats plain PGD-AT under AutoAttack ({AA.record_name}).",
    f"robust accuracy at eps={P.at_eps}: " + ", ".join(f"{n} {means[n]:.3f}" for n in NAMES)
    + f"; SOVR-AT - PGD-AT = {describe_diff(d_sovr, scale=100, unit=' pp', digits=1)}",
    verdict_from_interval(*mean_ci(d_sovr)[2:], 0.0), P.n_seeds)

pgd = robust[(robust["attack"] == "pgd") & (robust["eps"] == P.at_eps)]
gap = (pgd.groupby("model")["robust_accuracy"].mean()
       - aa.groupby("model")["robust_accuracy"].mean())
report.claim(
    "sovr-pgd-vs-aa", "Kanai et al. (SOVR), our check",
    "Robust accuracy under PGD overstates AutoAttack robust accuracy for AT models.",
    "PGD minus AutoAttack robust accuracy: " + ", ".join(f"{n} {gap[n] * 100:+.1f} pp"
                                                         for n in NAMES),
    "holds" if (gap[list(ex.AT_ZOO)] > 0.005).all() else
    ("does not hold" if (gap[list(ex.AT_ZOO)] <= 0.005).all() else "inconclusive"),
    P.n_seeds)
