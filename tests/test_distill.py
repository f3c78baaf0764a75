"""Teacher-logit manipulations keep exactly what they claim to keep."""

from __future__ import annotations

import pytest
import torch

from drsl_utils.distill import DISTILL_VARIANTS, distillation_loss, transform_teacher_logits
from drsl_utils.training import TrainConfig


@pytest.fixture()
def logits():
    return torch.randn(64, 10, generator=torch.Generator().manual_seed(0)) * 3


def _top2(z):
    v = z.topk(2, dim=1).values
    return v[:, 0], v[:, 0] - v[:, 1]


@pytest.mark.parametrize("variant", DISTILL_VARIANTS)
def test_max_and_argmax_preserved(logits, variant):
    out = transform_teacher_logits(logits, variant, seed=1)
    assert torch.equal(out.argmax(1), logits.argmax(1))
    torch.testing.assert_close(out.max(1).values, logits.max(1).values)


def test_permuted_keeps_values_and_gap_but_moves_order(logits):
    out = transform_teacher_logits(logits, "permuted", seed=1)
    torch.testing.assert_close(out.sort(1).values, logits.sort(1).values)
    torch.testing.assert_close(_top2(out)[1], _top2(logits)[1])
    assert (out != logits).any(1).float().mean() > 0.9


def test_mean_keeps_nonmax_mean(logits):
    out = transform_teacher_logits(logits, "mean")
    k = logits.shape[1]
    rest = lambda z: (z.sum(1) - z.max(1).values) / (k - 1)  # noqa: E731
    torch.testing.assert_close(rest(out), rest(logits))
    assert torch.allclose(out.sort(1).values[:, :-1].std(1), torch.zeros(len(out)), atol=1e-5)


def test_max_gap_keeps_only_max_and_gap(logits):
    out = transform_teacher_logits(logits, "max-gap")
    torch.testing.assert_close(_top2(out)[1], _top2(logits)[1])
    assert torch.allclose(out.sort(1).values[:, :-1].std(1), torch.zeros(len(out)), atol=1e-5)


def test_permuted_is_seeded_and_leaves_global_rng(logits):
    state = torch.get_rng_state()
    a = transform_teacher_logits(logits, "permuted", seed=3)
    assert torch.equal(a, transform_teacher_logits(logits, "permuted", seed=3))
    assert not torch.equal(a, transform_teacher_logits(logits, "permuted", seed=4))
    assert torch.equal(state, torch.get_rng_state())


def test_distillation_loss_is_zero_at_the_teacher(logits):
    t = 4.0
    probs = torch.softmax(logits / t, 1)
    labels = logits.argmax(1)
    assert distillation_loss(logits, probs, labels, t, 1.0).abs() < 1e-5
    assert distillation_loss(logits * 0, probs, labels, t, 1.0) > 0.01


@pytest.mark.parametrize("change, param", [
    ({"distill_variant": "shuffle"}, "distill_variant"),
    ({"distill_temperature": 0.0}, "distill_temperature"),
    ({"distill_alpha": 1.5}, "distill_alpha"),
    ({"teacher": TrainConfig(dataset="fashion-mnist")}, "teacher.dataset")])
def test_bad_distillation_config(change, param):
    args = {"dataset": "digits", "teacher": TrainConfig(dataset="digits")} | change
    with pytest.raises(ValueError, match=param):
        TrainConfig(**args)


def test_distilled_student_trains(tmp_path):
    from drsl_utils.training import train

    teacher = TrainConfig(dataset="digits", epochs=4)
    student = train(TrainConfig(dataset="digits", epochs=4, teacher=teacher,
                                distill_variant="permuted"),
                    cache_dir=tmp_path, progress=False, device="cpu")
    assert student.test_accuracy > 0.8
    assert (tmp_path / "models").exists() and len(list((tmp_path / "models").rglob("*.pt"))) == 2


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_matched_keeps_top1_probability_and_entropy_but_not_the_values(logits, temperature):
    out = transform_teacher_logits(logits, "matched", seed=3, temperature=temperature)
    p, q = torch.softmax(logits / temperature, 1), torch.softmax(out / temperature, 1)
    entropy = lambda r: -(r * r.log()).sum(1)  # noqa: E731
    torch.testing.assert_close(q.max(1).values, p.max(1).values, atol=1e-5, rtol=0)
    torch.testing.assert_close(entropy(q), entropy(p), atol=1e-4, rtol=0)
    # The non-max values themselves are new (not a permutation of the old ones).
    assert (out.sort(1).values - logits.sort(1).values).abs().amax(1).gt(1e-3).float().mean() > 0.9
    assert torch.equal(out, transform_teacher_logits(logits, "matched", seed=3,
                                                     temperature=temperature))


def test_mean_and_max_gap_change_top1_probability(logits):
    p = torch.softmax(logits / 4, 1).max(1).values
    for variant in ("mean", "max-gap"):
        q = torch.softmax(transform_teacher_logits(logits, variant) / 4, 1).max(1).values
        assert (q - p).abs().max() > 1e-2
