"""Sampling, train/test split and labelled subset of OWDFA-40 (METHOD.md section 2).

All randomness comes from one ``numpy.random.Generator`` seeded with
``split_seed``; folders and files are sorted before any draw, so the split
depends only on the file names and the seed, never on file-system order.

Order of draws (one generator, classes in ascending index):
  1. each real source folder (sorted by name): at most ``real_source_cap`` images;
  2. each class: at most its budget (real 20,000 if known, other known 2,000,
     novel 1,500; "real": family Real); a class with fewer images keeps all, with a note;
  3. each class: shuffle, first ``floor(train_fraction * n)`` to train, rest to test;
  4. labelled set: ``floor(prop_train_labels * n)`` of the known-class train images.
A class with table counts for its role (``ForgeryClass.role_counts``) skips 1,
draws labelled + unlabelled in 2, labels the first ones of its shuffle in 3 and
splits each role on its own, so its counts are exact; 4 leaves it alone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from dataset.protocols import OWDFA40, ClassTable, LabelSpace, label_space


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
    budget_scale: float = 1.0            # factor on the class table's per-class counts
    classes_file: str = ""               # class table CSV; empty: OWDFA-40
    known_classes: tuple[int, ...] = ()  # known set; empty: the table's `protocol`

    @classmethod
    def from_config(cls, cfg) -> SplitSpec:
        return cls(**{name: cfg[name] for name in cls.__dataclass_fields__})

    def label_space(self) -> LabelSpace:
        return label_space(asdict(self))


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
    notes: list[str] = field(default_factory=list)  # printed once, by summary() (train.py prints it)
    space: LabelSpace | None = None  # None: OWDFA-40 protocol `protocol`

    def __post_init__(self):
        if self.space is None:
            self.space = OWDFA40.protocol(self.protocol)

    @property
    def num_classes(self) -> int:
        return self.space.num_classes

    @property
    def num_novel_in_test(self) -> int:
        """Novel classes present in the test labels (the true K_novel for DPP)."""
        labels = self.test_labels
        return int(np.unique(labels[labels >= self.num_known]).size)

    @property
    def train_labels(self) -> np.ndarray:
        return _remap(self.train_orig, self.space)

    @property
    def test_labels(self) -> np.ndarray:
        return _remap(self.test_orig, self.space)

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
        known = set(self.space.known)
        header = f"{'idx':>3} {'code':<5} {'method':<15} {'set':<5} {'train-L':>8} {'train-U':>8} {'test':>6}"
        lines = [f"{self.space.title}: {len(known)} known, "
                 f"{self.num_classes - len(known)} novel classes", header, "-" * len(header)]
        totals = np.zeros(3, dtype=int)
        for c in self.space.table.indices:
            in_train = self.train_orig == c
            row = np.array([(in_train & self.labelled).sum(), (in_train & ~self.labelled).sum(),
                            (self.test_orig == c).sum()])
            totals += row
            cls = self.space.table.get(c)
            lines.append(f"{c:>3} {cls.code:<5} {cls.method[:15]:<15} {'known' if c in known else 'novel':<5} "
                         f"{row[0]:>8} {row[1]:>8} {row[2]:>6}")
        lines += ["-" * len(header),
                  f"{'':>3} {'all':<5} {'':<15} {'':<5} {totals[0]:>8} {totals[1]:>8} {totals[2]:>6}"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _remap(orig: np.ndarray, space: LabelSpace) -> np.ndarray:
    mapping = space.label_map
    return np.array([mapping[int(c)] for c in orig], dtype=np.int64)


def _draw(items: list[str], k: int, rng: np.random.Generator) -> list[str]:
    """At most ``k`` items without replacement (all of them when there are fewer)."""
    if len(items) <= k:
        return list(items)
    return [items[i] for i in rng.choice(len(items), size=k, replace=False)]


def _config_budget(real: bool, known: bool, spec: SplitSpec) -> int:
    return spec.budget_real if real and known else spec.budget_known if known else spec.budget_novel


def _labelled_share(n: int, counts: tuple[int, int]) -> int:
    """Labelled images among ``n`` drawn for table counts (labelled, unlabelled): all the labelled
    ones when the class has enough images, else the same share of what there is (rounded down)."""
    labelled, unlabelled = counts
    return labelled if n >= labelled + unlabelled else n * labelled // (labelled + unlabelled)


def check_classes(scan: dict[int, list[tuple[str, list[str]]]], root: str, table: ClassTable = OWDFA40) -> None:
    """Every class of the table must have at least one image."""
    missing = [c for c in table.indices if not any(files for _, files in scan.get(c, []))]
    if missing:
        names = ", ".join(f"{table.get(c).folder_name}" for c in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        fix = ("Download and extract OWDFA-40 with `python dataset/get_data.py --dataset_root DIR --extract` "
               "and set dataset_root=DIR/data" if table is OWDFA40 else
               f"Add their images or remove them from {table.source}")
        raise DatasetError(f"{len(missing)} of {len(table.classes)} classes have no images under {root} "
                           f"(missing: {names}{more}); every protocol uses all {len(table.classes)} classes. {fix}")


def unmatched_folders(scan: dict[int, list[tuple[str, list[str]]]], space: LabelSpace) -> str | None:
    """A note listing the folders whose index is not in the class table, with image counts."""
    extra = [f"{name} ({len(files)} images)" for index, folders in scan.items() if index not in space.label_map
             for name, files in folders]
    if extra:
        return (f"{len(extra)} folder(s) match no class of the {space.table.name} class table and are not used: "
                f"{', '.join(extra)}; add their index to the table (classes_file=) to use them")
    return None


def make_split(scan: dict[int, list[tuple[str, list[str]]]], spec: SplitSpec, root: str = "") -> Split:
    """Draw the split of ``spec.protocol`` from a scanned folder tree.

    ``scan`` maps class index -> [(folder name, sorted image paths)], as
    ``dataset.folders.scan_dataset`` returns it.
    """
    space = spec.label_space()
    check_classes(scan, root, space.table)
    rng = np.random.default_rng(spec.split_seed)
    known, table = set(space.known), space.table
    notes = [note] if (note := unmatched_folders(scan, space)) else []
    counts = {c: table.get(c).role_counts(c in known, spec.budget_scale) for c in table.indices}
    pools = {}
    for c in table.indices:
        pool = []
        capped = table.get(c).is_real and counts[c] is None
        for _, files in sorted(scan[c]):
            pool += _draw(sorted(files), spec.real_source_cap, rng) if capped else sorted(files)
        pools[c] = pool
    train_paths, train_orig, test_paths, test_orig, preset = [], [], [], [], []
    for c in table.indices:
        budget = sum(counts[c]) if counts[c] else _config_budget(table.get(c).is_real, c in known, spec)
        if len(pools[c]) < budget:
            notes.append(f"class {c} ({table.get(c).code} {table.get(c).method}) has {len(pools[c])} images, "
                         f"fewer than its budget {budget}: all are used")
        pools[c] = _draw(pools[c], budget, rng)
    for c in table.indices:
        pool = [pools[c][i] for i in rng.permutation(len(pools[c]))]
        n_labelled = _labelled_share(len(pool), counts[c]) if counts[c] else 0
        roles = [(pool[:n_labelled], True), (pool[n_labelled:], False)] if counts[c] else [(pool, False)]
        for part, labelled_role in roles:
            n_train = int(len(part) * spec.train_fraction)
            train_paths += part[:n_train]
            test_paths += part[n_train:]
            train_orig += [c] * n_train
            test_orig += [c] * (len(part) - n_train)
            preset += [labelled_role] * n_train
    train_orig = np.array(train_orig, dtype=np.int64)
    pooled = [c for c in known if counts[c] is None]
    known_rows = np.flatnonzero(np.isin(train_orig, pooled))
    n_labelled = int(len(known_rows) * spec.prop_train_labels)
    labelled = np.array(preset, dtype=bool)
    labelled[known_rows[rng.permutation(len(known_rows))[:n_labelled]]] = True
    return Split(spec.protocol, len(known), train_paths, train_orig, labelled,
                 test_paths, np.array(test_orig, dtype=np.int64), notes, space)
