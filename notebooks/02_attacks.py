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
# # 02 · Every attack over an eps grid: is DRSL harder to attack, and where do attacks land?
#
# **Question.** The DRSL slides make two claims that attacks can test directly. First,
# after an attack the adversarial label is usually the class with the second-largest
# clean softmax. Second, at the same clean accuracy, DRSL is harder to attack than CE
# and GCE (whether the clean accuracies are the same is `01`'s equivalence test; here we
# print the difference next to the robustness verdict). We attack CE, GCE and DRSL (every
# seed) with every attack in the toolkit (FGSM, PGD in L-inf and L2, CW, DeepFool,
# APGD-CE, APGD-DLR, Square, FAB and AutoAttack), and the other losses of the zoo with PGD
# and APGD-DLR. FGSM and PGD run on the whole test set (10,000 images in `quick`); the
# expensive attacks run on a fixed subset, and their verdicts count the error of drawing
# that subset. Margin-based and gradient-free attacks matter here: a loss that only
# saturates the softmax would look robust under PGD (which attacks cross-entropy) and not
# under APGD-DLR or Square, so the robustness verdicts rest on APGD-DLR, with PGD, Square
# and AutoAttack as secondary rows. The I-SCE rows test our margin reading of I-SCE (a
# margin subtracted from the true-class logit), not the published loss. Only
# clean-correct samples are attacked (as in AutoAttack's reference code): robust accuracy
# counts clean errors as failures, and attack success is counted over clean-correct
# samples only.

# %% tags=["parameters"]
profile = "quick"   # "smoke" | "quick" | "paper"
dataset = None
device = "auto"
executor = None  # where missing units run: "inline", "local" or "slurm" (None: $DRSL_EXECUTOR)
seeds = None
figures_dir = None  # None: build/figures/<profile>; the main job passes figures/

# %%
import pandas as pd

from drsl_utils import claims, explore, plots, stats
from drsl_utils import experiments as ex

P, report = ex.setup("02_attacks", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir, executor=executor)
MAIN = list(ex.MAIN_LOSSES)
POPULATION = ex.test_population(P)  # the test set: the estimands' image population
OTHERS = ["I-SCE"]  # a verdict rests on it: P.seeds_other
FIGURE_LOSSES = ["MAE", "DRSL-prob", "OVR"]  # drawn, no verdict: P.seeds_figure
SUITE = ex.attack_suite(P)
CHEAP = [a for a in SUITE if a.name in ("fgsm", "pgd")]
# Attacks behind a claim run on every seed of the models the claim compares; the others
# only draw the overview figure and run on the first FIGURE_SEEDS seeds (a trade for
# time, stated in the caption). Square and AutoAttack decide DRSL vs CE only, so GCE
# meets them on the first FIGURE_SEEDS seeds.
CLAIMED = ("apgd-dlr", "square", "autoattack")
DLR = [a for a in SUITE if a.name == "apgd-dlr"]
COSTLY = [a for a in SUITE if a.name in ("square", "autoattack")]
FIGURE_ONLY = [a for a in SUITE if a.name not in ("fgsm", "pgd", *CLAIMED)]
FIGURE_SEEDS = len(P.seeds_figure)
[(a.record_name, a.eps or P.eps_grid) for a in SUITE]

# %% [markdown]
# ## Attack the main losses with every attack (cached per model, attack and eps)

# %%
zoo = (ex.train_zoo(P, MAIN, device=device)
       | ex.train_zoo(P, OTHERS + FIGURE_LOSSES, seeds=P.seeds_other, drawn=FIGURE_LOSSES,
                      device=device))
main_zoo = {n: zoo[n] for n in MAIN}
full = ex.attack_zoo(P, main_zoo, CHEAP, on="test", device=device)
subset = ex.attack_zoo(P, main_zoo, DLR, device=device)
costly = ex.attack_zoo(P, {n: m if n in ("CE", "DRSL") else m[:FIGURE_SEEDS]
                           for n, m in main_zoo.items()}, COSTLY, device=device)
few = ex.attack_zoo(P, {n: m[:FIGURE_SEEDS] for n, m in main_zoo.items()}, FIGURE_ONLY,
                    device=device)
runs = [full, subset, costly, few]
robust = stats.robust_accuracy(pd.concat([r.records for r in runs], ignore_index=True))
pd.concat([r.units for r in runs]).groupby("attack")["seconds"].sum().round(1)

# %%
report.figure(plots.plot_robust_accuracy(robust, ncols=4), "robust_accuracy_all_attacks",
              f"{P.dataset}: robust accuracy against eps for every attack (L-inf eps for "
              "most; L2 attacks use 4x the L-inf grid), CE, GCE and DRSL, mean over "
              f"{P.n_seeds} seeds with the seed range as a band. FGSM and PGD on the whole "
              f"test set, the other attacks on a fixed {P.eval_size}-image subset; "
              f"{', '.join(a.record_name for a in FIGURE_ONLY)} (no claim rests on them) "
              f"on the first {FIGURE_SEEDS} seeds only, and GCE under "
              f"{' and '.join(a.record_name for a in COSTLY)} (the claims compare DRSL "
              f"with CE) on its first {FIGURE_SEEDS} seeds, to save time.")

# %% [markdown]
# ### Every loss of the zoo under PGD and APGD-DLR (fixed subset)

# %%
zoo_result = ex.attack_zoo(P, zoo, [ex.pgd_spec(P), ex.dlr_spec(P)], device=device)
robust_zoo = stats.robust_accuracy(zoo_result.records)
report.figure(plots.plot_robust_accuracy(robust_zoo[robust_zoo["attack"] == "pgd"]),
              "robust_accuracy_pgd_zoo",
              f"{P.dataset}: PGD-{P.pgd_steps} (L-inf) robust accuracy against eps for "
              f"every loss of the zoo on the fixed {P.eval_size}-image subset, mean over "
              f"seeds (CE, GCE, DRSL: {P.n_seeds}; {', '.join(OTHERS)}: "
              f"{len(P.seeds_other)}; {', '.join(FIGURE_LOSSES)}, which no verdict rests "
              f"on: {len(P.seeds_figure)}) with the seed range as a band.")

# %% [markdown]
# ### Robust accuracy at the middle of the grid (mean ± std over seeds)

# %%
at_mid = robust[robust["eps"].isin([P.eps_mid, 4 * P.eps_mid])]
table = stats.seed_table(at_mid, ["attack", "model"], ["robust_accuracy", "success_rate"])
wide = stats.format_seed_table(table)
report.table(wide, "robust_accuracy_table",
             f"Robust accuracy and attack success (over clean-correct samples) of CE, GCE "
             f"and DRSL at L-inf eps={P.eps_mid} (L2 attacks at {4 * P.eps_mid:g}), "
             f"mean ± std over seeds ({P.n_seeds}; GCE under "
             f"{' and '.join(a.record_name for a in COSTLY)} and every model under "
             f"{', '.join(a.record_name for a in FIGURE_ONLY)}: {FIGURE_SEEDS}).",
             title=f"Robust accuracy and success rate at eps={P.eps_mid} "
                   f"(L2: {4 * P.eps_mid:g}), mean ± std over seeds")
wide

# %% [markdown]
# ## Where do successful attacks land?
# For each successful attack: is the adversarial label the class that had the
# second-largest clean softmax? Chance is 1/(K-1). Bars pool the seeds, with Wilson
# intervals; the verdict below uses the seed as the unit.

# %%
pgd_full = full.records[full.records["attack"] == "pgd"]
frac = stats.second_class_fraction_ci(pgd_full)
report.figure(plots.plot_second_class_bars(frac), "second_class_bars",
              "Fraction of successful PGD attacks (whole test set) whose adversarial label "
              "is the clean second-ranked class, per loss and eps, with 95% Wilson "
              "intervals (seeds pooled); dashed: chance 1/(K-1).")

# %%
frac_all = stats.second_class_fraction_ci(pd.concat([r.records for r in runs]),
                                          by=("attack", "eps"))
frac_all[["attack", "eps", "n_success", "fraction", "ci_low", "ci_high"]].round(3)

# %% [markdown]
# ## What we found

# %%
mid = pgd_full[pgd_full["eps"] == P.eps_mid]
per_seed = stats.second_class_fraction_ci(mid, by=("attack", "eps"), pool_seeds=False)
report.claim("drsl-second-class", claims.per_seed(per_seed, "fraction", reference=0.5),
             detail=f"{per_seed['n_second'].sum()} of {per_seed['n_success'].sum()} PGD "
             f"successes land on the clean second class (chance {frac['chance'].iloc[0]:.3f}); "
             "over all attacks and eps the pooled fraction ranges "
             f"{frac_all['fraction'].min():.2f}-{frac_all['fraction'].max():.2f}")


def robust_at(df, attack):
    return df[(df["attack"] == attack) & (df["eps"] == P.eps_mid)]


# Rows on the fixed subset carry its image-sampling variance; PGD runs on the whole test set.
records = pd.concat([r.records for r in runs], ignore_index=True)
gap = claims.paired(ex.runs_table(main_zoo), "test_accuracy", "DRSL", "CE")
clean_gap = f"full-test clean accuracy DRSL - CE {100 * sum(gap.values()) / len(gap):+.2f} pp"
AUTOATTACK = next(a for a in costly.attacks if a.startswith("autoattack"))
for claim_id, attack, on_subset in [("drsl-harder-dlr", "apgd-dlr", True),
                                    ("drsl-harder-pgd", "pgd", False),
                                    ("drsl-harder-autoattack", AUTOATTACK, True),
                                    ("drsl-harder-square", "square", True)]:
    sub = robust_at(robust, attack)
    report.claim(claim_id, claims.paired(sub, "robust_accuracy", "DRSL", "CE"),
                 detail=f"{attack} robust accuracy: "
                 + stats.describe_means(sub, "robust_accuracy", MAIN) + f"; {clean_gap}",
                 image_var=ex.robust_image_var(records, "DRSL", "CE", attack=attack,
                                               eps=P.eps_mid, population=POPULATION)
                 if on_subset else 0.0)

isce_pgd = ex.attack_zoo(P, {n: zoo[n] for n in ("CE", "I-SCE")}, [ex.pgd_spec(P)],
                         eps_grid=[P.eps_mid], on="test", device=device)
isce_var = ex.robust_image_var(zoo_result.records, "I-SCE", "CE", attack="apgd-dlr",
                               eps=P.eps_mid, population=POPULATION)  # the fixed subset
for claim_id, sub, image_var in [
        ("isce-harder-dlr", robust_at(robust_zoo, "apgd-dlr"), isce_var),
        ("isce-harder-pgd", robust_at(stats.robust_accuracy(isce_pgd.records), "pgd"), 0.0)]:
    report.claim(claim_id, claims.paired(sub, "robust_accuracy", "I-SCE", "CE"),
                 detail="robust accuracy " + stats.describe_means(sub, "robust_accuracy",
                                                                 ["CE", "I-SCE"])
                 + " (our margin reading of I-SCE: m = 1, s = 1)", image_var=image_var)
report.finish()

# %% [markdown]
# ## Explore
# Pick an attack, a loss and an eps: robust accuracy along eps (every loss; the chosen one
# bold), the p2 histogram before and after the attack, and the share of successful attacks
# that land on the clean runner-up. Run in JupyterLab for the widgets; the main job
# leaves a kernel-free figure with the same controls.

# %%
explore.sweep(pd.concat([r.records for r in runs], ignore_index=True),
              controls=("attack",), title="Attacks of CE, GCE and DRSL")

# %% [markdown]
# ## Exercises
# Write down your prediction first, then run the solution (in the book, click "Show the
# solution"). The solutions reuse the attack records above; the first adds one cheap PGD
# run.

# %% [markdown]
# ### Exercise 1 · Attack at a larger eps: does the runner-up share fall?
# The bars above give, per eps, the share of successful PGD attacks that land on the clean
# second class. Attack the first seed of CE, GCE and DRSL at twice the largest eps (on
# the fixed subset, where the grid is already cached). **Predict first:** with a budget
# that large, does the runner-up share fall towards chance, and for which loss most?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
big_eps = 2 * max(P.eps_grid)
first = {n: m[:1] for n, m in main_zoo.items()}
larger = ex.attack_zoo(P, first, [ex.pgd_spec(P)], eps_grid=[*P.eps_grid, big_eps],
                       device=device, progress=False)
share = stats.second_class_fraction_ci(larger.records).pivot_table(
    index="model", columns="eps", values="fraction", sort=False)
for model, row in share.iterrows():
    print(f"{model}: runner-up share {row.iloc[0]:.2f} at eps {share.columns[0]:g}, "
          f"{row.iloc[-2]:.2f} at {share.columns[-2]:g}, {row.iloc[-1]:.2f} at {big_eps:g} "
          f"(chance {frac['chance'].iloc[0]:.2f})")
share.round(3)

# %% [markdown]
# ### Exercise 2 · How much does iterating add?
# FGSM takes one gradient step; PGD takes several. Both ran on the whole test set, on the
# same samples. **Predict first:** at the middle eps, how many points of robust accuracy
# does PGD take off FGSM's, and is that gap larger for DRSL than for CE? (A much larger
# gap would hint that one step's gradient is uninformative for that loss, a mild form of
# gradient masking.)

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
gain = stats.attack_difference(robust[robust["eps"] == P.eps_mid], "fgsm", "pgd")
gain = 100 * gain.groupby("model", sort=False)["difference"].agg(["mean", "std"])
print(f"robust accuracy under FGSM minus under PGD at eps {P.eps_mid}, in points:\n"
      + ", ".join(f"{m} {v:+.1f}" for m, v in gain["mean"].items()))
print("the gap is " + ("larger" if gain.loc["DRSL", "mean"] > gain.loc["CE", "mean"]
                       else "not larger") + " for DRSL than for CE")
gain.round(2)

# %% [markdown]
# ### Exercise 3 · Which attack is the strongest against each loss?
# **Predict first:** at the middle eps (L-inf attacks only), rank FGSM, PGD, APGD-CE,
# APGD-DLR, Square and AutoAttack by the robust accuracy they leave to DRSL. Is the
# ranking the same for CE? The answer is why the verdicts rest on APGD-DLR and not on PGD.

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
linf = robust[(robust["eps"] == P.eps_mid) & (robust["model"].isin(["CE", "DRSL"]))]
strength = (linf.groupby(["attack", "model"], sort=False)["robust_accuracy"].mean()
            .unstack("model")[["CE", "DRSL"]].sort_values("DRSL"))
print("strongest against DRSL: " + ", ".join(strength.index[:3])
      + ";\nstrongest against CE: " + ", ".join(strength["CE"].sort_values().index[:3]))
strength.round(3)
