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
# purity of their nearest clean neighbours. "At the tips" means attached to a cluster
# (distance about 1-2, one purity high); "spread out" means between clusters.

# %% tags=["parameters"]
profile = "quick"
dataset = None
device = "auto"
seeds = None
figures_dir = None

# %%
import pandas as pd

from drsl_utils import embed
from drsl_utils import experiments as ex
from drsl_utils.attacks import AttackSpec
from drsl_utils.report import describe_diff, mean_ci, verdict_from_interval

P, report = ex.setup("05_umap_adversarial_clusters", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir)
NAMES = list(ex.MAIN_LOSSES)
EPS_MID = P.eps_grid[len(P.eps_grid) // 2]
zoo = ex.train_zoo(P, NAMES, device=device)
result = ex.attack_zoo(P, zoo, [AttackSpec("pgd", {"steps": P.pgd_steps})], device=device)
_ = embed.warm_up()

# %% [markdown]
# ## One UMAP per model (first seed), clean layout shared with its adversarial points

# %%
panels = ex.umap_panels(P, result, zoo, attack="pgd", eps=EPS_MID)
classes = ex.class_names(P)
fig = embed.plot_adversarial_umap(panels, class_names=classes)
report.figure(fig, "umap_adversarial_clusters", f"{P.dataset}: UMAP of penultimate "
              f"features (seed {P.seeds[0]}); clean test points coloured by class, "
              f"successful PGD examples (eps={EPS_MID}) as black-edged diamonds filled "
              "with their adversarial class, each linked to its clean original.",
              close=False)
fig

# %% [markdown]
# ## The quantitative companion, over every seed

# %%
rows = []
for i, seed in enumerate(P.seeds):
    seed_panels = ex.umap_panels(P, result, zoo, attack="pgd", eps=EPS_MID, seed_index=i,
                                 progress=False)
    table = embed.cluster_metrics_table(seed_panels).reset_index()
    rows.append(table.assign(seed=seed))
metrics = pd.concat(rows, ignore_index=True)
cols = ["n_adv", "true_dist", "adv_dist", "true_radius_pct", "knn_true_purity",
        "knn_adv_purity", "shift"]
metrics.groupby("model", sort=False)[cols].agg(["mean", "std"]).round(3)

# %% [markdown]
# ## What we found

# %%
d_adv = ex.per_seed_diff(metrics, "adv_dist", "DRSL", "CE")
d_pur = ex.per_seed_diff(metrics, "knn_adv_purity", "DRSL", "CE")
m = metrics.groupby("model")[["adv_dist", "knn_adv_purity"]].mean()
lo, hi = mean_ci(d_adv)[2:]
verdict = verdict_from_interval(lo, hi, 0.0, direction="less")
report.claim(
    "drsl-5-umap-tips", "DRSL slides (finding 5)",
    "DRSL's adversarial examples sit at the tips of class clusters, CE's spread out.",
    f"distance to the adversarial-class centroid (RMS radii): CE {m.loc['CE', 'adv_dist']:.2f}, "
    f"GCE {m.loc['GCE', 'adv_dist']:.2f}, DRSL {m.loc['DRSL', 'adv_dist']:.2f}; DRSL - CE = "
    f"{describe_diff(d_adv, digits=2)}; kNN purity of the adversarial class DRSL - CE = "
    f"{describe_diff(d_pur, digits=2)}",
    verdict, P.n_seeds)
