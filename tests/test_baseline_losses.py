"""CPL's and SimGCD's loss terms against values worked out by hand (docs/baselines.md)."""
import math

import pytest
import torch

from losses.cpl import (gumbel_targets, margin_cross_entropy, mean_entropy, pairwise_bce, part_similarity,
                        soft_pseudo_label_loss, voting_partners)
from losses.simgcd import (info_nce, mean_entropy_regulariser, self_distillation, supervised_contrastive,
                           teacher_temperature)

LN2 = math.log(2.0)


# ---------------------------------------------------------------- CPL
def test_margin_cross_entropy_raises_the_target_logit_of_labelled_rows_only():
    logits = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    row0 = -1.2 + math.log(math.exp(1.2) + 2)
    row1 = -2.2 + math.log(math.exp(2.2) + 2)
    assert margin_cross_entropy(logits, torch.tensor([0, -1]), 0.2).item() == pytest.approx(row0, abs=1e-6)
    assert margin_cross_entropy(logits, torch.tensor([0, 1]), 0.2).item() == pytest.approx((row0 + row1) / 2, abs=1e-6)
    assert margin_cross_entropy(logits, torch.tensor([-1, -1]), 0.2).item() == 0.0


def test_part_similarity_weights_parts_by_the_rows_own_part_norms():
    # parts [B=2, D=2, K=2]: row 0 parts (1,0) and (0,2); row 1 parts (1,0) and (3,0)
    parts = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[1.0, 3.0], [0.0, 0.0]]])
    sim = part_similarity(parts)
    s5, s10 = math.sqrt(5), math.sqrt(10)
    assert sim.flatten().tolist() == pytest.approx([3 / s5, 1 / s5, 1 / s10, 4 / s10], abs=1e-6)


def test_voting_accepts_a_neighbour_only_when_the_parts_agree():
    glob = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    parts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]).unsqueeze(2)  # one part each
    labels = torch.tensor([-1, -1, 0, 0])
    partner, accepted = voting_partners(glob, parts, labels)
    # row 0: neighbour 1, own best part match 0 < 1 = best match into row 1: rejected, itself
    # row 1: neighbour 0, own best part match 1 >= 0 = best match into row 0: accepted
    # rows 2, 3: the other labelled row of their class
    assert partner.tolist() == [0, 0, 3, 2]
    assert accepted.tolist() == [False, True, False, False]


def test_a_labelled_row_alone_in_its_class_is_its_own_partner():
    glob = torch.eye(3)
    parts = torch.eye(3).unsqueeze(2)
    partner, _ = voting_partners(glob, parts, torch.tensor([0, 1, 1]))
    assert partner.tolist() == [0, 2, 1]


def test_pairwise_bce_is_minus_log_of_the_agreement():
    probs = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], requires_grad=True)
    loss = pairwise_bce(probs, torch.tensor([1, 1]))
    assert loss.item() == pytest.approx((-math.log(0.25) - math.log(0.38)) / 2, abs=1e-6)
    loss.backward()
    assert probs.grad[0].abs().sum() > 0  # both factors carry gradient


def test_soft_pseudo_label_loss_weights_by_confidence_and_vote():
    logits = torch.tensor([[0.0, 0.0, 0.0], [LN2, 0.0, 0.0]])
    targets = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]])
    row0 = math.log(3) / 3                                      # CE log 3, confidence p[1] = 1/3
    row1 = 0.5 * -(0.6 * math.log(0.5) + 0.4 * math.log(0.25))  # confidence p[0] = 1/2
    both = torch.tensor([True, True])
    assert soft_pseudo_label_loss(logits, targets, both, both).item() == pytest.approx((row0 + row1) / 2, abs=1e-6)
    assert soft_pseudo_label_loss(logits, targets, torch.tensor([True, False]), both).item() == \
        pytest.approx(row0 / 2, abs=1e-6)
    assert soft_pseudo_label_loss(logits, targets, both, torch.tensor([True, False])).item() == \
        pytest.approx(row0, abs=1e-6)


def test_gumbel_targets_are_detached_distributions():
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]], requires_grad=True)
    targets = gumbel_targets(logits)
    assert not targets.requires_grad
    assert targets.sum(dim=1).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)


def test_mean_entropy_of_the_mean_prediction():
    probs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert mean_entropy(probs).item() == pytest.approx(LN2, abs=1e-6)


# ---------------------------------------------------------------- SimGCD
def test_teacher_temperature_warms_up_linearly_then_stays():
    assert teacher_temperature(0, 30, 0.07, 0.04) == pytest.approx(0.07)
    assert teacher_temperature(15, 30, 0.07, 0.04) == pytest.approx(0.07 - 0.03 * 15 / 29)
    assert teacher_temperature(29, 30, 0.07, 0.04) == pytest.approx(0.04)
    assert teacher_temperature(40, 30, 0.07, 0.04) == pytest.approx(0.04)
    assert teacher_temperature(0, 1, 0.07, 0.04) == pytest.approx(0.04)


def test_self_distillation_averages_both_directions():
    weak = torch.zeros(2, 3)
    strong = torch.tensor([[LN2, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    # weak teaches strong: row 0 -(1/3)(ln 1/2 + 2 ln 1/4) = 5 ln2 / 3, row 1 ln 3; strong teaches weak: ln 3 twice
    expected = ((5 * LN2 / 3 + math.log(3)) / 2 + math.log(3)) / 2
    loss = self_distillation(weak, strong, 1.0, 1.0)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    assert strong.grad.abs().sum() > 0


def test_self_distillation_sharpens_the_teacher():
    weak = torch.tensor([[LN2, 0.0, 0.0]])
    strong = torch.zeros(1, 3)
    # teacher weak at tau 0.5: softmax(2 ln2, 0, 0) = (4, 1, 1)/6 -> student uniform: ln 3; the other way ln 3 too
    q = [4 / 6, 1 / 6, 1 / 6]
    back = -sum(qi * math.log(pi) for qi, pi in zip([1 / 3] * 3, [0.5, 0.25, 0.25]))
    assert self_distillation(weak, strong, 1.0, 0.5).item() == pytest.approx((math.log(3) * sum(q) + back) / 2,
                                                                            abs=1e-6)


def test_mean_entropy_regulariser_is_log_c_minus_entropy():
    logits = torch.tensor([[LN2, 0.0, 0.0], [0.0, LN2, 0.0]])
    p_bar = [0.375, 0.375, 0.25]
    expected = math.log(3) + sum(p * math.log(p) for p in p_bar)
    assert mean_entropy_regulariser(logits, 1.0).item() == pytest.approx(expected, abs=1e-6)
    assert mean_entropy_regulariser(torch.zeros(2, 3), 0.1).item() == pytest.approx(0.0, abs=1e-6)


def test_info_nce_contrasts_the_other_view_with_every_other_row():
    views = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normalised inside
    # each row: positive similarity 1, two others 0 -> log(2 + e) - 1
    assert info_nce(views, views.clone(), 1.0).item() == pytest.approx(math.log(2 + math.e) - 1, abs=1e-6)
    assert info_nce(views, views.clone(), 0.5).item() == pytest.approx(math.log(2 + math.e ** 2) - 2, abs=1e-6)


def test_supervised_contrastive_ignores_unlabelled_rows():
    views = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    lse = math.log(2 + math.e ** 2)  # similarities / 0.5 of the three other labelled rows: 2, 0, 0
    # labels 0, 1, unlabelled: each anchor's one positive is its other view
    loss = supervised_contrastive(views, views.clone(), torch.tensor([0, 1, -1]), 0.5, 1.0)
    assert loss.item() == pytest.approx(-0.5 * (2 - lse), abs=1e-6)
    # labels 0, 0: every other labelled row is a positive, log-probs -lse, 2-lse, -lse for each anchor
    loss = supervised_contrastive(views, views.clone(), torch.tensor([0, 0, -1]), 0.5, 1.0)
    assert loss.item() == pytest.approx(-0.5 * (2 / 3 - lse), abs=1e-6)


def test_supervised_contrastive_without_labelled_rows_is_zero_and_finite():
    views = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = supervised_contrastive(views, views, torch.tensor([-1, -1]))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(views.grad).all()
