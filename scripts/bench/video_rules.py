"""Frame-level against video-level accuracy, for every rule that pools a video's frames into one answer.

    python -m dataset.synthetic --out data/clips_s1_mp4v --clips 10 --clip_frames 48 --seed 1
    python scripts/bench/video_rules.py --ckpt RUN/checkpoints/last.pt --clips data/clips_s1_mp4v data/clips_s1_ffv1

Each ``--clips`` folder holds clips in class folders (the mini generator's
``--clips`` layout). Every clip is attributed by predict.py's engine
(``--frames`` sampled frames); the same per-frame probabilities give the
frame-level metrics (each frame alone) and the video-level ones under each
rule of inference/video_pooling.py, as test.py computes them: All ACC, Known
ACC, Novel ACC, the share of novel-class frames or clips answered by a novel
prototype, and the share the abstain rule calls unknown (a frame's similarity,
a clip's mean similarity, below the model's threshold). Prints a Markdown table
(``--out``, ``--json`` also write it).
Results: docs/attribution.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

COLUMNS = (("all_acc", "All"), ("known_acc", "Known"), ("novel_acc", "Novel"), ("novel_on_novel", "novel on novel"),
           ("unknown", "unknown"))


def labelled_clips(folder: str, label_map: dict[int, int]) -> tuple[list[str], list[int]]:
    """The video files under ``folder``'s class folders (sorted) and their model labels; folders whose
    index is not in the model's classes are left out."""
    from dataset.folders import parse_class_index
    from dataset.video_io import is_video_file

    paths, labels = [], []
    for name in sorted(os.listdir(folder)):
        index = parse_class_index(name)
        if index not in label_map:
            continue
        for directory, _, files in sorted(os.walk(os.path.join(folder, name))):
            for file in sorted(f for f in files if is_video_file(f)):
                paths.append(os.path.join(directory, file))
                labels.append(label_map[index])
    if not paths:
        raise SystemExit(f"error: no clips in class folders under {folder}")
    return paths, labels


def scores(true: list[int], pred: list[int], num_known: int, similarity: list[float], threshold: float | None) -> dict:
    """Metrics of the nearest prototypes ``pred``, and the share the abstain rule calls unknown."""
    from utils.metrics import attribution_metrics

    true, pred = np.asarray(true), np.asarray(pred)
    metrics = attribution_metrics(true, pred, num_known)
    novel = true >= num_known
    metrics["novel_on_novel"] = float((pred[novel] >= num_known).mean()) if novel.any() else None
    metrics["unknown"] = None if threshold is None else float((np.asarray(similarity) < threshold).mean())
    return metrics


def measure(attributor, folder: str, frames: int, num_workers: int) -> dict:
    """Frame-level and per-rule video-level metrics of the clips under ``folder``."""
    from dataset.protocols import label_space
    from inference.video_attribution import attribute_videos
    from inference.video_pooling import RULES, pool_frames

    space = label_space(attributor.cfg)
    paths, labels = labelled_clips(folder, space.label_map)
    label_of = dict(zip(paths, labels))
    results = [r for r in attribute_videos(attributor, paths, frames=frames, num_workers=num_workers)
               if r.prob is not None]
    threshold = attributor.abstain["threshold"] if attributor.abstain else None
    frame_true = [label_of[r.path] for r in results for _ in r.frames]
    frame_pred = np.concatenate([r.prob.argmax(axis=1) for r in results]).tolist()
    levels = {"frame": scores(frame_true, frame_pred, space.num_known, np.concatenate([r.similarity for r in results]),
                              threshold)}
    for rule in RULES:
        answers = [pool_frames(r.prob, rule, r.similarity) for r in results]
        levels[f"video, {rule}"] = scores([label_of[r.path] for r in results], [a.index for a in answers],
                                          space.num_known, [a.similarity for a in answers], threshold)
    return {"folder": folder, "clips": len(results), "skipped_clips": len(paths) - len(results),
            "frames": len(frame_true), "levels": levels}


def table(measured: list[dict]) -> str:
    lines = ["| clips | level | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for entry in measured:
        name = f"{Path(entry['folder']).name} ({entry['clips']} clips, {entry['frames']} frames)"
        for level, metrics in entry["levels"].items():
            cells = ["n/a" if metrics[k] is None else f"{100 * metrics[k]:.1f}" for k, _ in COLUMNS]
            lines.append(f"| {name} | {level} | " + " | ".join(cells) + " |")
            name = ""
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint, run directory or export folder")
    parser.add_argument("--clips", nargs="+", required=True, help="folders of clips in class folders")
    parser.add_argument("--frames", type=int, default=16, help="frames sampled per clip (default 16)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num_workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--out", default=None, help="also write the table to this .md file")
    parser.add_argument("--json", default=None, help="write the numbers to this .json file")
    args = parser.parse_args(argv)
    from inference.attributor import Attributor

    attributor = Attributor.load(args.ckpt, args.device)
    measured = [measure(attributor, folder, args.frames, args.num_workers) for folder in args.clips]
    text = table(measured)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(measured, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
