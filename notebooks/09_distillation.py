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
# # 09 · Logit distillation: what in an adversarially trained teacher's logits carries robustness?
#
# **Question.** Seguin et al. (arXiv 2108.12001) distil an adversarially trained (AT)
# teacher into a student that never sees an adversarial example, and find that some
# robustness transfers, and that it depends on the teacher's *non-max* logits: scrambling
# their order or information hurts the student's robustness. We distil a PGD-AT teacher
# (same MLP, trained in `04`/`08`) at temperature T = 4 into fresh students, with five
# versions of the teacher's logits: the full logits; the non-max logits randomly
# permuted (same values, scrambled order); the non-max logits replaced by their mean;
# only the max and the gap kept; and the non-max logits replaced by uninformative ones
# with the **same top-1 probability and entropy** ("matched"). `mean` and `max-gap` also
# change the teacher's confidence, so only `permuted` and `matched` isolate the non-max
# information; the other two are secondary. A student trained with plain CE on labels
# is the baseline. Robustness is measured with APGD-DLR (primary) and PGD.

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

P, report = ex.setup("09_distillation", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir, executor=executor)
S = P.sweep()
# The CE student on labels, the PGD-AT teachers and one student per teacher and variant.
zoo = ex.distillation_zoo(P, device=device)
teachers = zoo["teacher PGD-AT"]
print(f"{len(teachers)} teachers (one per seed), students trained {S.epochs} epochs on "
      f"{S.train_size or 'all'} images, T = {zoo['student full'][0].config.distill_temperature}")

# %%
EPS = P.at_eps
sub = ex.attack_zoo(P, zoo, [ex.pgd_spec(P), ex.dlr_spec(P, eps=[EPS])], device=device)
full = ex.attack_zoo(P, zoo, [ex.pgd_spec(P)], eps_grid=[EPS], on="test", device=device)
robust = stats.robust_accuracy(sub.records)
report.figure(plots.plot_robust_accuracy(robust), "distillation_robust_accuracy",
              f"{P.dataset}: robust accuracy of students distilled from a PGD-AT teacher "
              "with the full, permuted, mean-replaced, max-and-gap-only or "
              "entropy-matched teacher logits, next to the teacher and a CE student "
              f"trained on labels: PGD-{P.pgd_steps} over eps and APGD-DLR at eps={EPS}, "
              f"fixed {P.eval_size}-image subset; mean over {S.n_seeds} seeds, band: seed "
              "range.")

# %%
at = pd.concat([robust[(robust["attack"] == "apgd-dlr") & (robust["eps"] == EPS)],
                stats.robust_accuracy(full.records).assign(attack="pgd (test set)")])
table = stats.format_seed_table(stats.seed_table(at, ["attack", "model"],
                                                 ["clean_accuracy", "robust_accuracy"]))
report.table(table, "distillation_table",
             f"Clean and robust accuracy (eps={EPS}) of the distilled students, the teacher "
             "and a CE student: APGD-DLR on the fixed subset and PGD on the whole test set, "
             "mean ± std over seeds.",
             title=f"Distilled students: clean and robust accuracy (eps={EPS})")
table

# %% [markdown]
# ## What we found

# %%
dlr = at[at["attack"] == "apgd-dlr"]
pgd_test = at[at["attack"] == "pgd (test set)"]
means = stats.describe_means(dlr, "robust_accuracy", list(zoo))
# APGD-DLR runs on the fixed subset: those rows carry its image-sampling variance.
report.claim("seguin-distill-transfer",
             claims.paired(dlr, "robust_accuracy", "student full", "CE (labels)"),
             detail=f"APGD-DLR robust accuracy: {means}",
             image_var=ex.robust_image_var(sub.records, "student full", "CE (labels)",
                                           attack="apgd-dlr", eps=EPS,
                                           population=ex.test_population(P)))
report.claim("seguin-distill-transfer-pgd",
             claims.paired(pgd_test, "robust_accuracy", "student full", "CE (labels)"),
             detail="PGD robust accuracy: " + stats.describe_means(
                 pgd_test, "robust_accuracy", ["CE (labels)", "student full"]))
# A verdict of "reversed" on these rows: the manipulation raised the student's robustness.
for claim_id, student in [("seguin-distill-permuted", "student permuted"),
                          ("seguin-distill-matched", "student matched"),
                          ("seguin-distill-mean", "student mean"),
                          ("seguin-distill-max-gap", "student max-gap")]:
    report.claim(claim_id, claims.paired(dlr, "robust_accuracy", student, "student full"),
                 detail="APGD-DLR robust accuracy: " + stats.describe_means(
                     dlr, "robust_accuracy", ["student full", student]),
                 image_var=ex.robust_image_var(sub.records, student, "student full",
                                               attack="apgd-dlr", eps=EPS,
                                               population=ex.test_population(P)))
report.finish()
