"""Reading and writing pictures the way users hand them to us.

Images are kept in the file's own layout (grey, BGR, BGRA; 8 or 16 bit) so that the result can be written
back byte-identical outside the hole; ``to_rgb8`` gives the 3-channel 8-bit RGB view the model works on.
Decoding goes through OpenCV with its C-level complaints captured, so a truncated file is reported as one
clean line instead of a decoder warning plus a half-grey picture; whatever else the decoder does with a
hostile file (an exception, a refusal) is reported the same way. Before decoding, the size the file's header
declares is checked against a limit: a 68-byte PNG may declare 40000×40000 pixels, and a 2.7 MB one
30000×30000 that decodes into 6.6 GB.
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from typing import Iterator

import cv2
import numpy as np
from PIL import Image

from deepfill.utils.errors import UserError
from deepfill.utils.files import atomic_path, check_writable_file

# Pillow is used only to read headers (``image_size_from_header``); its own guard would refuse a large
# header without saying the size, and ``max_pixels`` replaces it for every picture this project reads.
Image.MAX_IMAGE_PIXELS = None

MAX_PIXELS = 200_000_000
"""Default limit on the pixels a picture may declare (``decode_image``): 200 megapixels, above any camera's
photographs, decodes into at most 1.6 GB (16-bit RGBA). Commands may change it (``max_image_pixels``)."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_DECODER_COMPLAINTS = ("premature end", "corrupt", "error", "invalid", "truncated")
_BENIGN_COMPLAINT = "libpng warning"   # e.g. "iCCP: known incorrect sRGB profile": metadata, pixels intact
_STDERR_CAPTURE = threading.Lock()     # file descriptor 2 is the process's: one capture at a time


@contextmanager
def _captured_c_stderr() -> Iterator[list[str]]:
    """Collect what C libraries (libjpeg, libpng) print on file descriptor 2 while the block runs.
    Captures are serialised: two threads swapping descriptor 2 at once could leave it pointing at a
    deleted file for good."""
    with _STDERR_CAPTURE, _redirected_c_stderr() as captured:
        yield captured


@contextmanager
def _redirected_c_stderr() -> Iterator[list[str]]:
    sys.stderr.flush()
    saved = os.dup(2)
    captured: list[str] = []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", errors="replace"))


def _pass_on(captured: str) -> None:
    """Write back what was captured during a decode that went well, but for the benign libpng warnings:
    another thread (a progress bar, a message) may have written to the terminal meanwhile."""
    text = "".join(line for line in captured.splitlines(keepends=True)
                   if not line.lower().startswith(_BENIGN_COMPLAINT))
    if text:
        sys.stderr.write(text)
        sys.stderr.flush()


class ImageTooLarge(UserError):
    """A picture whose header declares more pixels than allowed (a server answers 413)."""


def image_size_from_header(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the file's header declares them, read without decoding the pixels; None when
    the header is not one Pillow knows (OpenCV may still decode the file) or is damaged."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as picture:
                width, height = picture.size
    except Exception:       # any failure to parse a header means "unknown", never a crash
        return None
    return int(width), int(height)


def check_declared_size(data: bytes, source: str, max_pixels: int | None = None) -> tuple[int, int] | None:
    """Refuse a picture whose header declares more than ``max_pixels`` (default ``MAX_PIXELS``); returns
    the declared (width, height), or None if the header cannot tell."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    size = image_size_from_header(data)
    if size is not None and size[0] * size[1] > limit:
        raise ImageTooLarge(f"cannot read {source}: it declares {size[0]}x{size[1]} pixels, more than the "
                            f"limit of {limit:,}")
    return size


def decode_image(data: bytes, source: str, max_pixels: int | None = None) -> np.ndarray:
    """Decode an encoded image (file contents, an upload) as stored: HxW (grey), HxWx3 (BGR) or HxWx4
    (BGRA), uint8 or uint16. ``source`` names it in the error a damaged, foreign or too large file gets
    (``UserError``, never anything else): the size declared in the header is checked against
    ``max_pixels`` (default ``MAX_PIXELS``) before any pixel is decoded."""
    check_declared_size(data, source, max_pixels)
    buffer = np.frombuffer(data, dtype=np.uint8)
    with _captured_c_stderr() as complaints:
        try:
            image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
        except Exception as error:      # cv2.error (OpenCV's own size guard, ...), MemoryError
            image = None
            complaints.append(getattr(error, "err", None) or str(error).strip() or type(error).__name__)
    complaint = "\n".join(line for text in complaints for line in text.strip().splitlines()
                          if not line.lower().startswith(_BENIGN_COMPLAINT))
    if image is None or any(word in complaint.lower() for word in _DECODER_COMPLAINTS):
        detail = f" ({complaint.splitlines()[0]})" if complaint else ""
        raise UserError(f"cannot read {source}: not an image or a damaged file{detail}")
    _pass_on(complaints[-1])
    if image.dtype not in (np.uint8, np.uint16):
        raise UserError(f"cannot use {source}: pixel type {image.dtype} (expected 8 or 16 bit)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return image


def read_file(path: str) -> bytes:
    """The bytes of an image file; a missing or unreadable one (permissions, a failing disk) is a
    ``UserError`` like a damaged one."""
    if not os.path.isfile(path):
        raise UserError(f"image not found: {path}")
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None


def read_image(path: str, max_pixels: int | None = None) -> np.ndarray:
    """Read and decode an image file (see ``decode_image``)."""
    return decode_image(read_file(path), path, max_pixels)


def _white(image: np.ndarray) -> int:
    return 65535 if image.dtype == np.uint16 else 255


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """The 3-channel 8-bit RGB view of any image ``read_image`` returns (alpha is ignored)."""
    if image.dtype == np.uint16:
        image = np.round(image / 257.0).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, 2::-1])


def mask_from_image(mask: np.ndarray) -> np.ndarray:
    """A decoded mask picture as a boolean HxW array: True (hole) where any colour channel is above half."""
    if mask.ndim == 3:
        mask = mask[:, :, :3].max(axis=2)
    return mask > _white(mask) // 2


def read_mask(path: str, max_pixels: int | None = None) -> np.ndarray:
    """Read a mask file (white = hole) as a boolean HxW array."""
    return mask_from_image(read_image(path, max_pixels))


def paste_hole(original: np.ndarray, filled_rgb8: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Write an 8-bit RGB result into the hole of ``original``, keeping its layout; pixels outside the
    hole (and any alpha channel) are left exactly as they were."""
    filled = filled_rgb8.astype(np.float64) * (_white(original) / 255.0)
    if original.ndim == 2:
        filled = filled @ np.array([0.299, 0.587, 0.114])
    else:
        filled = filled[:, :, ::-1]
    result = original.copy()
    channels = result if original.ndim == 2 else result[:, :, :3]
    channels[hole] = np.clip(np.round(filled[hole]), 0, _white(original)).astype(original.dtype)
    return result


def check_writable(path: str) -> None:
    """Refuse, before any work, an output path whose folder is missing or read-only, that is a folder, or
    whose extension is no image."""
    if os.path.isdir(path):
        raise UserError(f"cannot write {path}: it is a folder")
    if os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
        raise UserError(f"cannot write {path}: unknown image extension (use one of "
                        f"{', '.join(IMAGE_EXTENSIONS)})")
    check_writable_file(path)


def encode_image(image: np.ndarray, extension: str = ".png") -> bytes:
    """Encode a picture in ``read_image``'s layout as a file of type ``extension`` (same bytes as
    ``write_image`` writes, so a file and an HTTP answer agree)."""
    ok, encoded = cv2.imencode(extension, image)
    if not ok:
        raise UserError(f"cannot encode a {image.dtype} image with {image.ndim} dims as {extension}")
    return encoded.tobytes()


def write_image(path: str, image: np.ndarray) -> None:
    """Encode by the file's extension and write atomically (temporary file, then rename)."""
    check_writable(path)
    encoded = encode_image(image, os.path.splitext(path)[1].lower())
    with atomic_path(path) as temporary, open(temporary, "wb") as out:
        out.write(encoded)


def list_images(folder: str) -> list[str]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
