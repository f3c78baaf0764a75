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
# # 00 · A tour: softmax distributions and adversarial robustness in two minutes
#
# **Question.** Does the way a classifier spreads its softmax over the *wrong* classes
# decide how easily an adversarial attack flips it? The DRSL paper says yes: after an
# attack the new label is usually the class that was second on the clean input, and
# restraining the spread of the non-true softmax entries (DRSL) makes attacks harder.
# This tour runs the whole story on scikit-learn's 8x8 digits, which ship with the
# toolkit, so it needs no download and finishes in a couple of minutes on a laptop CPU:
# train CE and DRSL, attack them with PGD, look at the second-largest softmax, and
# draw a UMAP of clean and adversarial examples. The numbered notebooks that follow do
# each step properly, on Fashion-MNIST; the tour's own verdicts are demonstrations on a
# toy dataset and stay out of the report's family of primary claims.

# %% tags=["parameters"]
profile = "quick"   # "smoke" (seconds, for tests) | "quick" | "paper"
dataset = "digits"  # the tour always uses a dataset that ships with the toolkit
device = "auto"     # "auto" picks the GPU when there is one
seeds = None        # None: the profile's seeds
figures_dir = None  # None: build/figures/<profile>; the main job passes figures/

# %%
from drsl_utils import claims, embed, plots, stats
from drsl_utils import experiments as ex

P, report = ex.setup("00_tour", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir, epochs=30 if profile != "smoke" else 6)

# %% [markdown]
# ## 1. Train CE and DRSL
# Same MLP, same optimiser, same seeds; only the loss differs. DRSL adds
# `tau * sum_{k != y} (z_k - mean_{j != y} z_j)^2` to cross-entropy: it pulls the
# non-true logits towards their mean.

# %%
zoo = ex.train_zoo(P, ["CE", "DRSL"], device=device)
runs = ex.runs_table(zoo)
stats.format_seed_table(stats.seed_table(runs, ["model"], ["test_accuracy"]))

# %% [markdown]
# ## 2. The second-largest softmax on clean test data
# DRSL should make the non-true entries more uniform, which lowers the runner-up
# probability `p2` for the same confidence in the top class.

# %%
clean = ex.clean_stats(P, zoo)
report.figure(plots.plot_second_softmax_hist(clean, col=None), "tour_second_softmax",
              "Digits: distribution of the clean second-largest softmax probability, CE vs "
              "DRSL (all seeds pooled).")

# %% [markdown]
# ## 3. Attack both with PGD over an eps sweep (the whole digits test split)

# %%
result = ex.attack_zoo(P, zoo, [ex.pgd_spec(P)], on="test", device=device)
robust = stats.robust_accuracy(result.records)
report.figure(plots.plot_robust_accuracy(robust), "tour_robust_accuracy",
              "Digits: PGD robust accuracy against eps (L-inf), mean over "
              f"{P.n_seeds} seeds with the seed range as a band.")

# %% [markdown]
# ## 4. Where do successful attacks land?
# The DRSL slides: the adversarial label is usually the clean second class. Chance would
# be 1/(K-1) = 1/9. The intervals are Wilson intervals over the pooled successes.

# %%
frac = stats.second_class_fraction_ci(result.records)
frac[["model", "eps", "n_success", "fraction", "ci_low", "ci_high", "chance"]].round(3)

# %% [markdown]
# ## 5. UMAP of clean and adversarial penultimate features
# One UMAP per model (first seed), fitted on its clean test features; the adversarial
# examples (PGD at the middle eps) are mapped into the same layout, each linked to its
# clean original.

# %%
panels = ex.umap_panels(P, result, zoo, attack="pgd", eps=P.eps_mid)
report.figure(embed.plot_adversarial_umap(panels), "tour_umap",
              "Digits: UMAP of penultimate features; clean points coloured by class, "
              f"successful PGD examples (eps={P.eps_mid}) as black-edged diamonds filled "
              "with their adversarial class, linked to their clean originals.")

# %% [markdown]
# ## What we found
# Both claims are tested with the project's one rule (`drsl_utils.claims`): the seed is
# the unit, and each verdict is read against the smallest effect of interest, with the
# interval printed beside it. On a toy dataset these are demonstrations (role `demo`),
# outside the report's family of primary findings and its headline counts.

# %%
at_mid = robust[robust["eps"] == P.eps_mid]
report.claim("tour-drsl-harder", claims.paired(at_mid, "robust_accuracy", "DRSL", "CE"),
             detail="PGD robust accuracy at eps "
             f"{P.eps_mid}: {stats.describe_means(at_mid, 'robust_accuracy', digits=3)}")
mid = result.records[result.records["eps"] == P.eps_mid]
per_seed = stats.second_class_fraction_ci(mid, by=("attack", "eps"), pool_seeds=False)
report.claim("tour-second-class", claims.per_seed(per_seed, "fraction", reference=0.5),
             detail=f"{per_seed['n_second'].sum()} of {per_seed['n_success'].sum()} "
             f"successes at eps {P.eps_mid} land on the clean second class (chance 1/9)")
report.finish()

# %% [markdown]
# ## Exercises
# Two or three questions to try before moving on. For each, write down your prediction
# first, then run the solution (in the book, click "Show the solution"). The solutions
# reuse the models and attacks above; the first trains two short models.

# %% [markdown]
# ### Exercise 1 · Change tau: what happens to p2?
# DRSL adds `tau` times the spread of the non-true logits to cross-entropy. Train DRSL on
# the first seed with the default `tau` and with ten times that, in a short run (three
# epochs, so that it takes seconds). **Predict first:** with the larger `tau`, does the
# median clean `p2` go up or down? And the entropy of the non-true entries, and the
# clean accuracy?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
tau = ex.model_config(P, "DRSL").loss_params["tau"]
by_tau = {f"DRSL(tau={t:g})": ex.train_zoo(P, ["DRSL"], seeds=P.seeds[:1], device=device,
                                           progress=False, loss_params={"tau": t},
                                           epochs=min(P.epochs, 3))["DRSL"]
          for t in (tau, 10 * tau)}
tau_table = ex.clean_stats(P, by_tau).groupby("model", sort=False).agg(
    accuracy=("correct", "mean"), median_p2=("p_top2", "median"),
    nontrue_entropy=("nontrue_entropy", "mean"))
p2, entropy = tau_table["median_p2"].to_numpy(), tau_table["nontrue_entropy"].to_numpy()
print(f"tau {tau:g} -> {10 * tau:g}: median clean p2 "
      + ("falls" if p2[1] < p2[0] else "rises") + f" ({p2[0]:.2e} -> {p2[1]:.2e}), "
      "non-true entropy " + ("rises" if entropy[1] > entropy[0] else "falls")
      + f" ({entropy[0]:.2f} -> {entropy[1]:.2f})\n(one seed and a short run: notebook 01 "
      "tests the mechanism over seeds, and notebook 07 sweeps tau)")
tau_table.round(4)

# %% [markdown]
# ### Exercise 2 · Attack at a larger eps: does the runner-up share fall?
# Section 4 shows the share of successful attacks that land on the clean second class at
# each eps of the grid. Attack the same models at twice the largest eps. **Predict
# first:** with a bigger budget the attack can reach any class; does the share of
# successes that land on the runner-up fall towards chance (1/9)?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
import pandas as pd

big_eps = 2 * max(P.eps_grid)
bigger = ex.attack_zoo(P, zoo, [ex.pgd_spec(P)], eps_grid=[big_eps], on="test",
                       device=device, progress=False)
share = stats.second_class_fraction_ci(pd.concat([result.records, bigger.records]))
share = share.pivot_table(index="model", columns="eps", values="fraction", sort=False)
for model, row in share.iterrows():
    print(f"{model}: runner-up share {row.iloc[0]:.2f} at eps {share.columns[0]:g} -> "
          f"{row.iloc[-1]:.2f} at eps {big_eps:g}: "
          + ("falls" if row.iloc[-1] < row.iloc[0] else "does not fall"))
share.round(3)

# %% [markdown]
# ### Exercise 3 · A failed attack still moves p2
# Take the clean-correct samples that PGD did **not** flip at the middle eps. **Predict
# first:** after the attack, is their `p2` larger or smaller than on the clean input, and
# by how much (a factor of 2? of 100?)?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
survived = mid[mid["clean_correct"].astype(bool) & ~mid["success"].astype(bool)]
moved = survived.groupby("model", sort=False).agg(
    n=("sample", "size"), clean_p2=("clean_p_second", "median"),
    adv_p2=("adv_p_second", "median"))
moved["factor"] = moved["adv_p2"] / moved["clean_p2"]
for model, row in moved.iterrows():
    print(f"{model}: median p2 of its {row['n']:.0f} surviving samples {row['clean_p2']:.2g} "
          f"clean, {row['adv_p2']:.2g} attacked (x {row['factor']:.3g})")
moved.round(4)
