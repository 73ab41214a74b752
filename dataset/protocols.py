"""Class tables and open-world protocols (METHOD.md sections 1-2).

A class table is a CSV file, one row per class::

    index,code,family,method,known_in
    0,REAL,Real,Real,1 2 3
    1,S1,Swap,Deepfakes,1 2 3

``index`` is the integer prefix of the class's folders, ``family`` the
folder's Type (``Real`` gets the real budget and the per-source cap), ``code``
a display name, ``known_in`` the protocols in which it is known; optional
``folder`` (for nested layouts) and per-class counts (docs/data.md). Shipped:
OWDFA-40 (owdfa40_classes.csv, P1-P3), OW-DFA (owdfa_p1/p2_classes.csv).
The model's label space (``LabelSpace``): known classes 0..K_known-1, then
novel ones K_known..C-1, each in ascending order of their original index.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

OWDFA40_FILE = Path(__file__).resolve().with_name("owdfa40_classes.csv")
_COLUMNS = ("index", "code", "family", "method", "known_in")
COUNT_COLUMNS = ("known_labelled", "known_unlabelled", "novel_unlabelled")


class ClassTableError(ValueError):
    """A class table, protocol or known-class list is unusable; the message names the fix."""


@dataclass(frozen=True)
class ForgeryClass:
    index: int   # original class index (folder prefix)
    code: str    # the paper's short code, e.g. "S1", "G12"
    family: str  # Real, Swap, Reenact, Edit or Generate (the folder's Type)
    method: str  # forgery method name
    folder: str = ""  # image folder below the dataset root; empty: the <index>_<Type>_<Method> folders
    known_labelled: int | None = None    # images drawn labelled / unlabelled when the class is known,
    known_unlabelled: int | None = None  # None: the config budgets apply
    novel_unlabelled: int | None = None  # images drawn when the class is novel, None: the config budget

    @property
    def folder_name(self) -> str:
        """The table's folder, else the canonical folder name, e.g. ``1_Swap_Deepfakes``."""
        return self.folder or f"{self.index}_{self.family}_{self.method}"

    def role_counts(self, known: bool, scale: float = 1.0) -> tuple[int, int] | None:
        """(labelled, unlabelled) images the table asks for when the class is known / novel,
        each times ``scale`` rounded half up and at least 1 where the table gives more than 0;
        None where the table gives no count for that role (the config budgets apply)."""
        counts = (self.known_labelled, self.known_unlabelled) if known else (0, self.novel_unlabelled)
        if counts[1] is None:
            return None
        return tuple(max(1, int(n * scale + 0.5)) if n else 0 for n in counts)

    @property
    def is_real(self) -> bool:
        return self.family.lower() == "real"


@dataclass(frozen=True)
class ClassTable:
    """The classes (ascending index) and the protocols defined on them."""
    classes: tuple[ForgeryClass, ...]
    protocols: dict[int, tuple[int, ...]]
    source: str  # the file it was read from

    @cached_property
    def _by_index(self) -> dict[int, ForgeryClass]:
        return {c.index: c for c in self.classes}

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(c.index for c in self.classes)

    @property
    def name(self) -> str:
        return "OWDFA-40" if Path(self.source) == OWDFA40_FILE else Path(self.source).name

    def class_folders(self) -> dict[int, str] | None:
        """Class index -> its image folder when the table names folders (a nested layout), else None."""
        return {c.index: c.folder for c in self.classes} if self.classes[0].folder else None

    def get(self, index: int) -> ForgeryClass:
        try:
            return self._by_index[index]
        except KeyError:
            raise KeyError(f"no class with index {index} in {self.name}; valid indices are "
                           f"{_ranges(self.indices)}") from None

    def protocol(self, protocol: int) -> LabelSpace:
        if protocol not in self.protocols:
            choices = sorted(self.protocols)
            hint = (f"choose {', '.join(map(str, choices[:-1]))}{' or ' if len(choices) > 1 else ''}{choices[-1]}"
                    if choices else f"{self.source} defines no protocols (no known_in column)")
            raise ClassTableError(f"protocol={protocol!r} is not defined by the {self.name} class table; {hint}, "
                                  f"or list the known classes with known_classes=0,1,3")
        return LabelSpace(self, self.protocols[protocol], f"protocol {protocol}")

    def known(self, known: tuple[int, ...]) -> LabelSpace:
        unknown = sorted(set(known) - set(self.indices))
        if unknown:
            raise ClassTableError(f"known_classes={tuple(known)} lists {unknown}, which the {self.name} class table "
                                  f"does not have (its indices: {_ranges(self.indices)})")
        return LabelSpace(self, tuple(sorted(known)), "known " + ",".join(map(str, sorted(known))))


@dataclass(frozen=True)
class LabelSpace:
    """One open-world task: a class table and which of its classes are known."""
    table: ClassTable
    known: tuple[int, ...]  # original indices, ascending
    name: str               # "protocol 1" or "known 0,3,8"

    @property
    def title(self) -> str:
        """Table and known classes, e.g. ``"OWDFA-40 protocol 1"`` or ``"my_classes.csv known 0,3,8"``."""
        return f"{self.table.name} {self.name}"

    @property
    def novel(self) -> tuple[int, ...]:
        known = set(self.known)
        return tuple(i for i in self.table.indices if i not in known)

    @property
    def num_classes(self) -> int:
        return len(self.table.classes)

    @property
    def num_known(self) -> int:
        return len(self.known)

    @cached_property
    def label_map(self) -> dict[int, int]:
        """Original index -> model label: known classes first, then novel, each ascending."""
        return {orig: new for new, orig in enumerate(self.known + self.novel)}

    @property
    def label_names(self) -> list[str]:
        """Display name of each model label, e.g. ``"S1 Deepfakes"``."""
        return [f"{c.code} {c.method}" for c in map(self.table.get, self.known + self.novel)]

    def class_rows(self) -> list[dict]:
        """Per model label, in label order: ``label``, original ``index``, display ``name``,
        ``family``, ``known``, ``real`` (what checkpoints and exports carry)."""
        known, names = set(self.known), self.label_names
        return [{"label": label, "index": index, "name": names[label], "family": self.table.get(index).family,
                 "known": index in known, "real": self.table.get(index).is_real}
                for label, index in enumerate(self.known + self.novel)]


def _ranges(indices) -> str:
    indices = sorted(indices)
    return f"{indices[0]}..{indices[-1]}" if indices == list(range(indices[0], indices[-1] + 1)) else str(indices)


def load_table(path: str | Path) -> ClassTable:
    """Read a class table CSV (columns index, family, method; optional code, known_in, folder and the counts)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ClassTableError(f"classes_file={str(path)!r} does not exist; give a CSV with columns "
                              f"{','.join(_COLUMNS)} (see {OWDFA40_FILE.name}), or classes_file= for OWDFA-40")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: the BOM spreadsheets write
            reader = csv.DictReader(handle)
            rows = [(reader.line_num, row) for row in reader]  # line_num: the CSV line, blank lines counted
            header = reader.fieldnames or []
    except UnicodeDecodeError as err:
        raise ClassTableError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as "
                              f"CSV UTF-8") from None
    missing = {"index", "family", "method"} - set(header)
    if missing:
        raise ClassTableError(f"{path} lacks the column(s) {sorted(missing)} (its header reads {header}); its "
                              f"header must be {','.join(_COLUMNS)} (code and known_in may be left empty)")
    classes, protocols, lines = [], {}, []
    for line, row in rows:
        try:
            index = int(row["index"])
            known_in = [int(p) for p in (row.get("known_in") or "").split()]
        except (TypeError, ValueError):  # TypeError: a short row has no index
            raise ClassTableError(f"{path} line {line}: index and known_in must be integers, got "
                                  f"{row['index']!r} and {row.get('known_in')!r}") from None
        family, method = (row["family"] or "").strip(), (row["method"] or "").strip()
        if index < 0 or not family or not method:
            raise ClassTableError(f"{path} line {line}: needs an index >= 0, a family and a method, got {row}")
        folder = _folder(row, path, line)
        classes.append(ForgeryClass(index, (row.get("code") or "").strip() or method, family, method, folder,
                                    *_counts(row, path, line)))
        lines.append(line)
        for p in known_in:
            protocols.setdefault(p, []).append(index)
    if len(classes) < 2:
        raise ClassTableError(f"{path}: needs at least 2 classes, got {len(classes)}")
    _refuse_duplicates(path, lines, [c.index for c in classes], "index", "give every class its own index")
    _refuse_duplicates(path, lines, [f"{c.code} {c.method}" for c in classes], "name (code and method)",
                       "change the code or the method of one of them")
    folders = [c.folder for c in classes]
    if any(folders) and not all(folders):
        raise ClassTableError(f"{path}: the folder column must name a distinct folder for every class or for "
                              f"none, got {folders}")
    if any(folders):
        _refuse_duplicates(path, lines, folders, "folder", "the folder column must name a distinct folder for "
                                                           "every class")
    return ClassTable(tuple(sorted(classes, key=lambda c: c.index)),
                      {p: tuple(sorted(v)) for p, v in sorted(protocols.items())}, str(path))


def _refuse_duplicates(path: Path, lines: list[int], values: list, what: str, fix: str) -> None:
    """One line naming the first value that two or more rows share, with their CSV line numbers."""
    seen: dict = {}
    for line, value in zip(lines, values):
        seen.setdefault(value, []).append(line)
    for value, at in seen.items():
        if len(at) > 1:
            raise ClassTableError(f"{path} lines {', '.join(map(str, at))}: the same {what} {value!r}; {fix}")


def _folder(row: dict, path: Path, line: int) -> str:
    folder = (row.get("folder") or "").strip().rstrip("/")
    if folder.startswith(("/", "~")) or ".." in folder.split("/") or "\\" in folder:
        raise ClassTableError(f"{path} line {line}: folder {folder!r} must be a path below the dataset root "
                              f"with / separators, e.g. IdentitySwap/Deepfakes/faceforensics")
    return folder


def _counts(row: dict, path: Path, line: int) -> tuple[int | None, ...]:
    """The row's known_labelled, known_unlabelled, novel_unlabelled (None where empty)."""
    try:
        counts = tuple(int(text) if (text := (row.get(k) or "").strip()) else None for k in COUNT_COLUMNS)
    except ValueError:
        raise ClassTableError(f"{path} line {line}: {', '.join(COUNT_COLUMNS)} must be integers or empty, "
                              f"got {[row.get(k) for k in COUNT_COLUMNS]}") from None
    labelled, unlabelled, novel = counts
    if (labelled is None) != (unlabelled is None) or (labelled is not None and (labelled < 1 or unlabelled < 0)) \
            or (novel is not None and novel < 1):
        raise ClassTableError(f"{path} line {line}: give known_labelled >= 1 and known_unlabelled >= 0 together "
                              f"(or neither) and novel_unlabelled >= 1 (or empty), got {counts}")
    return counts


OWDFA40 = load_table(OWDFA40_FILE)
CLASSES: tuple[ForgeryClass, ...] = OWDFA40.classes
NUM_CLASSES = len(CLASSES)  # 41
REAL_CLASS = 0
PROTOCOLS: dict[int, tuple[int, ...]] = OWDFA40.protocols


def label_space(cfg) -> LabelSpace:
    """The task a config asks for: table ``classes_file`` (empty: OWDFA-40),
    known set ``known_classes`` when given, else the table's ``protocol``."""
    table = load_table(cfg["classes_file"]) if cfg["classes_file"] else OWDFA40
    return table.known(tuple(cfg["known_classes"])) if cfg["known_classes"] else table.protocol(cfg["protocol"])


FINGERPRINTED = ("label", "index", "name", "family", "known", "real")


def class_fingerprint(rows: list[dict]) -> str:
    """sha256 of the class table's rows (label, index, name, family, known, real), like the split's."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update((json.dumps([row.get(k) for k in FINGERPRINTED]) + "\n").encode())
    return digest.hexdigest()


def describe_class_change(old: list[dict], new: list[dict]) -> str:
    """What differs between two class tables, e.g. ``"label 3: name 'S3 A' -> 'S3 B'; 2 more classes"``."""
    parts = [f"{len(new) - len(old):+d} classes ({len(old)} -> {len(new)})"] if len(old) != len(new) else []
    for a, b in zip(old, new):
        changed = [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in FINGERPRINTED if a.get(k) != b.get(k)]
        if changed:
            parts.append(f"label {a.get('label')}: {', '.join(changed)}")
    listed = "; ".join(parts[:4]) + (f"; and {len(parts) - 4} more" if len(parts) > 4 else "")
    return listed or "the same classes"


def _space(protocol: int | LabelSpace) -> LabelSpace:
    return protocol if isinstance(protocol, LabelSpace) else OWDFA40.protocol(protocol)


# Accessors on an OWDFA-40 protocol number (or any LabelSpace).
def get_class(index: int, table: ClassTable = OWDFA40) -> ForgeryClass:
    """The class with original index ``index``."""
    return table.get(index)


def known_classes(protocol: int | LabelSpace) -> tuple[int, ...]:
    """Original indices of the labelled (known) classes, ascending."""
    return _space(protocol).known


def novel_classes(protocol: int | LabelSpace) -> tuple[int, ...]:
    """Original indices of the never-labelled (novel) classes, ascending."""
    return _space(protocol).novel


def label_map(protocol: int | LabelSpace) -> dict[int, int]:
    """Original index -> model label: known classes first, then novel, each ascending."""
    return _space(protocol).label_map


def label_names(protocol: int | LabelSpace) -> list[str]:
    """Display name of each model label, e.g. ``"S1 Deepfakes"``."""
    return _space(protocol).label_names


def owdfa40_protocol(cfg) -> int | None:
    """The OWDFA-40 protocol whose task ``cfg`` (a config or its dict) trains on, judged by
    content: its class table's rows (label, index, name, family, known, real) have that
    protocol's fingerprint, whatever file holds them. None for any other task, or a class
    table that cannot be read any more."""
    try:
        rows = label_space(cfg).class_rows()
    except (ClassTableError, OSError, KeyError, ValueError):
        return None
    fingerprint = class_fingerprint(rows)
    return next((p for p in OWDFA40.protocols if class_fingerprint(OWDFA40.protocol(p).class_rows()) == fingerprint),
                None)
