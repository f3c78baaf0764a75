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
# each step properly, on Fashion-MNIST and over several seeds.

# %% tags=["parameters"]
profile = "quick"   # "smoke" (seconds, for tests) | "quick" | "paper"
dataset = "digits"  # the tour always uses a dataset that ships with the toolkit
device = "auto"     # "auto" picks the GPU when there is one
seeds = None        # None: the profile's seeds
figures_dir = None  # None: figures/ for quick, build/figures/<profile> otherwise

# %%
from drsl_utils import attacks, embed, plots, stats
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
fig = plots.plot_second_softmax_hist(clean, col=None)
report.figure(fig, "tour_second_softmax", "Digits: distribution of the clean "
              "second-largest softmax probability, CE vs DRSL (all seeds pooled).",
              close=False)
fig

# %% [markdown]
# ## 3. Attack both with PGD over an eps sweep

# %%
result = ex.attack_zoo(P, zoo, [attacks.AttackSpec("pgd", {"steps": P.pgd_steps})],
                       device=device)
robust = stats.robust_accuracy(result.records)
fig = plots.plot_robust_accuracy(robust)
report.figure(fig, "tour_robust_accuracy", "Digits: PGD robust accuracy against eps "
              "(L-inf), mean over seeds with the seed range as a band.", close=False)
fig

# %% [markdown]
# ## 4. Where do successful attacks land?
# The DRSL slides: the adversarial label is usually the clean second class. Chance would
# be 1/(K-1) = 1/9.

# %%
frac = stats.second_class_fraction_ci(result.records)
frac[["model", "eps", "n_success", "fraction", "ci_low", "ci_high", "chance"]]

# %% [markdown]
# ## 5. UMAP of clean and adversarial penultimate features
# One UMAP per model, fitted on its clean test features; the adversarial examples (PGD at
# the middle eps) are mapped into the same layout, each linked to its clean original.

# %%
eps_mid = P.eps_grid[len(P.eps_grid) // 2]
panels = ex.umap_panels(P, result, zoo, attack="pgd", eps=eps_mid)
fig = embed.plot_adversarial_umap(panels)
report.figure(fig, "tour_umap", f"Digits: UMAP of penultimate features; clean points "
              f"coloured by class, successful PGD examples (eps={eps_mid}) as black-edged "
              "diamonds filled with their adversarial class, linked to their "
              "clean originals.", close=False)
fig

# %% [markdown]
# ## What we found
# Every number below is computed from the runs above.

# %%
acc = stats.seed_table(runs, ["model"], ["test_accuracy"]).set_index("model")["mean"]
ra = robust[robust["eps"] == eps_mid].groupby("model")["robust_accuracy"].mean()
sec = frac[frac["eps"] == eps_mid].set_index("model")["fraction"]
p2 = clean.groupby("model")["p_top2"].median()
for name in zoo:
    print(f"{name:5s} clean acc {acc[name]:.3f} | PGD eps={eps_mid} robust acc {ra[name]:.3f}"
          f" | median clean p2 {p2[name]:.2e} | adv label = clean 2nd class {sec[name]:.2f}")
