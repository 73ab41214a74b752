"""OWDFA-40 as PyTorch datasets: folder scan -> split -> cached face crops ->
weak/strong training views and test views.

Face detection never runs here per read: ``build_data`` fills the persistent
crop cache once (in parallel, only for images it lacks) and the datasets read
the stored boxes; without face crops the same cache records which images
decode. Unreadable images are left out of the split up front; one that
becomes unreadable later is replaced by another image of the same class
(training) or left out of the metrics (test), and counted.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from dataset.image_io import UnreadableImage, read_rgb
from dataset.sampler import EpochDrawSampler, ShardSampler, labelled_weights
from dataset.split import DatasetError, Split, SplitSpec, make_split
from dataset.split_file import SplitRecord, describe_change, record_split, split_from_file
from dataset.transforms import EvalView, TrainViews

log = logging.getLogger(__name__)
MAX_LISTED = 20  # unreadable files named one by one in the log


class ImageReader:
    """Path -> RGB array, cropped to the cached face box when crops are on."""

    def __init__(self, records: dict | None = None, cropper=None):
        self.records, self.cropper = records, cropper

    def __call__(self, path: str) -> np.ndarray:
        image = read_rgb(path)
        if self.records is None:
            return image
        return self.cropper.crop(image, self.records[path])


class TrainSet(Dataset):
    """Items are ``(index, epoch, position)`` from ``EpochDrawSampler``; the
    augmentation generator is seeded by (seed, epoch, position).

    ``device_views=True`` (config ``gpu_augment``): an item carries the image
    resized to S*256/224 (``source``) and its drawn view parameters
    (``view_params``) instead of the views, which
    ``dataset.transforms.device_views`` makes batched on the device."""

    def __init__(self, paths: list[str], labels: np.ndarray, labelled: np.ndarray,
                 reader: ImageReader, image_size: int, seed: int, device_views: bool = False):
        self.paths, self.labels, self.labelled = paths, np.asarray(labels), np.asarray(labelled, dtype=bool)
        self.reader, self.seed, self.device_views = reader, seed, device_views
        self.views = TrainViews(image_size)
        self.by_class = {c: np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item):
        index, epoch, position = item
        rng = np.random.default_rng([self.seed, epoch, position])
        image, replaced = self._read(index, rng)
        if self.device_views:
            source, params = self.views.source(image, rng)
            views = {"source": source, "view_params": params}
        else:
            weak, strong = self.views(image, rng)
            views = {"weak": weak, "strong": strong}
        return {
            **views,
            # labels of unlabelled rows are hidden from the method
            "label": int(self.labels[index]) if self.labelled[index] else -1,
            "labelled": bool(self.labelled[index]),
            "index": index,
            "replaced": replaced,
        }

    def _read(self, index: int, rng: np.random.Generator, tries: int = 5) -> tuple[np.ndarray, int]:
        """The image, or another of the same class if it has become unreadable."""
        candidate = index
        for attempt in range(tries):
            try:
                return self.reader(self.paths[candidate]), int(attempt > 0)
            except UnreadableImage as err:
                log.warning("unreadable training image %s (%s); replaced by another of its class",
                            self.paths[candidate], err.reason)
                candidate = int(rng.choice(self.by_class[self.labels[index]]))
        raise DatasetError(f"{tries} images of class label {self.labels[index]} in a row are unreadable "
                           f"(last: {self.paths[candidate]}); run `python dataset/prepare.py` to find them")


class EvalSet(Dataset):
    """Deterministic test view; an unreadable image yields ``valid=False``
    (and the reason in ``error``) and is left out of the metrics (and counted)."""

    def __init__(self, paths: list[str], labels: np.ndarray, reader: ImageReader, image_size: int):
        self.paths, self.labels, self.reader = paths, np.asarray(labels), reader
        self.view = EvalView(image_size)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image, valid, error = self.view(self.reader(self.paths[index])), True, ""
        except UnreadableImage as err:
            log.warning("unreadable image %s (%s): no prediction for it", self.paths[index], err.reason)
            image, valid, error = torch.zeros(3, self.image_size, self.image_size, dtype=torch.uint8), False, err.reason
        return {"image": image, "label": int(self.labels[index]), "index": index, "valid": valid, "error": error}


@dataclass
class Data:
    split: Split
    train_set: TrainSet
    test_set: EvalSet
    crop_report: dict | None
    record: SplitRecord | None = None   # split.json content: the split as drawn, its fingerprint


def check_dataset_root(root: str) -> Path:
    """The dataset root must be an existing folder; say how to get one otherwise."""
    if not root:
        raise DatasetError("dataset_root is not set: pass dataset_root=DIR (or set DATASET_ROOT=DIR), where DIR "
                           "holds the <index>_<Type>_<Method> class folders. Get OWDFA-40 with "
                           "`python dataset/get_data.py --dataset_root DIR0 --extract` (DIR=DIR0/data) or make the "
                           "mini dataset with `python -m dataset.synthetic --out DIR`")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(f"dataset_root={root!r} is not a folder. Get OWDFA-40 with "
                           f"`python dataset/get_data.py --dataset_root DIR0 --extract` and pass "
                           f"dataset_root=DIR0/data, "
                           f"or make the mini dataset with `python -m dataset.synthetic --out {root}`")
    return path


def crop_settings(cfg):
    """The ``CropSettings`` of a config (face_margin, align_face, predictor_path)."""
    from dataset.faces import CropSettings

    return CropSettings(margin=cfg.face_margin, align=cfg.align_face, predictor_path=cfg.predictor_path)


def build_reader(cfg, labels: dict[str, int], is_main: bool = True, barrier=None,
                 cache_hint: str | None = None) -> tuple[ImageReader, dict | None, set]:
    """Fill the crop cache for the images of ``labels`` (path -> class; main
    process only, in parallel) and return the reader, the per-class crop
    report and the paths found unreadable. With ``crop_face=false`` the cache
    holds only whether each image decodes, so unreadable files are still found
    once, up front (there is no crop report). ``cache_hint``: how the user
    moves the cache, for its error messages (default: the config key)."""
    from dataset.crop_cache import CONFIG_HINT, CropCache, class_report
    from dataset.faces import FaceCropper

    settings = crop_settings(cfg)
    cache = CropCache(cfg.crop_cache_dir or None, cfg.dataset_root, settings, hint=cache_hint or CONFIG_HINT)
    fill = cache.ensure if cfg.crop_face else cache.check_readable
    paths = list(labels)
    if is_main:
        found = fill(paths, workers=max(1, cfg.num_workers))
    if barrier is not None:
        barrier()
    if not is_main:
        found = fill(paths, workers=0, progress=False)
    if not cfg.crop_face:
        unreadable = {path: reason for path, reason in found.items() if reason}
        for path, reason in list(unreadable.items())[:MAX_LISTED]:
            log.warning("unreadable image %s (%s)", path, reason)
        if len(unreadable) > MAX_LISTED:
            log.warning("... and %d more unreadable images", len(unreadable) - MAX_LISTED)
        return ImageReader(), None, set(unreadable)
    unreadable = {p for p, r in found.items() if r.status == "unreadable"}
    return ImageReader(found, FaceCropper(settings)), class_report(found, labels), unreadable


def draw_split(cfg) -> tuple[Split, SplitRecord]:
    """The split ``cfg`` asks for and its record: read from ``split_file`` or drawn
    from a folder scan. Lists folders only, never opens an image."""
    from dataset.folders import scan_dataset

    root = check_dataset_root(cfg.dataset_root)
    if cfg.split_file:
        split, published = split_from_file(cfg.split_file, str(root), cfg.protocol,
                                           SplitSpec.from_config(cfg).label_space())
        record = record_split(split, str(root), published.spec, source=cfg.split_file)
        if record.fingerprint != published.fingerprint:
            log.warning("split_file %s: %s since it was written (the data is not byte-identical)",
                        cfg.split_file, describe_change(published, record))
        return split, record
    spec = SplitSpec.from_config(cfg)
    split = make_split(scan_dataset(str(root), spec.label_space().table.class_folders()), spec, str(root))
    return split, record_split(split, str(root), asdict(spec))


def check_batch_fits(split: Split, cfg) -> None:
    """An epoch needs at least one full batch (the last incomplete one is dropped)."""
    if len(split.train_paths) < cfg.batch_size:
        raise DatasetError(f"the training split has {len(split.train_paths)} images, fewer than batch_size="
                           f"{cfg.batch_size}, so an epoch would have no step (the last incomplete batch is "
                           f"dropped); lower batch_size or add images")


def build_data(cfg, is_main: bool = True, barrier=None, train: bool = True,
               drawn: tuple[Split, SplitRecord] | None = None) -> Data:
    """Split (``drawn``, from ``draw_split``, or drawn here), crop and wrap the dataset
    named by ``cfg`` (``train=False``: crop only the test images, for evaluation)."""
    root = check_dataset_root(cfg.dataset_root)
    split, record = drawn or draw_split(cfg)
    labels = dict(zip(split.test_paths, split.test_orig.tolist()))
    if train:
        labels.update(zip(split.train_paths, split.train_orig.tolist()))
    reader, report, unreadable = build_reader(cfg, labels, is_main, barrier)
    if unreadable:
        dropped = split.drop(unreadable)
        record.left_out = sorted(Path(p).relative_to(root).as_posix() for p in unreadable)
        split.notes.append(f"{dropped} unreadable images left out of the split "
                           f"({'see the crop report' if report else 'listed above'})")
    train_set = TrainSet(split.train_paths, split.train_labels, split.labelled, reader, cfg.image_size, cfg.seed,
                         cfg.gpu_augment)
    test_set = EvalSet(split.test_paths, split.test_labels, reader, cfg.image_size)
    return Data(split, train_set, test_set, report, record)


WORKER_TERM_GRACE_S = 60.0


def _worker_signals(_worker_id: int) -> None:
    """Workers leave Ctrl-C to the main process, which stops cleanly after the
    current step and then shuts them down (``shutdown_workers``). A SIGTERM
    sent to the whole job (pre-emption) ends a worker only after a grace
    period, so the main process can finish its step and save first; dying at
    once would make PyTorch raise inside the main process mid-step. The grace
    period also bounds any wait for a worker at interpreter exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: threading.Timer(WORKER_TERM_GRACE_S, os._exit, (0,)).start())


def shutdown_workers(loader: DataLoader) -> None:
    """Stop a loader's persistent workers now (not at garbage collection,
    which an exception's traceback can delay past interpreter exit)."""
    iterator = getattr(loader, "_iterator", None)  # where DataLoader keeps persistent workers
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    loader._iterator = None


def _worker_options(num_workers: int, pin_memory: bool) -> dict:
    # a private generator: the loader must not consume the global torch RNG
    # (dropout's stream), or a resumed run would diverge from an uninterrupted one
    options = {"num_workers": num_workers, "pin_memory": pin_memory, "generator": torch.Generator()}
    if num_workers > 0:
        options.update(persistent_workers=True, prefetch_factor=4, worker_init_fn=_worker_signals)
    return options


def train_loader(data: Data, cfg, rank: int = 0, world_size: int = 1, pin_memory: bool = False) -> DataLoader:
    check_batch_fits(data.split, cfg)
    sampler = EpochDrawSampler(labelled_weights(data.split.labelled), cfg.batch_size, cfg.seed, rank, world_size)
    return DataLoader(data.train_set, batch_sampler=sampler, **_worker_options(cfg.num_workers, pin_memory))


def eval_loader(data: Data, cfg, rank: int = 0, world_size: int = 1, pin_memory: bool = False,
                dataset: Dataset | None = None) -> DataLoader:
    """Deterministic pass over ``dataset`` (default: the test set)."""
    dataset = data.test_set if dataset is None else dataset
    return image_loader(dataset, cfg.test_batch_size, cfg.num_workers, rank, world_size, pin_memory)


def image_loader(dataset: Dataset, batch_size: int, num_workers: int, rank: int = 0, world_size: int = 1,
                 pin_memory: bool = False) -> DataLoader:
    """Batches of an ``EvalSet`` in index order (this process's shard)."""
    sampler = ShardSampler(len(dataset), rank, world_size)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **_worker_options(num_workers, pin_memory))


def stream_loader(dataset: IterableDataset, num_workers: int, pin_memory: bool = False) -> DataLoader:
    """The items of an IterableDataset one by one (no batching), made in ``num_workers`` processes."""
    return DataLoader(dataset, batch_size=None, **_worker_options(num_workers, pin_memory))


def train_eval_set(data: Data) -> EvalSet:
    """The training images in the test view; ``label`` is the class of a
    labelled image and -1 for an unlabelled one (for feature extraction)."""
    split, train_set = data.split, data.train_set
    labels = np.where(split.labelled, split.train_labels, -1)
    return EvalSet(split.train_paths, labels, train_set.reader, data.test_set.image_size)
