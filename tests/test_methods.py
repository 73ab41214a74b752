"""The method table and the baselines' networks: every method builds from a
config, trains one step through the contract, and bad names fail in one line."""
import pytest
import torch

from models.cpl import part_pool
from models.method import METHODS, create_method
from utils.config import SECTIONS, ConfigError, load_config

TINY = ["backbone=resnet18", "pretrained=false", "image_size=32"]


def test_the_config_check_and_the_registry_name_the_same_methods():
    assert set(METHODS) == set(SECTIONS) >= {"cal", "cpl", "simgcd"}


def test_unknown_method_is_one_line_listing_the_valid_ones():
    with pytest.raises(ConfigError, match="method='orca'.*cal, cpl, simgcd"):
        load_config(None, ["method=orca"])
    cfg = load_config(None, TINY)
    cfg.method = "orca"
    with pytest.raises(ConfigError, match="valid: cal, cpl, simgcd"):
        create_method(cfg, 2, 3)


def test_baselines_need_a_known_number_of_classes():
    with pytest.raises(ConfigError, match="method=cpl needs a known number of classes; set unknown_k=false"):
        load_config(None, ["method=cpl", "unknown_k=true"])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_a_step_and_predicts(name):
    torch.manual_seed(0)
    method = create_method(load_config(None, [f"method={name}", *TINY]), 2, 4)
    batch = {"weak": torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8),
             "strong": torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8),
             "label": torch.tensor([0, 1, 0, -1, -1, -1])}
    method.model.train()
    out = method.training_step(batch, 0)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and all(v.dim() == 0 for v in out.values())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters())
    method.model.eval()
    # CAL sets its novel prototypes at an epoch's end: until then 10 per known class
    assert method.net.prototypes.num_valid == (20 if name == "cal" else 4)
    assert method.predict(batch["weak"]).shape == (6, method.net.prototypes.num_valid)
    assert method.features(batch["weak"]).shape == (6, 512)


def test_part_pool_uses_the_releases_overlapping_windows():
    fmap = torch.arange(64.0).view(1, 1, 8, 8)
    pooled = part_pool(fmap, 3)
    # stride 8 // 3 = 2, window 8 - 2 * 2 = 4: the first window covers rows 0-3, columns 0-3
    assert pooled.shape == (1, 1, 9)
    assert pooled[0, 0, 0].item() == fmap[0, 0, :4, :4].mean().item()
    assert pooled[0, 0, 8].item() == fmap[0, 0, 4:, 4:].mean().item()
    assert part_pool(torch.ones(2, 5, 1, 1), 3).shape == (2, 5, 9)  # a map smaller than the grid


def test_simgcd_logits_are_cosines():
    torch.manual_seed(0)
    method = create_method(load_config(None, ["method=simgcd", *TINY]), 2, 4)
    method.model.eval()
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    cosines = method.model(images)
    assert cosines.abs().max() <= 1.0 + 1e-5
    assert torch.allclose(method.predict(images), cosines / 0.1)  # at the student temperature
