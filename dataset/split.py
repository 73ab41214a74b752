"""Sampling, train/test split and labelled subset of OWDFA-40 (METHOD.md section 2).

All randomness comes from one ``numpy.random.Generator`` seeded with
``split_seed``; folders and files are sorted before any draw, so the split
depends only on the file names and the seed, never on file-system order.

Order of draws (one generator, classes in ascending index):
  1. each real source folder (sorted by name): at most ``real_source_cap`` images;
  2. each class: at most its budget (real 20,000 if known, other known 2,000,
     novel 1,500); a class with fewer images keeps all and a warning says so;
  3. each class: shuffle, first ``floor(train_fraction * n)`` to train, rest to test;
  4. labelled set: ``floor(prop_train_labels * n)`` of the known-class train images.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from dataset.protocols import NUM_CLASSES, REAL_CLASS, get_class, known_classes, label_map

log = logging.getLogger(__name__)


class DatasetError(RuntimeError):
    """The data on disk cannot serve the requested protocol; the message names the fix."""


@dataclass(frozen=True)
class SplitSpec:
    protocol: int = 1
    split_seed: int = 2025
    real_source_cap: int = 10000
    budget_real: int = 20000
    budget_known: int = 2000
    budget_novel: int = 1500
    train_fraction: float = 0.8
    prop_train_labels: float = 0.75

    @classmethod
    def from_config(cls, cfg) -> SplitSpec:
        return cls(**{name: cfg[name] for name in cls.__dataclass_fields__})


@dataclass
class Split:
    """Paths and labels of one protocol's split. Labels are model labels
    (known first); ``orig_*`` keep the original class indices."""
    protocol: int
    num_known: int
    train_paths: list[str]
    train_orig: np.ndarray
    labelled: np.ndarray          # bool per train image
    test_paths: list[str]
    test_orig: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    @property
    def num_novel_in_test(self) -> int:
        """Novel classes present in the test labels (the true K_novel for DPP)."""
        labels = self.test_labels
        return int(np.unique(labels[labels >= self.num_known]).size)

    @property
    def train_labels(self) -> np.ndarray:
        return _remap(self.train_orig, self.protocol)

    @property
    def test_labels(self) -> np.ndarray:
        return _remap(self.test_orig, self.protocol)

    def drop(self, bad_paths: set[str]) -> int:
        """Remove images found unreadable before training; returns how many went."""
        keep_train = np.array([p not in bad_paths for p in self.train_paths], dtype=bool)
        keep_test = np.array([p not in bad_paths for p in self.test_paths], dtype=bool)
        self.train_paths = [p for p, k in zip(self.train_paths, keep_train) if k]
        self.train_orig, self.labelled = self.train_orig[keep_train], self.labelled[keep_train]
        self.test_paths = [p for p, k in zip(self.test_paths, keep_test) if k]
        self.test_orig = self.test_orig[keep_test]
        return int((~keep_train).sum() + (~keep_test).sum())

    def summary(self) -> str:
        """ASCII table: per class drawn / train labelled / train unlabelled / test."""
        known = set(known_classes(self.protocol))
        header = f"{'idx':>3} {'code':<5} {'method':<15} {'set':<5} {'train-L':>8} {'train-U':>8} {'test':>6}"
        lines = [f"OWDFA-40 protocol {self.protocol}: {len(known)} known, "
                 f"{NUM_CLASSES - len(known)} novel classes", header, "-" * len(header)]
        totals = np.zeros(3, dtype=int)
        for c in range(NUM_CLASSES):
            in_train = self.train_orig == c
            row = np.array([(in_train & self.labelled).sum(), (in_train & ~self.labelled).sum(),
                            (self.test_orig == c).sum()])
            totals += row
            cls = get_class(c)
            lines.append(f"{c:>3} {cls.code:<5} {cls.method[:15]:<15} {'known' if c in known else 'novel':<5} "
                         f"{row[0]:>8} {row[1]:>8} {row[2]:>6}")
        lines += ["-" * len(header),
                  f"{'':>3} {'all':<5} {'':<15} {'':<5} {totals[0]:>8} {totals[1]:>8} {totals[2]:>6}"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _remap(orig: np.ndarray, protocol: int) -> np.ndarray:
    mapping = label_map(protocol)
    return np.array([mapping[int(c)] for c in orig], dtype=np.int64)


def _draw(items: list[str], k: int, rng: np.random.Generator) -> list[str]:
    """At most ``k`` items without replacement (all of them when there are fewer)."""
    if len(items) <= k:
        return list(items)
    return [items[i] for i in rng.choice(len(items), size=k, replace=False)]


def check_classes(scan: dict[int, list[tuple[str, list[str]]]], root: str) -> None:
    """Every one of the 41 classes must have at least one image."""
    missing = [c for c in range(NUM_CLASSES) if not any(files for _, files in scan.get(c, []))]
    if missing:
        names = ", ".join(f"{get_class(c).folder_name}" for c in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DatasetError(
            f"{len(missing)} of {NUM_CLASSES} classes have no images under {root} (missing: {names}{more}); "
            f"every protocol uses all {NUM_CLASSES} classes. Download and extract OWDFA-40 with "
            f"`python dataset/get_data.py --dataset_root DIR --extract` and set dataset_root=DIR/data")


def make_split(scan: dict[int, list[tuple[str, list[str]]]], spec: SplitSpec, root: str = "") -> Split:
    """Draw the split of ``spec.protocol`` from a scanned folder tree.

    ``scan`` maps class index -> [(folder name, sorted image paths)], as
    ``dataset.folders.scan_dataset`` returns it.
    """
    check_classes(scan, root)
    rng = np.random.default_rng(spec.split_seed)
    known = set(known_classes(spec.protocol))
    notes = []
    pools = {}
    for c in range(NUM_CLASSES):
        pool = []
        for _, files in sorted(scan[c]):
            pool += _draw(sorted(files), spec.real_source_cap, rng) if c == REAL_CLASS else sorted(files)
        pools[c] = pool
    train_paths, train_orig, test_paths, test_orig = [], [], [], []
    for c in range(NUM_CLASSES):
        budget = spec.budget_real if (c == REAL_CLASS and c in known) else (
            spec.budget_known if c in known else spec.budget_novel)
        if len(pools[c]) < budget:
            notes.append(f"class {c} ({get_class(c).code} {get_class(c).method}) has {len(pools[c])} images, "
                         f"fewer than its budget {budget}: all are used")
        pools[c] = _draw(pools[c], budget, rng)
    for c in range(NUM_CLASSES):
        pool = [pools[c][i] for i in rng.permutation(len(pools[c]))]
        n_train = int(len(pool) * spec.train_fraction)
        train_paths += pool[:n_train]
        test_paths += pool[n_train:]
        train_orig += [c] * n_train
        test_orig += [c] * (len(pool) - n_train)
    train_orig = np.array(train_orig, dtype=np.int64)
    known_rows = np.flatnonzero(np.isin(train_orig, list(known)))
    n_labelled = int(len(known_rows) * spec.prop_train_labels)
    labelled = np.zeros(len(train_orig), dtype=bool)
    labelled[known_rows[rng.permutation(len(known_rows))[:n_labelled]]] = True
    for note in notes:
        log.warning(note)
    return Split(spec.protocol, len(known), train_paths, train_orig, labelled,
                 test_paths, np.array(test_orig, dtype=np.int64), notes)
