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
# # 06 · Label noise: is DRSL robust when the training labels are wrong?
#
# **Question.** The DRSL slides say "DRSL is robust in label noise", and motivate the
# comparison with GCE and MAE, losses designed for noisy labels (Zhang & Sabuncu 2018).
# We corrupt a fraction of the training labels, symmetric noise (a uniformly random
# other class) and pair-flip noise (class c becomes c+1), at 0, 20 and 40 %, train CE,
# GCE, MAE and DRSL on them, and measure the clean test accuracy and how much of the
# noise each model memorised (the fraction of flipped training samples on which it
# predicts the noisy label). The grid is large, so the `quick` profile uses fewer seeds
# and a fixed 20k-image training subset (printed below); `paper` uses the full set.

# %% tags=["parameters"]
profile = "quick"
dataset = None
device = "auto"
seeds = None
figures_dir = None

# %%
import pandas as pd

from drsl_utils import experiments as ex
from drsl_utils import plots, stats
from drsl_utils.report import describe_diff, mean_ci, verdict_from_interval

P, report = ex.setup("06_label_noise", profile, dataset=dataset, seeds=seeds,
                     figures_dir_=figures_dir)
S = P.sweep()
NAMES = ["CE", "GCE", "MAE", "DRSL"]
RATES = [0.0, 0.2, 0.4]
KINDS = ["symmetric", "pair"]
print(f"label-noise grid: {len(NAMES)} losses x {len(KINDS)} kinds x {len(RATES)} rates x "
      f"{S.n_seeds} seeds, {S.train_size or 'all'} training images, {S.epochs} epochs")

# %%
rows = []
for kind in KINDS:
    for rate in RATES:
        noise = {"noise": kind, "noise_rate": rate} if rate > 0 else {}
        zoo = ex.train_zoo(S, NAMES, device=device, **noise)
        for name, tms in zoo.items():
            for tm in tms:
                rows.append({"model": name, "seed": tm.config.seed, "noise": kind,
                             "noise_rate": rate, "test_accuracy": tm.test_accuracy,
                             **ex.memorisation(tm)})
noise_df = pd.DataFrame(rows)
table = stats.seed_table(noise_df, ["noise", "noise_rate", "model"],
                         ["test_accuracy", "memorised"])
stats.format_seed_table(table)

# %%
fig = plots.plot_seed_curves(noise_df, x="noise_rate", y="test_accuracy", panel_by="noise",
                             xlabel="label-noise rate", ylabel="clean test accuracy",
                             title="Clean test accuracy under label noise (mean; band: "
                                   "min-max over seeds)")
report.figure(fig, "label_noise_accuracy", f"{P.dataset}: clean test accuracy against the "
              f"training label-noise rate, symmetric and pair-flip, per loss, mean over "
              f"{S.n_seeds} seeds with the seed range as a band ({S.train_size or 'all'} "
              f"training images, {S.epochs} epochs).", close=False)
fig

# %%
noisy = noise_df[noise_df["noise_rate"] > 0]
fig = plots.plot_seed_curves(noisy, x="noise_rate", y="memorised", panel_by="noise",
                             xlabel="label-noise rate",
                             ylabel="flipped labels memorised", ylim=(-0.02, 1.02),
                             title="Fraction of flipped training labels the model predicts")
report.figure(fig, "label_noise_memorisation", f"{P.dataset}: fraction of the flipped "
              "training samples on which the trained model predicts the noisy label, per "
              "loss and noise kind.", close=False)
fig

# %% [markdown]
# ## What we found

# %%
top = max(RATES)
for kind in KINDS:
    sub = noise_df[(noise_df["noise"] == kind) & (noise_df["noise_rate"] == top)]
    d = ex.per_seed_diff(sub, "test_accuracy", "DRSL", "CE")
    means = sub.groupby("model")["test_accuracy"].mean()
    report.claim(
        f"drsl-noise-{kind}", "DRSL slides (finding 4)",
        f"DRSL is more robust to {kind} label noise than CE ({top:.0%} noise).",
        "clean test accuracy: " + ", ".join(f"{n} {means[n]:.3f}" for n in NAMES)
        + f"; DRSL - CE = {describe_diff(d, scale=100, unit=' pp', digits=1)}",
        verdict_from_interval(*mean_ci(d)[2:], 0.0), S.n_seeds)

sub = noise_df[(noise_df["noise"] == "symmetric") & (noise_df["noise_rate"] == top)]
d = ex.per_seed_diff(sub, "memorised", "GCE", "CE")
report.claim(
    "gce-memorises-less", "Zhang & Sabuncu 2018 (GCE), as cited on the DRSL slides",
    f"GCE memorises fewer noisy labels than CE ({top:.0%} symmetric noise).",
    f"fraction of flipped labels predicted, GCE - CE = {describe_diff(d, digits=3)}",
    verdict_from_interval(*mean_ci(d)[2:], 0.0, direction="less"), S.n_seeds)
