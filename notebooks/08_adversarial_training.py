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
# # 08 · Adversarial training and SOVR under AutoAttack
#
# **Question.** Kanai et al. (SOVR, ICML 2023) report that importance-aware adversarial
# training shrinks logit margins and stays weak under AutoAttack, and that switching to
# a one-vs-rest loss on the smallest-margin samples (SOVR) inside PGD-AT raises the
# margins and the AutoAttack robust accuracy. Here we compare PGD-AT (CE), TRADES and
# SOVR inside PGD-AT with CE trained on the same images for the same epochs (the
# control), and show CE and DRSL trained on the whole set for context. We measure
# clean accuracy, PGD robust accuracy over the eps grid and AutoAttack robust accuracy
# at the training eps, and how the logit margins of the test set change.
#
# Settings (cheap on CPU, stated so nobody mistakes them for the papers'): PGD inside
# training uses the profile's `at_eps`, `at_steps` and `at_epochs` (printed below). In
# `quick` AutoAttack is the reduced version (APGD-CE, APGD-T, FAB-T and Square with
# fewer steps and queries), named as such in every table; `paper` runs the standard
# version. PGD and AutoAttack run on the same fixed test subset, so that "PGD overstates
# AutoAttack" compares like with like.

# %% tags=["parameters"]
profile = "quick"
dataset = None
device = "auto"
executor = None  # where missing units run: "inline", "local" or "slurm" (None: $DRSL_EXECUTOR)
seeds = None
figures_dir = None  # None: build/figures/<profile>; the main job passes figures/

# %%
import pandas as pd

from drsl_utils import claims, plots, stats
from drsl_utils import experiments as ex

P, report = ex.setup("08_adversarial_training", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir, executor=executor)
CONTROL = ex.AT_CONTROL
POPULATION = ex.test_population(P)  # the test set: the estimands' image population
AT = list(ex.AT_ZOO)
NAMES = [CONTROL, "CE", "DRSL", *AT]
print(f"adversarial training: PGD eps={P.at_eps}, {P.at_steps} steps, {P.at_epochs} epochs, "
      f"{P.at_train_size or 'all'} training images, seeds {list(P.seeds_other)}")
zoo = ex.train_zoo(P, NAMES, seeds=P.seeds_other, device=device)

# %% [markdown]
# ## PGD over the eps grid, and AutoAttack at the training eps

# %%
AA = ex.autoattack_spec(P, eps=(P.at_eps,))
grid = sorted(set(P.eps_grid) | {P.at_eps})
pgd = ex.attack_zoo(P, zoo, [ex.pgd_spec(P)], eps_grid=grid, device=device)
aa = ex.attack_zoo(P, {n: zoo[n] for n in [CONTROL, *AT]}, [AA], device=device)
robust = stats.robust_accuracy(pd.concat([pgd.records, aa.records], ignore_index=True))
report.figure(plots.plot_robust_accuracy(robust), "at_robust_accuracy",
              f"{P.dataset}: robust accuracy against eps under PGD-{P.pgd_steps} and "
              f"{AA.record_name} (at eps={P.at_eps}) for standard and adversarially trained "
              f"models on the fixed {P.eval_size}-image subset, mean over "
              f"{len(P.seeds_other)} seeds with the seed range as a band.")

# %%
at_eps = robust[robust["eps"] == P.at_eps]
table = stats.format_seed_table(stats.seed_table(at_eps, ["attack", "model"],
                                                 ["clean_accuracy", "robust_accuracy"]))
report.table(table, "at_accuracy_table",
             f"Clean and robust accuracy at eps={P.at_eps} under PGD-{P.pgd_steps} and "
             f"{AA.record_name}, mean ± std over seeds.",
             title=f"Clean and robust accuracy at eps={P.at_eps}")
table

# %% [markdown]
# ## Logit margins on the test set

# %%
clean = ex.clean_stats(P, {n: zoo[n] for n in [CONTROL, *AT]})
report.figure(plots.plot_margin_hist(clean, col=None), "at_margin_histograms",
              f"{P.dataset}: logit-margin histograms of the adversarially trained models "
              "and the CE control on the clean test set (seeds pooled).")

# %%
clean["small_margin"] = clean["logit_margin"] < 1.0
stats.format_seed_table(stats.seed_table(clean, ["model"], ["logit_margin", "small_margin"]))

# %% [markdown]
# ## What we found

# %%
# Every row here is measured on the fixed subset, so each carries its image-sampling
# variance.
records = pd.concat([pgd.records, aa.records], ignore_index=True)
aa_at = at_eps[at_eps["attack"] == AA.record_name]
report.claim("at-sanity", claims.paired(aa_at, "robust_accuracy", "PGD-AT", CONTROL),
             detail=f"{AA.record_name} robust accuracy at eps={P.at_eps}: "
             + stats.describe_means(aa_at, "robust_accuracy", [CONTROL, *AT]),
             image_var=ex.robust_image_var(records, "PGD-AT", CONTROL, attack=AA.record_name,
                                           eps=P.at_eps, population=POPULATION))
report.claim("sovr-autoattack", claims.paired(aa_at, "robust_accuracy", "SOVR-AT", "PGD-AT"),
             detail="clean accuracy " + stats.describe_means(aa_at, "clean_accuracy",
                                                             ["PGD-AT", "SOVR-AT"]),
             image_var=ex.robust_image_var(records, "SOVR-AT", "PGD-AT", attack=AA.record_name,
                                           eps=P.at_eps, population=POPULATION))
gap = stats.attack_difference(at_eps, "pgd", AA.record_name)
report.claim("sovr-pgd-overstates", claims.per_seed(gap[gap["model"] == "PGD-AT"], "difference"),
             detail="PGD minus AutoAttack robust accuracy: " + stats.describe_means(
                 gap, "difference", AT, scale=100, digits=1, unit="pp"),
             image_var=ex.robust_image_var(records, "pgd", AA.record_name, by="attack",
                                           model="PGD-AT", eps=P.at_eps,
                                           population=POPULATION))
report.finish()
