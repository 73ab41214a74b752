"""OWDFA-40 classes and the three open-world protocols (METHOD.md section 2).

The class table is the one place that knows the 41 classes; every other module
asks it through the accessors below. A class index is the integer prefix of
its folder name (``<index>_<Type>_<Method>``). Protocols differ only in which
classes are *known* (labelled); all 41 classes are present in training.

Label space seen by the model: known classes first, 0..K_known-1, in ascending
order of their original index, then novel classes K_known..C-1, also ascending.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ForgeryClass:
    index: int   # original class index (folder prefix)
    code: str    # the paper's short code, e.g. "S1", "G12"
    family: str  # Real, Swap, Reenact, Edit or Generate
    method: str  # forgery method name

    @property
    def folder_name(self) -> str:
        """Canonical folder name, e.g. ``1_Swap_Deepfakes``."""
        return f"{self.index}_{self.family}_{self.method}"


def _family(family: str, prefix: str, entries: list[tuple[int, str]], first: int = 1):
    return [ForgeryClass(idx, f"{prefix}{first + i}", family, name) for i, (idx, name) in enumerate(entries)]


CLASSES: tuple[ForgeryClass, ...] = tuple(sorted(
    [ForgeryClass(0, "REAL", "Real", "Real")]
    + _family("Swap", "S", [(1, "Deepfakes"), (2, "FaceSwap"), (3, "DeepFaceLab"), (4, "FaceShifter"),
                            (5, "FSGAN"), (21, "BlendFace"), (22, "UniFace"), (23, "MobileSwap"),
                            (24, "e4s"), (25, "FaceDancer")])
    + _family("Reenact", "R", [(6, "Face2Face"), (7, "NeuralTextures"), (8, "FOMM"), (9, "ATVG-Net"),
                               (10, "TalkingHead"), (26, "TPSMM"), (27, "LIA"), (28, "DaGAN"),
                               (29, "SadTalker"), (30, "MCNet"), (31, "HyperReenact"), (40, "OneShot")])
    + _family("Edit", "E", [(11, "MaskGAN"), (12, "StarGAN2"), (13, "SC-FEGAN"), (14, "FaceAPP"),
                            (15, "StarGAN"), (38, "e4e")])
    + _family("Generate", "G", [(16, "StyleGAN2"), (17, "StyleGAN"), (18, "PGGAN"), (19, "CycleGAN"),
                                (20, "StyleGAN2-NIR"), (32, "StyleGAN-XL"), (33, "SD2.1"), (34, "RDDM"),
                                (35, "PixArt"), (36, "DiT-XL"), (37, "SiT-XL"), (39, "StyleGAN3")]),
    key=lambda c: c.index,
))

NUM_CLASSES = len(CLASSES)  # 41
REAL_CLASS = 0

PROTOCOLS: dict[int, tuple[int, ...]] = {
    1: (0, 1, 3, 6, 8, 11, 14, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35, 37, 39),
    2: (0, 1, 3, 6, 8, 11, 14, 21, 23, 25, 27, 29, 31),
    3: (0, 1, 3, 5, 6, 7, 8, 10, 11, 13, 14, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27,
        29, 31, 33, 35, 36, 37, 38, 39),
}

_BY_INDEX = {c.index: c for c in CLASSES}
assert sorted(_BY_INDEX) == list(range(NUM_CLASSES)), "class indices must be 0..40"


def get_class(index: int) -> ForgeryClass:
    """The class with original index ``index``."""
    try:
        return _BY_INDEX[index]
    except KeyError:
        raise KeyError(f"no OWDFA-40 class with index {index}; valid indices are 0..{NUM_CLASSES - 1}") from None


def check_protocol(protocol: int) -> int:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r} is not defined; choose one of {sorted(PROTOCOLS)} "
                         "(e.g. protocol=1)")
    return protocol


def known_classes(protocol: int) -> tuple[int, ...]:
    """Original indices of the labelled (known) classes, ascending."""
    return tuple(sorted(PROTOCOLS[check_protocol(protocol)]))


def novel_classes(protocol: int) -> tuple[int, ...]:
    """Original indices of the never-labelled (novel) classes, ascending."""
    known = set(known_classes(protocol))
    return tuple(c.index for c in CLASSES if c.index not in known)


def label_map(protocol: int) -> dict[int, int]:
    """Original index -> model label: known classes first, then novel, each ascending."""
    order = known_classes(protocol) + novel_classes(protocol)
    return {orig: new for new, orig in enumerate(order)}


def label_names(protocol: int) -> list[str]:
    """Display name of each model label, e.g. ``"S1 Deepfakes"``."""
    inverse = {new: orig for orig, new in label_map(protocol).items()}
    return [f"{get_class(inverse[i]).code} {get_class(inverse[i]).method}" for i in range(NUM_CLASSES)]
