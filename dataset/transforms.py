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
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 array -> [3, H, W] uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    return TF.resize(image, [size, size], antialias=True)


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


@dataclass(frozen=True)
class ViewParams:
    """Every random choice of one sample's weak and strong views (METHOD.md 2).

    ``crop``: (top, left, h, w) as fractions of the image's height/width, or
    None; ``jitter``: (brightness, contrast, brightness_first), or None."""

    weak_flip: bool
    strong_flip: bool
    crop: tuple[float, float, float, float] | None
    jitter: tuple[float, float, bool] | None

    def as_tensor(self) -> torch.Tensor:
        """float64 [11]: weak_flip, strong_flip, cropped, top, left, h, w, jittered, b, c, b_first."""
        crop, jitter = self.crop or (0.0, 0.0, 1.0, 1.0), self.jitter or (1.0, 1.0, True)
        return torch.tensor([self.weak_flip, self.strong_flip, self.crop is not None, *crop,
                             self.jitter is not None, *jitter], dtype=torch.float64)


def draw_view_params(height: int, width: int, rng: np.random.Generator, crop_p: float = 0.2,
                     jitter_p: float = 0.2, strength: float = 0.4) -> ViewParams:
    """The random choices of both views of an H x W image, in the order the
    views have always drawn them (so a (seed, epoch, position) stream gives the
    same views as before): weak flip, strong flip, crop?, crop box, jitter?,
    brightness, contrast, order."""
    weak_flip = rng.random() < 0.5
    strong_flip = rng.random() < 0.5
    crop = None
    if rng.random() < crop_p:
        top, left, h, w = random_resized_crop_box(height, width, rng)
        crop = (top / height, left / width, h / height, w / width)
    jitter = None
    if rng.random() < jitter_p:
        low, high = 1 - strength, 1 + strength
        brightness, contrast = rng.uniform(low, high), rng.uniform(low, high)
        jitter = (brightness, contrast, bool(rng.permutation(2)[0] == 0))
    return ViewParams(bool(weak_flip), bool(strong_flip), crop, jitter)


def _jitter(x: torch.Tensor, brightness: float, contrast: float, brightness_first: bool) -> torch.Tensor:
    ops = [lambda t: TF.adjust_brightness(t, brightness), lambda t: TF.adjust_contrast(t, contrast)]
    for op in ops if brightness_first else ops[::-1]:
        x = op(x)
    return x


class TrainViews:
    """Weak view: horizontal flip (p=0.5), resize to S x S. Strong view: flip;
    p=0.2 random resized crop to S*256/224 (scale 0.5-1), else resize to that
    size; p=0.2 colour jitter (brightness 0.4, contrast 0.4, random order);
    resize to S x S. ``views(image, rng)`` computes both from one draw."""

    def __init__(self, size: int):
        self.size = size
        self.inter = int(size * 256 / 224)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_tensor(image)
        p = draw_view_params(x.shape[-2], x.shape[-1], rng)
        weak = resize(TF.horizontal_flip(x) if p.weak_flip else x, self.size)
        x = TF.horizontal_flip(x) if p.strong_flip else x
        if p.crop is not None:
            top, left, h, w = (round(f * n) for f, n in zip(p.crop, x.shape[-2:] * 2))
            x = x[:, top:top + h, left:left + w]
        x = resize(x, self.inter)
        if p.jitter is not None:
            x = _jitter(x, *p.jitter)
        return weak, resize(x, self.size)

    def source(self, image: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """For ``gpu_augment``: the image resized to S*256/224 (uint8 [3, I, I])
        and its ``ViewParams`` tensor, drawn exactly as ``__call__`` draws them;
        ``device_views`` makes the two views of a batch on the device."""
        x = to_tensor(image)
        return resize(x, self.inter), draw_view_params(x.shape[-2], x.shape[-1], rng).as_tensor()


def device_views(source: torch.Tensor, params: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched weak and strong views on the device with per-sample parameters.

    source: uint8 [B, 3, I, I] (``TrainViews.source``); params: [B, 11]
    (``ViewParams.as_tensor``). The same operations as ``TrainViews`` applied
    to the image already resized to I: flips; the crop box (fractions of the
    image) sampled bilinearly back to I x I; brightness (x * b) and contrast
    (blend with the mean grey level, ITU-R 601 luma as torchvision) in the drawn
    order, clamped to [0, 255] after each; antialiased resize to S. Returns
    uint8 [B, 3, S, S] twice. It differs from the CPU views only by resampling
    (the crop is taken from the resized image, and the weak view is resized
    twice), not in any random choice."""
    params = params.to(source.device, torch.float32)
    flip_w, flip_s, cropped, box, jittered = (params[:, 0], params[:, 1], params[:, 2], params[:, 3:7],
                                              params[:, 7])
    x = source.float()
    flipped = x.flip(-1)
    weak = torch.where(flip_w.bool()[:, None, None, None], flipped, x)
    strong = torch.where(flip_s.bool()[:, None, None, None], flipped, x)
    strong = torch.where(cropped.bool()[:, None, None, None], _crop_resize(strong, box), strong)
    b, c, b_first = (params[:, i][:, None, None, None] for i in (8, 9, 10))

    def brightness(t):
        return (t * b).clamp(0, 255)

    def contrast(t):  # luma weights as Python floats: a device tensor built per batch is a host-to-device copy
        luma = 0.2989 * t[:, 0:1] + 0.587 * t[:, 1:2] + 0.114 * t[:, 2:3]
        mean = luma.mean(dim=(2, 3), keepdim=True)
        return (c * t + (1 - c) * mean).clamp(0, 255)
    jittered_image = torch.where(b_first.bool(), contrast(brightness(strong)), brightness(contrast(strong)))
    strong = torch.where(jittered.bool()[:, None, None, None], jittered_image, strong)
    return tuple(resize(v.round().clamp(0, 255).to(torch.uint8), size) for v in (weak, strong))


def _crop_resize(x: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Per-sample crop (top, left, h, w as fractions) resampled bilinearly to x's size."""
    top, left, h, w = box.unbind(1)
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device)
    # normalised coordinates (-1..1): the output grid spans [left, left + w] x [top, top + h]
    theta[:, 0, 0], theta[:, 0, 2] = w, 2 * left + w - 1
    theta[:, 1, 1], theta[:, 1, 2] = h, 2 * top + h - 1
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class EvalView:
    """Resize to S x S (deterministic; ``rng`` is accepted and ignored)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        return resize(to_tensor(image), self.size)
