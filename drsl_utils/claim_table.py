"""The claims this project tests: data, kept apart from the rule in :mod:`.claims`.

Each :class:`~drsl_utils.claims.Claim` names the notebook that measures it, its source,
the statement, the estimand per seed, the direction, the smallest effect of interest
(SESOI) with its justification, and whether it is primary (in the Holm family). Grep a
claim's id to find the notebook cell that produces its evidence.
"""

from __future__ import annotations

from .claims import Claim, register

_PP = {"scale": 100.0, "units": "pp", "digits": 1}
_DLR_SESOI = ("2 pp of robust accuracy is the smallest gain that would change which loss "
              "a practitioner picks; the papers report gains of 10-60 pp")


def _claims() -> list[Claim]:
    c: list[Claim] = []
    # 00 · the tour (digits): a demonstration, not part of the family.
    c += [
        Claim("tour-drsl-harder", "00_tour", "DRSL slides (finding 4), on 8x8 digits",
              "On the tour's digits, DRSL is more robust than CE under PGD at the middle eps.",
              "PGD robust accuracy, DRSL - CE", "greater", 2.0, _DLR_SESOI,
              primary=False, **_PP),
        Claim("tour-second-class", "00_tour", "DRSL slides (finding 1), on 8x8 digits",
              "On the tour's digits, a successful PGD attack usually (> 50 %) lands on the "
              "clean second class.",
              "fraction of successes that land on the clean second class, minus 0.5",
              "greater", 10.0, "'usually' means a clear majority: 60 % rather than a coin "
              "flip", primary=False, unit="seed (CE and DRSL pooled)", **_PP),
    ]
    # 01 · clean accuracy and the mechanism.
    same = ("the slides call 0.3 pp 'the same precision level' (their run-to-run std is "
            "0.12-0.24 pp)")
    c += [
        Claim("drsl-same-accuracy-gce", "01_train_models", "DRSL slides (table)",
              "GCE reaches the same clean accuracy as CE (within 0.3 pp).",
              "full-test clean accuracy, GCE - CE", "equivalent", 0.3, same,
              scale=100.0, units="pp", digits=2),
        Claim("drsl-same-accuracy-drsl", "01_train_models", "DRSL slides (table)",
              "DRSL reaches the same clean accuracy as CE (within 0.3 pp).",
              "full-test clean accuracy, DRSL - CE", "equivalent", 0.3, same,
              scale=100.0, units="pp", digits=2),
        Claim("drsl-mechanism-entropy", "01_train_models", "DRSL paper (loss design)",
              "DRSL makes the non-true softmax entries more uniform (higher entropy) than CE.",
              "mean entropy of the renormalised non-true softmax (test set), DRSL - CE",
              "greater", 0.1, "0.1 nats is 5 % of the largest possible entropy over 9 "
              "classes (2.2 nats)", units="nats", digits=3),
        Claim("drsl-mechanism-p2", "01_train_models", "DRSL paper (loss design)",
              "DRSL lowers the second-largest softmax probability p2 compared with CE.",
              "mean clean p2 (test set), DRSL - CE", "less", 0.005,
              "half a percentage point of probability mass on the runner-up",
              digits=4, primary=False),
    ]
    # 02 · attacks.
    c += [
        Claim("drsl-second-class", "02_attacks", "DRSL slides (finding 1)",
              "After an attack, the adversarial label is usually (> 50 %) the clean second "
              "class.",
              "fraction of PGD successes (middle eps, full test set) that land on the clean "
              "second class, minus 0.5", "greater", 10.0,
              "'usually' means a clear majority: 60 % rather than a coin flip",
              unit="seed (CE, GCE, DRSL pooled)", **_PP),
        Claim("drsl-harder-dlr", "02_attacks", "DRSL slides (finding 4)",
              "At the same clean accuracy, DRSL is more robust than CE (APGD-DLR, a margin "
              "attack that softmax saturation cannot mask).",
              "APGD-DLR robust accuracy at the middle eps, DRSL - CE", "greater", 2.0, _DLR_SESOI,
              **_PP),
        Claim("drsl-harder-pgd", "02_attacks", "DRSL slides (finding 4)",
              "DRSL is more robust than CE under PGD (secondary: PGD attacks cross-entropy, "
              "which a saturated softmax can mask).",
              "PGD robust accuracy at the middle eps (full test set), DRSL - CE", "greater", 2.0,
              _DLR_SESOI, primary=False, **_PP),
        Claim("drsl-harder-autoattack", "02_attacks", "DRSL slides (finding 4)",
              "DRSL is more robust than CE under AutoAttack (secondary).",
              "AutoAttack robust accuracy at the middle eps, DRSL - CE", "greater", 2.0,
              _DLR_SESOI, primary=False, **_PP),
        Claim("drsl-harder-square", "02_attacks", "DRSL slides (finding 4)",
              "DRSL is more robust than CE under the gradient-free Square attack "
              "(secondary).",
              "Square robust accuracy at the middle eps, DRSL - CE", "greater", 2.0, _DLR_SESOI,
              primary=False, **_PP),
        Claim("isce-harder-dlr", "02_attacks", "I-SCE paper",
              "The I-SCE-style margin loss is more robust than softmax CE (APGD-DLR; our "
              "margin reading, the published constants are not reproduced).",
              "APGD-DLR robust accuracy at the middle eps, I-SCE - CE", "greater", 2.0,
              _DLR_SESOI, **_PP),
        Claim("isce-harder-pgd", "02_attacks", "I-SCE paper",
              "The I-SCE-style margin loss is more robust than CE under PGD (secondary; the "
              "paper's own attack).",
              "PGD robust accuracy at the middle eps (full test set), I-SCE - CE", "greater",
              2.0, _DLR_SESOI, primary=False, **_PP),
    ]
    # 03 · the second-largest softmax.
    c += [
        Claim("drsl-p2-predicts-success", "03_second_softmax", "DRSL slides (finding 2)",
              "The smaller the clean second-largest softmax p2, the harder the attack "
              "(success rises with p2).",
              "AUC of PGD success (middle eps) against the clean p2, computed per model and "
              "seed and averaged over the models, minus 0.5", "greater", 0.05,
              "an AUC of 0.55 is the usual floor of a weak but useful predictor",
              unit="seed (CE, GCE, DRSL, DRSL-prob averaged)", digits=3),
        Claim("drsl-p2-vs-gap", "03_second_softmax", "DRSL slides (finding 2), our check",
              "p2 predicts attack success better than the logit gap does.",
              "AUC(p2) - AUC(small logit gap) on the same samples, per model and seed, "
              "averaged over the models", "greater", 0.01,
              "a hundredth of AUC is the smallest gap in ranking quality worth a sentence",
              unit="seed (paired on samples)", digits=4),
    ]
    # 04 · logits under adversarial training (against a CE control on the AT data).
    c += [
        Claim("seguin-max-logit", "04_logit_gaps_and_margins", "Seguin et al. 2021",
              "Adversarial training lowers the max logit (PGD-AT vs a CE control trained on "
              "the same images and epochs).",
              "mean max logit on the test set, PGD-AT - CE (AT data)", "less", 0.5,
              "half a logit changes the odds of the top class by a factor of 1.6",
              digits=2),
        Claim("seguin-logit-gap", "04_logit_gaps_and_margins", "Seguin et al. 2021",
              "Adversarial training lowers the logit gap (max minus runner-up; PGD-AT vs "
              "the CE control).",
              "mean logit gap on the test set, PGD-AT - CE (AT data)", "less", 0.5,
              "half a logit changes the odds of the top class against the runner-up by a "
              "factor of 1.6", digits=2),
        Claim("seguin-confidence-disagree", "04_logit_gaps_and_margins", "Seguin et al. 2021",
              "AT and standard models disagree on which samples are confident.",
              "Spearman correlation of the top-class probability: CE (AT data) vs another "
              "CE seed, minus CE (AT data) vs PGD-AT of the same seed", "greater", 0.05,
              "0.05 of rank correlation is a visible change in which samples are confident",
              digits=3),
        Claim("sovr-two-peaks", "04_logit_gaps_and_margins", "Kanai et al. (SOVR)",
              "Under adversarial training the logit-margin histogram has two peaks.",
              "Hartigan's dip statistic of PGD-AT's test-set margins, minus its 5 % "
              "critical value under a unimodal null at the same n", "greater", 0.005,
              "a dip 0.005 above its 5 % critical value (0.0054 at n = 10,000) is twice "
              "that value: a second peak any histogram would show", unit="seed", digits=4),
        Claim("sovr-raises-margins", "04_logit_gaps_and_margins", "Kanai et al. (SOVR)",
              "SOVR moves mass away from small logit margins compared with PGD-AT.",
              "share of test samples with logit margin < 1, SOVR-AT - PGD-AT", "less", 2.0,
              "2 % of the test set is the smallest shift of the margin histogram the "
              "paper's figures would show", **_PP),
    ]
    # 05 · UMAP.
    c += [
        Claim("drsl-umap-tips", "05_umap_adversarial_clusters", "DRSL slides (finding 5)",
              "DRSL's adversarial examples sit at the tips of class clusters, CE's spread "
              "out (closer to the adversarial-class cluster).",
              "mean distance of successful PGD examples to their adversarial-class "
              "centroid in the UMAP, in RMS cluster radii, DRSL - CE", "less", 0.2,
              "a fifth of a cluster radius is the smallest shift visible in the panels",
              units="radii", digits=2),
        Claim("drsl-umap-purity", "05_umap_adversarial_clusters", "DRSL slides (finding 5)",
              "DRSL's adversarial examples have purer adversarial-class neighbourhoods than "
              "CE's (secondary).",
              "kNN purity of the adversarial class around successful PGD examples, "
              "DRSL - CE", "greater", 0.05,
              "5 % of the neighbours changing class", digits=3, primary=False),
    ]
    # 06 · label noise.
    noise = ("1 pp of clean accuracy under noise is the smallest gain worth choosing a "
             "loss for; noise-robust losses report 5-20 pp")
    c += [
        Claim("drsl-noise-symmetric", "06_label_noise", "DRSL slides (finding 4)",
              "DRSL is more robust to symmetric label noise than CE (40 % noise).",
              "clean test accuracy after training with 40 % symmetric noise, DRSL - CE",
              "greater", 1.0, noise, **_PP),
        Claim("drsl-noise-pair", "06_label_noise", "DRSL slides (finding 4)",
              "DRSL is more robust to pair-flip label noise than CE (40 % noise).",
              "clean test accuracy after training with 40 % pair-flip noise, DRSL - CE",
              "greater", 1.0, noise, **_PP),
        Claim("gce-memorises-less", "06_label_noise",
              "Zhang & Sabuncu 2018 (GCE), as cited on the DRSL slides",
              "GCE memorises fewer noisy labels than CE (40 % symmetric noise).",
              "share of flipped training labels the model predicts, GCE - CE", "less", 2.0,
              "2 % of the flipped labels", **_PP),
    ]
    # 07 · tau sweep.
    c += [
        Claim("drsl-matched-precision", "07_tau_sweep", "DRSL slides (finding 4)",
              "At matched clean accuracy, DRSL is more robust than CE (tau chosen on a "
              "held-out split, APGD-DLR).",
              "APGD-DLR robust accuracy at the middle eps, DRSL (tau chosen on held-out data) - CE",
              "greater", 2.0, _DLR_SESOI, **_PP),
        Claim("drsl-matched-precision-pgd", "07_tau_sweep", "DRSL slides (finding 4)",
              "At matched clean accuracy, DRSL is more robust than CE under PGD "
              "(secondary).",
              "PGD robust accuracy at the middle eps (full test set), DRSL (tau chosen on held-out "
              "data) - CE", "greater", 2.0, _DLR_SESOI, primary=False, **_PP),
        Claim("drsl-tau-entropy", "07_tau_sweep", "DRSL paper (loss design)",
              "A larger tau makes the non-true softmax entries more uniform (higher "
              "entropy).",
              "mean non-true entropy, largest minus smallest tau (logit reading)", "greater",
              0.1, "0.1 nats is 5 % of the largest possible entropy over 9 classes",
              units="nats", digits=3),
    ]
    # 08 · adversarial training.
    c += [
        Claim("at-sanity", "08_adversarial_training", "Madry et al. 2018 (sanity check)",
              "PGD-AT is more robust than standard CE (trained on the same images) under "
              "AutoAttack.",
              "AutoAttack robust accuracy at the training eps, PGD-AT - CE (AT data)",
              "greater", 5.0,
              "adversarial training that gains less than 5 pp at its own eps has failed",
              **_PP),
        Claim("sovr-autoattack", "08_adversarial_training", "Kanai et al. (SOVR)",
              "SOVR inside PGD-AT beats plain PGD-AT under AutoAttack.",
              "AutoAttack robust accuracy at the training eps, SOVR-AT - PGD-AT", "greater",
              1.0, "Kanai et al. report gains of 1-2 pp under AutoAttack; 1 pp is the "
              "smallest they would claim", **_PP),
        Claim("sovr-pgd-overstates", "08_adversarial_training", "Kanai et al. (SOVR), our check",
              "Robust accuracy under PGD overstates AutoAttack robust accuracy for an AT "
              "model.",
              "PGD minus AutoAttack robust accuracy of PGD-AT at the training eps",
              "greater", 0.5, "half a point is the precision robust accuracy is usually "
              "reported with", **_PP),
    ]
    # 09 · distillation.
    c += [
        Claim("seguin-distill-transfer", "09_distillation", "Seguin et al. 2021",
              "Distilling an AT teacher (clean inputs only) transfers some robustness.",
              "APGD-DLR robust accuracy at the training eps, full-logit student - CE student",
              "greater", 2.0, _DLR_SESOI, **_PP),
        Claim("seguin-distill-permuted", "09_distillation", "Seguin et al. 2021",
              "Scrambling the order of the teacher's non-max logits (same top-1 probability "
              "and entropy) lowers the student's robustness.",
              "APGD-DLR robust accuracy at the training eps, permuted - full student", "less", 2.0,
              _DLR_SESOI, **_PP),
        Claim("seguin-distill-matched", "09_distillation", "Seguin et al. 2021",
              "Replacing the teacher's non-max logits by uninformative ones with the same "
              "top-1 probability and entropy lowers the student's robustness.",
              "APGD-DLR robust accuracy at the training eps, entropy-matched - full student", "less",
              2.0, _DLR_SESOI, **_PP),
        Claim("seguin-distill-mean", "09_distillation", "Seguin et al. 2021",
              "Replacing the non-max logits by their mean lowers the student's robustness "
              "(secondary: this also raises the teacher's entropy).",
              "APGD-DLR robust accuracy at the training eps, mean - full student", "less", 2.0,
              _DLR_SESOI, primary=False, **_PP),
        Claim("seguin-distill-max-gap", "09_distillation", "Seguin et al. 2021",
              "Keeping only the max and the gap lowers the student's robustness (secondary: "
              "this also lowers the teacher's top-1 probability).",
              "APGD-DLR robust accuracy at the training eps, max-gap - full student", "less", 2.0,
              _DLR_SESOI, primary=False, **_PP),
        Claim("seguin-distill-transfer-pgd", "09_distillation", "Seguin et al. 2021",
              "Distillation transfers robustness under PGD (secondary).",
              "PGD robust accuracy at the training eps (full test set), full-logit student - CE "
              "student", "greater", 2.0, _DLR_SESOI, primary=False, **_PP),
    ]
    # 10 · more models.
    c += [
        Claim("drsl-more-models-cnn", "10_more_models", "DRSL slides (conclusion)",
              "DRSL's robustness gain over CE carries over to a CNN (APGD-DLR).",
              "APGD-DLR robust accuracy at the middle eps, DRSL - CE, CNN", "greater", 2.0,
              _DLR_SESOI, **_PP),
        Claim("drsl-more-models-cnn-pgd", "10_more_models", "DRSL slides (conclusion)",
              "DRSL's robustness gain over CE carries over to a CNN under PGD (secondary).",
              "PGD robust accuracy at the middle eps, DRSL - CE, CNN", "greater",
              2.0, _DLR_SESOI, primary=False, **_PP),
        Claim("drsl-more-models-resnet18", "10_more_models", "DRSL slides (conclusion)",
              "DRSL's robustness gain over CE carries over to ResNet-18 (APGD-DLR; paper "
              "profile only).",
              "APGD-DLR robust accuracy at the middle eps, DRSL - CE, ResNet-18", "greater", 2.0,
              _DLR_SESOI, **_PP),
        Claim("drsl-more-models-resnet18-pgd", "10_more_models", "DRSL slides (conclusion)",
              "DRSL's robustness gain over CE carries over to ResNet-18 under PGD "
              "(secondary; paper profile only).",
              "PGD robust accuracy at the middle eps, DRSL - CE, ResNet-18", "greater", 2.0,
              _DLR_SESOI, primary=False, **_PP),
    ]
    return c


for _claim in _claims():
    register(_claim)
