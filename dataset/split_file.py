"""split.json: the exact split of a run, its fingerprint, and reuse with ``split_file``.

Every run writes ``<run_dir>/split.json``; ``split_file=PATH`` trains on the
split of such a file instead of drawing one, so methods can be compared on
identical images. Format 1: ``protocol``, ``spec`` (how the split was drawn),
``fingerprint``, ``source`` (the split_file read, or ""), ``left_out`` (found
unreadable at crop time) and ``images``, a list of ``{"path", "class",
"role", "size"}`` (path relative to dataset_root, original class index, role
``train-labelled`` | ``train-unlabelled`` | ``test``, size in bytes), training
images first, in the order training uses. The file holds the split as drawn,
before unreadable images are left out. The fingerprint is the sha256 of the
sorted (path, class, role, size) records; checkpoints carry it, and resume
and test.py refuse data whose split has another one, listing what changed.
An example file: docs/data.md.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dataset.protocols import OWDFA40, LabelSpace
from dataset.split import DatasetError, Split

FORMAT = 1
ROLES = ("train-labelled", "train-unlabelled", "test")


class SplitChanged(DatasetError):
    """The data on disk no longer gives the split a checkpoint was trained on."""


class ImageRecord(NamedTuple):
    path: str    # relative to dataset_root, "/"-separated
    label: int   # original class index
    role: str    # one of ROLES
    size: int    # bytes on disk (-1: missing)


@dataclass
class SplitRecord:
    """The content of split.json."""
    protocol: int
    spec: dict
    images: list[ImageRecord]
    left_out: list[str] = field(default_factory=list)
    source: str = ""
    recorded: str | None = None  # the fingerprint a file read states (read_split_json); None for a new record

    @cached_property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for record in sorted(self.images):
            digest.update((json.dumps(list(record)) + "\n").encode())
        return digest.hexdigest()

    def to_json(self) -> dict:
        return {"format": FORMAT, "protocol": self.protocol, "spec": self.spec, "fingerprint": self.fingerprint,
                "source": self.source, "left_out": self.left_out,
                "images": [{"path": r.path, "class": r.label, "role": r.role, "size": r.size} for r in self.images]}

    def write(self, path: Path) -> None:
        """Atomically, one image per line (readable, diffable)."""
        doc = self.to_json()
        images = ",\n".join(json.dumps(image) for image in doc.pop("images"))
        head = json.dumps(doc, indent=1)[:-2]  # without the closing brace
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(f'{head},\n "images": [\n{images}\n ]\n}}\n')
        os.replace(tmp, path)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def record_split(split: Split, root: str, spec: dict, source: str = "") -> SplitRecord:
    """Describe ``split`` (paths under ``root``) with each file's current size."""
    base = Path(root)

    def rows(paths, labels, roles):
        return [ImageRecord(Path(p).relative_to(base).as_posix(), int(c), r, _file_size(p))
                for p, c, r in zip(paths, labels, roles)]
    train_roles = [ROLES[0] if labelled else ROLES[1] for labelled in split.labelled]
    images = rows(split.train_paths, split.train_orig, train_roles)
    images += rows(split.test_paths, split.test_orig, [ROLES[2]] * len(split.test_paths))
    return SplitRecord(split.protocol, dict(spec), images, source=source)


def read_split_json(path: str | Path) -> SplitRecord:
    """Parse a split.json, with a one-line DatasetError for anything malformed."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
        images = [ImageRecord(str(i["path"]), int(i["class"]), str(i["role"]), int(i.get("size", -1)))
                  for i in doc["images"]]
        record = SplitRecord(int(doc["protocol"]), dict(doc.get("spec", {})), images,
                             list(doc.get("left_out", [])), str(doc.get("source", "")), doc.get("fingerprint"))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"split file {path} cannot be read ({type(err).__name__}: {err}); pass the "
                           f"split.json of a run (format described in docs/data.md)") from err
    bad_roles = sorted({r.role for r in images} - set(ROLES))
    if bad_roles:
        raise DatasetError(f"split file {path} has unknown roles {bad_roles}; roles are {', '.join(ROLES)}")
    return record


def run_split_fingerprint(run_dir: str | Path) -> str | None:
    """The fingerprint of a run's split.json recomputed from its images (None: the run has none),
    for comparing runs by the images they used; DatasetError when the file cannot be read or states
    another fingerprint than its images give (it was edited after training)."""
    path = Path(run_dir) / "split.json"
    if not path.exists():
        return None
    record = read_split_json(path)
    if record.recorded != record.fingerprint:
        raise DatasetError(f"{path} states the fingerprint {str(record.recorded)[:12]}, but its images give "
                           f"{record.fingerprint[:12]}: the file was edited after training, so the images the run "
                           f"used are unknown; restore the split.json train.py wrote")
    return record.fingerprint


def split_from_file(path: str | Path, root: str, protocol: int,
                    space: LabelSpace | None = None) -> tuple[Split, SplitRecord]:
    """The Split of a split.json, on the images under ``root`` (each must exist);
    ``space``: the class table and known set (default: OWDFA-40 ``protocol``)."""
    space = space or OWDFA40.protocol(protocol)
    record = read_split_json(path)
    if record.protocol != protocol:
        raise DatasetError(f"split file {path} was drawn for protocol {record.protocol}, but protocol={protocol}; "
                           f"pass protocol={record.protocol} or a split file of protocol {protocol}")
    outside = [r.path for r in record.images if not is_inside(r.path)]
    if outside:
        raise DatasetError(f"split file {path} names {len(outside)} images outside dataset_root (e.g. "
                           f"{outside[0]!r}); every path must be relative to dataset_root, '/'-separated, without "
                           f"'..': pass the split.json of a run, unedited")
    paths = [os.path.join(root, *r.path.split("/")) for r in record.images]
    missing = [r.path for r, p in zip(record.images, paths) if not os.path.isfile(p)]
    if missing:
        raise DatasetError(f"{len(missing)} images of split file {path} are missing under dataset_root={root}: "
                           f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; restore them or use "
                           f"the dataset the split was made on")
    duplicates = len(paths) - len(set(paths))
    known = set(space.known)
    foreign = sorted({r.label for r in record.images} - set(space.label_map))
    if foreign:
        raise DatasetError(f"split file {path} has classes {foreign[:10]} that the {space.table.name} class table "
                           f"lacks; pass the classes_file it was drawn with")
    wrongly_labelled = sum(r.role == ROLES[0] and r.label not in known for r in record.images)
    if duplicates or wrongly_labelled:
        raise DatasetError(f"split file {path} is inconsistent: {duplicates} repeated paths, "
                           f"{wrongly_labelled} novel-class images marked train-labelled")
    train = [i for i, r in enumerate(record.images) if r.role != ROLES[2]]
    test = [i for i, r in enumerate(record.images) if r.role == ROLES[2]]
    labels = np.array([r.label for r in record.images], dtype=np.int64)
    split = Split(protocol, len(known), [paths[i] for i in train], labels[train],
                  np.array([record.images[i].role == ROLES[0] for i in train], dtype=bool),
                  [paths[i] for i in test], labels[test], [f"split read from {path}"], space)
    return split, record


def is_inside(relative: str) -> bool:
    """Whether a split.json path stays below dataset_root: relative, with no empty, '.' or '..' part."""
    parts = relative.split("/")
    return bool(relative) and not os.path.isabs(relative) and not any(p in ("", ".", "..") for p in parts)


def describe_change(old: SplitRecord, new: SplitRecord) -> str:
    """'4 added, 3 removed, 75 moved between roles (70 from training to test), 2 changed in size'."""
    before, after = {r.path: r for r in old.images}, {r.path: r for r in new.images}
    common = before.keys() & after.keys()
    moved = [p for p in common if before[p].role != after[p].role]
    to_test = sum(after[p].role == ROLES[2] for p in moved)
    counts = [(len(after.keys() - before.keys()), "added"), (len(before.keys() - after.keys()), "removed"),
              (len(moved), f"moved between roles ({to_test} from training to test)"),
              (sum(before[p].size != after[p].size for p in common), "changed in size"),
              (sum(before[p].label != after[p].label for p in common), "changed class")]
    parts = [f"{n} {what}" for n, what in counts if n]
    return ", ".join(parts) if parts else "the same images"


def verify_split(current: SplitRecord, expected: str | None, previous: Path, allow: bool) -> str | None:
    """Compare ``current`` with the fingerprint a run recorded (``expected``).

    Returns None when they agree (or nothing was recorded), a description of
    the change when ``allow``, and raises SplitChanged otherwise. ``previous``
    is the run's split.json, used to list what changed.
    """
    if not expected or expected == current.fingerprint:
        return None
    try:
        old = read_split_json(previous)
        found = old.fingerprint == expected
    except DatasetError:
        found = False
    what = (describe_change(old, current) if found else
            f"the change cannot be listed, as {previous} is missing or holds another split")
    message = (f"the split on disk differs from the one this run was trained on (fingerprint "
               f"{expected[:12]} -> {current.fingerprint[:12]}): {what}")
    if allow:
        return message
    raise SplitChanged(f"{message}. Restore the data (or dataset_root), or pass --allow_split_change to "
                       f"continue on the new split (its test images may have been training images)")
