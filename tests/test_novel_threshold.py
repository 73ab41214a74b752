"""NovelThreshold: the adaptive gamma_novel of METHOD.md 4.4, against hand numbers.

gamma_novel = gamma * clamp(m_novel / m_known, 0.1, 10) over the epoch's rows
whose weak and strong argmax agree; m_* = mean weak max-softmax of rows
predicted known / novel.
"""
import math

import numpy as np
import pytest
import torch

from losses.acr import NovelThreshold, acr_loss


def row(argmax, conf, width=4):
    """Logits whose softmax has maximum ``conf`` at ``argmax`` (other entries equal)."""
    other = (1 - conf) / (width - 1)
    r = [0.0] * width
    r[argmax] = math.log(conf / other)
    return r


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_starts_at_zero_and_hand_worked_update():
    """gamma_novel starts at 0; then ratio of the mean confidences sets it.

    num_known = 2 (classes 0, 1), width 4, weak == strong (all rows agree).
    known rows: c = 0.9, 0.7 -> m_known = 0.8
    novel rows: c = 0.6, 0.4 -> m_novel = 0.5
    gamma_novel = 0.9 * 0.5 / 0.8 = 0.5625
    """
    thr = NovelThreshold(gamma=0.9)
    assert thr.gamma_novel == 0.0
    logits = t([row(0, 0.9), row(1, 0.7), row(2, 0.6), row(3, 0.4)])
    thr.accumulate(logits, logits, num_known=2)
    logs = thr.update()
    assert thr.gamma_novel == pytest.approx(0.5625, rel=1e-6)
    assert logs["gamma_novel"] == pytest.approx(0.5625, rel=1e-6)
    assert logs["conf_known_train"] == pytest.approx(0.8, rel=1e-6)
    assert logs["conf_novel_train"] == pytest.approx(0.5, rel=1e-6)
    assert not logs["gamma_novel_above_one"]


def test_confidences_are_taken_at_the_student_temperature():
    """With tau the confidences are those of softmax(l / tau), as acr_loss takes them: logits
    built for 0.9 / 0.7 and 0.6 / 0.4 at tau 1, passed as l * 0.1 with tau 0.1, give the same
    gamma_novel 0.5625."""
    thr = NovelThreshold(gamma=0.9)
    logits = t([row(0, 0.9), row(1, 0.7), row(2, 0.6), row(3, 0.4)]) * 0.1
    thr.accumulate(logits, logits, num_known=2, tau=0.1)
    assert thr.update()["gamma_novel"] == pytest.approx(0.5625, rel=1e-5)


def test_only_rows_whose_weak_and_strong_argmax_agree_count():
    """Disagreeing rows are left out of both statistics.

    weak:   known c=0.9 (agree), known c=0.3 (strong argmax differs),
            novel c=0.6 (agree), novel c=0.95 (strong argmax differs)
    kept stats: m_known = 0.9, m_novel = 0.6 -> gamma_novel = 0.9 * 0.6 / 0.9 = 0.6
    (had all rows counted: m_known = 0.6, m_novel = 0.775 -> 1.1625 * 0.9, a different value)
    """
    weak = t([row(0, 0.9), row(1, 0.3), row(2, 0.6), row(3, 0.95)])
    strong = t([row(0, 0.5), row(2, 0.9), row(2, 0.99), row(1, 0.9)])
    thr = NovelThreshold(gamma=0.9)
    thr.accumulate(weak, strong, num_known=2)
    thr.update()
    assert thr.gamma_novel == pytest.approx(0.6, rel=1e-6)


def test_confidence_is_taken_from_the_weak_view():
    """m_* use max-softmax of l_w, not of l_s (strong only decides agreement).

    weak known c = 0.8, novel c = 0.4 -> 0.9 * 0.4 / 0.8 = 0.45, whatever the strong confidences.
    """
    weak = t([row(0, 0.8), row(2, 0.4)])
    strong = t([row(0, 0.3), row(2, 0.99)])
    thr = NovelThreshold(gamma=0.9)
    thr.accumulate(weak, strong, 2)
    thr.update()
    assert thr.gamma_novel == pytest.approx(0.45, rel=1e-6)


def test_ratio_clamped_below_at_0_1():
    """m_novel / m_known ~ 0.05 / 1 is clamped to 0.1 -> gamma_novel = 0.9 * 0.1 = 0.09.

    width 20, num_known 2: known row conf ~ 1 (logit 40), novel row almost uniform (c = 0.06).
    """
    known = [0.0] * 20
    known[0] = 40.0
    novel = row(5, 0.06, width=20)
    logits = t([known, novel])
    thr = NovelThreshold(gamma=0.9)
    thr.accumulate(logits, logits, 2)
    logs = thr.update()
    assert logs["conf_novel_train"] / logs["conf_known_train"] < 0.1  # the raw ratio is below the clamp
    assert thr.gamma_novel == pytest.approx(0.09, rel=1e-6)


def test_ratio_clamped_above_at_10_and_flag():
    """m_novel / m_known = 0.99 / 0.06 = 16.5 is clamped to 10 -> gamma_novel = 9.0 (> 1, flagged)."""
    logits = t([row(0, 0.06, width=20), row(7, 0.99, width=20)])
    thr = NovelThreshold(gamma=0.9)
    thr.accumulate(logits, logits, 2)
    logs = thr.update()
    assert thr.gamma_novel == pytest.approx(9.0, rel=1e-6)
    assert logs["gamma_novel_above_one"]


def test_above_one_flag_without_clamp():
    """ratio 0.9 / 0.75 = 1.2 -> gamma_novel = 1.08 > 1 -> flag set; the value is kept (rule as published)."""
    logits = t([row(0, 0.75), row(2, 0.9)])
    thr = NovelThreshold(gamma=0.9)
    thr.accumulate(logits, logits, 2)
    logs = thr.update()
    assert thr.gamma_novel == pytest.approx(1.08, rel=1e-6)
    assert bool(logs["gamma_novel_above_one"])
    # and then no novel pseudo-label can pass: even c = 0.999 < 1.08
    weak = t([row(3, 0.999)])
    assert int(acr_loss(weak, torch.tensor([True]), 2, 0.9, thr.gamma_novel)[1]) == 0


@pytest.mark.parametrize("which", ["known_only", "novel_only", "nothing"])
def test_empty_group_leaves_gamma_novel_unchanged(which):
    """When either group has no agreeing row, gamma_novel keeps its previous value."""
    thr = NovelThreshold(gamma=0.9)
    first = t([row(0, 0.8), row(2, 0.4)])
    thr.accumulate(first, first, 2)
    thr.update()
    assert thr.gamma_novel == pytest.approx(0.45, rel=1e-6)
    if which == "known_only":
        logits = t([row(0, 0.99), row(1, 0.5)])
        thr.accumulate(logits, logits, 2)
    elif which == "novel_only":
        logits = t([row(2, 0.99), row(3, 0.5)])
        thr.accumulate(logits, logits, 2)
    thr.update()
    assert thr.gamma_novel == pytest.approx(0.45, rel=1e-6)


def test_empty_group_from_disagreement_keeps_initial_zero():
    """Novel rows exist but none agree -> the novel group is empty -> gamma_novel stays 0."""
    weak = t([row(0, 0.9), row(2, 0.9)])
    strong = t([row(0, 0.9), row(3, 0.9)])
    thr = NovelThreshold(gamma=0.9)
    thr.accumulate(weak, strong, 2)
    thr.update()
    assert thr.gamma_novel == 0.0


def test_update_resets_statistics():
    """Each epoch starts from zero: a second update with nothing accumulated changes nothing."""
    thr = NovelThreshold(gamma=0.9)
    logits = t([row(0, 0.8), row(2, 0.4)])
    thr.accumulate(logits, logits, 2)
    thr.update()
    assert torch.count_nonzero(thr.stats) == 0
    # new epoch: ratio 0.6 / 0.6 = 1 -> 0.9; the previous epoch's rows must not contribute
    logits = t([row(0, 0.6), row(2, 0.6)])
    thr.accumulate(logits, logits, 2)
    thr.update()
    assert thr.gamma_novel == pytest.approx(0.9, rel=1e-6)


def test_stats_sum_over_batches_and_processes():
    """Statistics are sums and counts: the update from the summed stats of two halves
    (two 'processes') equals one pass over the whole batch, and equals the
    hand-computed value from all agreeing rows."""
    rng = np.random.default_rng(0)
    weak = torch.tensor(rng.normal(size=(37, 6)) * 2, dtype=torch.float32)
    strong = weak + torch.tensor(rng.normal(size=(37, 6)), dtype=torch.float32)
    num_known = 3

    whole = NovelThreshold(gamma=0.8)
    whole.accumulate(weak, strong, num_known)
    whole_stats = whole.stats.clone()
    assert whole_stats[1] + whole_stats[3] < 37  # some rows disagree, so the rule is exercised
    whole.update()

    a, b = NovelThreshold(gamma=0.8), NovelThreshold(gamma=0.8)
    a.accumulate(weak[:20], strong[:20], num_known)
    b.accumulate(weak[20:], strong[20:], num_known)
    reduced = NovelThreshold(gamma=0.8)
    reduced.update(a.stats + b.stats)

    sequential = NovelThreshold(gamma=0.8)
    sequential.accumulate(weak[:11], strong[:11], num_known)
    sequential.accumulate(weak[11:], strong[11:], num_known)
    sequential.update()

    # independent reference
    known_c, novel_c = [], []
    for lw, ls in zip(weak.double().numpy(), strong.double().numpy()):
        p = np.exp(lw - lw.max())
        p /= p.sum()
        if p.argmax() != ls.argmax():
            continue
        (known_c if p.argmax() < num_known else novel_c).append(p.max())
    assert known_c and novel_c
    expected = 0.8 * min(max(np.mean(novel_c) / np.mean(known_c), 0.1), 10.0)

    assert whole.gamma_novel == pytest.approx(expected, rel=1e-6)
    # equal up to float32 summation order inside a batch
    assert reduced.gamma_novel == pytest.approx(whole.gamma_novel, rel=1e-6)
    assert sequential.gamma_novel == pytest.approx(whole.gamma_novel, rel=1e-6)
    torch.testing.assert_close(a.stats + b.stats, whole_stats, rtol=1e-6, atol=0)


def test_update_uses_given_stats_not_local_ones():
    """update(stats) uses the reduced stats passed in, not this process's."""
    thr = NovelThreshold(gamma=0.9)
    local = t([row(0, 0.9), row(2, 0.9)])
    thr.accumulate(local, local, 2)  # alone would give 0.9
    other = NovelThreshold(gamma=0.9)
    logits = t([row(0, 0.8), row(2, 0.4)])
    other.accumulate(logits, logits, 2)
    thr.update(other.stats.clone())
    assert thr.gamma_novel == pytest.approx(0.45, rel=1e-6)


def test_symmetric_mode_uses_gamma_for_novel_rows():
    """asymmetric=False: gamma_novel == gamma from the start and after any update."""
    thr = NovelThreshold(gamma=0.9, asymmetric=False)
    assert thr.gamma_novel == pytest.approx(0.9)
    logits = t([row(0, 0.8), row(2, 0.4)])  # asymmetric would give 0.45
    thr.accumulate(logits, logits, 2)
    thr.update()
    assert thr.gamma_novel == pytest.approx(0.9)
    # a novel row at c = 0.6 is then dropped, as a known one would be
    weak = t([row(2, 0.6)])
    assert int(acr_loss(weak, torch.tensor([True]), 2, thr.gamma, thr.gamma_novel)[1]) == 0


def test_state_dict_round_trip():
    """A fresh object loaded from state_dict has the same gamma_novel, mode and pending stats."""
    thr = NovelThreshold(gamma=0.85)
    logits = t([row(0, 0.8), row(2, 0.4)])
    thr.accumulate(logits, logits, 2)
    thr.update()  # gamma_novel = 0.85 * 0.5 = 0.425
    logits = t([row(1, 0.6), row(3, 0.3)])
    thr.accumulate(logits, logits, 2)  # pending stats of an unfinished epoch
    state = thr.state_dict()

    fresh = NovelThreshold()
    fresh.load_state_dict(state)
    assert fresh.gamma == 0.85 and fresh.asymmetric is True
    assert fresh.gamma_novel == pytest.approx(0.425, rel=1e-6)
    torch.testing.assert_close(fresh.stats, thr.stats.cpu())
    # the loaded copy is independent of the original's tensor
    thr.stats.zero_()
    assert torch.count_nonzero(fresh.stats) > 0
    fresh.update()  # 0.85 * 0.3 / 0.6 = 0.425
    assert fresh.gamma_novel == pytest.approx(0.425, rel=1e-6)
