"""Face detection and cropping on the scikit-image astronaut photo and on hand-made detector output."""
import pickle

import cv2
import dlib
import numpy as np
import pytest
import skimage.data
from PIL import Image

from dataset.faces import CHIP_SIZE, CropSettings, FaceCropper, FaceRecord
from dataset.image_io import read_rgb

HEAD = (slice(30, 250), slice(110, 330))  # 220x220 around the astronaut's face (detector box ~ (179, 83)-(266, 170))


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


def _fake_detector(*rects):
    """A detector stand-in returning fixed (left, top, right, bottom) boxes, right/bottom inclusive."""
    return lambda image, upsample: [dlib.rectangle(*r) for r in rects]


def test_astronaut_face_is_found_and_cropped(astronaut, tmp_path):
    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    image = read_rgb(tmp_path / "astronaut.png")
    cropper = FaceCropper()
    record = cropper.detect(image)
    assert record.status == "face" and record.num_faces == 1 and record.landmarks is None
    x0, y0, x1, y1 = record.box
    assert 160 <= x0 < 185 and 65 <= y0 < 90 and 260 < x1 <= 290 and 165 < y1 <= 195
    np.testing.assert_array_equal(cropper.crop(image, record), image[y0:y1, x0:x1])
    assert cropper._predictor is None  # the landmark model is only loaded for alignment


def test_margin_adds_a_tenth_on_each_side_and_clips():
    image = np.zeros((400, 300, 3), np.uint8)
    cropper = FaceCropper(CropSettings(margin=1.2))
    cropper._detector = _fake_detector((100, 100, 199, 199))  # 100x100
    assert cropper.detect(image).box == (90, 90, 210, 210)
    cropper._detector = _fake_detector((0, 350, 99, 449))  # reaches past the bottom edge
    assert cropper.detect(image).box == (0, 340, 110, 400)


def test_largest_face_is_taken_not_the_first():
    cropper = FaceCropper()
    cropper._detector = _fake_detector((0, 0, 49, 49), (100, 100, 199, 199), (300, 0, 359, 59))
    record = cropper.detect(np.zeros((400, 400, 3), np.uint8))
    assert record.num_faces == 3 and record.box == (90, 90, 210, 210)


def test_two_real_faces_of_different_sizes(astronaut):
    head = astronaut[HEAD]
    canvas = np.full((360, 620, 3), 128, np.uint8)
    canvas[20:240, 20:240] = head
    canvas[20:350, 270:600] = cv2.resize(head, (330, 330), interpolation=cv2.INTER_CUBIC)
    record = FaceCropper().detect(canvas)
    assert record.num_faces == 2
    assert record.box[0] > 300  # the 1.5x face on the right


def test_no_face_gives_the_whole_image():
    image = np.random.default_rng(0).integers(0, 256, (200, 240, 3), dtype=np.uint8)
    cropper = FaceCropper()
    record = cropper.detect(image)
    assert record == FaceRecord("no_face")
    assert cropper.crop(image, record) is image


def test_huge_image_is_detected_on_a_downscaled_copy(astronaut, tmp_path):
    canvas = np.zeros((5000, 6000, 3), np.uint8)
    canvas[2000:2660, 3000:3660] = cv2.resize(astronaut[HEAD], (660, 660), interpolation=cv2.INTER_CUBIC)
    Image.fromarray(canvas).save(tmp_path / "huge.jpg", quality=90)
    image = read_rgb(tmp_path / "huge.jpg")
    assert image.shape == (5000, 6000, 3)
    cropper = FaceCropper(CropSettings(detect_max_side=2048))
    seen = []
    detector = cropper._get_detector()
    cropper._detector = lambda img, upsample: seen.append(img.shape) or detector(img, upsample)
    record = cropper.detect(image)
    assert seen == [(1707, 2048, 3)]
    # The astronaut's box with margin, (170, 74)-(276, 180), relative to HEAD, x3, plus the paste offset.
    expected = (3000 + 3 * (170 - 110), 2000 + 3 * (74 - 30), 3000 + 3 * (276 - 110), 2000 + 3 * (180 - 30))
    assert record.status == "face"
    assert np.abs(np.subtract(record.box, expected)).max() < 60, (record.box, expected)  # dlib box steps x3


def test_aligned_chip_from_a_stored_record_equals_a_fresh_one(astronaut):
    cropper = FaceCropper(CropSettings(align=True))
    record = cropper.detect(astronaut)
    assert len(record.landmarks) == 68
    chip = cropper.crop(astronaut, record)
    assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3)
    stored = FaceRecord.from_json(record.to_json())
    assert stored == record
    fresh = pickle.loads(pickle.dumps(cropper))  # as in a worker: nothing loaded yet
    np.testing.assert_array_equal(fresh.crop(astronaut, stored), chip)
    assert fresh._predictor is None  # cropping from a record never loads the predictor


def test_cropper_pickles_without_dlib_objects(astronaut):
    cropper = FaceCropper()
    cropper.detect(astronaut)
    clone = pickle.loads(pickle.dumps(cropper))
    assert clone.settings == cropper.settings and clone._detector is None


def test_settings_key_changes_with_every_setting_that_changes_a_crop():
    base = CropSettings()
    keys = {base.key(), CropSettings(margin=1.3).key(), CropSettings(align=True).key(),
            CropSettings(upsample=1).key(), CropSettings(detect_max_side=1024).key(),
            CropSettings(align=True, predictor_path="/x/p.dat").key()}
    assert len(keys) == 6
    assert CropSettings(predictor_path="/x/p.dat").key() == base.key()  # unused without align
    assert CropSettings(margin=1.2).key() == base.key()


def test_record_checks():
    with pytest.raises(ValueError, match="status"):
        FaceRecord("maybe")
    with pytest.raises(ValueError, match="box"):
        FaceRecord("face")
    with pytest.raises(ValueError, match="stale"):
        FaceCropper().crop(np.zeros((10, 10, 3), np.uint8), FaceRecord("face", (0, 0, 20, 20)))
