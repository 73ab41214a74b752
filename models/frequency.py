"""2-D DCT and the frequency attention applied to the backbone feature map.

DCT convention: type-II DCT with scipy's default ("backward") scaling,
    X[k] = 2 * sum_n x[n] cos(pi k (2n + 1) / (2N)),
applied over both spatial axes (``scipy.fft.dctn(x, type=2, axes=(-2, -1))``);
``idct2`` is its exact inverse (``scipy.fft.idctn``).

Computed through the orthonormal DCT C (C C^T = I, entries <= sqrt(2/N)):
the scipy transform is D = diag(s) C with s_0 = 2 sqrt(N), s_k = sqrt(2N), so
    dct2(x)  = s_h s_w^T * (C_h x C_w^T)      (elementwise scale after the products)
    idct2(X) = C_h^T (X / (s_h s_w^T)) C_w.
The products use only the well-conditioned orthonormal matrices, so on CUDA
they run on tensor cores in TF32 (``tensor_core_transform``); the large
factors s (the DC term reaches 4HW) are a single elementwise scale.
"""
from __future__ import annotations

import contextlib
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


def orthonormal_dct_matrix(n: int) -> torch.Tensor:
    """C with C[k, m] = sqrt(2/n) c_k cos(pi k (2m + 1) / (2n)), c_0 = 1/sqrt(2), else 1 (float64)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    m = torch.arange(n, dtype=torch.float64)[None, :]
    basis = math.sqrt(2.0 / n) * torch.cos(math.pi * k * (2 * m + 1) / (2 * n))
    basis[0] /= math.sqrt(2.0)
    return basis


def dct_scale(n: int) -> torch.Tensor:
    """s with diag(s) C = scipy's 'backward' DCT-II: s_0 = 2 sqrt(n), s_k = sqrt(2n) (float64)."""
    scale = torch.full((n,), math.sqrt(2.0 * n), dtype=torch.float64)
    scale[0] = 2.0 * math.sqrt(n)
    return scale


@contextlib.contextmanager
def tensor_core_fp32(device: torch.device):
    """float32 matmuls on CUDA in TF32 (10-bit mantissa inputs, fp32 accumulation
    and output) inside the block; the global setting is restored afterwards."""
    if device.type != "cuda":
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


class _Sandwich(torch.autograd.Function):
    """left @ x @ right with both products (and the backward ones) in TF32 on CUDA."""

    @staticmethod
    def forward(ctx, x, left, right):
        ctx.save_for_backward(left, right)
        with tensor_core_fp32(x.device):
            return left @ (x @ right)

    @staticmethod
    def backward(ctx, grad):
        left, right = ctx.saved_tensors
        with tensor_core_fp32(grad.device):
            return left.T @ (grad @ right.T), None, None


@torch.compiler.disable  # eager, so the TF32 scope applies under torch.compile too
def tensor_core_transform(x: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """left [H,H] @ x [..., H, W] @ right [W,W] (float32), TF32 tensor cores on CUDA."""
    return _Sandwich.apply(x.contiguous(), left, right)


class DCT2(nn.Module):
    """Cached orthonormal bases and scipy scale factors per (size, device, dtype)."""

    def __init__(self):
        super().__init__()
        self._bases: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @torch.compiler.disable  # a Python-side cache: built once eagerly, not traced
    def basis(self, h: int, w: int, device: torch.device, dtype: torch.dtype):
        """(C_h, C_w, scale [h, w]) with scale = s_h s_w^T."""
        key = (h, w, device, dtype)
        if key not in self._bases:
            scale = dct_scale(h)[:, None] * dct_scale(w)[None, :]
            self._bases[key] = tuple(m.to(device=device, dtype=dtype) for m in (
                orthonormal_dct_matrix(h), orthonormal_dct_matrix(w), scale))
        return self._bases[key]

    def orthonormal(self, x: torch.Tensor) -> torch.Tensor:
        """[..., H, W] -> C_h x C_w^T."""
        c_h, c_w, _ = self.basis(x.shape[-2], x.shape[-1], x.device, x.dtype)
        return tensor_core_transform(x, c_h, c_w.T)

    def orthonormal_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """[..., H, W] -> C_h^T y C_w (inverse of ``orthonormal``)."""
        c_h, c_w, _ = self.basis(y.shape[-2], y.shape[-1], y.device, y.dtype)
        return tensor_core_transform(y, c_h.T, c_w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., H, W] -> its 2-D DCT-II (scipy 'backward' scaling)."""
        return self.orthonormal(x) * self.basis(x.shape[-2], x.shape[-1], x.device, x.dtype)[2]

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Exact inverse of ``forward``."""
        return self.orthonormal_inverse(x / self.basis(x.shape[-2], x.shape[-1], x.device, x.dtype)[2])


_SHARED = DCT2()


def dct2(x: torch.Tensor) -> torch.Tensor:
    """2-D DCT-II over the last two axes (scipy.fft.dctn(x, type=2, axes=(-2, -1)))."""
    return _SHARED(x)


def idct2(x: torch.Tensor) -> torch.Tensor:
    """Exact inverse of ``dct2`` (scipy.fft.idctn(x, type=2, axes=(-2, -1)))."""
    return _SHARED.inverse(x)


def fused_gate_runs_on(device: torch.device) -> bool:
    """Whether ``fused_gate`` takes effect on ``device``: CUDA, or any device in Triton's
    interpreter (``TRITON_INTERPRET=1``, how the tests run the kernel on the CPU)."""
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


@torch.compiler.disable  # eager, like the DCT: the kernel launches outside a compiled graph
def _fused_gate(spectrum: torch.Tensor, first: nn.Conv2d, second: nn.Conv2d) -> torch.Tensor:
    """models.gate_kernel.fused_gate, imported where it runs: a model trained with
    ``fused_gate=true`` still loads and predicts on a machine without Triton."""
    try:
        from models.gate_kernel import fused_gate
    except ImportError as err:
        raise ImportError(f"fused_gate=true needs Triton on CUDA ({err}); it comes with torch's CUDA wheels "
                          "on Linux (pip install triton), or set fused_gate=false") from err
    return fused_gate(spectrum, first, second)


class FrequencyAttention(nn.Module):
    """Spatial attention from the image spectrum (the authors' FFE).

    X = DCT2(x) [B,3,H,W]; a = sigmoid(conv3x3(16->1)(relu(conv3x3(3->16)(X))));
    s = IDCT2(X * a); m = sigmoid(mean_c s) [B,1,H,W]; m is average-pooled to
    ``pool`` x ``pool`` and resized bilinearly to the feature map's h x w.

    Computed as Y = C_h x C_w^T (orthonormal, TF32 on CUDA), X = scale * Y, and,
    since IDCT2 is linear and a is shared by the channels,
        mean_c IDCT2(X * a) = C_h^T (a * mean_c Y) C_w,
    one inverse product per image instead of one per channel, with the scale
    folded away. The transforms and the mask are float32; the two gate
    convolutions follow autocast (bf16 on CUDA training), like the backbone.
    With ``fused_gate`` the gate runs on CUDA as one Triton kernel
    (models/gate_kernel.py: TF32 products, no full-resolution intermediate);
    elsewhere the two convolutions run as above. Same parameters either way.
    """

    def __init__(self, channels: int = 3, hidden: int = 16, pool: int = 8, fused_gate: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 1, 3, padding=1)
        self.pool = pool
        self.dct = DCT2()
        self.fused_gate = fused_gate

    def gate(self, spectrum: torch.Tensor) -> torch.Tensor:
        """sigmoid(conv2(relu(conv1(spectrum)))) [B,1,H,W]: fused on CUDA with ``fused_gate``."""
        if self.fused_gate and fused_gate_runs_on(spectrum.device):
            return _fused_gate(spectrum, self.conv1, self.conv2)
        return torch.sigmoid(self.conv2(F.relu(self.conv1(spectrum))))

    def forward(self, image: torch.Tensor, feature_size: tuple[int, int]) -> torch.Tensor:
        """image [B,C,H,W] -> attention mask [B,1,h,w] (float32) for a feature map of size (h, w)."""
        image = image.float()
        with torch.autocast(device_type=image.device.type, enabled=False):
            coefficients = self.dct.orthonormal(image)
            spectrum = coefficients * self.dct.basis(*image.shape[-2:], image.device, image.dtype)[2]
        gate = self.gate(spectrum)
        with torch.autocast(device_type=image.device.type, enabled=False):
            gated = coefficients.mean(dim=1, keepdim=True) * gate.float()
            mask = torch.sigmoid(self.dct.orthonormal_inverse(gated))
            mask = F.adaptive_avg_pool2d(mask, self.pool)
            if tuple(feature_size) != (self.pool, self.pool):
                mask = F.interpolate(mask, size=feature_size, mode="bilinear", align_corners=False)
        return mask
