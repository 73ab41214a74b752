"""Read any dataset image as an HxWx3 uint8 RGB array, or fail with a reason.

Every image goes through ``read_rgb``, so odd files are handled once and the
same way in preparation and training: grayscale is replicated to three
channels; alpha is *dropped*, not composited (the stored colours are what a
forgery method wrote); 16-bit grayscale is scaled to 8 bit by 255/65535 with
rounding; CMYK goes through Pillow's conversion; EXIF orientation is NOT
applied, so a recorded crop box always refers to the same pixels. Anything
that cannot be decoded completely raises ``UnreadableImage``: a missing,
empty or unreadable file, one that is not a regular file (a named pipe,
device or socket is never opened, so it cannot block), a symlink loop, a
non-image with an image extension, a truncated JPEG/PNG (the pixels are
loaded in full, with Pillow's ``LOAD_TRUNCATED_IMAGES`` off) or more than
``max_pixels`` pixels (MAX_PIXELS: the message names the size to downscale to).
"""
from __future__ import annotations

import errno
import os
import stat
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MAX_PIXELS = 120_000_000  # default size limit; a 12000x10000 photo still passes

# What Pillow raises on corrupt data, besides OSError (truncation, bad codec).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the name ends in one of ``IMAGE_EXTENSIONS``, any case."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


class UnreadableFile(Exception):
    """A file that cannot be decoded; ``reason`` says why in a few words."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnreadableImage(UnreadableFile):
    """An image file that cannot be decoded."""


def too_large(width: int, height: int, max_pixels: int = MAX_PIXELS) -> str:
    """The reason for an image over the pixel limit, with the size that fits under it."""
    scale = (max_pixels / (width * height)) ** 0.5
    return (f"too large: {width}x{height} = {width * height / 1e6:.1f} MP, over the {max_pixels / 1e6:.1f} MP "
            f"limit; downscale it to {int(width * scale)}x{int(height * scale)} or less to use it")


def read_rgb(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` completely into a writable HxWx3 uint8 RGB array."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on: truncated images would be read "
                           "as partly grey. Remove the code that sets it.")
    try:
        with _open_regular(path) as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise UnreadableImage(path, "empty file (0 bytes)")
            with warnings.catch_warnings():
                # The size limit below replaces Pillow's decompression-bomb warning.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(f)
            width, height = image.size
            if width * height > max_pixels:
                raise UnreadableImage(path, too_large(width, height, max_pixels))
            image.load()
    except UnreadableImage:
        raise
    except FileNotFoundError:
        raise UnreadableImage(path, "missing file") from None
    except PermissionError:
        raise UnreadableImage(path, "permission denied") from None
    except IsADirectoryError:
        raise UnreadableImage(path, "is a directory") from None
    except UnidentifiedImageError:
        raise UnreadableImage(path, "not an image (unrecognised format)") from None
    except Image.DecompressionBombError:  # Pillow's own limit (2x its MAX_IMAGE_PIXELS), above ours
        raise UnreadableImage(path, too_large(*_header_size(path), max_pixels)) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnreadableImage(path, "symbolic link loop (the link points back to itself)") from None
        if e.errno is not None and e.filename is not None:  # the file system refused, not the decoder
            raise UnreadableImage(path, f"cannot be opened ({e.strerror})") from None
        raise UnreadableImage(path, f"truncated or corrupt ({type(e).__name__}: {e})") from None
    except _DECODE_ERRORS as e:
        raise UnreadableImage(path, f"truncated or corrupt ({type(e).__name__}: {e})") from None
    return _to_rgb(image, path)


_SPECIAL = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _open_regular(path):
    """``path`` opened for binary reading, only when it is a regular file.

    It is checked before opening (opening a named pipe would wait for a
    writer, a device may act on open) and again on the open descriptor,
    which ``O_NONBLOCK`` keeps from waiting should the file be swapped.
    """
    _check_regular(path, os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        _check_regular(path, os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _header_size(path) -> tuple[int, int]:
    """(width, height) as the file's header states them, read with Pillow's size limit lifted."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with _open_regular(path) as f, Image.open(f) as image:
            return image.size
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def special_kind(mode: int) -> str:
    """What a file that is neither regular nor a directory is, from its ``st_mode``: ``"a named pipe"``, ..."""
    return next((name for test, name in _SPECIAL if test(mode)), "a special file")


def _check_regular(path, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", os.fspath(path))
    if not stat.S_ISREG(mode):
        raise UnreadableImage(path, _not_regular(mode))


def _not_regular(mode: int) -> str:
    return f"{special_kind(mode)}, not a regular file: skipped"


def file_problem(path: str | os.PathLike) -> str:
    """Why ``path`` is not a non-empty regular file this process can read ("" when it is), in the
    words ``read_rgb`` uses; for decoders that open files themselves (OpenCV), asked before they do,
    so that a named pipe or device is never opened."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing file"
    except PermissionError:
        return "permission denied"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop (the link points back to itself)"
        return f"cannot be opened ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory"
    if not stat.S_ISREG(st.st_mode):
        return _not_regular(st.st_mode)
    if st.st_size == 0:
        return "empty file (0 bytes)"
    return "" if os.access(path, os.R_OK) else "permission denied"


def _to_rgb(image: Image.Image, path) -> np.ndarray:
    mode = image.mode
    if mode == "RGB":
        return np.array(image)
    if mode.startswith("I"):  # 16-bit (or 32-bit int) grayscale
        values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        gray = ((values * 255 + 32767) // 65535).astype(np.uint8)  # x * 255/65535, rounded
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("P", "PA"):
        # Expand the palette via RGBA so transparency is kept as alpha (and then
        # dropped) instead of Pillow warning about it; colours are the palette's.
        image = image.convert("RGBA")
    try:
        return np.array(image.convert("RGB"))  # RGBA/LA -> RGB drops alpha
    except ValueError:
        raise UnreadableImage(path, f"unsupported image mode {mode!r}") from None
