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
# # 05 · UMAP views of adversarial clusters: do DRSL's adversarial examples sit at the tips?
#
# **Question.** The last DRSL slide shows a 2-D reduction of the feature space: "after
# attacks, adversarial examples of the other two models are diffused in the reduced
# space, while DRSL's are concentrated at the tip of clusters". A picture can show
# anything, so we pair it with numbers. For CE, GCE and DRSL (one panel each) we fit
# UMAP on the clean penultimate features of the attacked test subset, place the
# successful PGD examples in the same layout with `transform`, and measure where they
# land: their distance to the centroid of their true-class cluster and of their
# adversarial-class cluster (in units of that cluster's RMS radius), and the class
# purity of their nearest clean neighbours. What the numbers can show is concentration
# (adversarial points close to a cluster's centre, neighbourhoods of one class) against
# spread (far from every centre, mixed neighbourhoods); the "tip" shape of the slides is
# not measured. The numbers are computed for every seed, each with its own UMAP (for CE
# and DRSL, whose comparison is the verdict; GCE on the first three seeds only, to save
# time). Each model loses different samples to the attack, so the verdicts compare CE and
# DRSL on the samples PGD flipped in **both**; the table shows each model's own
# successes too.

# %% tags=["parameters"]
profile = "quick"
dataset = None
device = "auto"
executor = None  # where missing units run: "inline", "local" or "slurm" (None: $DRSL_EXECUTOR)
seeds = None
figures_dir = None  # None: build/figures/<profile>; the main job passes figures/

# %%
import pandas as pd

from drsl_utils import claims, embed, explore, stats
from drsl_utils import experiments as ex

P, report = ex.setup("05_umap_adversarial_clusters", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir, executor=executor)
NAMES = list(ex.MAIN_LOSSES)
zoo = ex.train_zoo(P, NAMES, device=device)
result = ex.attack_zoo(P, zoo, [ex.pgd_spec(P)], device=device)
_ = embed.warm_up()

# %% [markdown]
# ## One UMAP per model (first seed), clean layout shared with its adversarial points

# %%
panels = ex.umap_panels(P, result, zoo, attack="pgd", eps=P.eps_mid)
report.figure(embed.plot_adversarial_umap(panels, class_names=ex.class_names(P)),
              "umap_adversarial_clusters",
              f"{P.dataset}: UMAP of penultimate features (seed {P.seeds[0]}); clean test "
              f"points coloured by class, successful PGD examples (eps={P.eps_mid}) as "
              "black-edged diamonds filled with their adversarial class, each linked to "
              "its clean original.")

# %% [markdown]
# ## The quantitative companion, over every seed

# %%
rows, per_sample = [], []
for i, seed in enumerate(P.seeds):
    # The verdicts compare DRSL with CE; GCE is embedded on the figure seeds only.
    names = NAMES if i < len(P.seeds_figure) else ["CE", "DRSL"]
    seed_panels = ex.umap_panels(P, result, {n: zoo[n] for n in names}, attack="pgd",
                                 eps=P.eps_mid, seed_index=i, progress=False)
    rows.append(embed.cluster_metrics_table(seed_panels).reset_index()
                .assign(seed=seed, samples="own successes"))
    pair = [p for p in seed_panels if p.name in ("CE", "DRSL")]
    rows.append(embed.cluster_metrics_table(pair, common=True).reset_index()
                .assign(seed=seed, samples="flipped in CE and DRSL"))
    # The values per sample behind those rows: the image term of the verdicts.
    per_sample.append(embed.cluster_metrics_samples(pair, common=True).assign(seed=seed))
metrics = pd.concat(rows, ignore_index=True)
per_sample = pd.concat(per_sample, ignore_index=True)
cols = ["n_adv", "true_dist", "adv_dist", "true_radius_pct", "knn_true_purity",
        "knn_adv_purity", "shift"]
metrics.groupby(["samples", "model"], sort=False)[cols].agg(["mean", "std"]).round(2)

# %% [markdown]
# ## What we found

# %%
both = metrics[metrics["samples"] == "flipped in CE and DRSL"]
n_both = f"{both.groupby('seed')['n_adv'].first().mean():.0f} samples per seed flipped in both"
# Measured on the fixed attack subset: add its image-sampling variance, from the values
# per sample with each seed's clean geometry held fixed (embed.cluster_metrics_samples
# says what that leaves out).
population = ex.test_population(P)
report.claim("drsl-umap-tips", claims.paired(both, "adv_dist", "DRSL", "CE"),
             detail="distance to the adversarial-class centroid (RMS radii): "
             + stats.describe_means(both, "adv_dist", ["CE", "DRSL"], digits=2)
             + f" ({n_both}; clean points average at most 1 by definition)",
             image_var=claims.image_variance(per_sample, "adv_dist", "DRSL", "CE",
                                             population=population))
report.claim("drsl-umap-purity", claims.paired(both, "knn_adv_purity", "DRSL", "CE"),
             detail="kNN purity of the adversarial class: "
             + stats.describe_means(both, "knn_adv_purity", ["CE", "DRSL"], digits=2)
             + f" ({n_both})",
             image_var=claims.image_variance(per_sample, "knn_adv_purity", "DRSL", "CE",
                                             population=population))
report.finish()

# %% [markdown]
# ## Explore
# Click a point (a clean sample, or a diamond: its adversarial version) to see the clean
# and adversarial images, the perturbation, and the softmax before and after the attack.
# "next: not on runner-up" jumps to an attack that did not land on the clean runner-up.

# %%
explore.samples(result, panels, zoo, attack="pgd", eps=P.eps_mid,
                class_names=ex.class_names(P))

# %% [markdown]
# ## Exercises
# Write down your prediction first, then run the solution (in the book, click "Show the
# solution"). The solutions reuse the PGD records and the UMAP layouts above (cached).

# %% [markdown]
# ### Exercise 1 · Attack at a larger eps: where do the adversarial points go?
# The numbers above are at the middle eps. Place the successful PGD examples of the
# largest eps of the grid in the same layouts (CE and DRSL, first seed). **Predict
# first:** do they land closer to the centre of their adversarial class (a smaller
# `adv_dist`) and in purer neighbourhoods, or are they scattered further?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
pair = {n: zoo[n] for n in ("CE", "DRSL")}
top_eps = max(P.eps_grid)
at_eps = {eps: embed.cluster_metrics_table(ex.umap_panels(P, result, pair, attack="pgd",
                                                          eps=eps, progress=False))
          for eps in (P.eps_mid, top_eps)}
moved = pd.concat(at_eps, names=["eps"])[["n_adv", "adv_dist", "knn_adv_purity"]]
for name in pair:
    a, b = at_eps[P.eps_mid].loc[name], at_eps[top_eps].loc[name]
    print(f"{name}: {a['n_adv']:.0f} -> {b['n_adv']:.0f} successes,\n  distance to the "
          f"adversarial centroid {a['adv_dist']:.2f} -> {b['adv_dist']:.2f} RMS radii, "
          f"kNN purity {a['knn_adv_purity']:.2f} -> {b['knn_adv_purity']:.2f}")
moved.round(2)

# %% [markdown]
# ### Exercise 2 · Whose samples does PGD take?
# **Predict first:** at the middle eps, which of CE, GCE and DRSL loses the most samples
# of the subset to PGD, how many of CE's and DRSL's losses are the same samples, and how
# often does each model's adversarial label land on its clean runner-up?

# %% tags=["hide-cell"] mystnb={"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
at_mid = result.records[result.records["eps"] == P.eps_mid]
losses = stats.second_class_fraction_ci(at_mid, pool_seeds=False)
losses = losses.groupby("model", sort=False)[["n_success", "fraction"]].mean()
shared = both.groupby("seed")["n_adv"].first()
print(f"most samples lost per seed: {losses['n_success'].idxmax()} "
      f"({losses['n_success'].max():.0f} on average); flipped in both CE and DRSL: "
      f"{shared.mean():.0f} per seed")
losses.rename(columns={"n_success": "successes per seed",
                       "fraction": "share on the runner-up"}).round(2)
