"""The weak, strong and test views of METHOD.md section 2.

Every random choice comes from a ``numpy.random.Generator`` passed in by the
caller. The training set seeds one per draw from (seed, epoch, draw index), so
a sample's augmentation does not depend on which worker loads it, the number
of workers or the number of processes, and an interrupted epoch can be
replayed exactly. No global RNG is touched.

Input: an RGB ``uint8`` array [H, W, 3]. Output: a ``uint8`` tensor
[3, S, S]. Normalisation (ImageNet mean and std) happens on the device, in
the network's first step (``models.cal_net.normalise_input``): a uint8
batch is a quarter of the bytes to move between loader processes and to the
GPU, which keeps the loader ahead of the model.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 array -> [3, H, W] uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    return TF.resize(image, [size, size], antialias=True)


def random_flip(image: torch.Tensor, rng: np.random.Generator, p: float = 0.5) -> torch.Tensor:
    return TF.horizontal_flip(image) if rng.random() < p else image


def random_resized_crop_box(height: int, width: int, rng: np.random.Generator,
                            scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, h, w) drawn as torchvision's RandomResizedCrop does, from ``rng``."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    # fallback: central crop at the nearest allowed aspect ratio
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class WeakView:
    """Horizontal flip (p=0.5), resize to S x S."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        return resize(random_flip(to_tensor(image), rng), self.size)


class StrongView:
    """Flip; p=0.2 random resized crop to S*256/224 (scale 0.5-1), else resize
    to that size; p=0.2 colour jitter (brightness 0.4, contrast 0.4, random
    order); resize to S x S."""

    def __init__(self, size: int, crop_p: float = 0.2, jitter_p: float = 0.2, strength: float = 0.4):
        self.size = size
        self.inter = int(size * 256 / 224)
        self.crop_p, self.jitter_p, self.strength = crop_p, jitter_p, strength

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        x = random_flip(to_tensor(image), rng)
        if rng.random() < self.crop_p:
            top, left, h, w = random_resized_crop_box(x.shape[-2], x.shape[-1], rng)
            x = x[:, top:top + h, left:left + w]
        x = resize(x, self.inter)
        if rng.random() < self.jitter_p:
            x = self._jitter(x, rng)
        return resize(x, self.size)

    def _jitter(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        low, high = 1 - self.strength, 1 + self.strength
        brightness, contrast = rng.uniform(low, high), rng.uniform(low, high)
        ops = [lambda t: TF.adjust_brightness(t, brightness), lambda t: TF.adjust_contrast(t, contrast)]
        for i in rng.permutation(2):
            x = ops[i](x)
        return x


class EvalView:
    """Resize to S x S (deterministic; ``rng`` is accepted and ignored)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        return resize(to_tensor(image), self.size)
