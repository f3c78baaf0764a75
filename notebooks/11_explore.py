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
# # 11 · Explore: attacks, softmax and samples by hand
#
# The explorers of notebooks 02-07 in one place, for teaching. Everything here is read
# from the cache the other notebooks filled (models, attack records, UMAP layouts), so
# nothing is trained or attacked again; a cold cache would compute what is missing.
#
# Run all cells in JupyterLab: dropdowns, sliders and clickable points appear. In the
# main job each explorer leaves a kernel-free figure with the same controls (and a
# picture of its first view); the book shows it.

# %% tags=["parameters"]
profile = "quick"
dataset = None
device = "auto"
executor = None  # where missing units run: "inline", "local" or "slurm" (None: $DRSL_EXECUTOR)
seeds = None
figures_dir = None  # None: build/figures/<profile>; the main job passes figures/

# %%
from drsl_utils import experiments as ex
from drsl_utils import explore

P, report = ex.setup("11_explore", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir, executor=executor)
MAIN = list(ex.MAIN_LOSSES)
zoo = ex.train_zoo(P, MAIN, device=device, progress=False)
result = ex.attack_zoo(P, zoo, [ex.pgd_spec(P), ex.dlr_spec(P)], device=device,
                       progress=False)
panels = ex.umap_panels(P, result, zoo, attack="pgd", eps=P.eps_mid, progress=False)

# %% [markdown]
# ## 1. The attack sweep
# Choose the attack (PGD on cross-entropy, or APGD on the difference-of-logits ratio),
# the loss and eps. Left: robust accuracy along eps (mean over seeds). Middle: the
# second-largest softmax `p2` of clean-correct samples before the attack (filled, in the
# loss's colour) and after it (black outline). Right: of the successful attacks, the share whose new label is the
# clean runner-up; the dashed line is chance, 1/(K-1).

# %%
sweep = explore.sweep(result.records, controls=("attack",),
                      title=f"{P.dataset}: CE, GCE and DRSL on the {P.eval_size}-image subset")
sweep

# %% [markdown]
# ## 2. One sample at a time
# Each panel point is a clean test image placed by UMAP on the model's penultimate
# features; the diamonds are the successful PGD examples at eps = the middle of the
# grid, coloured by the class they landed on. Click a point to see the sample.

# %%
samples = explore.samples(result, panels, zoo, attack="pgd", eps=P.eps_mid,
                          class_names=ex.class_names(P))
samples

# %% [markdown]
# ## Exercise
# Most successful attacks land on the clean runner-up: the class with the second-largest
# softmax before the attack. **Find a sample whose attack did not land on the
# runner-up, and explain why.** Use the "next: not on runner-up" button, or click
# diamonds whose colour differs from the runner-up named in the caption. Compare its
# clean softmax bars with those of a sample that did land on the runner-up: how large
# was its `p2`, and how close was the third class?
#
# The cell below finds such samples in code, and prints the numbers to compare.

# %%
off = samples.candidates(landed_on_runner_up=False)
on = samples.candidates(landed_on_runner_up=True)
print(f"{samples.model}: {len(off)} successful attacks did not land on the runner-up, "
      f"{len(on)} did.")
if len(off):
    print(samples.select(int(off[0])))  # the panel above now shows this sample

# %% [markdown]
# *A hint for the discussion:* PGD follows the gradient of the loss, not the ranking of
# the softmax. When the runner-up and the third class are close (a small gap between
# `p2` and `p3`), or when the perturbation budget moves the image towards a class whose
# logit grows faster, the attack crosses into that class first.

# %%
report.figure(samples.static_figure(), "explore_sample",
              f"{P.dataset}: the sample explorer's view of {samples.model}, PGD at "
              f"eps={P.eps_mid}: the UMAP layout (left), and one successful attack that did "
              "not land on the clean runner-up (images, perturbation, softmax before and "
              "after).")
report.finish()
