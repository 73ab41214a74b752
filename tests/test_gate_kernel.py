"""The fused gate kernel (models/gate_kernel.py) without a GPU: its values and
parameter gradients against the two convolutions in Triton's interpreter, and
its compilation for Ampere and Hopper with the launch settings it uses."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn

triton = pytest.importorskip("triton")

from models.frequency import FrequencyAttention  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: TRITON_INTERPRET is read when the kernels are defined.
INTERPRETED = r"""
import json, torch, torch.nn as nn, torch.nn.functional as F
from models.frequency import FrequencyAttention
from models import gate_kernel
from models.gate_kernel import fused_gate

def relative(a, b):
    return float((a - b).abs().max() / b.abs().max())

torch.manual_seed(0)
report = {"gate": []}
# odd sizes: images smaller than a tile, partial tiles at the bottom and right, and (3, 33, 40)
# in 3 x 3 forward tiles and two backward programs of 16 tiles; then other tiles, as the benchmark's
defaults = gate_kernel.FORWARD, gate_kernel.BACKWARD
tiles = [defaults] * 3 + [
    ({**gate_kernel.FORWARD, "TILE_H": 8, "TILE_W": 32}, {**gate_kernel.BACKWARD, "TILE_H": 16, "TILE_W": 16})]
for (batch, height, width), (forward, backward) in zip([(2, 7, 13), (1, 16, 16), (3, 33, 40), (2, 21, 45)], tiles):
    gate_kernel.FORWARD, gate_kernel.BACKWARD = forward, backward
    first, second = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 1, 3, padding=1)
    # spectrum-like magnitudes: a large DC term, small high frequencies
    spectrum = torch.randn(batch, 3, height, width) * 4
    spectrum[:, :, 0, 0] *= 100
    upstream = torch.randn(batch, 1, height, width)
    parameters = [first.weight, first.bias, second.weight, second.bias]
    fused = fused_gate(spectrum, first, second)
    fused_grads = torch.autograd.grad((fused * upstream).sum(), parameters)
    expected = torch.sigmoid(second(F.relu(first(spectrum))))
    expected_grads = torch.autograd.grad((expected * upstream).sum(), parameters)
    report["gate"].append({"shape": [batch, height, width], "tiles": [forward["TILE_H"], forward["TILE_W"],
                                                                      backward["TILE_H"], backward["TILE_W"]],
                           "value": float((fused - expected).abs().max()),
                           "grads": [relative(a, b) for a, b in zip(fused_grads, expected_grads)]})

gate_kernel.FORWARD, gate_kernel.BACKWARD = defaults

# the whole attention, channels_last input as in training: fused_gate=true against the default
images = torch.randn(2, 3, 24, 20).contiguous(memory_format=torch.channels_last)
torch.manual_seed(1)
plain = FrequencyAttention()
fused = FrequencyAttention(fused_gate=True)
fused.load_state_dict(plain.state_dict())
masks = [attention(images, (3, 3)) for attention in (plain, fused)]
grads = [torch.autograd.grad(m.square().sum(), list(a.parameters())) for m, a in zip(masks, (plain, fused))]
report["mask"] = float((masks[1] - masks[0]).abs().max())
report["mask_grads"] = [relative(f, p) for f, p in zip(grads[1], grads[0])]
# under torch.compile (dynamo alone here; the trainer compiles on CUDA) the kernel runs in a graph break
compiled = torch.compile(fused, backend="eager")(images, (3, 3))
report["compiled_mask"] = float((compiled - masks[1]).abs().max())
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def interpreted():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", INTERPRETED], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fused_gate_matches_the_two_convolutions(interpreted):
    """Values and all four parameter gradients equal the convolutions' to float32 rounding,
    at the image borders and in partial tiles too, with the kernels' tiles and others."""
    assert len(interpreted["gate"]) == 4
    for case in interpreted["gate"]:
        assert case["value"] < 1e-5, case  # measured up to 7e-7 (summation order differs from conv's)
        assert max(case["grads"]) < 1e-4, case  # measured up to 2e-6


def test_fused_gate_inside_the_attention(interpreted):
    """fused_gate=true computes the same mask and parameter gradients as the default attention,
    compiled too."""
    assert interpreted["mask"] < 1e-5
    assert len(interpreted["mask_grads"]) == 4 and max(interpreted["mask_grads"]) < 1e-4
    assert interpreted["compiled_mask"] < 1e-6


def _compiled(kernel, pointers: list[str], constants: dict, launch: dict, capability: int):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    constants = {**constants, "TILE_H": launch["TILE_H"], "TILE_W": launch["TILE_W"]}
    signature = {**{name: "*fp32" for name in pointers}, "H": "i32", "W": "i32",
                 **{name: "constexpr" for name in constants}}
    source = ASTSource(fn=kernel, signature=signature, constexprs=constants)
    options = {key: launch[key] for key in ("num_warps", "num_stages")}
    return triton.compile(source, target=GPUTarget("cuda", capability, 32), options=options)


@pytest.mark.parametrize("capability", [80, 90])
def test_kernels_compile_for_ampere_and_hopper_without_spills(capability):
    """Both kernels compile to GPU code with their tiles and launch settings (gate_kernel.FORWARD,
    BACKWARD), and ptxas reports no register spills (a spill sends registers through local memory)."""
    from models import gate_kernel as gk
    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    if not ptxas.is_file():
        pytest.skip("Triton's bundled ptxas is missing")
    common = {"PATCH_PADDED": gk.PATCH_PADDED, "HIDDEN": gk.HIDDEN, "TAPS": gk.TAPS}
    kernels = [
        _compiled(gk._gate_forward, ["spectrum_ptr", "w1_ptr", "b1_ptr", "w2_ptr", "b2_ptr", "gate_ptr"],
                  common, gk.FORWARD, capability),
        _compiled(gk._gate_backward, ["spectrum_ptr", "w1_ptr", "b1_ptr", "w2_ptr", "gate_ptr", "grad_ptr",
                                      "partial_ptr"],
                  {**common, "PROGRAM_TILES": gk.PROGRAM_TILES, "ROW": gk.ROW}, gk.BACKWARD, capability)]
    for kernel in kernels:
        assert kernel.asm["cubin"], "no GPU code"
        assert kernel.metadata.shared < 96 * 1024  # leaves room for two programs per SM
        with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as ptx:
            ptx.write(kernel.asm["ptx"])
        arch = "sm_90a" if capability == 90 else f"sm_{capability}"
        report = subprocess.run([str(ptxas), "-v", f"--gpu-name={arch}", ptx.name, "-o", os.devnull],
                                capture_output=True, text=True)
        os.unlink(ptx.name)
        assert report.returncode == 0, report.stderr[-2000:]
        spills = [int(n) for n in re.findall(r"(\d+) bytes spill stores", report.stderr)]
        assert spills and not any(spills), report.stderr[-2000:]


def test_fused_gate_refuses_what_it_cannot_compute():
    from models.gate_kernel import fused_gate
    first, second = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 1, 3, padding=1)
    with pytest.raises(ValueError, match="requires a gradient"):
        fused_gate(torch.zeros(1, 3, 8, 8, requires_grad=True), first, second)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\] spectrum"):
        fused_gate(torch.zeros(1, 4, 8, 8), first, second)
    with pytest.raises(ValueError, match="3x3 convolutions"):
        fused_gate(torch.zeros(1, 3, 8, 8), nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 1, 3, padding=1))
    with pytest.raises(ValueError, match="stride 1"):
        fused_gate(torch.zeros(1, 3, 8, 8), nn.Conv2d(3, 16, 3, padding=1, stride=2), second)


def test_fused_gate_is_ignored_on_the_cpu(monkeypatch):
    """Outside the interpreter the CPU runs the two convolutions: the same mask, bit for bit."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    images = torch.randn(2, 3, 16, 16)
    torch.manual_seed(0)
    plain = FrequencyAttention()
    fused = FrequencyAttention(fused_gate=True)
    fused.load_state_dict(plain.state_dict())
    assert torch.equal(plain(images, (2, 2)), fused(images, (2, 2)))


def test_fused_gate_reaches_the_attention_from_the_config():
    from models.cal import CAL
    from utils.config import load_config
    cfg = load_config(None, ["backbone=resnet18", "pretrained=false", "fused_gate=true"])
    assert CAL(cfg, num_known=2, num_classes=4).net.attention.fused_gate
    assert not CAL(load_config(None, ["backbone=resnet18", "pretrained=false"]), 2, 4).net.attention.fused_gate


def test_fused_gate_without_triton_runs_the_convolutions_on_the_cpu(monkeypatch):
    """A model trained with fused_gate=true loads and runs on a CPU machine without Triton; where the
    kernel would run, the missing Triton is named with the fix."""
    monkeypatch.setitem(sys.modules, "triton", None)  # import triton now raises ImportError
    monkeypatch.delitem(sys.modules, "models.gate_kernel", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    attention = FrequencyAttention(fused_gate=True)
    images = torch.randn(1, 3, 8, 8)
    assert attention(images, (2, 2)).shape == (1, 1, 2, 2)
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # now the kernel would run
    with pytest.raises(ImportError, match="fused_gate=true needs Triton.*fused_gate=false"):
        attention(images, (2, 2))
