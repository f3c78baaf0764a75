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
# # 02 · Every attack over an eps grid: is DRSL harder to attack, and where do attacks land?
#
# **Question.** The DRSL slides make two claims that attacks can test directly. First,
# after an attack the adversarial label is usually the class with the second-largest
# clean softmax. Second, at the same clean accuracy, DRSL is harder to attack than CE
# and GCE. We attack CE, GCE and DRSL (every seed) with every attack in the toolkit
# (FGSM, PGD in L-inf and L2, CW, DeepFool, APGD-CE, APGD-DLR, Square, FAB and
# AutoAttack) over an eps sweep on one fixed test subset, and the other losses of the
# zoo with PGD. Margin-based and gradient-free attacks (CW, APGD-DLR, Square) matter
# here: a loss that only flattens the cross-entropy surface would look robust under PGD
# and not under them. Robust accuracy counts clean errors as failures; attack success
# is counted over clean-correct samples only.

# %% tags=["parameters"]
profile = "quick"   # "smoke" | "quick" | "paper"
dataset = None
device = "auto"
seeds = None
figures_dir = None

# %%
from drsl_utils import experiments as ex
from drsl_utils import plots, stats
from drsl_utils.report import describe_diff, mean_ci, verdict_from_interval

P, report = ex.setup("02_attacks", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir)
MAIN = list(ex.MAIN_LOSSES)
OTHERS = ["MAE", "DRSL-prob", "I-SCE", "OVR"]
EPS_MID = P.eps_grid[len(P.eps_grid) // 2]
SUITE = ex.attack_suite(P)
[(a.record_name, a.eps or P.eps_grid) for a in SUITE]

# %% [markdown]
# ## Attack the main losses with every attack (cached per model, attack and eps)

# %%
zoo = ex.train_zoo(P, MAIN + OTHERS, device=device)
main_zoo = {n: zoo[n] for n in MAIN}
result = ex.attack_zoo(P, main_zoo, SUITE, device=device)
pgd_all = ex.attack_zoo(P, zoo, [SUITE[1]], device=device)
robust = stats.robust_accuracy(result.records)
timing = result.units.groupby("attack")["seconds"].sum().round(1)
timing

# %%
fig = plots.plot_robust_accuracy(robust, ncols=4)
report.figure(fig, "robust_accuracy_all_attacks", f"{P.dataset}: robust accuracy against "
              f"eps for every attack (L-inf eps for most; L2 attacks use 4x the L-inf grid), "
              f"CE, GCE and DRSL, mean over {P.n_seeds} seeds with the seed range as a band. "
              f"{P.eval_size} fixed test samples.", close=False)
fig

# %%
robust_pgd = stats.robust_accuracy(pgd_all.records)
fig = plots.plot_robust_accuracy(robust_pgd)
report.figure(fig, "robust_accuracy_pgd_zoo", f"{P.dataset}: PGD-{P.pgd_steps} (L-inf) "
              f"robust accuracy against eps for every loss of the zoo, mean over "
              f"{P.n_seeds} seeds with the seed range as a band.", close=False)
fig

# %% [markdown]
# ### Robust accuracy at the middle of the grid (mean ± std over seeds)

# %%
at_mid = robust[robust["eps"].isin([EPS_MID, 4 * EPS_MID])]
table = stats.seed_table(at_mid, ["attack", "model"], ["robust_accuracy", "success_rate"])
wide = stats.format_seed_table(table)
wide

# %%
fig = plots.plot_table(wide, title=f"Robust accuracy and success rate at eps={EPS_MID} "
                       f"(L2 attacks: {4 * EPS_MID:g}), mean ± std over seeds")
report.figure(fig, "robust_accuracy_table", f"Robust accuracy and attack success (over "
              f"clean-correct samples) of CE, GCE and DRSL at L-inf eps={EPS_MID} "
              f"(L2 attacks at {4 * EPS_MID:g}), mean ± std over {P.n_seeds} seeds.",
              close=False)
fig

# %% [markdown]
# ## Where do successful attacks land?
# For each successful attack: is the adversarial label the class that had the
# second-largest clean softmax? Chance is 1/(K-1).

# %%
frac = stats.second_class_fraction_ci(pgd_all.records)
fig = plots.plot_second_class_bars(frac)
report.figure(fig, "second_class_bars", "Fraction of successful PGD attacks whose "
              "adversarial label is the clean second-ranked class, per loss and eps, with "
              "95% bootstrap intervals (seeds pooled); dashed: chance 1/(K-1).",
              close=False)
fig

# %%
frac_all = stats.second_class_fraction_ci(result.records, by=("attack", "eps"))
frac_all[["attack", "eps", "n_success", "fraction", "ci_low", "ci_high", "chance"]]

# %% [markdown]
# ## What we found

# %%
pooled = frac_all[(frac_all["attack"] == "pgd") & (frac_all["eps"] == EPS_MID)].iloc[0]
lo_all = frac_all.dropna(subset=["fraction"])
report.claim(
    "drsl-1-second-class", "DRSL slides (finding 1)",
    "After an attack, the adversarial label is usually (> 50 %) the clean second class.",
    f"PGD eps={EPS_MID}, CE/GCE/DRSL pooled: {pooled['fraction']:.3f} "
    f"[{pooled['ci_low']:.3f}, {pooled['ci_high']:.3f}] of {pooled['n_success']} successes "
    f"(chance {pooled['chance']:.3f}); over all attacks and eps the fraction ranges "
    f"{lo_all['fraction'].min():.2f}-{lo_all['fraction'].max():.2f}",
    verdict_from_interval(pooled["ci_low"], pooled["ci_high"], 0.5), P.n_seeds)

AUTOATTACK = next(a for a in result.attacks if a.startswith("autoattack"))
for attack in ("pgd", "square", AUTOATTACK):
    sub = robust[(robust["attack"] == attack) & (robust["eps"] == EPS_MID)]
    d = ex.per_seed_diff(sub, "robust_accuracy", "DRSL", "CE")
    m, s, lo, hi = mean_ci(d)
    report.claim(
        f"drsl-4-harder-{attack}", "DRSL slides (finding 4)",
        f"At the same clean accuracy, DRSL is more robust than CE ({attack}, eps={EPS_MID}).",
        f"robust accuracy DRSL - CE = {describe_diff(d, scale=100, unit=' pp', digits=1)}",
        verdict_from_interval(lo, hi, 0.0), P.n_seeds)

sub = robust_pgd[robust_pgd["eps"] == EPS_MID]
d = ex.per_seed_diff(sub, "robust_accuracy", "I-SCE", "CE")
report.claim(
    "isce-pgd", "I-SCE paper",
    f"The I-SCE-style margin loss is more robust than softmax CE under PGD (eps={EPS_MID}).",
    f"robust accuracy I-SCE - CE = {describe_diff(d, scale=100, unit=' pp', digits=1)} "
    "(margin reading; published constants not reproduced)",
    verdict_from_interval(*mean_ci(d)[2:], 0.0), P.n_seeds)
