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
# # 04 · Max logits, logit gaps and logit margins: standard vs adversarial training
#
# **Question.** Two related papers describe what adversarial training (AT) does to the
# logits. Seguin et al. (arXiv 2108.12001) argue that AT lowers the **max logit** and the
# **logit gap** (max minus runner-up), and that AT and standard models disagree about
# which samples are confident. Kanai et al. (SOVR) observe that under AT the histogram of
# **logit margins** `z_y - max_{k != y} z_k` has **two peaks** (hard samples near the
# boundary and easy ones far out), and that the switching one-vs-rest loss (SOVR) moves
# mass away from small margins. We train PGD-AT, TRADES and SOVR inside PGD-AT, and, as
# the control, **CE on the same images for the same epochs** as the AT models, so that
# "AT vs standard" compares the training method and nothing else. CE and DRSL trained on
# the whole training set are shown for context.

# %% tags=["parameters"]
profile = "quick"
dataset = None
device = "auto"
executor = None  # where missing units run: "inline", "local" or "slurm" (None: $DRSL_EXECUTOR)
seeds = None
figures_dir = None  # None: build/figures/<profile>; the main job passes figures/

# %%
import numpy as np
import pandas as pd

from drsl_utils import claims, explore, plots, stats
from drsl_utils import experiments as ex

P, report = ex.setup("04_logit_gaps_and_margins", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir, executor=executor)
CONTROL = ex.AT_CONTROL
AT = list(ex.AT_ZOO)
STANDARD = [CONTROL, "CE", "DRSL"]
print(f"adversarial training: PGD eps={P.at_eps}, {P.at_steps} steps, {P.at_epochs} epochs, "
      f"{P.at_train_size or 'all'} training images, seeds {list(P.seeds_other)}")

# %%
zoo = ex.train_zoo(P, STANDARD + AT, seeds=P.seeds_other, device=device)
runs = ex.runs_table(zoo)
stats.format_seed_table(stats.seed_table(runs, ["model"], ["test_accuracy"]))

# %%
clean = ex.clean_stats(P, zoo)
clean["training"] = np.where(clean["model"].isin(AT), "adversarial", "standard")
report.figure(plots.plot_logit_distributions(clean, ("max_logit", "logit_gap"), col=None),
              "logit_distributions",
              f"{P.dataset}: distributions of the max logit and the logit gap (max minus "
              "second) on the clean test set: the CE control (same images and epochs as "
              "AT), CE and DRSL on the full training set, and the adversarially trained "
              "models (PGD-AT, TRADES, SOVR-AT), seeds pooled.")

# %%
report.figure(plots.plot_margin_hist(clean, col="training"), "margin_histograms",
              f"{P.dataset}: histograms of the logit margin z_y - max_(k!=y) z_k on the "
              "clean test set; left standard, right adversarially trained models. The "
              "dashed line is the decision boundary.")

# %% [markdown]
# ## Do standard and AT models agree on which samples are confident?
# Spearman rank correlation of the per-sample top-class probability. Each seed `s` gets a
# **reference**: one more CE control, trained with a fresh seed of its own. Its agreement
# with the CE control of seed `s` (how much two standard models agree anyway) is set
# against its agreement with PGD-AT of seed `s`. No model serves two seeds, so the
# per-seed differences are independent, as the verdict's t-test assumes.

# %%
REFERENCE = f"{CONTROL}, reference"
fresh = dict(zip(P.seeds_reference, P.seeds_other))  # reference seed -> the seed it serves
ref = ex.clean_stats(P, {REFERENCE: ex.train_zoo(P, [CONTROL], seeds=list(fresh),
                                                 device=device)[CONTROL]})
ref["seed"] = ref["seed"].map(fresh)
rho = stats.rank_agreement_by_seed(pd.concat([clean, ref], ignore_index=True), REFERENCE,
                                   [CONTROL, "CE", "PGD-AT", "TRADES", "SOVR-AT"])
rho.groupby("other", sort=False)["spearman"].agg(["mean", "std", "count"]).round(3)

# %% [markdown]
# ## Two peaks? Hartigan's dip test on the margins
# Per model and seed, on the margins of the whole clean test set: the dip statistic, its
# p-value against a unimodal null, and its 5 % critical value at this sample size. A dip
# above the critical value rejects one peak. A dip below it detects nothing, which is not
# evidence of one peak: the test's power against a stated two-peaked mixture says how
# much a miss means.

# %%
dips = stats.dip_table(clean, "logit_margin")
dips.groupby("model", sort=False)[["dip", "critical", "p_value"]].agg(["mean", "max"]).round(4)

# %%
n_margins = int(dips["n"].iloc[0])
power = {mu: stats.dip_power(n_margins, means=(0.0, mu)) for mu in (3.0, 3.5)}
# The alternative the claim names: two separate peaks whose mean excess over the
# critical value is about the SESOI; the claim's power is its own 5-seed test's there.
alt_excess = stats.dip_excess(n_margins, means=(0.0, 3.5))
print(f"dip test power on one sample at n = {n_margins}: "
      + ", ".join(f"{p:.2f} against 0.7 N(0,1) + 0.3 N({mu:g},1)" for mu, p in power.items())
      + f"; mean excess under 0.7 N(0,1) + 0.3 N(3.5,1): {alt_excess:+.4f}")

# %%
clean["small_margin"] = clean["logit_margin"] < 1.0
stats.format_seed_table(stats.seed_table(clean, ["model"], ["logit_margin", "small_margin"]))

# %% [markdown]
# ## What we found

# %%
for claim_id, q in [("seguin-max-logit", "max_logit"), ("seguin-logit-gap", "logit_gap")]:
    report.claim(claim_id, claims.paired(clean, q, "PGD-AT", CONTROL),
                 detail=f"mean {q.replace('_', ' ')}: "
                 + stats.describe_means(clean, q, [CONTROL, "PGD-AT", "CE"], digits=2))
base = rho[rho["other"] == CONTROL].set_index("seed")["spearman"]
at = rho[rho["other"] == "PGD-AT"].set_index("seed")["spearman"]
report.claim("seguin-confidence-disagree", (base - at).dropna(),
             detail=f"Spearman with the seed's own reference: CE control {base.mean():.3f}, "
             f"PGD-AT {at.mean():.3f} (reference seeds {list(fresh)})")
at_dips = dips[dips["model"] == "PGD-AT"]
report.claim("sovr-two-peaks", claims.per_seed(at_dips, "excess"),
             detail=f"one peak rejected (detected) on {int((at_dips['excess'] > 0).sum())} of "
             f"{len(at_dips)} seeds; dip {at_dips['dip'].mean():.4f} vs 5 % critical value "
             f"{at_dips['critical'].mean():.4f} (n = {n_margins}); dip p-values per seed "
             + ", ".join(f"{p:.3f}" for p in at_dips["p_value"])
             + f"; one sample's dip test at this n rejects 0.7 N(0,1) + 0.3 N(3,1) (two "
             f"peaks, a shallow trough; mean excess below zero) with probability "
             f"{power[3.0]:.2f} and 0.7 N(0,1) + 0.3 N(3.5,1) (mean excess "
             f"{alt_excess:+.4f}) with {power[3.5]:.2f}",
             alt_effect=alt_excess, alternative="0.7 N(0,1) + 0.3 N(3.5,1)")
report.claim("sovr-raises-margins", claims.paired(clean, "small_margin", "SOVR-AT", "PGD-AT"),
             detail="share of margins < 1: " + stats.describe_means(
                 clean, "small_margin", ["PGD-AT", "SOVR-AT"], scale=100, digits=1, unit="%"))
report.finish()

# %% [markdown]
# ## Explore
# The same models under PGD (the attack units notebook 08 reads from the cache): compare
# how the adversarially trained models' p2 and robust accuracy move with eps.

# %%
grid = sorted(set(P.eps_grid) | {P.at_eps})
pgd = ex.attack_zoo(P, zoo, [ex.pgd_spec(P)], eps_grid=grid, device=device)
explore.sweep(pgd.records, title="PGD on standard and adversarially trained models")

# %% [markdown]
# ## Exercises
# Write down your prediction first, then run the solution (in the book, click "Show the
# solution"). The solutions reuse the clean statistics and the PGD runs above; the last
# adds one PGD run on the first seed.

# %% [markdown]
# ### Exercise 1 · On every seed, or only on average?
# The verdicts above average over seeds. **Predict first:** does PGD-AT lower the max
# logit and the logit gap, relative to the CE control, on *every* seed, or only on some?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
per_seed = pd.DataFrame({q: claims.paired(clean, q, "PGD-AT", CONTROL)
                         for q in ("max_logit", "logit_gap")})
per_seed.index.name = "seed"
for q, diffs in per_seed.items():
    print(f"PGD-AT minus the CE control, mean {q.replace('_', ' ')}: lower on "
          f"{int((diffs < 0).sum())} of {len(diffs)} seeds")
per_seed.round(3)

# %% [markdown]
# ### Exercise 2 · Move the small-margin threshold
# The SOVR row counts margins below 1. **Predict first:** with a threshold of 0.5 or 2,
# does SOVR-AT still leave fewer small margins than PGD-AT, and does the difference grow
# or shrink?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
shares = pd.DataFrame({t: clean[clean["model"].isin(["PGD-AT", "SOVR-AT"])]
                       .assign(small=lambda d, t=t: d["logit_margin"] < t)
                       .groupby("model", sort=False)["small"].mean()
                       for t in (0.5, 1.0, 2.0)})
shares.columns.name = "margin below"
gap = 100 * (shares.loc["SOVR-AT"] - shares.loc["PGD-AT"])
print("SOVR-AT minus PGD-AT, share of small margins in points:\n"
      + ", ".join(f"below {t:g}: {v:+.1f}" for t, v in gap.items()))
shares.round(3)

# %% [markdown]
# ### Exercise 3 · Attack beyond the training eps
# The adversarially trained models saw PGD at eps = `P.at_eps` during training. Attack
# the first seed of every model at twice that eps. **Predict first:** is PGD-AT still
# more robust than its control there, and by more or less than at the training eps?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
first = {n: m[:1] for n, m in zoo.items()}
beyond = ex.attack_zoo(P, first, [ex.pgd_spec(P)], eps_grid=[P.at_eps, 2 * P.at_eps],
                       device=device, progress=False)
far = stats.robust_accuracy(beyond.records).pivot_table(
    index="model", columns="eps", values="robust_accuracy", sort=False)
edge = far.loc["PGD-AT"] - far.loc[CONTROL]
print("PGD-AT minus the CE control, robust accuracy of the first seed:\n"
      + ", ".join(f"eps {e:g}: {v:+.3f}" for e, v in edge.items()))
far.round(3)
