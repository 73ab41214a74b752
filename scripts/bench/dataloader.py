"""Data-loader throughput with and without the persistent face-crop cache.

    python scripts/bench/dataloader.py                      # about 3-5 minutes on 2 CPU cores
    python scripts/bench/dataloader.py --data /path/to/OWDFA40/data --images 400   # real images
    python scripts/bench/dataloader.py --modes warm --workers 15 --images 1536 --no_profile

Training images per second (both views at ``--image_size`` px) through the
training path (``TrainSet``, ``EpochDrawSampler``, the training loader
options) for three ways of getting the face crop: ``per-read`` (dlib detection
on every read, as the authors' loader does), ``warm`` (the crop cache holds
every record) and ``cold`` (an empty cache: ``CropCache.ensure``, then the
pass), each with every ``--workers`` count; ``--gpu_augment`` ships the face
and the view parameters instead of the views. What is timed, the images and
the per-stage profile: docs/performance.md. ``--out``: Markdown + JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dataset.crop_cache import CropCache  # noqa: E402
from dataset.faces import CropSettings, FaceCropper  # noqa: E402
from dataset.image_io import is_image_file, read_rgb  # noqa: E402
from dataset.owdfa import ImageReader, TrainSet, _worker_options  # noqa: E402
from dataset.sampler import EpochDrawSampler  # noqa: E402
from dataset.transforms import TrainViews  # noqa: E402

MODES = ("per-read", "warm", "cold")
# The astronaut's face in skimage.data.astronaut(): dlib's box is about (179, 83)-(266, 170).
FACE_CENTRE, FACE_WIDTH = (222.0, 126.0), 88.0
REQUIRED_RATIO = 5.0  # the target: warm cache >= 5x per-read detection at 256 px with 2 workers


class DetectingReader:
    """Path -> face crop, running dlib detection on every read (the authors'
    behaviour, kept here only as the benchmark's baseline)."""

    def __init__(self, cropper: FaceCropper):
        self.cropper = cropper

    def __call__(self, path: str) -> np.ndarray:
        image = read_rgb(path)
        return self.cropper.crop(image, self.cropper.detect(image))


# ---------------------------------------------------------------- images

def make_face_images(out_dir: str | os.PathLike, count: int, seed: int = 0,
                     sides: tuple[int, int] = (256, 1024)) -> list[str]:
    """Write ``count`` face images (JPEG/PNG, longer side in ``sides``) under ``out_dir``; return their paths."""
    import skimage.data

    rng = np.random.default_rng(seed)
    face = skimage.data.astronaut()
    backgrounds = [skimage.data.coffee(), skimage.data.rocket()]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        long_side = int(rng.integers(sides[0], sides[1] + 1))
        aspect = float(rng.choice([1.0, 4 / 3, 16 / 9]))
        short_side = max(sides[0] * 3 // 4, round(long_side / aspect))
        width, height = (long_side, short_side) if rng.random() < 0.7 else (short_side, long_side)
        # dlib (upsample 0) finds faces from ~80 px; keep the face inside the frame with room around it
        face_width = rng.uniform(80, max(81, min(260, 0.55 * min(width, height))))
        scale = face_width / FACE_WIDTH
        person = np.asarray(Image.fromarray(face).resize((round(512 * scale),) * 2, Image.BICUBIC))
        bg = backgrounds[i % len(backgrounds)]
        canvas = np.array(Image.fromarray(bg).resize((width, height), Image.BILINEAR))
        # face centre at a random place with the whole face box inside the frame
        half = 0.75 * face_width
        cx = rng.uniform(half, width - half) if width > 2 * half else width / 2
        cy = rng.uniform(half, height - half) if height > 2 * half else height / 2
        x0, y0 = round(cx - FACE_CENTRE[0] * scale), round(cy - FACE_CENTRE[1] * scale)
        sx0, sy0 = max(0, -x0), max(0, -y0)
        dx0, dy0 = max(0, x0), max(0, y0)
        w = min(person.shape[1] - sx0, width - dx0)
        h = min(person.shape[0] - sy0, height - dy0)
        canvas[dy0:dy0 + h, dx0:dx0 + w] = person[sy0:sy0 + h, sx0:sx0 + w]
        if rng.random() < 0.5:
            canvas = canvas[:, ::-1]
        gain = rng.uniform(0.8, 1.2, size=3) * rng.uniform(0.85, 1.15)
        canvas = np.clip(canvas * gain + rng.uniform(-15, 15), 0, 255).astype(np.uint8)
        if rng.random() < 0.8:
            path = out / f"face_{i:05d}.jpg"
            Image.fromarray(canvas).save(path, quality=int(rng.integers(75, 96)))
        else:
            path = out / f"face_{i:05d}.png"
            Image.fromarray(canvas).save(path)
        paths.append(str(path))
    return paths


def find_images(root: str | os.PathLike, limit: int, seed: int = 0) -> list[str]:
    """Up to ``limit`` image files under ``root`` (recursively), drawn at random when there are more."""
    paths = sorted(str(p) for p in Path(root).rglob("*") if p.is_file() and is_image_file(p))
    if not paths:
        raise SystemExit(f"no .jpg/.jpeg/.png images under {root}")
    if len(paths) > limit:
        pick = np.random.default_rng(seed).choice(len(paths), size=limit, replace=False)
        paths = [paths[i] for i in sorted(pick)]
    return paths


# ---------------------------------------------------------------- measurement

def _loader(paths, reader, image_size, batch_size, batches, workers, seed,
            device_views: bool = False) -> tuple[DataLoader, EpochDrawSampler]:
    n = len(paths)
    dataset = TrainSet(paths, np.zeros(n, np.int64), np.ones(n, bool), reader, image_size, seed, device_views)
    sampler = EpochDrawSampler(np.ones(n), batch_size, seed, num_draws=batches * batch_size)
    return DataLoader(dataset, batch_sampler=sampler, **_worker_options(workers, pin_memory=False)), sampler


def _warm_up(loader, sampler, batches) -> None:
    """Consume one batch (the last of epoch 0) completely: workers started, nothing left in flight."""
    sampler.set_epoch(0, start_step=batches - 1)
    for _ in loader:
        pass


def _timed_pass(loader, sampler, epoch) -> float:
    sampler.set_epoch(epoch)
    start = time.perf_counter()
    for batch in loader:
        assert "view_params" in batch or batch["weak"].shape == batch["strong"].shape
    return time.perf_counter() - start


def run_benchmark(paths: list[str], dataset_root: str, work_dir: str, image_size: int = 256,
                  batch_size: int = 32, batches: int = 0, workers: tuple[int, ...] = (0, 2),
                  repeats: int = 3, seed: int = 0, log=print, modes: tuple[str, ...] = MODES,
                  device_views: bool = False) -> dict:
    """Images/s per mode and worker count (see the module docstring for what is timed);
    ``modes`` selects a subset of MODES; ``device_views``: the workers ship the
    resized face and the view parameters (``gpu_augment=true``), not the views.

    Returns ``{"rows": [{mode, workers, images, seconds, images_per_s, passes, ensure_seconds}],
    "ratios": {workers: {"warm/per-read", "cold/per-read"}} (the ratios whose modes ran), "settings": {...}}``.
    """
    if batches <= 0:
        batches = max(1, len(paths) // batch_size)
    settings = CropSettings()
    cropper = FaceCropper(settings)
    warm_records = CropCache(Path(work_dir) / "warm_cache", dataset_root, settings).ensure(
        paths, workers=max(1, max(workers)), progress=False)  # filled before any timing
    faces = sum(r.status == "face" for r in warm_records.values())
    images = batches * batch_size
    rows = []
    for w in workers:
        for mode in modes:
            passes, ensures = [], []
            if mode == "cold":
                for r in range(repeats):
                    cache = CropCache(Path(work_dir) / f"cold_cache_w{w}_r{r}", dataset_root, settings)
                    start = time.perf_counter()
                    records = cache.ensure(paths, workers=max(1, w), progress=False)
                    ensures.append(time.perf_counter() - start)
                    loader, sampler = _loader(paths, ImageReader(records, cropper), image_size, batch_size,
                                              batches, w, seed, device_views)
                    _warm_up(loader, sampler, batches)  # not timed, as in the other modes
                    passes.append(ensures[-1] + _timed_pass(loader, sampler, 1 + r))
                    del loader  # stops its persistent workers before the next measurement
            else:
                reader = DetectingReader(cropper) if mode == "per-read" else ImageReader(warm_records, cropper)
                loader, sampler = _loader(paths, reader, image_size, batch_size, batches, w, seed, device_views)
                _warm_up(loader, sampler, batches)
                passes = [_timed_pass(loader, sampler, 1 + r) for r in range(repeats)]
                del loader
            seconds = statistics.median(passes)
            rows.append({"mode": mode, "workers": w, "images": images, "seconds": round(seconds, 3),
                         "images_per_s": round(images / seconds, 1), "passes": [round(p, 3) for p in passes],
                         "ensure_seconds": [round(e, 3) for e in ensures]})
            log(f"  {mode:>8}  workers={w}  {images / seconds:8.1f} images/s  "
                f"(median of {', '.join(f'{p:.2f}' for p in passes)} s"
                + (f"; ensure {', '.join(f'{e:.2f}' for e in ensures)} s)" if ensures else ")"))
    rate = {(r["mode"], r["workers"]): r["images_per_s"] for r in rows}
    ratios = {w: {f"{m}/per-read": round(rate[m, w] / rate["per-read", w], 2)
                  for m in ("warm", "cold") if (m, w) in rate and ("per-read", w) in rate} for w in workers}
    return {"rows": rows, "ratios": ratios,
            "settings": {"images_in_set": len(paths), "faces_found": faces, "image_size": image_size,
                         "batch_size": batch_size, "batches": batches, "repeats": repeats,
                         "workers": list(workers), "modes": list(modes), "gpu_augment": device_views}}


SIZE_BUCKETS = (384, 640, 896)  # long-side bucket edges of the profile, px


def stage_profile(paths: list[str], image_size: int = 256, limit: int = 48) -> dict:
    """Mean ms per image, in this process, of each stage of a read: decode, detection, crop + both views.

    Overall and per long-side bucket, with the ratio a read costs with and
    without detection, (decode + detect + views) / (decode + views): the
    warm / per-read speed-up to expect before loader overhead (means, since
    throughput follows the mean). The views are timed with one thread (as in
    a loader worker) and, overall, with torch's current intra-op thread count
    (as with ``num_workers=0``).
    """
    cropper, views = FaceCropper(), TrainViews(image_size)
    cropper.detect(np.zeros((64, 64, 3), np.uint8))  # load the detector outside the timing
    rng = np.random.default_rng(0)
    threads = torch.get_num_threads()
    rows = []  # (long side, decode, detect, views 1 thread, views current threads)
    for path in paths[:limit]:
        t0 = time.perf_counter()
        image = read_rgb(path)
        t1 = time.perf_counter()
        record = cropper.detect(image)
        t2 = time.perf_counter()
        views = []
        for n in (1, threads):
            torch.set_num_threads(n)
            try:
                t3 = time.perf_counter()
                face = cropper.crop(image, record)
                views(face, rng)
                views.append(time.perf_counter() - t3)
            finally:
                torch.set_num_threads(threads)
        rows.append((max(image.shape[:2]), *(1e3 * t for t in (t1 - t0, t2 - t1, *views))))

    def summary(selected):
        decode, detect, views = (round(statistics.mean(r[i] for r in selected), 2) for i in (1, 2, 3))
        return {"images": len(selected), "decode": decode, "detect": detect, "crop+views": views,
                "ratio": round((decode + detect + views) / (decode + views), 2)}

    edges = (0, *SIZE_BUCKETS, 1 << 30)
    buckets = {}
    for lo, hi in zip(edges, edges[1:]):
        selected = [r for r in rows if lo < r[0] <= hi]
        if selected:
            buckets[f"{lo + 1}-{hi}" if hi < 1 << 30 else f">{lo}"] = summary(selected)
    return {"all": summary(rows), "by_long_side": buckets, "torch_threads": threads,
            f"crop+views_{threads}_threads": round(statistics.mean(r[4] for r in rows), 2)}


def format_profile(profile: dict) -> str:
    lines = ["| long side (px) | images | decode | detect | crop + views | (all) / (no detect) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, p in [*profile["by_long_side"].items(), ("all", profile["all"])]:
        lines.append(f"| {name} | {p['images']} | {p['decode']:.1f} | {p['detect']:.1f} | {p['crop+views']:.1f} "
                     f"| {p['ratio']:.2f}x |")
    threads = profile["torch_threads"]
    return "\n".join(lines) + (f"\n\ncrop + views with {threads} torch threads (num_workers=0): "
                               f"{profile[f'crop+views_{threads}_threads']:.1f} ms" if threads > 1 else "")


# ---------------------------------------------------------------- report

def format_table(result: dict) -> str:
    lines = ["| mode | workers | images/s | seconds (median) | of which ensure | images per pass |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        ensure = f"{statistics.median(r['ensure_seconds']):.2f}" if r["ensure_seconds"] else "-"
        lines.append(f"| {r['mode']} | {r['workers']} | {r['images_per_s']:.1f} | {r['seconds']:.2f} | {ensure} "
                     f"| {r['images']} |")
    lines += ["", "| workers | warm / per-read | cold / per-read |", "|---:|---:|---:|"]
    for w, ratio in result["ratios"].items():
        cells = [f"{ratio[k]:.2f}x" if k in ratio else "-" for k in ("warm/per-read", "cold/per-read")]
        lines.append(f"| {w} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _machine() -> dict:
    info = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__}
    if hasattr(os, "getloadavg"):
        info["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="", help="folder of face images (searched recursively); default: "
                                                   "generate them from scikit-image's astronaut photo")
    parser.add_argument("--images", type=int, default=200, help="images in the benchmark set")
    parser.add_argument("--batches", type=int, default=0,
                        help="timed batches per pass (0: one epoch, images // batch_size)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=256, help="side of both training views")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers values")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                        help="which crop paths to time (e.g. only warm on a many-core machine)")
    parser.add_argument("--gpu_augment", action="store_true",
                        help="workers ship the resized face + view parameters (gpu_augment=true), not the views")
    parser.add_argument("--no_profile", action="store_true", help="skip the per-stage profile (it runs detection)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per configuration (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch_threads", type=int, default=0,
                        help="torch intra-op threads of this process (0: torch's default, as training uses)")
    parser.add_argument("--out", default="bench_results/dataloader.md", help="Markdown report (JSON inside)")
    args = parser.parse_args(argv)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)

    with tempfile.TemporaryDirectory(prefix="bench_dataloader_") as tmp:
        if args.data:
            root = os.path.abspath(args.data)
            paths = find_images(root, args.images, args.seed)
            source = f"{len(paths)} images from {root}"
        else:
            root = os.path.join(tmp, "data")
            start = time.perf_counter()
            paths = make_face_images(root, args.images, args.seed)
            source = (f"{len(paths)} generated face images (astronaut, frames 256-1024 px, "
                      f"made in {time.perf_counter() - start:.1f} s)")
        print(f"images: {source}")
        profile = None if args.no_profile else stage_profile(paths, args.image_size)
        if profile:
            print("per-image stages, one process, one torch thread (mean ms):\n" + format_profile(profile))
        machine_before = _machine()
        result = run_benchmark(paths, root, tmp, args.image_size, args.batch_size, args.batches,
                               tuple(args.workers), args.repeats, args.seed, modes=tuple(args.modes),
                               device_views=args.gpu_augment)
    result.update(source=source, profile=profile, machine_before=machine_before, machine_after=_machine(),
                  command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]))
    s = result["settings"]
    table = format_table(result)
    print(f"\nimages/s (weak + strong views at {s['image_size']} px, batch {s['batch_size']}, "
          f"{s['batches']} timed batches per pass, median of {s['repeats']} passes; "
          f"faces found in {s['faces_found']}/{s['images_in_set']} images)\n{table}")
    verdict = ""
    if "warm/per-read" in result["ratios"].get(2, {}):
        ratio = result["ratios"][2]["warm/per-read"]
        verdict = (f"warm cache vs per-read detection, 2 workers: {ratio:.2f}x "
                   f"({'meets' if ratio >= REQUIRED_RATIO else 'BELOW'} the required {REQUIRED_RATIO:.0f}x)")
        print(f"\n{verdict}")
    print(f"machine: {result['machine_after']}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join([
        "# Data-loader throughput", "",
        f"`{result['command']}` -- {time.strftime('%Y-%m-%d %H:%M:%S')}", "",
        f"- images: {source}; faces found in {s['faces_found']}/{s['images_in_set']}",
        f"- images/s of training samples (weak + strong views at {s['image_size']} px), batch {s['batch_size']}, "
        f"{s['batches']} timed batches per pass, median of {s['repeats']} passes; warm-up batch not timed; "
        "cold includes `CropCache.ensure` on an empty cache",
        f"- machine before / after: {machine_before} / {result['machine_after']}", "",
        table, "", *([verdict, ""] if verdict else []),
        *(["Per-image stages in one process, one torch thread (mean ms):", "", format_profile(profile), ""]
          if profile else []),
        "```json", json.dumps(result, indent=1), "```", ""]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
