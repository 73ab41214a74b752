"""Loss terms of METHOD.md section 4 against hand-computed numbers.

Every expected value is computed here from the spec's formula with plain
Python / numpy loops (or written out by hand), never by the code under test.
"""
import math

import numpy as np
import pytest
import torch

from losses.acr import acr_loss
from losses.ccr import ccr_loss, ccr_weights
from losses.prior import prior_regularisation
from losses.supervised import supervised_loss

# ----------------------------------------------------------------- helpers (reference maths)

def np_softmax(row, tau=1.0):
    z = np.asarray(row, dtype=np.float64) / tau
    e = np.exp(z - z.max())
    return e / e.sum()


def np_ce(row, label, tau=1.0):
    """-log softmax(row / tau)[label], with a hand log-sum-exp."""
    z = np.asarray(row, dtype=np.float64) / tau
    m = z.max()
    return -(z[label] - (m + math.log(sum(math.exp(v - m) for v in z))))


def t(x, grad=False):
    return torch.tensor(x, dtype=torch.float32, requires_grad=grad)


# ----------------------------------------------------------------- 4.1 supervised

def test_supervised_hand_worked_two_by_three():
    """CE on labelled rows only, both views averaged together (one mean over 2 x n_labelled rows).

    weak row 0 = [0, ln 2, 0] -> softmax = [1/4, 1/2, 1/4]; label 1 -> CE = ln 2.
    strong row 0 = [0, 0, 0] -> softmax uniform; label 1 -> CE = ln 3.
    Row 1 is unlabelled (-1) and must be ignored, whatever its logits.
    Expected = (ln 2 + ln 3) / 2.
    """
    weak = t([[0.0, math.log(2.0), 0.0], [50.0, -50.0, 0.0]])
    strong = t([[0.0, 0.0, 0.0], [-50.0, 50.0, 9.0]])
    labels = torch.tensor([1, -1])
    loss = supervised_loss(weak, strong, labels, tau=1.0)
    assert loss.item() == pytest.approx((math.log(2) + math.log(3)) / 2, rel=1e-6)


def test_supervised_tau_and_mean_over_both_views():
    """Logits divided by tau_s; the mean runs over both views' labelled rows jointly."""
    rng = np.random.default_rng(0)
    weak, strong = rng.normal(size=(5, 4)) * 3, rng.normal(size=(5, 4)) * 3
    labels = [2, -1, 0, 3, -1]
    tau = 0.5
    terms = [np_ce(weak[i], y, tau) for i, y in enumerate(labels) if y >= 0]
    terms += [np_ce(strong[i], y, tau) for i, y in enumerate(labels) if y >= 0]
    expected = sum(terms) / len(terms)  # 6 terms: 3 labelled rows x 2 views
    got = supervised_loss(t(weak), t(strong), torch.tensor(labels), tau=tau)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_supervised_no_labelled_row_is_zero_with_graph():
    """A batch with no labelled row gives 0, and backward still works."""
    weak, strong = t([[1.0, 2.0], [3.0, 4.0]], grad=True), t([[1.0, 0.0], [0.0, 1.0]], grad=True)
    loss = supervised_loss(weak, strong, torch.tensor([-1, -1]))
    assert loss.item() == 0.0
    loss.backward()  # must not raise


# ----------------------------------------------------------------- 4.2 prior regularisation

def test_prior_hand_worked():
    """(log V - H(p_bar)) / 2 with p_bar the mean softmax over all rows of both views.

    weak [[0, 0]] -> [1/2, 1/2]; strong [[ln 3, 0]] -> [3/4, 1/4];
    p_bar = [5/8, 3/8]; H = -(5/8 ln 5/8 + 3/8 ln 3/8);
    expected = (ln 2 - H) / 2.
    """
    weak, strong = t([[0.0, 0.0]]), t([[math.log(3.0), 0.0]])
    h = -(5 / 8 * math.log(5 / 8) + 3 / 8 * math.log(3 / 8))
    expected = (math.log(2) - h) / 2
    # float32 cancellation in log V - H: compare absolutely
    assert prior_regularisation(weak, strong, tau=1.0).item() == pytest.approx(expected, abs=1e-6)


def test_prior_equals_half_kl_to_uniform_with_tau():
    """Equivalently KL(p_bar || uniform) / 2 (two views), with logits divided by tau."""
    rng = np.random.default_rng(1)
    weak, strong = rng.normal(size=(3, 5)) * 2, rng.normal(size=(4, 5)) * 2
    tau = 0.7
    rows = [np_softmax(r, tau) for r in np.concatenate([weak, strong])]
    p_bar = np.mean(rows, axis=0)
    kl = sum(p * math.log(p / (1 / 5)) for p in p_bar)
    assert prior_regularisation(t(weak), t(strong), tau=tau).item() == pytest.approx(kl / 2, abs=1e-6)


def test_prior_zero_when_mean_prediction_uniform():
    """Rows that are each confident but cover all classes equally give p_bar uniform -> 0."""
    weak = t([[30.0, 0.0, 0.0], [0.0, 30.0, 0.0], [0.0, 0.0, 30.0]])
    strong = t([[0.0, 30.0, 0.0], [0.0, 0.0, 30.0], [30.0, 0.0, 0.0]])
    assert abs(prior_regularisation(weak, strong).item()) < 1e-6
    # and all rows on one class is maximal: (ln 3 - 0) / 2
    one = t([[60.0, 0.0, 0.0]] * 3)
    assert prior_regularisation(one, one).item() == pytest.approx(math.log(3) / 2, rel=1e-5)


# ----------------------------------------------------------------- 4.3 CCR

def test_ccr_weights_schedule():
    """w = (1 - lambda) c + lambda (1 - c).

    c = 0.8, lambda = 0.25: 0.75 * 0.8 + 0.25 * 0.2 = 0.65
    c = 0.8, lambda = 1.0 : 0.2 (last epoch: unconfident rows weigh most)
    c = 0.3, lambda = 0.5 : 0.5 * 0.3 + 0.5 * 0.7 = 0.5
    """
    w = ccr_weights(torch.tensor([0.8, 0.8, 0.3]), 0.25)
    assert w[0].item() == pytest.approx(0.65)
    assert ccr_weights(torch.tensor([0.8]), 1.0).item() == pytest.approx(0.2)
    assert ccr_weights(torch.tensor([0.3]), 0.5).item() == pytest.approx(0.5)
    # early in training a confident row outweighs an unconfident one, late the reverse
    early = ccr_weights(torch.tensor([0.9, 0.2]), 1 / 50)
    late = ccr_weights(torch.tensor([0.9, 0.2]), 50 / 50)
    assert early[0] > early[1] and late[0] < late[1]


def _ccr_reference(weak, strong, progress, tau_t, tau_s):
    total = 0.0
    for lw, ls in zip(weak, strong):
        q = np_softmax(lw, tau_t)
        c = q.max()
        w = (1 - progress) * c + progress * (1 - c)
        log_p = np.log(np_softmax(ls, tau_s))
        total += w * -(q * log_p).sum()
    return total / len(weak)


@pytest.mark.parametrize("progress", [0.02, 0.5, 1.0])
def test_ccr_loss_matches_reference(progress):
    """L = mean_rows w * sum_k -q_k log softmax(l_s / tau_s)_k, q = softmax(l_w / tau_t), w from c = max q."""
    rng = np.random.default_rng(2)
    weak, strong = rng.normal(size=(6, 4)) * 0.3, rng.normal(size=(6, 4))
    tau_t, tau_s = 0.1, 1.0
    expected = _ccr_reference(weak, strong, progress, tau_t, tau_s)
    got = ccr_loss(t(weak), t(strong), progress, tau_t, tau_s)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_ccr_loss_hand_worked():
    """One row, two classes, tau_t = 1 for easy numbers.

    weak [ln 3, 0] -> q = [3/4, 1/4], c = 3/4; lambda = 1/2 -> w = 1/2 * 3/4 + 1/2 * 1/4 = 1/2.
    strong [0, 0] -> log p = [-ln 2, -ln 2]; sum_k -q_k log p_k = ln 2.
    L = 1/2 * ln 2.
    """
    got = ccr_loss(t([[math.log(3.0), 0.0]]), t([[0.0, 0.0]]), 0.5, tau_teacher=1.0, tau_student=1.0)
    assert got.item() == pytest.approx(0.5 * math.log(2), rel=1e-6)


def test_ccr_no_gradient_through_teacher_and_weights():
    """Teacher q and weight w are constants: d L / d l_w = 0, and d L / d l_s is the
    plain weighted CE gradient w_i / B * (softmax(l_s/tau_s) - q) / tau_s."""
    rng = np.random.default_rng(3)
    weak_np, strong_np = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    tau_t, tau_s, progress = 0.5, 2.0, 0.3
    weak, strong = t(weak_np, grad=True), t(strong_np, grad=True)
    loss = ccr_loss(weak, strong, progress, tau_t, tau_s)
    g_weak, g_strong = torch.autograd.grad(loss, [weak, strong], allow_unused=True)
    assert g_weak is None or torch.count_nonzero(g_weak) == 0
    expected = np.zeros_like(strong_np)
    for i in range(5):
        q = np_softmax(weak_np[i], tau_t)
        c = q.max()
        w = (1 - progress) * c + progress * (1 - c)
        expected[i] = w / 5 * (np_softmax(strong_np[i], tau_s) - q) / tau_s
    np.testing.assert_allclose(g_strong.numpy(), expected, rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------- 4.4 ACR loss

def test_acr_asymmetric_selection_and_loss():
    """Kept: unlabelled and (known argmax with c >= gamma, or novel argmax with c >= gamma_novel).

    num_known = 2, classes 0,1 known, 2,3 novel, gamma = 0.9, gamma_novel = 0.5.
    row 0: unlabelled, known argmax, c ~ 0.95          -> kept
    row 1: unlabelled, known argmax, c ~ 0.80 (< 0.9)  -> dropped
    row 2: unlabelled, novel argmax, c ~ 0.60 (>= 0.5) -> kept (would fail gamma)
    row 3: unlabelled, novel argmax, c ~ 0.40 (< 0.5)  -> dropped
    row 4: labelled,   known argmax, c ~ 0.99          -> dropped (labelled)
    Loss = mean over kept rows of CE(l_w, argmax).
    """
    def row(argmax, conf):
        # logits giving softmax max == conf exactly: others equal, ratio conf / ((1-conf)/3)
        other = (1 - conf) / 3
        r = np.zeros(4)
        r[argmax] = math.log(conf / other)
        return r

    weak = np.stack([row(0, 0.95), row(1, 0.80), row(2, 0.60), row(3, 0.40), row(1, 0.99)])
    unlabelled = torch.tensor([True, True, True, True, False])
    loss, n_kept = acr_loss(t(weak), unlabelled, num_known=2, gamma=0.9, gamma_novel=0.5, tau=1.0)
    assert int(n_kept) == 2
    expected = (np_ce(weak[0], 0) + np_ce(weak[2], 2)) / 2  # = (-ln 0.95 - ln 0.60) / 2
    assert expected == pytest.approx((-math.log(0.95) - math.log(0.60)) / 2, rel=1e-9)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_acr_symmetric_threshold_drops_the_novel_row():
    """With gamma_novel = gamma (the symmetric ablation) the c = 0.6 novel row is dropped."""
    weak = t([[0.0, 0.0, math.log(0.6 / (0.4 / 3)), 0.0]])
    _, n_kept = acr_loss(weak, torch.tensor([True]), num_known=2, gamma=0.9, gamma_novel=0.9)
    assert int(n_kept) == 0
    _, n_kept = acr_loss(weak, torch.tensor([True]), num_known=2, gamma=0.9, gamma_novel=0.0)
    assert int(n_kept) == 1


def test_acr_confidence_uses_tau():
    """p = softmax(l_w / tau): with tau = 2 a row of c = 0.95 at tau 1 falls below 0.9.

    logits [ln 57, 0, 0, 0] (57 = 0.95 / (0.05/3)); at tau 2: e^{ln 57 / 2} = sqrt 57 = 7.55,
    c = 7.55 / (7.55 + 3) = 0.716 < 0.9 -> dropped.
    """
    weak = t([[math.log(57.0), 0.0, 0.0, 0.0]])
    assert int(acr_loss(weak, torch.tensor([True]), 2, 0.9, 0.5, tau=1.0)[1]) == 1
    assert int(acr_loss(weak, torch.tensor([True]), 2, 0.9, 0.5, tau=2.0)[1]) == 0


def test_acr_nothing_kept_is_zero_with_graph():
    """No row passes: loss 0, n_kept 0, backward works."""
    weak = t([[0.0, 0.0, 0.0, 0.0]], grad=True)
    loss, n_kept = acr_loss(weak, torch.tensor([True]), 2, 0.9, 0.9)
    assert loss.item() == 0.0 and int(n_kept) == 0
    loss.backward()


def test_acr_gradient_is_plain_ce_on_kept_rows():
    """d L / d l_w on a kept row is (softmax(l_w) - onehot(y_hat)) / n_kept; zero on dropped rows."""
    weak_np = np.array([[4.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 5.0]])
    weak = t(weak_np, grad=True)
    loss, n_kept = acr_loss(weak, torch.tensor([True, True, True]), num_known=1, gamma=0.9, gamma_novel=0.9)
    # c: row0 = e^4/(e^4+2) = 0.965 kept, row1 ~ 0.36 dropped, row2 = e^5/(e^5+2) = 0.987 kept
    assert int(n_kept) == 2
    loss.backward()
    expected = np.zeros((3, 3))
    for i, y in ((0, 0), (2, 2)):
        expected[i] = (np_softmax(weak_np[i]) - np.eye(3)[y]) / 2
    np.testing.assert_allclose(weak.grad.numpy(), expected, rtol=1e-4, atol=1e-7)
