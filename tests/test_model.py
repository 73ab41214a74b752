"""PrototypeNet and PrototypeClassifier (METHOD.md section 3), resnet18 at 32 px on CPU."""
from unittest import mock

import pytest

import torch

from models.heads import PrototypeClassifier
from models.network import PrototypeNet


@pytest.fixture(scope="module")
def images():
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _net(num_prototypes=10, **kwargs):
    torch.manual_seed(0)
    return PrototypeNet(backbone="resnet18", num_prototypes=num_prototypes,
                        **{"frequency_attention": True, "dropout": 0.2, **kwargs})


def test_logits_shape_follows_valid(images):
    """logits [B, valid]; shrinking `valid` shrinks the output width."""
    net = _net(10).eval()
    with torch.no_grad():
        assert net(images).shape == (4, 10)
        net.prototypes.valid.fill_(6)
        assert net(images).shape == (4, 6)


def test_rows_beyond_valid_are_not_scored(images):
    """Changing prototype rows >= valid leaves the logits unchanged; changing a valid row does not."""
    net = _net(10).eval()
    net.prototypes.valid.fill_(6)
    with torch.no_grad():
        before = net(images).clone()
        net.prototypes.weight[6:] = torch.randn(4, net.prototypes.weight.shape[1]) * 100
        torch.testing.assert_close(net(images), before, rtol=0, atol=0)
        net.prototypes.weight[5] += 1.0
        assert not torch.allclose(net(images)[:, 5], before[:, 5])
        torch.testing.assert_close(net(images)[:, :5], before[:, :5], rtol=0, atol=0)


def test_logits_are_plain_dot_products_no_bias(images):
    """logits = z W[:valid]^T with z the BNNeck feature (eval: dropout off), no bias, no normalisation.

    z is rebuilt independently: backbone feature map * attention mask -> GAP -> BatchNorm1d
    with fresh running stats (mean 0, var 1, weight 1, bias 0) -> z = gap / sqrt(1 + eps).
    """
    net = _net(10).eval()
    net.prototypes.valid.fill_(7)
    with torch.no_grad():
        fmap = net.backbone.forward_features(images)
        fmap = fmap * net.attention(images, fmap.shape[-2:])
        gap = fmap.mean(dim=(2, 3))
        z = gap / torch.sqrt(torch.tensor(1.0 + net.neck.eps))
        expected = z @ net.prototypes.weight[:7].t()
        torch.testing.assert_close(net(images), expected, rtol=1e-4, atol=1e-6)


def test_prototype_classifier_alone():
    """PrototypeClassifier: z W[:valid]^T on a hand example; the bias-free, unnormalised product."""
    head = PrototypeClassifier(dim=2, num_prototypes=3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, -1.0], [100.0, 100.0]]))
    head.valid.fill_(2)
    z = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
    # row 0: [1+2, 3-1] = [3, 2]; row 1: [2, 6]
    torch.testing.assert_close(head(z), torch.tensor([[3.0, 2.0], [2.0, 6.0]]))
    assert head.num_valid == 2


def test_valid_count_read_from_the_buffer_only_when_it_changed():
    """A forward reads the cached Python count (no host sync per step on CUDA); an
    in-place change of the buffer (pruning's fill_, load_state_dict's copy_) or a
    new buffer (.to()) is picked up at the next forward."""
    head = PrototypeClassifier(dim=4, num_prototypes=5)
    z = torch.randn(3, 4)
    assert head(z).shape == (3, 5)
    reads = []
    real_int = torch.Tensor.__int__

    def counting_int(tensor):
        reads.append(tensor)
        return real_int(tensor)

    with mock.patch.object(torch.Tensor, "__int__", counting_int):
        for _ in range(3):
            assert head(z).shape == (3, 5)
        assert reads == []
        head.valid.fill_(2)
        assert head(z).shape == (3, 2) and len(reads) == 1
        assert head(z).shape == (3, 2) and len(reads) == 1
        head.load_state_dict({"weight": head.weight.detach().clone(), "valid": torch.tensor(4)})
        assert head(z).shape == (3, 4) and len(reads) == 2
        head._apply(torch.Tensor.clone)  # what .to(device) does: every buffer becomes a new tensor
        assert head.num_valid == 4 and len(reads) == 3
        head.valid.fill_(3)
        assert head(z).shape == (3, 3)


def test_valid_saved_and_restored(images):
    """`valid` is in the state_dict, and load_state_dict restores it into a fresh model
    so a pruned checkpoint evaluates on exactly its rows."""
    net = _net(10).eval()
    with torch.no_grad():
        net.prototypes.weight[6:] = 0
    net.prototypes.valid.fill_(6)
    state = net.state_dict()
    assert "prototypes.valid" in state and int(state["prototypes.valid"]) == 6

    torch.manual_seed(123)
    fresh = PrototypeNet(backbone="resnet18", num_prototypes=10, frequency_attention=True, dropout=0.2).eval()
    assert fresh.prototypes.num_valid == 10
    fresh.load_state_dict(state)
    assert fresh.prototypes.num_valid == 6
    with torch.no_grad():
        torch.testing.assert_close(fresh(images), net(images), rtol=0, atol=0)


def test_valid_survives_save_load_file(tmp_path, images):
    """Same through torch.save / torch.load of the state dict."""
    net = _net(8).eval()
    net.prototypes.valid.fill_(3)
    torch.save(net.state_dict(), tmp_path / "ckpt.pt")
    fresh = PrototypeNet(backbone="resnet18", num_prototypes=8, frequency_attention=True, dropout=0.2).eval()
    fresh.load_state_dict(torch.load(tmp_path / "ckpt.pt"))
    with torch.no_grad():
        assert fresh(images).shape == (4, 3)


def test_bnneck_bias_frozen_at_zero(images):
    """BNNeck: weight initialised to 1, bias 0 and not trainable (no gradient, stays 0 after Adam steps)."""
    net = _net(10).train()
    assert torch.equal(net.neck.weight.detach(), torch.ones_like(net.neck.weight))
    assert torch.equal(net.neck.bias.detach(), torch.zeros_like(net.neck.bias))
    assert net.neck.bias.requires_grad is False
    assert net.neck.weight.requires_grad is True
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-2, weight_decay=1e-3)
    for _ in range(2):
        opt.zero_grad()
        net(images).logsumexp(dim=1).mean().backward()
        opt.step()
    assert net.neck.bias.grad is None
    assert torch.count_nonzero(net.neck.bias) == 0


def test_prototype_init_std():
    """Prototypes ~ normal(0, 0.001): sample std within 5 % of 0.001 and mean near 0
    (10 x 512 = 5120 draws: std of the std estimate ~ 1 %, of the mean ~ 1.4e-5)."""
    net = _net(10)
    w = net.prototypes.weight.detach().double()
    assert w.shape == (10, 512)
    assert abs(w.std().item() - 0.001) < 0.05 * 0.001
    assert abs(w.mean().item()) < 1e-4
    # and the init_std argument is honoured
    w2 = PrototypeClassifier(512, 10, init_std=0.01).weight.detach().double()
    assert abs(w2.std().item() - 0.01) < 0.05 * 0.01


def test_dropout_and_frequency_attention_options(images):
    """dropout p is configurable (train mode then stochastic); frequency_attention=False removes the mask."""
    net = _net(10, dropout=0.2)
    assert net.dropout.p == pytest.approx(0.2)
    plain = _net(10, frequency_attention=False).eval()
    assert plain.attention is None
    with torch.no_grad():
        gap = plain.backbone.forward_features(images).mean(dim=(2, 3))
        expected = gap / torch.sqrt(torch.tensor(1.0 + plain.neck.eps)) @ plain.prototypes.weight.t()
        torch.testing.assert_close(plain(images), expected, rtol=1e-4, atol=1e-6)
    net.train()
    with torch.no_grad():
        a, b = net(images), net(images)
    assert not torch.equal(a, b)  # dropout active in training
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(images), net(images), rtol=0, atol=0)


def test_a_training_step_reads_nothing_back_to_the_host(host_reads):
    """After the first step (which reads the valid count once), forward, the four losses, DPP's
    usage count, backward and fused Adam run without a host read: the trainer's finiteness flag
    stays the one sync per step on CUDA. uint8 views, as the loader ships them."""
    from models.cal import CAL
    from utils.config import load_config

    cfg = load_config(None, ["backbone=resnet18", "pretrained=false", "image_size=32", "cal_pseudo_start=0",
                             "unknown_k=true", "cal_novel_prototypes=paper", "epochs=10"])
    torch.manual_seed(0)
    method = CAL(cfg, num_known=3, num_classes=6)
    optimizer = torch.optim.Adam(method.parameters(), lr=cfg.lr, fused=True)  # as make_optimizer on CUDA
    g = torch.Generator().manual_seed(0)
    batch = {"weak": torch.randint(0, 256, (6, 3, 32, 32), generator=g, dtype=torch.uint8),
             "strong": torch.randint(0, 256, (6, 3, 32, 32), generator=g, dtype=torch.uint8),
             "label": torch.tensor([0, 1, 2, -1, -1, -1])}
    for _ in range(2):  # the second step is the one checked
        spy = host_reads()
        with spy:
            out = method.training_step(batch, epoch=5)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
    assert {"sup", "reg", "ccr", "acr"} <= set(out) and int(method.usage.sum()) == 2 * 6
    assert spy.seen == []
    with spy:
        bool(torch.isfinite(out["loss"]))  # the check sees a host read when there is one
    assert spy.seen == ["_local_scalar_dense"]
