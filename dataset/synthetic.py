"""A mini OWDFA-40 or OW-DFA: synthetic images in the real folder layout, made in seconds.

    python -m dataset.synthetic --out data/mini --per_class 120 --size 64 --seed 0
    python -m dataset.synthetic --out data/mini_owdfa --layout cpl --scale 0.01

writes one folder per class as in OWDFA-40 (``1_Swap_Deepfakes``), of PNG files
``00000.png, ...``, the real class over three source folders with twice
``per_class`` images; ``--layout cpl``: the 22 OW-DFA classes in the CPL
release's ``<Family>/<Method>/<Source>`` folders. A real image is
a *base* (a jittered random crop of a photograph bundled with scikit-image); a
forgery is a fresh base plus its class's trace; the classes of one family
share one trait and differ in a subtler, parametric one. Image ``i`` of class ``c`` draws everything
from ``numpy.random.default_rng([seed, c, i])``: the output is byte-identical
for the same arguments, whatever the number of workers. The traces and the
reasons behind them, and the CPL layout's counts: docs/mini_dataset.md.
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import shutil
import itertools
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from dataset.protocols import CLASSES, REAL_CLASS, ForgeryClass, load_table
from utils.progress import progress_bar

# Real sources: folder suffix -> photographs bundled with scikit-image. "lfw" is
# the 200 small grey-level crops of skimage.data.lfw_subset (100 faces).
REAL_SOURCES: dict[str, tuple[str, ...]] = {
    "CelebDF": ("lfw",),
    "FFHQ": ("camera.png", "coins.png", "moon.png", "cell.png", "clock_motion.png"),
    "FFpp": ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
             "motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png"),
}
REAL_FACTOR = 2    # the real class gets REAL_FACTOR * per_class images over its sources
OWDFA_TABLE = Path(__file__).resolve().with_name("owdfa_p2_classes.csv")  # all 22 OW-DFA classes
CPL_REAL_SOURCES = {"faceforensics": "FFpp", "CelebDF": "CelebDF"}  # release source folder -> photo pool
LAYOUTS = ("owdfa40", "cpl")
POOL_SIDE = 256    # photographs are kept at most this large (speed; crops are smaller)
# Clips: OpenCV FourCC -> file extension, each tried here with opencv-python-headless; FFV1 is lossless.
CODECS = {"mp4v": ".mp4", "XVID": ".avi", "MJPG": ".avi", "FFV1": ".mkv"}
CLIP_FPS = 25
CLIP_STREAM = 1    # a clip's seeds are [seed, class, CLIP_STREAM, clip, ...]: never an image's [seed, class, index]
MOTION = 0.06      # how far a clip's crop drifts, in crop sides


# ----------------------------------------------------------------------------- content

def _skimage_data_dir() -> str:
    import skimage.data
    return os.path.dirname(skimage.data.__file__)


@functools.cache
def _pool(source: str) -> tuple[np.ndarray, ...]:
    """The source's photographs as float32 [H, W, C] in [0, 1], C = 1 or 3."""
    root = _skimage_data_dir()
    images = []
    for name in REAL_SOURCES[source]:
        if name == "lfw":
            images.extend(np.load(os.path.join(root, "lfw_subset.npy")).astype(np.float32)[..., None])
        else:
            images.append(_load_photo(os.path.join(root, name)))
    return tuple(images)


def _load_photo(path: str) -> np.ndarray:
    """A photograph as float32 [H, W, C] in [0, 1] (C = 3 for colour, 1 for grey),
    shrunk so that its longer side is at most POOL_SIDE."""
    with Image.open(path) as file:
        image = np.asarray(file.convert("RGB" if file.mode in ("RGB", "RGBA") else "L"))
    scale = POOL_SIDE / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image.reshape(image.shape[0], image.shape[1], -1).astype(np.float32) / 255


def _tint(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey [H, W, 1] -> RGB by a random duotone between a dark and a light colour."""
    dark = rng.uniform(0.0, 0.25, 3).astype(np.float32)
    light = rng.uniform(0.75, 1.0, 3).astype(np.float32)
    return dark + gray * (light - dark)


def base_image(rng: np.random.Generator, source: str, size: int, shift: tuple[float, float] = (0.0, 0.0),
               noise_rng: np.random.Generator | None = None) -> np.ndarray:
    """A real-looking RGB float32 image [size, size, 3] in [0, 1] from ``source``. For a clip's
    frame: ``shift`` moves the crop by (dy, dx) times its side, ``noise_rng`` draws the sensor
    noise (the other draws, made from ``rng``, then repeat in every frame)."""
    image = _random_crop(rng, _pool(source), size, shift)
    image = _tint(image, rng) if image.shape[2] == 1 else image
    if rng.random() < 0.5:
        image = image[:, ::-1]
    image = _jitter_colour(image, rng)
    sigma = rng.uniform(0.003, 0.012)
    image = image + (rng if noise_rng is None else noise_rng).normal(0, sigma, image.shape).astype(np.float32)
    return np.clip(image, 0, 1)


def _random_crop(rng: np.random.Generator, pool: tuple[np.ndarray, ...], size: int,
                 shift: tuple[float, float] = (0.0, 0.0), min_std: float = 0.06, tries: int = 10) -> np.ndarray:
    """A random square crop of a random photograph, resized to [size, size, C].
    Nearly flat crops (std < ``min_std``: sky, a dark background) are redrawn,
    up to ``tries`` times, so that content, not sensor noise, fills the image.
    The chosen crop is then moved by ``shift`` (dy, dx) times its side, within the photograph."""
    for _ in range(tries):
        photo = pool[rng.integers(len(pool))]
        h, w = photo.shape[:2]
        smallest = 0.8 if min(h, w) < 64 else 0.3  # the 25 px LFW crops are already tight
        side = int(round(min(h, w) * rng.uniform(smallest, 1.0)))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = photo[top:top + side, left:left + side]
        if crop.std() >= min_std:
            break
    if shift != (0.0, 0.0):
        top = int(np.clip(round(top + shift[0] * side), 0, h - side))
        left = int(np.clip(round(left + shift[1] * side), 0, w - side))
        crop = photo[top:top + side, left:left + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interpolation).reshape(size, size, -1)


def _random_source(rng: np.random.Generator) -> str:
    return str(rng.choice(sorted(REAL_SOURCES)))


def _jitter_colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild saturation, contrast, brightness and gamma changes."""
    luma = _luma(image)
    image = luma + (image - luma) * rng.uniform(0.8, 1.2)
    image = (image - image.mean()) * rng.uniform(0.85, 1.15) + image.mean() + rng.uniform(-0.08, 0.08)
    return np.clip(image, 0, 1) ** rng.uniform(0.85, 1.15)


# ----------------------------------------------------------------------------- helpers

def _luma(image: np.ndarray) -> np.ndarray:
    return image @ np.float32([0.299, 0.587, 0.114])[:, None]


def _hue_vector(hue_deg: float) -> np.ndarray:
    """A zero-mean RGB direction of the given hue (0 = red, 120 = green, 240 = blue)."""
    h = math.radians(hue_deg)
    return np.float32([math.cos(h), math.cos(h - 2 * math.pi / 3), math.cos(h + 2 * math.pi / 3)])


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) in [0, 1], each [size, size]."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(t, t, indexing="ij")


def _soft_ellipse(size: int, cy: float, cx: float, ry: float, rx: float, feather: float) -> np.ndarray:
    """Mask [size, size, 1]: 1 inside the ellipse, 0 outside, a linear ramp ``feather`` wide."""
    y, x = _grid(size)
    dist = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2) - 1  # ~ distance in radii
    return np.clip(0.5 - dist * min(ry, rx) / feather, 0, 1)[..., None]


def _blur(image: np.ndarray, sigma_x: float, sigma_y: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y).reshape(image.shape)


def _grid_position(k: int, columns: int) -> tuple[int, int]:
    """Position k in a family -> (column a, row b) on a grid with ``columns`` columns."""
    return k % columns, k // columns


# ----------------------------------------------------------------------------- traces

def trace_params(cls: ForgeryClass) -> dict:
    """The trace parameters of ``cls`` (empty for a real class); see the module docstring."""
    if cls.is_real:
        return {}
    k = int(cls.code[1:]) - 1
    if cls.family == "Swap":
        a, b = _grid_position(k, 5)
        return {"hue": 72.0 * a, "radius": 0.2 + 0.04 * a, "feather": (0.02, 0.14)[b]}
    if cls.family == "Reenact":
        a, b = _grid_position(k, 4)
        return {"cycles": 1.5 + a, "grain": (1.0, 1.4, 1.9, 2.6)[a], "direction": ("x", "y", "radial")[b]}
    if cls.family == "Edit":
        a, b = _grid_position(k, 3)
        return {"band_centre": (0.25, 0.5, 0.75)[a], "hue": (30.0, 210.0)[b]}
    if cls.family == "Generate":
        a, b = _grid_position(k, 4)
        return {"cycles": (3.0, 4.5, 6.0, 8.0)[a], "pattern": ("columns", "rows", "checkerboard")[b]}
    raise ValueError(f"no trace for family {cls.family!r}")


def swap_trace(image: np.ndarray, rng: np.random.Generator, size: int,
               hue: float, radius: float, feather: float) -> np.ndarray:
    """Paste a donor (a fresh base) into a soft ellipse of ``radius`` and ``feather``
    width: rendered at half resolution, colour-matched to the target inside the
    mask, then shifted towards ``hue``."""
    donor = base_image(rng, _random_source(rng), size)
    half = cv2.resize(donor, (size // 2, size // 2), interpolation=cv2.INTER_AREA)
    donor = cv2.resize(half, (size, size), interpolation=cv2.INTER_LINEAR)
    r = radius * rng.uniform(0.92, 1.08)
    mask = _soft_ellipse(size, 0.5 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.05, 0.05),
                         1.2 * r, r, feather)
    inside = mask[..., 0] > 0.5
    target_mean, target_std = image[inside].mean(0), image[inside].std(0) + 1e-3
    donor_mean, donor_std = donor[inside].mean(0), donor[inside].std(0) + 1e-3
    donor = (donor - donor_mean) / donor_std * target_std + target_mean
    donor = donor + rng.uniform(0.14, 0.17) * _hue_vector(hue + rng.uniform(-10, 10))
    return mask * donor + (1 - mask) * image


# Reenact: (sigma_x, sigma_y) factors of the rendering blur and grain per direction.
STREAKS = {"x": (3.0, 1.0), "y": (1.0, 3.0), "radial": (1.7, 1.7)}


def _warp_field(size: int, cycles: float, direction: str, amp: float, phase: float):
    """Sinusoidal displacement (dy, dx) [size, size] in image units: x shifts that
    wave along y, y shifts that wave along x, or radial shifts that wave with the radius."""
    y, x = _grid(size)
    if direction == "x":
        return 0 * y, amp * np.sin(2 * math.pi * cycles * y + phase)
    if direction == "y":
        return amp * np.sin(2 * math.pi * cycles * x + phase), 0 * x
    ry, rx = y - 0.5, x - 0.5
    radius = np.sqrt(ry ** 2 + rx ** 2) + 1e-6
    shift = amp * np.sin(2 * math.pi * cycles * radius + phase)
    return shift * ry / radius, shift * rx / radius


def reenact_trace(image: np.ndarray, rng: np.random.Generator, size: int,
                  cycles: float, direction: str, grain: float) -> np.ndarray:
    """Re-render the central region: a smooth warp with ``cycles`` periods across the
    image, then a blur and a rendering grain of scale ``grain``, both streaked along
    ``direction`` (isotropic for radial)."""
    y, x = _grid(size)
    dy, dx = _warp_field(size, cycles, direction, 0.03 * rng.uniform(0.8, 1.2), rng.uniform(0, 2 * math.pi))
    warped = cv2.remap(image, ((x + dx) * size - 0.5).astype(np.float32),
                       ((y + dy) * size - 0.5).astype(np.float32), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT)
    sx, sy = (grain * size / 64 * f for f in STREAKS[direction])
    noise = _blur(rng.normal(0, 1, (size, size, 1)).astype(np.float32), sx, sy)
    rendered = _blur(warped, sx / 2, sy / 2) + rng.uniform(0.08, 0.09) * noise / (noise.std() + 1e-6)
    mask = _soft_ellipse(size, 0.5 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.05, 0.05),
                         0.36, 0.3, 0.08)
    return mask * rendered + (1 - mask) * image


def edit_trace(image: np.ndarray, rng: np.random.Generator, size: int,
               band_centre: float, hue: float) -> np.ndarray:
    """Recolour a soft horizontal band around ``band_centre``: halve its saturation
    and push it towards ``hue``."""
    y, _ = _grid(size)
    centre = band_centre + rng.uniform(-0.04, 0.04)
    band = np.clip((0.13 - np.abs(y - centre)) / 0.05, 0, 1)[..., None]
    luma = _luma(image)
    edited = luma + 0.5 * (image - luma) + rng.uniform(0.12, 0.16) * _hue_vector(hue + rng.uniform(-10, 10))
    return band * edited + (1 - band) * image


def generate_trace(image: np.ndarray, rng: np.random.Generator, size: int,
                   cycles: float, pattern: str) -> np.ndarray:
    """Re-synthesise the whole image: slight blur, more saturation, and a periodic
    residual with ``cycles`` periods across the image (columns, rows or both)."""
    image = _blur(image, 0.6 * size / 64, 0.6 * size / 64)
    luma = _luma(image)
    image = luma + (image - luma) * 1.25
    y, x = _grid(size)
    cols = np.cos(2 * math.pi * cycles * x + rng.uniform(0, 2 * math.pi))
    rows = np.cos(2 * math.pi * cycles * y + rng.uniform(0, 2 * math.pi))
    residual = {"columns": cols, "rows": rows, "checkerboard": cols * rows * 1.5}[pattern]
    return image + rng.uniform(0.075, 0.085) * residual[..., None]


TRACES = {"Swap": swap_trace, "Reenact": reenact_trace, "Edit": edit_trace, "Generate": generate_trace}


# ----------------------------------------------------------------------------- writing

def make_image(cls: ForgeryClass, index: int, size: int, seed: int, source: str | None = None) -> np.ndarray:
    """Image ``index`` of class ``cls`` as uint8 [size, size, 3]. A real image comes
    from ``source``; a forgery's base comes from a source drawn at random."""
    return _render(cls, np.random.default_rng([seed, cls.index, index]), size, source)


def make_clip(cls: ForgeryClass, clip: int, frames: int, size: int, seed: int,
              source: str | None = None) -> Iterator[np.ndarray]:
    """The ``frames`` frames of clip ``clip`` of class ``cls``, uint8 [size, size, 3] each: one
    identity (the same photograph, crop, tint and colour as image draws them) drifting slowly, one
    trace (the same draws in every frame) and fresh sensor noise per frame. Every frame restarts the
    generator at the clip's seed, ``[seed, class, CLIP_STREAM, clip]`` (apart from the images'
    three-word seeds), so a frame is made as an image is, with only the crop's position and the
    noise changing."""
    motion = np.random.default_rng([seed, cls.index, CLIP_STREAM, clip, 0])
    amplitude, period = MOTION * motion.uniform(0.5, 1, 2), motion.uniform(40, 120, 2)  # per axis; period in frames
    phase = motion.uniform(0, 6.3, 2)  # radians, a turn
    for t in range(frames):
        dy, dx = amplitude * np.sin(2 * math.pi * t / period + phase)
        noise = np.random.default_rng([seed, cls.index, CLIP_STREAM, clip, 1 + t])
        yield _render(cls, np.random.default_rng([seed, cls.index, CLIP_STREAM, clip]), size, source,
                      (float(dy), float(dx)), noise)


def _render(cls: ForgeryClass, rng: np.random.Generator, size: int, source: str | None,
            shift: tuple[float, float] = (0.0, 0.0), noise_rng: np.random.Generator | None = None) -> np.ndarray:
    """A base from ``source`` (a real class) or a random source plus the class's trace, as uint8."""
    if cls.is_real:
        image = base_image(rng, source, size, shift, noise_rng)
    else:
        image = base_image(rng, _random_source(rng), size, shift, noise_rng)
        image = TRACES[cls.family](image, rng, size, **trace_params(cls))
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_clip(path: str | os.PathLike, frames: Iterable[np.ndarray], codec: str = "mp4v",
               fps: float = CLIP_FPS) -> int:
    """Encode RGB ``frames`` (all of one size) into the video file ``path`` with OpenCV's ``codec``
    (a FourCC of CODECS); returns the number of frames written."""
    frames = iter(frames)
    first = next(frames)
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*codec), fps, first.shape[1::-1])
    if not writer.isOpened():
        raise ValueError(f"this OpenCV build cannot write {codec} video to {path}; use one of {', '.join(CODECS)}")
    count = 0
    try:
        for frame in itertools.chain([first], frames):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            count += 1
    finally:
        writer.release()
    return count


def folder_plan(per_class: int) -> list[tuple[ForgeryClass, str, str | None, range]]:
    """(class, folder name, real source or None, image indices) for every folder. The
    real class's REAL_FACTOR * per_class images are spread evenly over its sources."""
    plan = []
    for cls in CLASSES:
        if cls.index != REAL_CLASS:
            plan.append((cls, cls.folder_name, None, range(per_class)))
            continue
        chunks = np.array_split(np.arange(REAL_FACTOR * per_class), len(REAL_SOURCES))
        plan.extend((cls, _real_folder(source), source, range(chunk[0], chunk[-1] + 1))
                    for source, chunk in zip(sorted(REAL_SOURCES), chunks) if len(chunk))
    return plan


def cpl_plan(scale: float) -> list[tuple[ForgeryClass, str, str | None, range]]:
    """The ``folder_plan`` of the CPL layout: every OW-DFA class in its release folder, with as
    many images as its larger role needs (``ForgeryClass.role_counts`` times ``scale``)."""
    plan = []
    for cls in load_table(OWDFA_TABLE).classes:
        n = max(sum(cls.role_counts(known, scale) or (0,)) for known in (True, False))
        source = CPL_REAL_SOURCES[cls.folder.rsplit("/", 1)[-1]] if cls.is_real else None
        plan.append((cls, cls.folder, source, range(n)))
    return plan


def _real_folder(source: str) -> str:
    return f"{REAL_CLASS}_Real_{source}"


def _generated_folders(layout: str) -> list[str]:
    """The top-level folders a layout writes (what ``overwrite`` removes)."""
    if layout == "cpl":
        return sorted({c.folder.split("/")[0] for c in load_table(OWDFA_TABLE).classes})
    return [c.folder_name for c in CLASSES if c.index != REAL_CLASS] + list(map(_real_folder, REAL_SOURCES))


def _write_folder(out_dir: str, cls: ForgeryClass, folder: str, source: str | None,
                  indices: range, size: int, seed: int) -> int:
    path = Path(out_dir, folder)
    path.mkdir(parents=True, exist_ok=True)
    for n, index in enumerate(indices):
        Image.fromarray(make_image(cls, index, size, seed, source)).save(path / f"{n:05d}.png")
    return len(indices)


def _write_clip_folder(out_dir: str, cls: ForgeryClass, folder: str, source: str | None, clips: range,
                       frames: int, size: int, seed: int, codec: str, frame_root: str | None) -> int:
    """Clips ``<folder>/<n>.<ext>`` and, with ``frame_root``, their decoded frames
    ``<frame_root>/<folder>/<n>/<t>.png``: what the codec left of them."""
    from dataset.video_io import VideoFrames

    path = Path(out_dir, folder)
    path.mkdir(parents=True, exist_ok=True)
    for n, clip in enumerate(clips):
        video = path / f"{n:05d}{CODECS[codec]}"
        written = write_clip(video, make_clip(cls, clip, frames, size, seed, source), codec)
        if frame_root:
            frame_folder = Path(frame_root, folder, f"{n:05d}")
            frame_folder.mkdir(parents=True, exist_ok=True)
            for frame in VideoFrames(str(video), frames=written):
                if frame.image is None:
                    raise RuntimeError(f"{video}: {frame.reason}")
                Image.fromarray(frame.image).save(frame_folder / f"{frame.index:05d}.png")
    return len(clips)


def generate(out_dir: str | os.PathLike, per_class: int = 120, size: int = 64, seed: int = 0,
             workers: int = 1, overwrite: bool = False, layout: str = "owdfa40", scale: float = 0.01,
             progress: bool = False) -> dict:
    """Write the mini dataset under ``out_dir``; return a summary dict.

    ``layout`` "owdfa40": ``per_class`` images per forgery class in the
    OWDFA-40 folders; "cpl": the OW-DFA classes in the CPL release's folders,
    their table counts times ``scale``. ``out_dir`` must be missing or empty
    unless ``overwrite`` is set, which first removes the folders this function
    writes. ``workers`` > 1 uses a process pool; the output does not depend on it.
    ``progress``: a bar over the folders on stderr.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if per_class < 1 or size < 16 or not 0 < scale <= 1:
        raise ValueError(f"need per_class >= 1, size >= 16 and 0 < scale <= 1, got per_class={per_class}, "
                         f"size={size}, scale={scale}")
    plan = cpl_plan(scale) if layout == "cpl" else folder_plan(per_class)
    _clear(Path(out_dir), _generated_folders(layout), overwrite)
    jobs = [(str(out_dir), cls, folder, source, indices, size, seed) for cls, folder, source, indices in plan]
    return _run(_write_folder, jobs, workers, {"root": str(out_dir), "size": size, "seed": seed}, "images", progress)


def generate_clips(out_dir: str | os.PathLike, clips: int = 4, frames: int = 16, size: int = 64, seed: int = 0,
                   codec: str = "mp4v", frame_folders: str | os.PathLike | None = None, workers: int = 1,
                   overwrite: bool = False, progress: bool = False) -> dict:
    """Write ``clips`` short video clips per forgery class (the real class REAL_FACTOR times as
    many, over its sources), ``frames`` frames each, into the OWDFA-40 class folders under
    ``out_dir`` (``<class folder>/<n>.mp4`` for mp4v), encoded with ``codec``; with
    ``frame_folders`` also their decoded frames, ``<frame_folders>/<class folder>/<n>/<t>.png``,
    a dataset root whose videos are its folders. Return a summary dict."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    if clips < 1 or frames < 1 or size < 16:
        raise ValueError(f"need clips >= 1, frames >= 1 and size >= 16, got {clips}, {frames}, {size}")
    folders = _generated_folders("owdfa40")
    _clear(Path(out_dir), folders, overwrite)
    if frame_folders:
        _clear(Path(frame_folders), folders, overwrite)
    jobs = [(str(out_dir), cls, folder, source, indices, frames, size, seed, codec,
             frame_folders and str(frame_folders)) for cls, folder, source, indices in folder_plan(clips)]
    summary = {"root": str(out_dir), "size": size, "seed": seed, "codec": codec, "frames_per_clip": frames,
               "frame_folders": frame_folders and str(frame_folders)}
    return _run(_write_clip_folder, jobs, workers, summary, "clips", progress)


def _clear(out_dir: Path, folders: list[str], overwrite: bool) -> None:
    """``out_dir`` must be missing or empty, unless ``overwrite``: then ``folders`` in it are removed."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir} is not empty; pass overwrite=True (--overwrite) "
                                  "to replace the generated folders")
        for folder in folders:
            shutil.rmtree(out_dir / folder, ignore_errors=True)


def _run(write, jobs: list[tuple], workers: int, summary: dict, counted: str, progress: bool) -> dict:
    """Run ``write(*job)`` for every job (in a process pool with ``workers`` > 1; ``progress``: a bar
    over the folders on stderr); the summary gains the total under ``counted``, the count per
    folder and the seconds taken."""
    start = time.perf_counter()
    bar = {"total": len(jobs), "desc": f"writing {summary['root']}", "unit": "folder", "disable": not progress}
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            counts = list(progress_bar(pool.map(write, *zip(*jobs)), **bar))
    else:
        counts = [write(*job) for job in progress_bar(jobs, **bar)]
    return {**summary, counted: sum(counts), "folders": {job[2]: n for job, n in zip(jobs, counts)},
            "seconds": round(time.perf_counter() - start, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m dataset.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="DIR", help="output root (missing or empty)")
    parser.add_argument("--layout", choices=LAYOUTS, default="owdfa40",
                        help="owdfa40: the 41 OWDFA-40 class folders; cpl: the 22 OW-DFA classes in the CPL "
                             "release's <Family>/<Method>/<Source> folders")
    parser.add_argument("--per_class", type=int, default=None,
                        help=f"owdfa40: images per forgery class (default 120); the real class gets "
                             f"{REAL_FACTOR}x over its sources")
    parser.add_argument("--scale", type=float, default=None,
                        help="cpl: factor on the class table's per-class counts (default 0.01: 20 images per "
                             "forgery class, 200 Youtube-Real, 50 Celeb-Real)")
    parser.add_argument("--clips", type=int, default=None, metavar="N",
                        help=f"write this many video clips per forgery class instead of images (the real class "
                             f"gets {REAL_FACTOR}x over its sources); owdfa40 layout only")
    parser.add_argument("--clip_frames", type=int, default=None, help="with --clips: frames per clip (default 16, "
                        f"{CLIP_FPS} fps)")
    parser.add_argument("--codec", choices=CODECS, default=None,
                        help="with --clips: OpenCV FourCC, mp4v (.mp4, default), XVID or MJPG (.avi), FFV1 (.mkv, "
                             "lossless)")
    parser.add_argument("--frame_folders", default=None, metavar="DIR",
                        help="with --clips: also write each clip's decoded frames to DIR/<class folder>/<clip>/, "
                             "a dataset root whose videos are folders (test.py --by_video)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (the same seed writes the same bytes)")
    parser.add_argument("--workers", type=int, default=1, help="processes; the output does not depend on it")
    parser.add_argument("--overwrite", action="store_true", help="replace the generated folders in --out")
    args = parser.parse_args(argv)
    _check_flags(parser, args)
    try:
        if args.clips is not None:
            summary = generate_clips(args.out, args.clips, args.clip_frames or 16, args.size, args.seed,
                                     args.codec or "mp4v", args.frame_folders, args.workers, args.overwrite,
                                     progress=True)
        else:
            summary = generate(args.out, args.per_class or 120, args.size, args.seed, args.workers, args.overwrite,
                               args.layout, 0.01 if args.scale is None else args.scale, progress=True)
    except (FileExistsError, ValueError) as error:
        parser.error(str(error))
    if args.clips is not None:
        print(f"wrote {summary['clips']} {summary['codec']} clips of {summary['frames_per_clip']} frames of "
              f"{args.size} px in {len(summary['folders'])} folders to {summary['root']}"
              + (f", their frames to {summary['frame_folders']}" if summary["frame_folders"] else "")
              + f" in {summary['seconds']} s")
    else:
        print(f"wrote {summary['images']} images of {args.size} px in {len(summary['folders'])} folders "
              f"to {summary['root']} in {summary['seconds']} s")
    return summary


def _check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Each flag belongs to one layout or to clips; a flag given where it does not apply is an error."""
    wrong = "--scale" if args.layout == "owdfa40" and args.scale is not None else (
        "--per_class" if args.layout == "cpl" and args.per_class is not None else None)
    if wrong:
        parser.error(f"{wrong} does not apply to --layout {args.layout}; use "
                     f"{'--per_class' if wrong == '--scale' else '--scale'}")
    clip_flags = {"--clip_frames": args.clip_frames, "--codec": args.codec, "--frame_folders": args.frame_folders}
    if args.clips is None and any(value is not None for value in clip_flags.values()):
        parser.error(f"{next(f for f, v in clip_flags.items() if v is not None)} applies only with --clips N")
    if args.clips is not None and (args.layout == "cpl" or args.per_class is not None):
        parser.error("--clips writes the owdfa40 layout, clips instead of images: drop "
                     + ("--layout cpl" if args.layout == "cpl" else "--per_class"))


if __name__ == "__main__":
    main()
