"""The CAL method object: precision under autocast and DPP's optimiser-state rules."""
import numpy as np
import pytest
import torch

from models.cal import CAL
from models.method import EpochEnd
from discovery.seeding import centroid_logit_norm
from utils.config import defaults, merge


def no_features():
    raise AssertionError("this epoch end must not need the training features")


def _cal(**overrides):
    cfg = merge(defaults(), {"backbone": "resnet18", "pretrained": False, "epochs": 4, "cal_pseudo_start": 0,
                             **overrides}, "test")
    torch.manual_seed(0)
    return CAL(cfg, num_known=2, num_classes=5)


def _batch(rows=6, size=32):
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2 * rows, 3, size, size), dtype=torch.uint8, generator=g)
    return {"weak": images[:rows], "strong": images[rows:], "label": torch.tensor([0, 1, -1, -1, -1, 1])}


def test_autocast_runs_backbone_in_bf16_but_head_and_losses_in_fp32():
    """Under bf16 autocast the backbone's feature map is bf16, while the BNNeck feature,
    the logits and every loss term are float32 (METHOD.md section 6)."""
    cal = _cal()
    seen = {}
    cal.net.backbone.register_forward_hook(lambda m, i, out: seen.setdefault("fmap", out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fmap = cal.net.backbone.forward_features(torch.randn(2, 3, 32, 32))
        feature = cal.net.features(torch.randn(2, 3, 32, 32))
        logits = cal.predict(torch.randn(2, 3, 32, 32))
        out = cal.training_step(_batch(), epoch=1)
    assert fmap.dtype == torch.bfloat16, "autocast must really be on for the backbone"
    assert feature.dtype == torch.float32 and logits.dtype == torch.float32
    assert set(out) >= {"loss", "sup", "reg", "ccr", "acr"}
    for name, value in out.items():
        assert value.dtype == torch.float32, name


def test_fp32_head_is_the_same_computation_as_without_autocast():
    """With the backbone output fixed, the head under autocast equals the head in fp32 exactly
    (the head does not run in bf16 at all)."""
    cal = _cal()
    cal.model.eval()
    fmap = torch.randn(3, cal.net.backbone.num_features, 1, 1)
    cal.net.backbone.forward_features = lambda x: fmap
    cal.net.attention = None
    images = torch.randn(3, 3, 32, 32)
    plain = cal.predict(images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = cal.predict(images)
    assert torch.equal(plain, mixed)


def _train_and_prune(rule):
    """Two Adam steps on an unknown-K CAL (2 known -> 20 prototypes), then pruning with a
    crafted usage: novel rows 5, 9, 13 used 500, 300, 200 times, the other 15 never.
    Sorted s = [500, 300, 200, 0, ...]: coverage .5, .8, 1 -> k_min = 2; tail mean 200/16,
    mean difference 200/15; i = 3 accepted by the difference rule (|0 - 200|), i = 4 stops
    -> 4 kept: rows 5, 9, 13 and row 2 (first of the unused ones, index order)."""
    cal = _cal(unknown_k=True, cal_novel_prototypes="paper", cal_prune_optimizer_state=rule)
    optimizer = torch.optim.Adam(cal.parameters(), lr=1e-3)
    for _ in range(2):
        optimizer.zero_grad()
        cal.training_step(_batch(), epoch=1)["loss"].backward()
        optimizer.step()
    weight = cal.net.prototypes.weight
    before = {k: v.clone() for k, v in optimizer.state[weight].items()}
    usage = torch.zeros(20, dtype=torch.long)
    usage[[5, 9, 13]] = torch.tensor([500, 300, 200])  # novel rows; all others unused
    cal.usage = usage
    logs = cal.on_epoch_end(1, EpochEnd(lambda t: t, optimizer, no_features))
    return cal, logs, before, optimizer.state[weight]


@pytest.mark.parametrize("rule", ["keep", "move"])
def test_on_epoch_end_prunes_and_applies_the_optimizer_rule(rule):
    cal, logs, before, state = _train_and_prune(rule)
    assert logs["valid_prototypes"] == 6 and logs["k_novel_estimate"] == 4 and logs["model_changed"] is True
    for key in ("exp_avg", "exp_avg_sq"):
        if rule == "keep":
            assert torch.equal(state[key], before[key]), key
        else:  # anchors 5, 9, 13, 2 now live at rows 2, 3, 4, 5 with their own moments
            assert torch.equal(state[key][2:6], before[key][[5, 9, 13, 2]]), key
            assert torch.equal(state[key][:2], before[key][:2]), key
        assert torch.count_nonzero(state[key][2:6]) > 0, "moments are never zeroed"
    assert torch.equal(torch.as_tensor(state["step"]), torch.as_tensor(before["step"]))


def test_on_epoch_end_without_pruning_reports_no_change():
    """Usage spread evenly over all 18 novel prototypes: nothing pruned, model unchanged."""
    cal = _cal(unknown_k=True, cal_novel_prototypes="paper")
    weight = cal.net.prototypes.weight.detach().clone()
    cal.usage = torch.full((20,), 7, dtype=torch.long)
    logs = cal.on_epoch_end(0, EpochEnd(lambda t: t, torch.optim.Adam(cal.parameters()), no_features))
    assert logs["model_changed"] is False and logs["k_novel_estimate"] == 18
    assert torch.equal(cal.net.prototypes.weight, weight)


def test_prune_start_waits():
    """prune_start=2: the end of epochs 0 and 1 prunes nothing whatever the usage; epoch 2 prunes."""
    cal = _cal(unknown_k=True, cal_novel_prototypes="paper", cal_prune_start=2)
    optimizer = torch.optim.Adam(cal.parameters())
    for epoch, expected_valid in ((0, 20), (1, 20), (2, 6)):
        usage = torch.zeros(cal.net.prototypes.num_valid, dtype=torch.long)
        usage[[5, 9, 13]] = torch.tensor([500, 300, 200])
        cal.usage = usage
        logs = cal.on_epoch_end(epoch, EpochEnd(lambda t: t, optimizer, no_features))
        assert logs["valid_prototypes"] == expected_valid, epoch
        assert logs["model_changed"] is (epoch == 2)


def _counting(features, labels, calls):
    """A ``train_features`` callable that returns the given arrays and records each call in ``calls``."""
    def train_features():
        calls.append(1)
        return features.numpy(), labels.numpy()
    return train_features


def _three_novel_blobs(cal):
    """Training features of 5 separated blobs: 2 known classes (half labelled) and 3 novel."""
    dim = cal.net.prototypes.weight.shape[1]
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(5, dim, generator=g), dim=1) * 10
    rows = torch.arange(5).repeat_interleave(40)
    features = centres[rows] + 0.3 * torch.randn(200, dim, generator=g)
    labels = torch.where(rows < 2, rows, -1)
    labels[torch.nonzero(rows < 2).flatten()[::2]] = -1
    return centres, features, labels


@pytest.mark.parametrize("used, kept, warned", [([500, 300, 200], 4, False), ([100] * 18, 18, True)])
def test_the_last_dpp_epoch_logs_the_posthoc_count_and_warns_when_they_differ_by_half(used, kept, warned, caplog):
    """DPP keeps 4 novel prototypes (3 used: its tail rule keeps one more) or all 18 (all used alike);
    the post-hoc estimate on the same features counts the 3 novel blobs, logged beside it; 3 is less
    than half of 18: one warning line. Earlier epochs never ask for the features."""
    cal = _cal(unknown_k=True, cal_novel_prototypes="paper")
    _, features, labels = _three_novel_blobs(cal)
    calls = []
    train_features = _counting(features, labels, calls)

    optimizer = torch.optim.Adam(cal.parameters())
    for epoch in range(4):
        cal.usage = torch.zeros(cal.net.prototypes.num_valid, dtype=torch.long)
        cal.usage[2:2 + len(used)] = torch.tensor(used)
        with caplog.at_level("INFO", logger="models.cal"):
            logs = cal.on_epoch_end(epoch, EpochEnd(lambda t: t, optimizer, train_features))
        assert len(calls) == (epoch == 3), epoch
    assert logs["k_novel_estimate"] == kept and logs["k_posthoc"] == 3 and logs["k_posthoc_seconds"] >= 0
    lines = [r for r in caplog.records if "post-hoc estimate on the same features counts 3" in r.getMessage()]
    assert len(lines) == 1 and (lines[0].levelname == "WARNING") is warned
    assert ("differ by more than half" in lines[0].getMessage()) is warned


def test_posthoc_source_sets_the_novel_prototypes_at_posthoc_epoch():
    """cal_novel_prototypes=seeded, cal_seed_epoch=1: epoch 0 changes nothing and never asks for
    features; at epoch 1 the estimator finds the 3 novel blobs of well-separated training
    features (2 known classes labelled) and the novel prototypes become their centres."""
    cal = _cal(unknown_k=True, cal_novel_prototypes="seeded", cal_seed_epoch=1)
    centres, features, labels = _three_novel_blobs(cal)
    calls = []
    train_features = _counting(features, labels, calls)

    optimizer = torch.optim.Adam(cal.parameters())
    logs = cal.on_epoch_end(0, EpochEnd(lambda t: t, optimizer, train_features))
    assert not calls and logs["model_changed"] is False and logs["valid_prototypes"] == 20
    logs = cal.on_epoch_end(1, EpochEnd(lambda t: t, optimizer, train_features))
    assert calls and logs["model_changed"] is True
    assert logs["k_novel_estimate"] == logs["k_posthoc"] == 3 and logs["valid_prototypes"] == 5
    novel = torch.nn.functional.normalize(cal.net.prototypes.weight[2:5].detach(), dim=1)
    similarity = novel @ torch.nn.functional.normalize(centres[2:], dim=1).t()
    assert sorted(similarity.argmax(dim=1).tolist()) == [0, 1, 2] and similarity.max(dim=1).values.min() > 0.99
    weight = cal.net.prototypes.weight.detach()
    norm = centroid_logit_norm(weight[:2], features, labels)  # the known rows did not move
    expected = weight[:2].norm(dim=1).mean() if norm is None else norm
    np.testing.assert_allclose(weight[2:5].norm(dim=1).numpy(), float(expected), rtol=1e-5)


def test_known_k_seeds_the_given_number_of_novel_prototypes_onto_cluster_centres():
    """Known K (5 classes, 2 known), cal_seed_epoch=0: 20 rows train before the seed (over-complete,
    as unknown K); at the end of epoch 0 the 3 given novel prototypes become the centres of the 3
    novel blobs, at the norm rule of discovery/seeding.py, and only 5 rows stay valid."""
    cal = _cal(cal_novel_prototypes="seeded", cal_seed_epoch=0)
    assert cal.net.prototypes.num_valid == 20
    centres, features, labels = _three_novel_blobs(cal)
    calls = []
    logs = cal.on_epoch_end(0, EpochEnd(lambda t: t, torch.optim.Adam(cal.parameters()),
                                        _counting(features, labels, calls)))
    assert calls and logs["model_changed"] is True and logs["valid_prototypes"] == 5
    novel = torch.nn.functional.normalize(cal.net.prototypes.weight[2:5].detach(), dim=1)
    similarity = novel @ torch.nn.functional.normalize(centres[2:], dim=1).t()
    assert sorted(similarity.argmax(dim=1).tolist()) == [0, 1, 2] and similarity.max(dim=1).values.min() > 0.99
    later = cal.on_epoch_end(1, EpochEnd(lambda t: t, torch.optim.Adam(cal.parameters()), no_features))
    assert later["model_changed"] is False and later["valid_prototypes"] == 5
    resumed = _cal(cal_novel_prototypes="seeded", cal_seed_epoch=0)  # what a resume or an export load builds
    resumed.net.load_state_dict(cal.net.state_dict())
    resumed.load_state_dict(cal.state_dict())
    assert resumed.net.prototypes.num_valid == 5
    assert torch.equal(resumed.net.prototypes.valid_rows(), cal.net.prototypes.valid_rows())


def test_the_papers_known_k_keeps_its_random_novel_prototypes():
    cal = _cal(cal_novel_prototypes="paper")
    weight = cal.net.prototypes.weight.detach().clone()
    logs = cal.on_epoch_end(0, EpochEnd(lambda t: t, torch.optim.Adam(cal.parameters()), no_features))
    assert cal.net.prototypes.num_valid == 5 and not logs.get("model_changed")
    assert torch.equal(cal.net.prototypes.weight, weight)


def test_cosine_classifier_gives_cosine_logits_and_predicts_at_the_student_temperature():
    """cal_classifier=cosine: training logits are cos(z, w) (at most 1 in size, whatever the
    prototypes' norms) and predict() divides them by cal_tau_student, so its softmax is the one
    the losses train; the paper's plain classifier predicts its raw logits z.w."""
    cal = _cal(cal_classifier="cosine", cal_tau_student=0.1)
    cal.model.eval()
    images = _batch()["weak"]
    with torch.no_grad():
        cal.net.prototypes.weight.mul_(50.0)
        logits = cal.model(images)
        z = cal.net.features(images)
        expected = torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(
            cal.net.prototypes.valid_rows(), dim=1).t()
        torch.testing.assert_close(logits, expected)
        assert logits.abs().max() <= 1 + 1e-5
        torch.testing.assert_close(cal.predict(images), logits / 0.1)
    plain = _cal(cal_classifier="plain", cal_tau_student=1.0)
    plain.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain.predict(images), plain.net.features(images) @ plain.net.prototypes.valid_rows().t())


@pytest.mark.parametrize("unknown_k, novel_prototypes, epoch, tau", [
    (True, "seeded", 0, 1.0), (True, "seeded", 2, 1.0), (True, "seeded", 3, 0.05), (False, "seeded", 0, 0.05),
    (True, "paper", 0, 0.05)])
def test_the_prior_is_at_its_count_temperature_until_the_posthoc_count(unknown_k, novel_prototypes, epoch, tau):
    """L_reg averages its softmax at cal_tau_prior_count up to the end of cal_seed_epoch with
    unknown K and seeded prototypes (the count's features), at cal_tau_prior otherwise."""
    from losses.prior import prior_regularisation

    cal = _cal(unknown_k=unknown_k, cal_novel_prototypes=novel_prototypes, cal_seed_epoch=2, cal_tau_prior=0.05,
               cal_tau_prior_count=1.0)
    cal.model.eval()
    batch = _batch()
    with torch.no_grad():
        logits = cal.model(torch.cat([batch["weak"], batch["strong"]]))
        reg = cal.training_step(batch, epoch=epoch)["reg"]
    weak, strong = logits.chunk(2)
    assert torch.allclose(reg, prior_regularisation(weak, strong, tau))
    other = 0.05 if tau == 1.0 else 1.0
    assert not torch.allclose(reg, prior_regularisation(weak, strong, other))
