"""2-D DCT and the frequency attention applied to the backbone feature map.

DCT convention: type-II DCT with scipy's default ("backward") scaling,
    X[k] = 2 * sum_n x[n] cos(pi k (2n + 1) / (2N)),
applied over both spatial axes (``scipy.fft.dctn(x, type=2, axes=(-2, -1))``);
``idct2`` is its exact inverse (``scipy.fft.idctn``). Both are two matrix
products with basis matrices built once per (size, device) and cached, so a
call allocates nothing but its output.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def dct_matrix(n: int, dtype=torch.float64) -> torch.Tensor:
    """D with D[k, m] = 2 cos(pi k (2m + 1) / (2n)): the unnormalised DCT-II."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    m = torch.arange(n, dtype=torch.float64)[None, :]
    return (2 * torch.cos(math.pi * k * (2 * m + 1) / (2 * n))).to(dtype)


def idct_matrix(n: int, dtype=torch.float64) -> torch.Tensor:
    """Inverse of ``dct_matrix``: x[m] = (X[0] + 2 sum_{k>=1} X[k] cos(pi k (2m+1) / (2n))) / (2n)."""
    weights = torch.full((n,), 2.0, dtype=torch.float64)
    weights[0] = 1.0
    return (dct_matrix(n).T / 2 * weights[None, :] / (2 * n)).to(dtype)


class DCT2(nn.Module):
    """Cached basis matrices for the 2-D transform and its inverse."""

    def __init__(self):
        super().__init__()
        self._bases: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _basis(self, h: int, w: int, device: torch.device, dtype: torch.dtype):
        key = (h, w, device, dtype)
        if key not in self._bases:
            self._bases[key] = tuple(m.to(device=device, dtype=dtype) for m in (
                dct_matrix(h), dct_matrix(w).T.contiguous(), idct_matrix(h), idct_matrix(w).T.contiguous()))
        return self._bases[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., H, W] -> its 2-D DCT-II (scipy 'backward' scaling)."""
        d_h, d_w_t, _, _ = self._basis(x.shape[-2], x.shape[-1], x.device, x.dtype)
        return d_h @ x @ d_w_t

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Exact inverse of ``forward``."""
        _, _, i_h, i_w_t = self._basis(x.shape[-2], x.shape[-1], x.device, x.dtype)
        return i_h @ x @ i_w_t


_SHARED = DCT2()


def dct2(x: torch.Tensor) -> torch.Tensor:
    """2-D DCT-II over the last two axes (scipy.fft.dctn(x, type=2, axes=(-2, -1)))."""
    return _SHARED(x)


def idct2(x: torch.Tensor) -> torch.Tensor:
    """Exact inverse of ``dct2`` (scipy.fft.idctn(x, type=2, axes=(-2, -1)))."""
    return _SHARED.inverse(x)


class FrequencyAttention(nn.Module):
    """Spatial attention from the image spectrum (the authors' FFE).

    X = DCT2(x) [B,3,H,W]; a = sigmoid(conv3x3(16->1)(relu(conv3x3(3->16)(X))));
    s = IDCT2(X * a); m = sigmoid(mean_c s) [B,1,H,W]; m is average-pooled to
    ``pool`` x ``pool`` and resized bilinearly to the feature map's h x w.
    Computed in float32 even under autocast: the unnormalised DCT reaches
    magnitudes (~4HW) where bf16 would lose the signal.
    """

    def __init__(self, channels: int = 3, hidden: int = 16, pool: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 1, 3, padding=1)
        self.pool = pool
        self.dct = DCT2()

    def forward(self, image: torch.Tensor, feature_size: tuple[int, int]) -> torch.Tensor:
        """image [B,C,H,W] -> attention mask [B,1,h,w] for a feature map of size (h, w)."""
        with torch.autocast(device_type=image.device.type, enabled=False):
            spectrum = self.dct(image.float())
            gate = torch.sigmoid(self.conv2(F.relu(self.conv1(spectrum))))
            mask = torch.sigmoid(self.dct.inverse(spectrum * gate).mean(dim=1, keepdim=True))
            mask = F.adaptive_avg_pool2d(mask, self.pool)
            if tuple(feature_size) != (self.pool, self.pool):
                mask = F.interpolate(mask, size=feature_size, mode="bilinear", align_corners=False)
        return mask
