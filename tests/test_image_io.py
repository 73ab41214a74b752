"""read_rgb on the odd files a real dataset holds: each is written here into tmp_path."""
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from dataset import image_io
from dataset.image_io import UnreadableImage, is_image_file, read_rgb


def _rgb(h=32, w=48):
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _stored(path):
    """Mode and info of the file as Pillow sees it, to check the test wrote what it meant to."""
    with Image.open(path) as image:
        return image.mode, image.info


def _reason(path, **kwargs):
    with pytest.raises(UnreadableImage) as err:
        read_rgb(path, **kwargs)
    return err.value.reason


def test_extensions_are_case_insensitive():
    assert is_image_file("a/b.JPG") and is_image_file("x.Jpeg") and is_image_file("x.png")
    assert not is_image_file("x.gif") and not is_image_file("x.jpg.txt")


def test_png_round_trip_is_exact(tmp_path):
    image = _rgb()
    Image.fromarray(image).save(tmp_path / "a.png")
    out = read_rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.flags.writeable
    np.testing.assert_array_equal(out, image)


def test_missing_empty_and_non_image_files(tmp_path):
    assert _reason(tmp_path / "nope.jpg") == "missing file"
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "empty" in _reason(tmp_path / "empty.jpg")
    (tmp_path / "text.jpg").write_text("not a picture\n" * 20)
    assert "not an image" in _reason(tmp_path / "text.jpg")


@pytest.mark.parametrize("name", ["a.jpg", "a.png"])
def test_truncated_files_fail_instead_of_reading_half_grey(tmp_path, name):
    Image.fromarray(_rgb(256, 256)).save(tmp_path / name, quality=95)
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: int(len(data) * 0.7)])
    assert "truncated" in _reason(tmp_path / name)


def test_truncated_loading_switched_on_elsewhere_is_an_error(tmp_path, monkeypatch):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        read_rgb(tmp_path / "a.png")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read mode-000 files")
def test_unreadable_permissions(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    os.chmod(tmp_path / "a.png", 0)
    try:
        assert _reason(tmp_path / "a.png") == "permission denied"
    finally:
        os.chmod(tmp_path / "a.png", 0o644)


def test_permission_error_is_reported(tmp_path, monkeypatch):
    """The same path as above, simulated, so it also runs as root."""
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    monkeypatch.setattr(image_io.os, "open", denied)  # read_rgb opens with os.open (O_NONBLOCK)
    assert _reason(tmp_path / "a.png") == "permission denied"


def test_grayscale_is_replicated(tmp_path):
    gray = _rgb()[:, :, 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = read_rgb(tmp_path / "g.png")
    assert out.shape == (*gray.shape, 3)
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped_not_composited(tmp_path, mode):
    colour = _rgb()
    image = Image.fromarray(colour).convert(mode[:-1] if mode == "LA" else "RGB")
    expected = np.array(image.convert("RGB"))
    image.putalpha(Image.new("L", image.size, 0))  # fully transparent: colours must survive
    image.save(tmp_path / "a.png")
    assert _stored(tmp_path / "a.png")[0] == mode
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.png"), expected)


def test_palette_with_transparency(tmp_path):
    image = Image.fromarray(_rgb()).quantize(16)
    image.save(tmp_path / "p.png", transparency=0)
    mode, info = _stored(tmp_path / "p.png")
    assert mode == "P" and "transparency" in info
    np.testing.assert_array_equal(read_rgb(tmp_path / "p.png"), np.array(image.convert("RGB")))


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 257 * 100, 40000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert _stored(tmp_path / "g16.png")[0].startswith("I")
    out = read_rgb(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[0, :, 0], [0, 4, 100, 156, 255])  # round(v * 255 / 65535)
    assert (out == out[:, :, :1]).all()


def test_16_bit_colour_png_keeps_the_high_byte(tmp_path):
    bgr = np.full((4, 4, 3), [1000, 30000, 65535], dtype=np.uint16)
    assert cv2.imwrite(str(tmp_path / "c16.png"), bgr)
    np.testing.assert_array_equal(read_rgb(tmp_path / "c16.png")[0, 0], [255, 117, 3])


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    assert _stored(tmp_path / "cmyk.jpg")[0] == "CMYK"
    out = read_rgb(tmp_path / "cmyk.jpg")
    assert out.shape == (16, 16, 3)
    assert np.abs(out.astype(int) - [255, 0, 0]).max() <= 3  # red


def test_pixel_limit(tmp_path):
    Image.new("RGB", (2000, 1000)).save(tmp_path / "big.png")
    assert read_rgb(tmp_path / "big.png").shape == (1000, 2000, 3)
    reason = _reason(tmp_path / "big.png", max_pixels=1_000_000)
    assert reason == "too large: 2000x1000 = 2.0 MP, over the 1.0 MP limit; downscale it to 1414x707 or less to use it"
    assert "max_pixels" not in reason, "name a remedy a user has"


def test_a_header_past_pillows_own_limit_names_the_size_to_downscale_to(tmp_path):
    """A PNG whose header claims 100000 x 100000 pixels: Pillow refuses it before our limit is asked."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    (tmp_path / "giant.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    assert _reason(tmp_path / "giant.png") == ("too large: 100000x100000 = 10000.0 MP, over the 120.0 MP limit; "
                                              "downscale it to 10954x10954 or less to use it")
    assert Image.MAX_IMAGE_PIXELS is not None, "Pillow's own limit is restored"
