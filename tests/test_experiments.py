"""Profiles and the model zoo."""

from __future__ import annotations

import pytest

from drsl_utils import experiments as ex


def test_profiles_and_overrides():
    p = ex.get_profile("quick")
    # Issue 11: 8 seeds for the main comparison, 5 for every other one.
    assert p.dataset == "fashion-mnist" and p.n_seeds >= 8 and len(p.seeds_other) >= 5
    q = ex.get_profile("quick", dataset=None, seeds=[5], epochs=2)
    assert q.dataset == "fashion-mnist" and q.seeds == (5,) and q.epochs == 2
    # What no verdict rests on uses a prefix of the verdicts' seeds, never more of them.
    assert p.seeds_figure == p.seeds[:3] and set(p.seeds_figure) <= set(p.seeds_other)
    assert ex.get_profile("quick", figure_seeds=9).seeds_figure == p.seeds_other
    s = ex.get_profile("quick").sweep()
    assert s.seeds == p.seeds_other and s.train_size == p.sweep_train_size
    assert p.eps_mid == 0.05 and ex.get_profile("paper").eps_mid == 0.05
    with pytest.raises(ValueError, match="profile='huge'"):
        ex.get_profile("huge")
    with pytest.raises(ValueError, match="unknown profile field"):
        ex.get_profile("quick", epoch=3)


def test_reference_seeds_are_fresh_and_one_per_other_seed():
    for name in ("smoke", "quick", "paper"):
        p = ex.get_profile(name)
        assert len(p.seeds_reference) == len(p.seeds_other)
        assert not set(p.seeds_reference) & set(p.seeds)
    assert ex.get_profile("quick", seeds=[1000, 1001, 1002], other_seeds=2
                          ).seeds_reference == (1003, 1004)


def test_memorisation_regime_is_the_grid_with_fewer_images_and_more_epochs():
    p = ex.get_profile("quick")
    m = p.memorisation()
    assert m.seeds == p.seeds_other == p.sweep().seeds
    assert (m.train_size, m.epochs) == (p.memorise_train_size, p.memorise_epochs)
    # As many gradient steps as a grid model, or it would not fit in the main job.
    assert m.train_size * m.epochs <= p.sweep().train_size * p.sweep().epochs
    assert m.train_size < p.sweep().train_size


def test_validation_split_is_held_out_of_the_grids():
    p = ex.get_profile("smoke")
    val = ex.validation_split(p)
    train = ex.load_dataset(p.dataset, "train")
    used = train.subset(p.sweep().train_size, seed=0)
    assert len(val) == p.validation_size
    seen = {tuple(x.flatten().tolist()) for x in used.images}
    assert not any(tuple(x.flatten().tolist()) in seen for x in val.images[:50])


def test_zoo_configs():
    p = ex.get_profile("smoke")
    drsl = ex.model_config(p, "DRSL", seed=1)
    assert drsl.loss == "drsl" and drsl.seed == 1
    # The authors' sum-over-batch weight b = 0.001 as a batch-mean tau.
    assert drsl.loss_params["tau"] == pytest.approx(0.001 * p.batch_size)
    assert ex.model_config(p, "DRSL", loss_params={"tau": 2.0}).loss_params["tau"] == 2.0
    at = ex.model_config(p, "SOVR-AT")
    assert (at.loss, at.adversarial, at.epochs) == ("sovr", "pgd", p.at_epochs)
    assert at.adversarial_params == {"eps": p.at_eps, "steps": p.at_steps}
    assert at.train_size == p.at_train_size
    names = set(ex.ZOO) | set(ex.AT_ZOO) | {ex.AT_CONTROL}
    assert len({ex.model_config(p, n).key for n in names}) == len(names)
    control = ex.model_config(p, ex.AT_CONTROL)
    assert (control.loss, control.adversarial, control.epochs, control.train_size) == (
        "ce", None, at.epochs, at.train_size)
    q = ex.get_profile("quick")
    assert ex.model_config(q, "CE").model_params == {"hidden": 128}
    # tau=1 and tau=1.0 are one configuration, one cache entry.
    assert (ex.model_config(p, "DRSL", loss_params={"tau": 1}).key
            == ex.model_config(p, "DRSL", loss_params={"tau": 1.0}).key)
    with pytest.raises(ValueError, match="name='XE'"):
        ex.model_config(p, "XE")


def test_attack_suite_covers_every_attack():
    from drsl_utils.attacks import ATTACKS

    for profile in ("smoke", "quick", "paper"):
        suite = ex.attack_suite(ex.get_profile(profile))
        assert sorted(a.name for a in suite) == sorted(ATTACKS)
    names = {a.record_name for a in ex.attack_suite(ex.get_profile("quick"))}
    assert "autoattack-reduced" in names
    assert "autoattack-standard" in {a.record_name for a in
                                     ex.attack_suite(ex.get_profile("paper"))}


def test_train_zoo_and_runs_table(tmp_path, monkeypatch):
    monkeypatch.setenv("DRSL_CACHE_DIR", str(tmp_path))
    p = ex.get_profile("smoke", epochs=1)
    zoo = ex.train_zoo(p, ["CE", "MAE"], progress=False, device="cpu")
    assert list(zoo) == ["CE", "MAE"] and [len(v) for v in zoo.values()] == [2, 2]
    runs = ex.runs_table(zoo)
    assert set(runs["model"]) == {"CE", "MAE"} and set(runs["seed"]) == set(p.seeds)
    from drsl_utils.claims import paired

    assert sorted(paired(runs, "test_accuracy", "CE", "MAE")) == list(p.seeds)


def test_train_zoo_drawn_models_get_the_figure_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("DRSL_CACHE_DIR", str(tmp_path))
    p = ex.get_profile("smoke", epochs=1, figure_seeds=1)
    zoo = ex.train_zoo(p, ["MAE", "CE"], drawn=["MAE"], progress=False, device="cpu")
    assert list(zoo) == ["MAE", "CE"]
    assert [tm.config.seed for tm in zoo["MAE"]] == list(p.seeds_figure) == [p.seeds[0]]
    assert [tm.config.seed for tm in zoo["CE"]] == list(p.seeds)


def test_robust_image_var_is_the_image_variance_of_per_sample_robustness():
    import pandas as pd

    from drsl_utils.claims import image_variance

    # Two models, two seeds, four samples; robust = clean-correct and not flipped.
    rows = []
    for seed in (0, 1):
        for sample, (cc_a, ok_a, cc_b, ok_b) in enumerate(
                [(1, 1, 1, 0), (1, 0, 1, 0), (0, 0, 1, 1), (1, 1, 1, 1)]):
            for model, cc, ok in (("A", cc_a, ok_a), ("B", cc_b, ok_b)):
                rows.append({"model": model, "seed": seed, "sample": sample,
                             "attack": "apgd-dlr", "eps": 0.05, "clean_correct": bool(cc),
                             "success": not ok})
    records = pd.DataFrame(rows)
    other = records.assign(attack="pgd", success=False)  # another attack: filtered out
    got = ex.robust_image_var(pd.concat([records, other]), "A", "B", attack="apgd-dlr",
                              eps=0.05)
    # Paired differences per sample: +1, 0, -1, 0 on both seeds: var 2/3 over 4 samples.
    assert got == pytest.approx((2 / 3) / 4)
    robust = records.assign(robust=(records["clean_correct"] & ~records["success"]).astype(float))
    assert got == pytest.approx(image_variance(robust, "robust", "A", "B"))


def _committed_report_seeds(root, until=None):
    """Every seed in any report ever committed: the evidence of each notebook's record
    (``figures/meta/*.json``) and the rows of ``figures/claims.json``, in every commit
    that touched them (up to and including commit ``until``, when given). None outside
    a git checkout."""
    import json
    import subprocess

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True, check=True).stdout

    try:
        commits = git("log", "--format=%H", *([until] if until else []), "--",
                      "figures/meta", "figures/claims.json")
    except (OSError, subprocess.CalledProcessError):
        return None
    seeds = set()
    for commit in commits.split():
        for path in git("ls-tree", "-r", "--name-only", commit, "figures/").split():
            if not (path.startswith("figures/meta/") and path.endswith(".json")
                    or path == "figures/claims.json"):
                continue
            doc = json.loads(git("show", f"{commit}:{path}"))
            for e in doc.get("evidence", []):
                seeds |= {int(s) for s in e.get("values", {})}
            for row in doc.get("claims", []):
                seeds |= {int(s) for s in row.get("seeds") or []}
    return seeds


def test_the_seed_ledger_holds_every_seed_ever_reported_and_the_confirmatory_block_is_fresh():
    """The confirmatory run's seeds were unseen when the declaration was frozen: its
    block (``figures/confirmatory.json``) avoids :data:`SEEDS_USED`, and the ledger
    holds every seed of every report in the repository's history (so a seed cannot be
    used in an exploratory run and then be left out of the ledger)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    seen = _committed_report_seeds(root)
    if seen is None:
        pytest.skip("not a git checkout: the history of committed reports is unknown")
    assert seen, "no committed report found in the history"
    quick = set(ex.get_profile("quick").seeds_all)
    for name in ("smoke", "paper"):  # the exploratory profiles draw from the ledger only
        assert set(ex.get_profile(name).seeds_all) <= ex.SEEDS_USED, name
    confirm = set(ex.get_profile("confirm").seeds_all)
    assert not confirm & (ex.SEEDS_USED | quick | seen), "the confirm block must be unseen"
    record = root / "figures" / "confirmatory.json"
    if not record.exists():  # frozen, the quick block awaits its run: unseen so far
        assert not quick & (ex.SEEDS_USED | seen), sorted(quick & (ex.SEEDS_USED | seen))
        return
    doc = json.loads(record.read_text())
    block = {int(s) for s in doc["seeds"]}
    assert block and not block & ex.SEEDS_USED, sorted(block & ex.SEEDS_USED)
    assert block == quick
    # Unseen when frozen: no report committed up to the freeze commit used the block.
    before = _committed_report_seeds(root, until=doc["commit"])
    assert before is not None and not before & block, sorted(before & block)
    assert seen <= ex.SEEDS_USED | block, sorted(seen - ex.SEEDS_USED - block)
    for claim, seeds in doc.get("claim_seeds", {}).items():
        assert set(seeds) <= block, claim
