"""Execution choices: the amp rule, autocast, placement, compile wrapping and the optimiser."""
import pytest
import torch

from models.network import PrototypeNet
from models.wrappers import unwrap
from utils.device import AUTO_BF16_MIN_SIZE, autocast_for, compile_network, place_model, use_bf16
from utils.config import ConfigError, defaults, load_config, merge


@pytest.mark.parametrize("amp,size,expected", [("auto", 256, True), ("auto", AUTO_BF16_MIN_SIZE, True),
                                               ("auto", 64, False), ("bf16", 64, True), ("fp32", 256, False)])
def test_use_bf16_rule(amp, size, expected):
    assert use_bf16(amp, size) is expected


def test_amp_booleans_are_aliases_and_bad_values_fail():
    """amp=true/false (command line, old config files, old checkpoints' config.json) mean bf16/fp32."""
    assert defaults().amp == "auto"
    assert load_config(None, ["amp=true"]).amp == "bf16" and load_config(None, ["amp=False"]).amp == "fp32"
    assert merge(defaults(), {"amp": True}, "config.json").amp == "bf16"
    assert merge(defaults(), {"amp": False}, "config.json").amp == "fp32"
    with pytest.raises(ConfigError, match="amp='fp16' must be 'auto', 'bf16' or 'fp32'"):
        load_config(None, ["amp=fp16"])


def test_autocast_for_takes_the_resolved_flag_only():
    with pytest.raises(TypeError, match="use_bf16"):
        autocast_for(torch.device("cpu"), "fp32")
    with autocast_for(torch.device("cpu"), True):  # CPU: never autocast
        assert not torch.is_autocast_enabled("cpu")


def test_compile_applies_on_cuda_only():
    """compile=true (the default) leaves a CPU run eager; on CUDA the network is wrapped
    (torch.compile is lazy: nothing is compiled before the first forward)."""
    net = PrototypeNet(backbone="resnet18", num_prototypes=5)
    assert compile_network(net, torch.device("cpu")) is net
    assert unwrap(compile_network(net, torch.device("cuda"))) is net
    assert compile_network(net, torch.device("cuda")) is not net


def test_compiled_network_saves_bare_state_dict_keys():
    """unwrap() sees through torch.compile (and DDP), so checkpoints never carry `_orig_mod.`
    and load into an uncompiled network (exact resume with compile=true)."""
    net = PrototypeNet(backbone="resnet18", num_prototypes=5)
    compiled = compile_network(net, torch.device("cuda"))
    assert any(k.startswith("_orig_mod.") for k in compiled.state_dict())
    assert unwrap(compiled) is net
    assert list(unwrap(compiled).state_dict()) == list(PrototypeNet(backbone="resnet18", num_prototypes=5).state_dict())
    assert [id(p) for p in compiled.parameters()] == [id(p) for p in net.parameters()]


def test_optimizer_is_adam_with_l2_and_fused_only_on_cuda():
    from models.method import create_method
    from utils.config import load_config

    method = create_method(load_config(None, ["backbone=resnet18", "pretrained=false", "lr=0.1",
                                               "weight_decay=0.01"]), 2, 4)
    opt = method.make_optimizer()
    assert isinstance(opt, torch.optim.Adam) and not opt.param_groups[0]["fused"]
    assert opt.param_groups[0]["weight_decay"] == 0.01 and opt.param_groups[0]["lr"] == 0.1


def test_place_model_sets_cudnn_autotuning_only_for_cuda(monkeypatch):
    """cudnn_benchmark is process-wide: a CPU run must leave it alone, a CUDA placement sets it
    (the CUDA move itself is stubbed, so this runs without a GPU)."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    net = torch.nn.Conv2d(3, 4, 3)
    place_model(net, torch.device("cpu"), channels_last=True, cudnn_benchmark=True)
    assert torch.backends.cudnn.benchmark is False
    assert net.weight.is_contiguous(memory_format=torch.channels_last)
    moved = []
    monkeypatch.setattr(net, "to", lambda *args, **kwargs: moved.append((args, kwargs)) or net)
    place_model(net, torch.device("cuda"), channels_last=False, cudnn_benchmark=True)
    assert torch.backends.cudnn.benchmark is True and moved == [((torch.device("cuda"),), {})]
    place_model(net, torch.device("cuda"), channels_last=False, cudnn_benchmark=False)
    assert torch.backends.cudnn.benchmark is False
    assert defaults().cudnn_benchmark is True
