"""Profiles and the model zoo."""

from __future__ import annotations

import pytest

from drsl_utils import experiments as ex


def test_profiles_and_overrides():
    p = ex.get_profile("quick")
    assert p.dataset == "fashion-mnist" and p.n_seeds == 3
    q = ex.get_profile("quick", dataset=None, seeds=[5], epochs=2)
    assert q.dataset == "fashion-mnist" and q.seeds == (5,) and q.epochs == 2
    s = ex.get_profile("quick").sweep()
    assert s.n_seeds == p.sweep_seeds and s.train_size == p.sweep_train_size
    with pytest.raises(ValueError, match="profile='huge'"):
        ex.get_profile("huge")


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
    names = set(ex.ZOO) | set(ex.AT_ZOO)
    assert len({ex.model_config(p, n).key for n in names}) == len(names)
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
    diff = ex.per_seed_diff(runs, "test_accuracy", "CE", "MAE")
    assert diff.shape == (2,)
