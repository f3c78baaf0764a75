"""Tests for drsl_utils.embed: cached UMAP embeddings, cluster metrics, the figure.

Only the tests marked "pays the numba compile" run UMAP. The first of them in a process
compiles umap-learn's kernels: about 15-35 s cold on 2 cores, well under a second once
numba's on-disk cache (enabled by ``embed.enable_numba_cache``) is warm.
"""

from __future__ import annotations

import dataclasses
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from drsl_utils import embed  # noqa: E402
from drsl_utils.plots import save_figure  # noqa: E402


def blobs(n=200, d=10, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(scale=6.0, size=(classes, d))
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


# ------------------------------------------------------------------ metrics (no UMAP)


def _two_clusters():
    ring = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=float)
    clean = np.concatenate([ring, ring + [10, 0]])
    labels = np.array([0] * 4 + [1] * 4)
    return clean, labels


def test_cluster_metrics_hand_built():
    clean, labels = _two_clusters()  # centroids (0,0) and (10,0), RMS radius 1 each
    adv = np.array([[8.0, 0.0], [0.0, 0.5]])
    orig = np.array([0, 4])  # from (1,0) of class 0 and (11,0) of class 1
    pred = np.array([1, 0])  # both flipped to the other class
    m = embed.cluster_metrics(clean, labels, adv, orig, pred, k=4)
    assert m["n_adv"] == 2 and m["clean_dist"] == pytest.approx(1.0)
    assert m["true_dist"] == pytest.approx((8.0 + np.hypot(10, 0.5)) / 2)
    assert m["adv_dist"] == pytest.approx((2.0 + 0.5) / 2)
    assert m["true_radius_pct"] == pytest.approx(1.0)  # beyond every own-class point
    assert m["knn_adv_purity"] == pytest.approx(1.0)
    assert m["knn_true_purity"] == pytest.approx(0.0)
    assert m["shift"] == pytest.approx((7.0 + np.hypot(11, 0.5)) / 2)


def test_cluster_metrics_tips_versus_spread_out():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [20, 0], [0, 20], [20, 20]], dtype=float)
    labels = np.repeat(np.arange(4), 100)
    clean = centres[labels] + rng.normal(size=(400, 2))
    orig = np.arange(0, 400, 10)
    y = labels[orig]
    pred = (y + 1) % 4
    # Tips: just past the rim of the true cluster, on the side facing the target.
    direction = centres[pred] - centres[y]
    tips = centres[y] + 2.0 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    # Spread out: scattered in the empty middle of the plane.
    spread = rng.uniform(6, 14, size=(len(orig), 2))
    t = embed.cluster_metrics(clean, labels, tips, orig, pred)
    s = embed.cluster_metrics(clean, labels, spread, orig, pred)
    assert 1.0 < t["true_dist"] < 2.0 and t["true_radius_pct"] > 0.8
    assert t["knn_true_purity"] > 0.9
    assert s["true_dist"] > 5 and s["adv_dist"] > 5
    assert s["knn_true_purity"] < 0.6 and s["knn_adv_purity"] < 0.6


def test_cluster_metrics_edge_cases():
    clean, labels = _two_clusters()
    empty = embed.cluster_metrics(clean, labels, np.zeros((0, 2)), [], [])
    assert empty["n_adv"] == 0 and np.isnan(empty["true_dist"]) and np.isnan(empty["shift"])
    # An adversarial label with no clean points has no cluster: left out of adv_dist.
    m = embed.cluster_metrics(clean, labels, [[0.0, 0.0], [10.0, 0.5]], [1, 5], [5, 0],
                              k=2)
    assert m["adv_dist"] == pytest.approx(np.hypot(10, 0.5))
    assert m["true_radius_pct"] == pytest.approx(0.0)  # both nearer than every clean point
    with pytest.raises(ValueError, match="adv_orig_index"):
        embed.cluster_metrics(clean, labels, [[0.0, 0.0]], [8], [1])
    with pytest.raises(ValueError, match="clean_labels"):
        embed.cluster_metrics(clean, labels[:3], [[0.0, 0.0]], [0], [1])
    with pytest.raises(ValueError, match="k="):
        embed.cluster_metrics(clean, labels, [[0.0, 0.0]], [0], [1], k=0)


def _panels(n_models=4):
    rng = np.random.default_rng(1)
    centres = rng.uniform(-15, 15, size=(10, 2))
    panels = []
    for i in range(n_models):
        labels = np.arange(500) % 10
        clean = centres[labels] + rng.normal(size=(500, 2))
        orig = rng.choice(500, 80, replace=False)
        pred = (labels[orig] + rng.integers(1, 10, 80)) % 10
        adv = clean[orig] + rng.normal(scale=3.0 * (i + 1), size=(80, 2))
        panels.append(embed.UmapPanel(f"model{i}", clean, labels, adv, orig, pred))
    return panels


def test_plot_adversarial_umap_and_metrics_table(tmp_path):
    panels = _panels()
    fig = embed.plot_adversarial_umap(panels, class_names=[f"c{i}" for i in range(10)],
                                      max_adv=50)
    png, pdf = save_figure(fig, "umap", tmp_path, close=True)
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000
    h, w = mpimg.imread(png).shape[:2]
    assert w > 1000 and h > 500
    table = embed.cluster_metrics_table(panels)
    assert list(table.index) == ["model0", "model1", "model2", "model3"]
    assert table["shift"].is_monotonic_increasing  # larger perturbations, larger shift
    with pytest.raises(ValueError, match="panels"):
        embed.plot_adversarial_umap([])
    with pytest.raises(ValueError, match="class_names"):
        embed.plot_adversarial_umap(panels, class_names=["a"])
    plt.close("all")


def _seed_pair(seed):
    """CE and DRSL panels of one seed on a shared 500-image subset, each with its own
    layout and its own successes (partly the same images)."""
    rng = np.random.default_rng(100 + seed)
    centres = rng.uniform(-15, 15, size=(10, 2))
    labels = np.arange(500) % 10
    panels = []
    for name, scale in (("CE", 4.0), ("DRSL", 1.5)):
        clean = centres[labels] + rng.normal(size=(500, 2))
        orig = np.sort(rng.choice(500, 200, replace=False))
        pred = (labels[orig] + rng.integers(1, 10, 200)) % 10
        adv = centres[pred] + rng.normal(scale=scale, size=(200, 2))
        panels.append(embed.UmapPanel(name, clean, labels, adv, orig, pred))
    return panels


@pytest.mark.parametrize("common", [False, True])
def test_cluster_metrics_samples_average_to_the_table(common):
    from drsl_utils import claims

    tables, records = [], []
    for seed in range(3):
        pair = _seed_pair(seed)
        tables.append(embed.cluster_metrics_table(pair, common=common).assign(seed=seed))
        records.append(embed.cluster_metrics_samples(pair, common=common).assign(seed=seed))
    table = pd.concat(tables).reset_index().set_index(["seed", "model"])
    per = pd.concat(records, ignore_index=True)
    assert list(per.columns[:4]) == ["model", "sample", "true_label", "adv_pred"]
    assert set(embed.SAMPLE_METRICS) <= set(per.columns)
    means = per.groupby(["seed", "model"])[list(embed.SAMPLE_METRICS)].mean()
    counts = per.groupby(["seed", "model"]).size()
    for col in embed.SAMPLE_METRICS:
        np.testing.assert_allclose(means[col], table.loc[means.index, col], rtol=1e-12)
    np.testing.assert_array_equal(counts, table.loc[counts.index, "n_adv"])
    if common:  # the same images for both models of a seed
        for _, g in per.groupby("seed"):
            assert (set(g.loc[g["model"] == "CE", "sample"])
                    == set(g.loc[g["model"] == "DRSL", "sample"]))
    for value in ("adv_dist", "knn_adv_purity"):
        var = claims.image_variance(per, value, "DRSL", "CE", population=5000)
        assert np.isfinite(var) and var > 0
        # The finite-population correction shrinks it.
        assert var < claims.image_variance(per, value, "DRSL", "CE")


def test_cluster_metrics_samples_edge_cases():
    clean, labels = _two_clusters()
    # An adversarial class without clean points: NaN here, left out of the table's mean.
    panel = embed.UmapPanel("m", clean, labels, np.array([[0.0, 0.0], [10.0, 0.5]]),
                            np.array([1, 5]), np.array([5, 0]))
    per = embed.cluster_metrics_samples([panel])
    assert np.isnan(per["adv_dist"].iloc[0])
    assert np.nanmean(per["adv_dist"]) == pytest.approx(panel.metrics()["adv_dist"])
    empty = embed.UmapPanel("e", clean, labels, np.zeros((0, 2)), np.zeros(0, int),
                            np.zeros(0, int))
    assert len(embed.cluster_metrics_samples([empty, panel])) == 2
    with pytest.raises(ValueError, match="adv_pred"):
        embed.cluster_metrics_samples([dataclasses.replace(panel, adv_pred=None)])


# ------------------------------------------------------------------ UMAP


@pytest.fixture(scope="module")
def umap_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("umap-cache")


def test_fit_embedding_cache_round_trip_and_transform(umap_cache):
    # Pays the numba compile (the first UMAP call in the process).
    x, _ = blobs()
    first = embed.fit_embedding(torch.from_numpy(x), n_epochs=50, cache_dir=umap_cache,
                                progress=False)
    assert first.clean_2d.shape == (200, 2) and np.isfinite(first.clean_2d).all()
    assert not first.from_cache
    assert list(embed.entry_dir("embeddings", umap_cache).glob(f"{first.key}*"))
    second = embed.fit_embedding(x, n_epochs=50, cache_dir=umap_cache, progress=False)
    assert second.from_cache and second.key == first.key
    np.testing.assert_array_equal(second.clean_2d, first.clean_2d)

    adv = x[:30] + np.random.default_rng(1).normal(scale=0.5, size=(30, 10)).astype(np.float32)
    a1 = first.transform(adv)
    assert a1.shape == (30, 2) and np.isfinite(a1).all()
    a2 = second.transform(adv)  # cached transform; the pickled reducer is not even loaded
    np.testing.assert_array_equal(a1, a2)
    assert second._reducer is None
    assert embed.fit_embedding(x, n_epochs=50, cache_dir=umap_cache,
                               progress=False).transform(adv[:0]).shape == (0, 2)
    # A fresh process would load the pickled reducer: it round-trips.
    loaded = second.reducer
    assert np.isfinite(loaded.transform(adv[:5])).all()
    with pytest.raises(ValueError, match="features"):
        first.transform(adv[:, :5])


def test_warm_up_announces_itself(capsys):
    seconds = embed.warm_up(progress=True)
    err = capsys.readouterr().err
    assert "compiling UMAP kernels" in err and "UMAP ready" in err and seconds > 0
    assert embed.enable_numba_cache() == 0  # already done once in this process


def test_fit_is_deterministic_and_key_depends_on_params(umap_cache):
    x, _ = blobs()
    cached = embed.fit_embedding(x, n_epochs=50, cache_dir=umap_cache, progress=False)
    fresh = embed.fit_embedding(x, n_epochs=50, use_cache=False, progress=False)
    np.testing.assert_allclose(fresh.clean_2d, cached.clean_2d, atol=1e-5)
    other = embed.fit_embedding(x, n_epochs=50, min_dist=0.3, use_cache=False,
                                progress=False)
    assert other.key != cached.key


def test_embed_clean_and_adv_warm_call_is_fast(umap_cache):
    x, _ = blobs()
    adv = {"pgd": x[:20] + 0.3, "fgsm": x[20:50] - 0.3}
    clean_2d, out = embed.embed_clean_and_adv(x, adv, n_epochs=50, cache_dir=umap_cache,
                                              progress=False)
    assert clean_2d.shape == (200, 2) and out["pgd"].shape == (20, 2)
    assert out["fgsm"].shape == (30, 2)
    start = time.perf_counter()
    clean_again, out_again = embed.embed_clean_and_adv(x, adv, n_epochs=50,
                                                       cache_dir=umap_cache, progress=False)
    assert time.perf_counter() - start < 1.0
    np.testing.assert_array_equal(clean_again, clean_2d)
    np.testing.assert_array_equal(out_again["fgsm"], out["fgsm"])
    joint_clean, joint = embed.embed_clean_and_adv(x, x[:10] + 0.3, mode="joint", n_epochs=30,
                                                   cache_dir=umap_cache, progress=False)
    assert joint_clean.shape == (200, 2) and joint["adv"].shape == (10, 2)


def test_bad_arguments_are_named(umap_cache):
    x, _ = blobs(n=20)
    with pytest.raises(ValueError, match="n_neighbors"):
        embed.fit_embedding(x, n_neighbors=20, cache_dir=umap_cache, progress=False)
    with pytest.raises(ValueError, match="min_dist"):
        embed.fit_embedding(x, min_dist=-1, cache_dir=umap_cache, progress=False)
    with pytest.raises(ValueError, match="mode"):
        embed.embed_clean_and_adv(x, x, mode="both", cache_dir=umap_cache)
    with pytest.raises(ValueError, match="adv_X"):
        embed.embed_clean_and_adv(x, {"pgd": x[:, :3]}, cache_dir=umap_cache)
    with pytest.raises(ValueError, match="clean_X"):
        embed.fit_embedding(np.zeros(5), cache_dir=umap_cache)


# ------------------------------------------------------------------ panels from a result


def test_umap_figure_text_stays_inside_at_one_and_several_panels():
    import dataclasses

    from test_plots import assert_no_text_clipped

    panels = _panels(3)
    # A user's model name is long; the default title is wider than one panel.
    long = dataclasses.replace(panels[0], name="SmallCNN trained in plain PyTorch (FGSM)")
    for items in ([long], [long, *panels[1:]]):
        fig = embed.plot_adversarial_umap(items)
        assert_no_text_clipped(fig)
        plt.close(fig)


@pytest.fixture(scope="module")
def digits_result(digits_model):
    from drsl_utils.data import load_dataset
    from drsl_utils.evaluation import evaluate

    ds = load_dataset("digits", "test").subset(60, seed=0)
    return evaluate([digits_model], [("pgd", {"steps": 3})], ds.images, ds.labels,
                    eps_grid=[0.1], cache=False, progress=False)


def test_umap_panel_from_an_evaluate_result(digits_result, umap_cache):
    # Pays the numba compile if no UMAP test ran before it.
    from test_plots import assert_no_text_clipped

    res = digits_result
    name = res.models["model"].iloc[0]
    panel = embed.umap_panel(res, name, "pgd", 0.1, n_neighbors=10, cache_dir=umap_cache,
                             progress=False)
    rec = res.records[res.records["success"]].sort_values("sample")
    assert panel.name == name and panel.clean_2d.shape == (60, 2)
    np.testing.assert_array_equal(panel.clean_labels, res.labels)
    np.testing.assert_array_equal(panel.adv_orig_index, rec["sample"])
    np.testing.assert_array_equal(panel.adv_pred, rec["adv_pred"])
    assert panel.adv_2d.shape == (len(rec), 2) and len(rec) > 0
    # The model key works as well, and a cap fits on a subset, indices re-based to it.
    capped = embed.umap_panel(res, res.models["model_key"].iloc[0], "pgd", 0.1,
                              max_samples=30, n_neighbors=10, cache_dir=umap_cache,
                              progress=False)
    assert capped.clean_2d.shape == (30, 2)
    rows = np.sort(np.random.default_rng(0).choice(60, 30, replace=False))  # seed=0
    np.testing.assert_array_equal(capped.clean_labels, res.labels[rows])
    kept = rec[rec["sample"].isin(rows)]
    np.testing.assert_array_equal(rows[capped.adv_orig_index], kept["sample"])
    fig = embed.plot_adversarial_umap([panel])  # the one-liner
    assert_no_text_clipped(fig)
    plt.close(fig)


def test_umap_panel_names_what_is_wrong(digits_result):
    import types

    from drsl_utils.errors import FeatureSourceError

    res = digits_result
    name = res.models["model"].iloc[0]
    with pytest.raises(ValueError, match="model='nope' is not in the result"):
        embed.umap_panel(res, "nope", "pgd", 0.1)
    with pytest.raises(ValueError, match="attack='fgsm'"):
        embed.umap_panel(res, name, "fgsm", 0.1)
    with pytest.raises(ValueError, match=r"eps=0\.3 .*eps values present: 0\.1"):
        embed.umap_panel(res, name, "pgd", 0.3)
    # A model without a feature source: features of width 0 (or the result's own error)
    # become one error that names the model and says how to give features.
    n = len(res.labels)
    for clean in (lambda key: np.zeros((n, 0), np.float32),
                  lambda key: (_ for _ in ()).throw(FeatureSourceError("no features"))):
        bare = types.SimpleNamespace(records=res.records, models=res.models,
                                     labels=res.labels, clean_features=clean,
                                     adv_features=res.adv_features)
        with pytest.raises(FeatureSourceError, match=rf"model {name!r} has no features"
                                                     r".*foreign\(model, features="):
            embed.umap_panel(bare, name, "pgd", 0.1)
    with pytest.raises(ValueError, match="AttackResult"):
        embed.umap_panel(res.records, name, "pgd", 0.1)
