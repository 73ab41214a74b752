"""The frequency attention's gate as one fused Triton kernel (``fused_gate=true``).

The gate is ``sigmoid(conv3x3(16->1)(relu(conv3x3(3->16)(X))))`` over the full
resolution spectrum X [B,3,H,W]. As two cuDNN convolutions it writes and reads
a 16-channel full-resolution intermediate several times per step, and that
traffic, not arithmetic, dominates the attention's time; here only the gate
[B,1,H,W] is written. A program computes the hidden values of one tile (with a
one-pixel halo) by tensor-core products and gathers each output's nine
contributions in registers; the backward recomputes them and returns the four
parameter gradients through a partial buffer reduced by ``torch.sum``
(deterministic, no atomics). Zero padding follows ``nn.Conv2d(padding=1)``.
The tile algorithm is described above ``_tile``. Checked against the two
convolutions in Triton's interpreter on the CPU and compiled for sm_80 and
sm_90 (tests/test_gate_kernel.py).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

HIDDEN = 16        # the gate's hidden channels (FrequencyAttention's default)
PATCH = 27         # 3 channels x 3 x 3 taps of the first convolution
PATCH_PADDED = 32  # the product's reduction size (a power of two, at least 16)
TAPS = 16          # the second convolution's 9 taps, padded to a product's minimum size
# Tiles and launch settings, chosen from ptxas's report without a GPU to time them (tests/test_gate_kernel.py
# compiles them and checks for register spills; scripts/bench/gpu_step_benchmark.py times alternatives). At
# 4 warps the forward needs 80-103 registers with 16 x 16 tiles. The backward's weight-gradient
# products reduce over the tile's lanes and replicate their operands in every warp, so it takes
# 8 x 16 tiles (84 outputs per 128 lanes) and reloads the patches instead of keeping them: 186
# registers, no spills on sm_80 or sm_90 (16 x 16 tiles spill at 4 and 8 warps).
FORWARD = {"TILE_H": 16, "TILE_W": 16, "num_warps": 4, "num_stages": 1}
BACKWARD = {"TILE_H": 8, "TILE_W": 16, "num_warps": 4, "num_stages": 1}
PROGRAM_TILES = 16  # tiles per backward program, one partial-gradient row each
# one partial row: dW1^T [32,16], db1 [16], dW2^T [16 taps (9 used), 16], db2 [1]
_ROW_W1, _ROW_B1, _ROW_W2, _ROW_B2 = 0, PATCH_PADDED * HIDDEN, PATCH_PADDED * HIDDEN + HIDDEN, \
    PATCH_PADDED * HIDDEN + HIDDEN + TAPS * HIDDEN
ROW = _ROW_B2 + 1


@triton.jit
def _patches(spectrum_ptr, image_offset, qy, qx, H, W, column):
    """[lanes, 32] input patches around the positions (qy, qx); column k = c*9 + ky*3 + kx
    (conv1.weight's flat order), zero outside the image and in the 5 padding columns."""
    channel = column // 9
    y = qy[:, None] + ((column % 9) // 3 - 1)[None, :]
    x = qx[:, None] + (column % 3 - 1)[None, :]
    inside = (column[None, :] < 27) & (y >= 0) & (y < H) & (x >= 0) & (x < W)
    return tl.load(spectrum_ptr + image_offset + channel[None, :] * H * W + y * W + x, mask=inside, other=0.0)


# The tile algorithm. Each program takes one TILE_H x TILE_W tile of hidden positions of one image
# (one lane per position, the tile's outer ring being the halo) and
# 1. gathers each lane's 27-value 3x3x3 input patch and forms its 16 hidden values with one
#    [lanes,32] x [32,16] tensor-core product (TF32 on CUDA; 27 padded to 32), then the ReLU;
# 2. multiplies by the second convolution's weights, [lanes,16] x [16,16]: lane q, column t holds
#    what hidden position q adds to the output it reaches through tap t (9 of 16 columns used);
# 3. for each output lane (the tile's (TILE_H-2) x (TILE_W-2) interior) gathers those nine
#    contributions from its neighbours (``tl.gather``, in registers) and applies the sigmoid.
# Tiles overlap by their halo, so hidden values are computed (TILE_H TILE_W) / ((TILE_H-2)(TILE_W-2))
# times (1.3 with the forward's 16 x 16 tiles, 1.5 with the backward's 8 x 16), where recomputing
# them per tap would cost 9 times. The backward recomputes the tile's hidden values and returns the
# four parameter gradients only (the spectrum comes from the input image, which needs no gradient):
# each output's gradient is spread back to the hidden lanes it read by the mirrored gather, counting
# each (output, hidden position) pair in the output's own tile only. A program accumulates its tiles
# into one row of a partial buffer, reduced by ``torch.sum``: deterministic, unlike atomics, so a run
# repeats. Patches read zeros outside the image and hidden positions outside it count as zero, as
# with ``nn.Conv2d(padding=1)`` at both convolutions.
@triton.jit
def _tile(spectrum_ptr, w1_ptr, b1_ptr, w2_ptr, tile, image, H, W,
          TILE_H: tl.constexpr, TILE_W: tl.constexpr, PATCH_PADDED: tl.constexpr, HIDDEN: tl.constexpr,
          TAPS: tl.constexpr):
    """One tile's recomputed state. Lane i is hidden position (i // TILE_W, i % TILE_W) of the tile
    and, when both are below TILE - 2, output position (i // TILE_W + 1, i % TILE_W + 1).
    Returns the hidden pre-activations [L,16], whether each is active (inside
    the image and positive), the per-tap contributions h @ W2 [L,16], the output lanes' image
    coordinates and validity, the lane coordinates in the tile, and W2 as [16 channels, 16 taps]."""
    lane = tl.arange(0, TILE_H * TILE_W)
    ly, lx = lane // TILE_W, lane % TILE_W
    tiles_x = tl.cdiv(W, TILE_W - 2)
    top, left = (tile // tiles_x) * (TILE_H - 2), (tile % tiles_x) * (TILE_W - 2)
    qy, qx = top - 1 + ly, left - 1 + lx
    column = tl.arange(0, PATCH_PADDED)
    channel = tl.arange(0, HIDDEN)
    tap = tl.arange(0, TAPS)
    w1t = tl.load(w1_ptr + channel[None, :] * 27 + column[:, None], mask=column[:, None] < 27, other=0.0)
    w2 = tl.load(w2_ptr + channel[:, None] * 9 + tap[None, :], mask=tap[None, :] < 9, other=0.0)
    patch = _patches(spectrum_ptr, image * 3 * H * W, qy, qx, H, W, column)
    pre = tl.dot(patch, w1t) + tl.load(b1_ptr + channel)[None, :]
    inside = (qy >= 0) & (qy < H) & (qx >= 0) & (qx < W)
    active = inside[:, None] & (pre > 0)
    contribution = tl.dot(tl.where(active, pre, 0.0), w2)
    py, px = top + ly, left + lx
    output = (ly < TILE_H - 2) & (lx < TILE_W - 2) & (py < H) & (px < W)
    return pre, active, contribution, py, px, output, ly, lx, w2


@triton.jit
def _gate_forward(spectrum_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, gate_ptr, H, W,
                  TILE_H: tl.constexpr, TILE_W: tl.constexpr, PATCH_PADDED: tl.constexpr,
                  HIDDEN: tl.constexpr, TAPS: tl.constexpr):
    image = tl.program_id(1).to(tl.int64)
    _, _, contribution, py, px, output, ly, lx, _ = _tile(
        spectrum_ptr, w1_ptr, b1_ptr, w2_ptr, tl.program_id(0), image, H, W,
        TILE_H, TILE_W, PATCH_PADDED, HIDDEN, TAPS)
    tap = tl.arange(0, TAPS)[None, :]
    # output lane o reads tap t from hidden lane (o_y + t // 3, o_x + t % 3)
    source = (ly[:, None] + tap // 3) * TILE_W + lx[:, None] + tap % 3
    source = tl.where(output[:, None] & (tap < 9), source, 0)
    logit = tl.sum(tl.gather(contribution, source, axis=0), axis=1)  # columns 9-15 of W2 are zero
    gate = tl.sigmoid(logit + tl.load(b2_ptr))
    tl.store(gate_ptr + image * H * W + py * W + px, gate, mask=output)


@triton.jit
def _gate_backward(spectrum_ptr, w1_ptr, b1_ptr, w2_ptr, gate_ptr, grad_ptr, partial_ptr, H, W,
                   TILE_H: tl.constexpr, TILE_W: tl.constexpr, PROGRAM_TILES: tl.constexpr,
                   PATCH_PADDED: tl.constexpr, HIDDEN: tl.constexpr, TAPS: tl.constexpr, ROW: tl.constexpr):
    image = tl.program_id(1).to(tl.int64)
    tiles = tl.cdiv(H, TILE_H - 2) * tl.cdiv(W, TILE_W - 2)
    column = tl.arange(0, PATCH_PADDED)
    channel = tl.arange(0, HIDDEN)
    tap = tl.arange(0, TAPS)
    grad_w1t = tl.zeros([PATCH_PADDED, HIDDEN], dtype=tl.float32)
    grad_b1 = tl.zeros([HIDDEN], dtype=tl.float32)
    grad_w2t = tl.zeros([TAPS, HIDDEN], dtype=tl.float32)
    grad_b2 = tl.zeros([TILE_H * TILE_W], dtype=tl.float32)
    first = tl.program_id(0) * PROGRAM_TILES
    for tile in range(first, tl.minimum(first + PROGRAM_TILES, tiles)):
        pre, active, _, py, px, output, ly, lx, w2 = _tile(
            spectrum_ptr, w1_ptr, b1_ptr, w2_ptr, tile, image, H, W,
            TILE_H, TILE_W, PATCH_PADDED, HIDDEN, TAPS)
        where = image * H * W + py * W + px
        gate = tl.load(gate_ptr + where, mask=output, other=0.0)
        grad_logit = tl.load(grad_ptr + where, mask=output, other=0.0) * gate * (1.0 - gate)  # 0 off outputs
        grad_b2 += grad_logit
        # hidden lane q reaches output lane (q_y - t // 3, q_x - t % 3) through tap t: the mirror of
        # the forward's gather (lanes past the tile's outputs carry a zero gradient)
        oy, ox = ly[:, None] - tap[None, :] // 3, lx[:, None] - tap[None, :] % 3
        reached = (tap[None, :] < 9) & (oy >= 0) & (ox >= 0)
        source = tl.where(reached, oy * TILE_W + ox, 0)
        spread = tl.broadcast_to(grad_logit[:, None], (TILE_H * TILE_W, TAPS))
        grad_contribution = tl.where(reached, tl.gather(spread, source, axis=0), 0.0)  # [L, taps]
        hidden = tl.where(active, pre, 0.0)
        grad_w2t += tl.dot(tl.trans(grad_contribution), hidden)
        grad_pre = tl.where(active, tl.dot(grad_contribution, tl.trans(w2)), 0.0)
        patch = _patches(spectrum_ptr, image * 3 * H * W, py - 1, px - 1, H, W, column)  # reloaded, see BACKWARD
        grad_w1t += tl.dot(tl.trans(patch), grad_pre)
        grad_b1 += tl.sum(grad_pre, axis=0)
    row = partial_ptr + (image * tl.num_programs(0) + tl.program_id(0)) * ROW
    tl.store(row + column[:, None] * HIDDEN + channel[None, :], grad_w1t)
    tl.store(row + PATCH_PADDED * HIDDEN + channel, grad_b1)
    tl.store(row + PATCH_PADDED * HIDDEN + HIDDEN + tap[:, None] * HIDDEN + channel[None, :], grad_w2t)
    tl.store(row + ROW - 1, tl.sum(grad_b2, axis=0))


def _tile_count(height: int, width: int, launch: dict) -> int:
    """Tiles covering an image: each yields (TILE_H - 2) x (TILE_W - 2) outputs."""
    return triton.cdiv(height, launch["TILE_H"] - 2) * triton.cdiv(width, launch["TILE_W"] - 2)


class _FusedGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spectrum, w1, b1, w2, b2):
        batch, _, height, width = spectrum.shape
        gate = torch.empty(batch, 1, height, width, device=spectrum.device, dtype=torch.float32)
        _gate_forward[(_tile_count(height, width, FORWARD), batch)](
            spectrum, w1, b1, w2, b2, gate, height, width,
            PATCH_PADDED=PATCH_PADDED, HIDDEN=HIDDEN, TAPS=TAPS, **FORWARD)
        ctx.save_for_backward(spectrum, w1, b1, w2, gate)
        return gate

    @staticmethod
    def backward(ctx, grad_gate):
        spectrum, w1, b1, w2, gate = ctx.saved_tensors
        batch, _, height, width = spectrum.shape
        programs = triton.cdiv(_tile_count(height, width, BACKWARD), PROGRAM_TILES)
        partial = torch.empty(batch * programs, ROW, device=spectrum.device, dtype=torch.float32)
        _gate_backward[(programs, batch)](
            spectrum, w1, b1, w2, gate, grad_gate.float().contiguous(), partial, height, width,
            PROGRAM_TILES=PROGRAM_TILES, PATCH_PADDED=PATCH_PADDED, HIDDEN=HIDDEN, TAPS=TAPS, ROW=ROW,
            **BACKWARD)
        total = partial.sum(dim=0)
        grad_w1 = total[_ROW_W1:_ROW_B1].view(PATCH_PADDED, HIDDEN)[:PATCH].t().reshape(w1.shape)
        grad_b1 = total[_ROW_B1:_ROW_W2]
        grad_w2 = total[_ROW_W2:_ROW_B2].view(TAPS, HIDDEN)[:9].t().reshape(w2.shape)
        return None, grad_w1, grad_b1, grad_w2, total[_ROW_B2:]


def fused_gate(spectrum: torch.Tensor, first: torch.nn.Conv2d, second: torch.nn.Conv2d) -> torch.Tensor:
    """sigmoid(second(relu(first(spectrum)))) [B,1,H,W] float32, in one kernel.

    ``first`` is a 3->16 and ``second`` a 16->1 3x3 convolution with padding 1 and
    biases; ``spectrum`` [B,3,H,W] must not need a gradient (only the parameters get one).
    """
    if spectrum.requires_grad:
        raise ValueError("fused_gate computes parameter gradients only, but the spectrum requires a gradient; "
                         "detach it or set fused_gate=false")
    if spectrum.dim() != 4 or spectrum.shape[1] != 3:
        raise ValueError(f"fused_gate takes a [B, 3, H, W] spectrum, got {tuple(spectrum.shape)}")
    expected = ((HIDDEN, 3, 3, 3), (1, HIDDEN, 3, 3))
    plain = all(conv.bias is not None and (conv.padding, conv.stride, conv.dilation, conv.groups)
                == ((1, 1), (1, 1), (1, 1), 1) for conv in (first, second))
    if (tuple(first.weight.shape), tuple(second.weight.shape)) != expected or not plain:
        raise ValueError(f"fused_gate supports 3x3 convolutions {expected[0]} -> {expected[1]} with biases, "
                         f"padding 1, stride 1; got {first} and {second}")
    parameters = [p.float().contiguous() for p in (first.weight, first.bias, second.weight, second.bias)]
    return _FusedGate.apply(spectrum.float().contiguous(), *parameters)
