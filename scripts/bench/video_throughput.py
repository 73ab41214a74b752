"""Video attribution throughput: videos per second and frames per second for a folder of clips.

    python -m dataset.synthetic --out data/clips_bench --clips 1 --clip_frames 64
    python scripts/bench/video_throughput.py --ckpt RUN/checkpoints/last.pt --videos data/clips_bench --num_workers 0 1

Rows: ``read`` decodes each clip's sampled frames and makes the evaluation
view (dataset/video_frames.py, no model, in this process); ``detect`` adds
dlib's face detection on every sampled frame (the work a face-cropping model
adds on a first run; the crop cache then holds the records); ``attribute`` is
predict.py's engine end to end (inference/video_attribution.py: reading in
``--num_workers`` processes, the model in this one, one answer per clip), once
per worker count. Each row: one untimed pass over a few clips, then
``--repeats`` timed passes over all of them; the median, with frames counted
as sampled. torch's thread count is printed (set OMP_NUM_THREADS to change it).
Results: docs/performance.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

WARMUP_CLIPS = 2


def read_pass(paths: list[str], image_size: int, frames: int, detect: bool) -> int:
    """Frames read (and, with ``detect``, searched for a face) over ``paths``, in this process."""
    from dataset.faces import FaceCropper
    from dataset.video_frames import FrameItem, VideoFrameSet

    cropper = FaceCropper() if detect else None
    items = VideoFrameSet(paths, image_size, frames, cropper=cropper)
    return sum(1 for item in items if isinstance(item, FrameItem))


def attribute_pass(attributor, paths: list[str], frames: int, workers: int) -> int:
    from inference.video_attribution import attribute_videos

    return sum(len(r.frames) + len(r.skipped) for r in attribute_videos(attributor, paths, frames=frames,
                                                                        num_workers=workers, progress=False))


def timed(run, paths: list[str], repeats: int) -> dict:
    run(paths[:WARMUP_CLIPS])
    seconds, frames = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        frames = run(paths)
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return {"videos_per_s": len(paths) / median, "frames_per_s": frames / median, "frames": frames, "seconds": median}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint, run directory or export folder")
    parser.add_argument("--videos", required=True, help="folder of video files (searched recursively)")
    parser.add_argument("--frames", type=int, default=16, help="frames sampled per video (default 16)")
    parser.add_argument("--num_workers", type=int, nargs="+", default=[0, 1],
                        help="worker counts of the attribute rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    import torch

    from dataset.video_io import is_video_file
    from inference.attributor import Attributor

    paths = sorted(str(p) for p in Path(args.videos).rglob("*") if is_video_file(p))
    if not paths:
        raise SystemExit(f"error: no video files under {args.videos}")
    attributor = Attributor.load(args.ckpt, args.device)
    size = attributor.cfg.image_size
    rows = [("read", timed(lambda p: read_pass(p, size, args.frames, False), paths, args.repeats)),
            ("detect", timed(lambda p: read_pass(p, size, args.frames, True), paths, args.repeats))]
    rows += [(f"attribute, {w} workers", timed(lambda p, w=w: attribute_pass(attributor, p, args.frames, w), paths,
                                               args.repeats)) for w in args.num_workers]
    print(f"{len(paths)} videos under {args.videos}, {args.frames} frames sampled each, model "
          f"{attributor.cfg.backbone} at {size} px on {args.device}, torch threads {torch.get_num_threads()}")
    print("| step | videos/s | frames/s | seconds |\n|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['videos_per_s']:.2f} | {r['frames_per_s']:.1f} | {r['seconds']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
