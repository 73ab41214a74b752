"""Attribute images with a trained model (predict.py's engine).

``Attributor.load`` takes any model source (``inference.loading``) and names
its prototypes (``inference.names``); ``predict_paths`` runs images through
the model's own face crop (through the crop cache) and evaluation view, in
batches, and returns one prediction CSV row per image, ``unknown`` where the
abstain threshold the model carries (discovery/abstain.py) rejects it.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from dataset.image_io import is_image_file
from dataset.video_io import is_video_file
from inference.loading import load_model_state, restore_method
from inference.names import prototype_names, read_names, real_prototypes
from inference.predictions import mark_unknown, prediction_rows
from discovery.abstain import calibrate, prototype_similarity


@dataclass
class Attributor:
    """A loaded model with its names, ready for ``predict_paths``."""
    cfg: dict
    method: object
    device: object
    names: list[str]
    real: set[int]
    prototypes: np.ndarray      # the valid prototype rows, for the prototype similarity
    abstain: dict | None        # the calibrated threshold (None: the model carries none, or --no_unknown)
    min_confidence: float = 0.0

    @classmethod
    def load(cls, source: str, device: str | None = None, names_file: str | None = None,
             trust: bool = False, allow_class_change: bool = False, min_confidence: float = 0.0,
             unknown: bool = True) -> "Attributor":
        """``min_confidence``: also call an image unknown below this softmax confidence;
        ``unknown=False``: never abstain (every image gets its nearest class)."""
        from utils.device import resolve_device
        from utils.config import merge, recorded_config

        state = load_model_state(source, trust, allow_class_change)
        cfg = merge(recorded_config(state["config"], source), {"pretrained": False, "resume": ""}, "inference")
        torch_device = resolve_device(device or "auto")
        method = restore_method(cfg, state, torch_device)
        names = prototype_names(state, read_names(names_file) if names_file else None)
        return cls(cfg, method, torch_device, names, real_prototypes(state),
                   method.prototype_rows(),
                   state.get("abstain") if unknown else None, min_confidence if unknown else 0.0)

    def calibrate(self, paths: list[str], **options) -> dict:
        """Calibrate the abstain threshold on ``paths`` (a model's training images), for a model
        that carries none; ``options`` as for ``predict_paths``. Returns it."""
        out = self.outputs(paths, **options)
        self.abstain = calibrate(out["features"], self.prototypes)
        return self.abstain

    def predict_paths(self, paths: list[str], batch_size: int | None = None, num_workers: int | None = None,
                      crop_cache_dir: str | None = None, progress: bool = True) -> list[dict]:
        """One CSV row (``inference.predictions.COLUMNS``) per path, in order; unreadable files give error rows."""
        out = self.outputs(paths, batch_size, num_workers, crop_cache_dir, progress)
        mark_unknown(out, self.prototypes, self.abstain, self.min_confidence)
        return prediction_rows(paths, out, self.names, self.real)

    def frame_outputs(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Softmax probabilities over the valid prototypes [B, V] and prototype similarities [B] of a batch
        of uint8 images [B, 3, S, S] already in the evaluation view (video frames)."""
        import torch

        from utils.device import autocast_for, to_layout, use_bf16
        from utils.evaluation import batch_outputs

        self.method.model.eval()
        images = to_layout(images.to(self.device, non_blocking=True), self.cfg.channels_last)
        with torch.no_grad(), autocast_for(self.device, use_bf16(self.cfg.amp, self.cfg.image_size)):
            out = batch_outputs(self.method.predict, images, self.method.features, probabilities=True)
        return out["prob"].cpu().numpy(), prototype_similarity(out["features"].cpu().numpy(), self.prototypes)

    def outputs(self, paths: list[str], batch_size: int | None = None, num_workers: int | None = None,
                crop_cache_dir: str | None = None, progress: bool = True) -> dict:
        """``utils.evaluation.predict``'s output over ``paths``, with features."""
        from dataset.owdfa import EvalSet, image_loader, shutdown_workers
        from utils.device import use_bf16
        from utils.evaluation import predict
        from utils.memory import memory_hint

        cfg = self.cfg
        workers = cfg.num_workers if num_workers is None else num_workers
        reader = input_reader(cfg, paths, crop_cache_dir, workers)
        dataset = EvalSet(paths, np.full(len(paths), -1), reader, cfg.image_size)
        batch_size = batch_size or cfg.test_batch_size
        loader = image_loader(dataset, batch_size, workers, pin_memory=self.device.type == "cuda")
        try:
            with memory_hint("predicting", ("--batch_size ", batch_size)):
                return predict(self.method.predict, self.method.model, loader, self.device,
                               use_bf16(cfg.amp, cfg.image_size), cfg.channels_last, self.method.features, progress)
        finally:
            shutdown_workers(loader)


def input_reader(cfg, paths: list[str], crop_cache_dir: str | None, workers: int):
    """The training reader for arbitrary files: with ``crop_face`` the faces
    are detected once and kept in a crop cache, by default in the user's cache
    folder (``dataset.crop_cache.user_cache_dir`` of the inputs' common folder),
    so inputs on a read-only or shared mount get no files beside them."""
    from dataset.owdfa import ImageReader, build_reader
    from utils.config import Config

    if not cfg.crop_face or not paths:
        return ImageReader()
    root, cache = crop_cache_place(paths, crop_cache_dir)
    local = Config({**cfg, "dataset_root": root, "crop_cache_dir": cache, "num_workers": workers})
    return build_reader(local, dict.fromkeys(paths, -1), cache_hint=CACHE_HINT)[0]


CACHE_HINT = "--crop_cache_dir DIR"  # how predict.py's user moves the crop cache, for its messages


def crop_cache_place(paths: list[str], crop_cache_dir: str | None) -> tuple[str, str]:
    """(root, cache folder) of the crop cache for arbitrary input files: their common folder, and
    ``crop_cache_dir`` or the user's cache folder for it (``dataset.crop_cache.user_cache_dir``)."""
    from dataset.crop_cache import user_cache_dir

    root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    return root, crop_cache_dir or str(user_cache_dir(root))


class Inputs(NamedTuple):
    paths: list[str]
    skipped: int  # files in the folders given that are neither images nor videos


def collect_inputs(inputs: list[str], stdin=None) -> Inputs:
    """Image and video paths from files (kept as given, readable or not), folders
    (image and video files below them, recursively, sorted; the other files counted)
    and ``-`` (one path per line of stdin, read as bytes so that any file
    name arrives as the OS's)."""
    paths, skipped = [], 0
    for item in inputs:
        if item == "-":
            lines = (os.fsdecode(line) if isinstance(line, bytes) else line
                     for line in (stdin if stdin is not None else sys.stdin.buffer))
            paths += [line.strip() for line in lines if line.strip()]
        elif os.path.isdir(item):
            files = [os.path.join(folder, name) for folder, _, names in os.walk(item) for name in names]
            found = sorted(path for path in files if is_image_file(path) or is_video_file(path))
            paths += found
            skipped += len(files) - len(found)
        else:
            paths.append(item)
    return Inputs(paths, skipped)
