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
# # 09 · Logit distillation: what in an adversarially trained teacher's logits carries robustness?
#
# **Question.** Seguin et al. (arXiv 2108.12001) distil an adversarially trained (AT)
# teacher into a student that never sees an adversarial example, and find that some
# robustness transfers, and that it depends on the teacher's *non-max* logits: scrambling
# their order or information hurts the student's robustness. We distil a PGD-AT teacher
# (same MLP, trained in `04`/`08`) at temperature T = 4 into fresh students, with four
# versions of the teacher's logits: the full logits; the non-max logits randomly
# permuted (same values, scrambled order of the incorrect classes); the non-max logits
# replaced by their mean; and only the max and the gap kept (every non-max logit set to
# the runner-up). A student trained with plain CE on labels is the baseline. We compare
# the students' clean accuracy and PGD robust accuracy.

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
from drsl_utils.distill import DISTILL_VARIANTS
from drsl_utils.report import describe_diff, mean_ci, verdict_from_interval

P, report = ex.setup("09_distillation", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir)
S = P.sweep()
teachers = ex.train_zoo(P, ["PGD-AT"], seeds=S.seeds, device=device)["PGD-AT"]
zoo = {"CE (labels)": ex.train_zoo(S, ["CE"], device=device)["CE"],
       "teacher PGD-AT": teachers}
for variant in DISTILL_VARIANTS:
    zoo[f"student {variant}"] = [
        ex.train_zoo(S, ["CE"], seeds=[t.config.seed], device=device, teacher=t.config,
                     distill_variant=variant)["CE"][0] for t in teachers]
print(f"{len(teachers)} teachers (one per seed), students trained {S.epochs} epochs on "
      f"{S.train_size or 'all'} images, T = {zoo['student full'][0].config.distill_temperature}")

# %%
result = ex.attack_zoo(P, zoo, [AttackSpec("pgd", {"steps": P.pgd_steps})], device=device)
robust = stats.robust_accuracy(result.records)
fig = plots.plot_robust_accuracy(robust)
report.figure(fig, "distillation_robust_accuracy", f"{P.dataset}: PGD-{P.pgd_steps} robust "
              "accuracy against eps of students distilled from a PGD-AT teacher with the "
              "full, permuted, mean-replaced or max-and-gap-only teacher logits, next to the "
              f"teacher and a CE student trained on labels; mean over {S.n_seeds} seeds, "
              "band: seed range.", close=False)
fig

# %%
EPS = P.at_eps if P.at_eps in P.eps_grid else P.eps_grid[len(P.eps_grid) // 2]
at = robust[robust["eps"] == EPS]
table = stats.format_seed_table(stats.seed_table(at, ["model"], ["clean_accuracy",
                                                                  "robust_accuracy"]))
fig = plots.plot_table(table, title=f"Distilled students: clean and PGD robust accuracy "
                                    f"(eps={EPS})")
report.figure(fig, "distillation_table", f"Clean and PGD-{P.pgd_steps} robust accuracy "
              f"(eps={EPS}) of the distilled students, the teacher and a CE student, mean ± "
              f"std over {S.n_seeds} seeds.", close=False)
table

# %% [markdown]
# ## What we found

# %%
d_full = ex.per_seed_diff(at, "robust_accuracy", "student full", "CE (labels)")
report.claim(
    "seguin-distill-transfer", "Seguin et al. 2021",
    "Distilling an AT teacher (clean inputs only) transfers some robustness.",
    f"PGD robust accuracy at eps={EPS}, full-logit student - CE student = "
    f"{describe_diff(d_full, scale=100, unit=' pp', digits=1)}",
    verdict_from_interval(*mean_ci(d_full)[2:], 0.0), S.n_seeds)
for variant in ("permuted", "mean", "max-gap"):
    d = ex.per_seed_diff(at, "robust_accuracy", f"student {variant}", "student full")
    report.claim(
        f"seguin-distill-{variant}", "Seguin et al. 2021",
        f"Destroying the non-max logit information ({variant}) lowers the student's "
        "robustness compared with the full logits.",
        f"PGD robust accuracy at eps={EPS}, {variant} - full = "
        f"{describe_diff(d, scale=100, unit=' pp', digits=1)}",
        verdict_from_interval(*mean_ci(d)[2:], 0.0, direction="less"), S.n_seeds)
