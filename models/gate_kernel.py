"""The frequency attention's gate as one fused Triton kernel (``fused_gate=true``).

The gate is ``sigmoid(conv3x3(16->1)(relu(conv3x3(3->16)(X))))`` over the full
resolution spectrum X [B,3,H,W]. Run as two cuDNN convolutions it writes and
reads a 16-channel full-resolution intermediate several times per step (0.5 GB
per 256 images at 256 px in bf16), and that traffic, not arithmetic, dominates
the attention's time. Here each program takes BLOCK pixels of one image and,
for each of the nine taps of the second convolution, gathers the 27-value 3x3x3
input patch at the tapped position, forms the 16 hidden values with one
[BLOCK,32] x [32,16] tensor-core product (TF32 on CUDA; padded from 27),
applies the ReLU and accumulates the tap; nothing but the gate [B,1,H,W] is
written. The backward recomputes the hidden values the same way and returns
the four parameter gradients only: the spectrum is computed from the input
image, which needs no gradient.

The weight gradients are summed per program into rows of a partial buffer,
then reduced by ``torch.sum``: deterministic, unlike atomics, so a run repeats.
Zero padding follows ``nn.Conv2d(padding=1)`` at both convolutions: the input
patch reads zeros outside the image and hidden values outside it count as zero.

Checked against the two convolutions in Triton's interpreter on the CPU
(``TRITON_INTERPRET=1``) and compiled for sm_80 and sm_90 without a GPU
(tests/test_gate_kernel.py).
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

HIDDEN = 16        # the gate's hidden channels (FrequencyAttention's default)
PATCH = 27         # 3 channels x 3 x 3 taps of the first convolution
PATCH_PADDED = 32  # the product's reduction size (a power of two, at least 16)
# Launch settings, chosen from ptxas's report without a GPU to time them (tests/test_gate_kernel.py
# compiles them): 64-pixel blocks at Triton's default 4 warps and 3 stages leave both kernels free of
# register spills on sm_80 and sm_90 (96-119 registers forward, 168-192 backward), so two to five
# programs share an SM to hide the gathers' latency; 128-pixel blocks spill in the backward at 4 warps.
# scripts/bench/gpu_issue15.py times alternatives on a GPU.
BLOCK = 64
LAUNCH = {"num_warps": 4, "num_stages": 3}
PROGRAM_PIXELS = 1024  # pixels per backward program, one partial-gradient row each
# one partial row: dW1^T [32,16], db1 [16], dW2 [16 taps (9 used), 16], db2 [1]
_ROW_W1, _ROW_B1, _ROW_W2, _ROW_B2 = 0, PATCH_PADDED * HIDDEN, PATCH_PADDED * HIDDEN + HIDDEN, \
    PATCH_PADDED * HIDDEN + HIDDEN + 16 * HIDDEN
ROW = _ROW_B2 + 1


@triton.jit
def _patches(spectrum_ptr, image_offset, qy, qx, H, W, column):
    """[BLOCK, 32] input patches around the positions (qy, qx); column k = c*9 + ky*3 + kx
    (conv1.weight's flat order), zero outside the image and in the 5 padding columns."""
    channel = column // 9
    y = qy[:, None] + ((column % 9) // 3 - 1)[None, :]
    x = qx[:, None] + (column % 3 - 1)[None, :]
    inside = (column[None, :] < 27) & (y >= 0) & (y < H) & (x >= 0) & (x < W)
    return tl.load(spectrum_ptr + image_offset + channel[None, :] * H * W + y * W + x, mask=inside, other=0.0)


@triton.jit
def _hidden(spectrum_ptr, image_offset, py, px, H, W, tap, column, w1t, b1):
    """Hidden pre-activations [BLOCK,16] at the positions tapped by ``tap`` of the second
    convolution, the patches [BLOCK,32] they came from, and whether each position is inside."""
    qy = py + (tap // 3 - 1)
    qx = px + (tap % 3 - 1)
    inside = (qy >= 0) & (qy < H) & (qx >= 0) & (qx < W)
    patch = _patches(spectrum_ptr, image_offset, qy, qx, H, W, column)
    return tl.dot(patch, w1t) + b1[None, :], patch, inside


@triton.jit
def _load_first_layer(w1_ptr, b1_ptr, column, channel):
    """conv1's weight as W1^T [32,16] (rows past 27 zero) and its bias [16]."""
    w1t = tl.load(w1_ptr + channel[None, :] * 27 + column[:, None], mask=column[:, None] < 27, other=0.0)
    return w1t, tl.load(b1_ptr + channel)


@triton.jit
def _gate_forward(spectrum_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, gate_ptr, H, W,
                  BLOCK: tl.constexpr, PATCH_PADDED: tl.constexpr, HIDDEN: tl.constexpr):
    image = tl.program_id(1).to(tl.int64)
    pixel = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    py, px = pixel // W, pixel % W
    column = tl.arange(0, PATCH_PADDED)
    channel = tl.arange(0, HIDDEN)
    w1t, b1 = _load_first_layer(w1_ptr, b1_ptr, column, channel)
    image_offset = image * 3 * H * W
    logit = tl.zeros([BLOCK], dtype=tl.float32)
    for tap in range(9):
        pre, _, inside = _hidden(spectrum_ptr, image_offset, py, px, H, W, tap, column, w1t, b1)
        hidden = tl.where(inside[:, None], tl.maximum(pre, 0.0), 0.0)
        w2 = tl.load(w2_ptr + channel * 9 + tap)
        logit += tl.sum(hidden * w2[None, :], axis=1)
    gate = tl.sigmoid(logit + tl.load(b2_ptr))
    tl.store(gate_ptr + image * H * W + pixel, gate, mask=pixel < H * W)


@triton.jit
def _gate_backward(spectrum_ptr, w1_ptr, b1_ptr, w2_ptr, gate_ptr, grad_ptr, partial_ptr, H, W,
                   BLOCK: tl.constexpr, PROGRAM_PIXELS: tl.constexpr, PATCH_PADDED: tl.constexpr,
                   HIDDEN: tl.constexpr, ROW: tl.constexpr):
    image = tl.program_id(1).to(tl.int64)
    column = tl.arange(0, PATCH_PADDED)
    channel = tl.arange(0, HIDDEN)
    tap_row = tl.arange(0, 16)
    w1t, b1 = _load_first_layer(w1_ptr, b1_ptr, column, channel)
    image_offset = image * 3 * H * W
    grad_w1t = tl.zeros([PATCH_PADDED, HIDDEN], dtype=tl.float32)
    grad_b1 = tl.zeros([HIDDEN], dtype=tl.float32)
    grad_w2 = tl.zeros([16, HIDDEN], dtype=tl.float32)  # row = tap (9 of 16 used)
    grad_b2 = tl.zeros([BLOCK], dtype=tl.float32)
    for block in range(PROGRAM_PIXELS // BLOCK):
        pixel = tl.program_id(0) * PROGRAM_PIXELS + block * BLOCK + tl.arange(0, BLOCK)
        valid = pixel < H * W
        py, px = pixel // W, pixel % W
        gate = tl.load(gate_ptr + image * H * W + pixel, mask=valid, other=0.0)
        grad = tl.load(grad_ptr + image * H * W + pixel, mask=valid, other=0.0)
        grad_logit = grad * gate * (1.0 - gate)  # zero on the padded pixels
        grad_b2 += grad_logit
        for tap in range(9):
            pre, patch, inside = _hidden(spectrum_ptr, image_offset, py, px, H, W, tap, column, w1t, b1)
            active = inside[:, None] & (pre > 0)
            hidden = tl.where(active, pre, 0.0)
            grad_w2 += tl.where(tap_row[:, None] == tap,
                                tl.sum(grad_logit[:, None] * hidden, axis=0)[None, :], 0.0)
            w2 = tl.load(w2_ptr + channel * 9 + tap)
            grad_pre = tl.where(active, grad_logit[:, None] * w2[None, :], 0.0)
            grad_w1t += tl.dot(tl.trans(patch), grad_pre)
            grad_b1 += tl.sum(grad_pre, axis=0)
    row = partial_ptr + (image * tl.num_programs(0) + tl.program_id(0)) * ROW
    tl.store(row + column[:, None] * HIDDEN + channel[None, :], grad_w1t)
    tl.store(row + PATCH_PADDED * HIDDEN + channel, grad_b1)
    tl.store(row + PATCH_PADDED * HIDDEN + HIDDEN + tap_row[:, None] * HIDDEN + channel[None, :], grad_w2)
    tl.store(row + ROW - 1, tl.sum(grad_b2, axis=0))


class _FusedGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spectrum, w1, b1, w2, b2):
        batch, _, height, width = spectrum.shape
        gate = torch.empty(batch, 1, height, width, device=spectrum.device, dtype=torch.float32)
        grid = (triton.cdiv(height * width, BLOCK), batch)
        _gate_forward[grid](spectrum, w1, b1, w2, b2, gate, height, width,
                            BLOCK=BLOCK, PATCH_PADDED=PATCH_PADDED, HIDDEN=HIDDEN, **LAUNCH)
        ctx.save_for_backward(spectrum, w1, b1, w2, gate)
        return gate

    @staticmethod
    def backward(ctx, grad_gate):
        spectrum, w1, b1, w2, gate = ctx.saved_tensors
        batch, _, height, width = spectrum.shape
        programs = triton.cdiv(height * width, PROGRAM_PIXELS)
        partial = torch.empty(batch * programs, ROW, device=spectrum.device, dtype=torch.float32)
        _gate_backward[(programs, batch)](spectrum, w1, b1, w2, gate, grad_gate.float().contiguous(), partial,
                                          height, width, BLOCK=BLOCK, PROGRAM_PIXELS=PROGRAM_PIXELS,
                                          PATCH_PADDED=PATCH_PADDED, HIDDEN=HIDDEN, ROW=ROW, **LAUNCH)
        total = partial.sum(dim=0)
        grad_w1 = total[_ROW_W1:_ROW_B1].view(PATCH_PADDED, HIDDEN)[:PATCH].t().reshape(w1.shape)
        grad_b1 = total[_ROW_B1:_ROW_W2]
        grad_w2 = total[_ROW_W2:_ROW_B2].view(16, HIDDEN)[:9].t().reshape(w2.shape)
        return None, grad_w1, grad_b1, grad_w2, total[_ROW_B2:]


def runs_on(device: torch.device) -> bool:
    """Whether the kernels run on ``device``: CUDA, or any device in Triton's interpreter
    (``TRITON_INTERPRET=1``, how the tests check them on the CPU)."""
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


@torch.compiler.disable  # launched eagerly: the compiled graph breaks around the gate, as around the DCT
def fused_gate(spectrum: torch.Tensor, first: torch.nn.Conv2d, second: torch.nn.Conv2d) -> torch.Tensor:
    """sigmoid(second(relu(first(spectrum)))) [B,1,H,W] float32, in one kernel.

    ``first`` is a 3->16 and ``second`` a 16->1 3x3 convolution with padding 1 and
    biases; ``spectrum`` [B,3,H,W] must not need a gradient (only the parameters get one).
    """
    if spectrum.requires_grad:
        raise ValueError("fused_gate computes parameter gradients only, but the spectrum requires a gradient; "
                         "detach it or set fused_gate=false")
    expected = ((HIDDEN, 3, 3, 3), (1, HIDDEN, 3, 3))
    if (tuple(first.weight.shape), tuple(second.weight.shape)) != expected or first.bias is None \
            or second.bias is None or first.padding != (1, 1) or second.padding != (1, 1):
        raise ValueError(f"fused_gate supports 3x3 convolutions {expected[0]} -> {expected[1]} with biases and "
                         f"padding 1; got {tuple(first.weight.shape)}, {tuple(second.weight.shape)}")
    parameters = [p.float().contiguous() for p in (first.weight, first.bias, second.weight, second.bias)]
    return _FusedGate.apply(spectrum.float().contiguous(), *parameters)
