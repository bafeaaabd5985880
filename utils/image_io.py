"""Reading and writing pictures the way users hand them to us.

Images are kept in the file's own layout (grey, BGR, BGRA; 8 or 16 bit) so that the result can be written
back byte-identical outside the hole; ``to_rgb8`` gives the 3-channel 8-bit RGB view the model works on.
Decoding goes through OpenCV with its C-level complaints captured, so a truncated file is reported as one
clean line instead of a decoder warning plus a half-grey picture.
"""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

import cv2
import numpy as np

from utils.errors import UserError
from utils.files import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_DECODER_COMPLAINTS = ("premature end", "corrupt", "error", "invalid", "truncated")
_BENIGN_COMPLAINT = "libpng warning"   # e.g. "iCCP: known incorrect sRGB profile": metadata, pixels intact


@contextmanager
def _captured_c_stderr() -> Iterator[list[str]]:
    """Collect what C libraries (libjpeg, libpng) print on file descriptor 2 while the block runs."""
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


def decode_image(data: bytes, source: str) -> np.ndarray:
    """Decode an encoded image (file contents, an upload) as stored: HxW (grey), HxWx3 (BGR) or HxWx4
    (BGRA), uint8 or uint16. ``source`` names it in the error a damaged or foreign file gets."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    with _captured_c_stderr() as complaints:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    complaint = "\n".join(line for line in complaints[0].strip().splitlines()
                          if not line.lower().startswith(_BENIGN_COMPLAINT))
    if image is None or any(word in complaint.lower() for word in _DECODER_COMPLAINTS):
        detail = f" ({complaint.splitlines()[0]})" if complaint else ""
        raise UserError(f"cannot read {source}: not an image or a damaged file{detail}")
    if image.dtype not in (np.uint8, np.uint16):
        raise UserError(f"cannot use {source}: pixel type {image.dtype} (expected 8 or 16 bit)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return image


def read_image(path: str) -> np.ndarray:
    """Read and decode an image file (see ``decode_image``)."""
    if not os.path.isfile(path):
        raise UserError(f"image not found: {path}")
    with open(path, "rb") as handle:
        return decode_image(handle.read(), path)


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


def read_mask(path: str) -> np.ndarray:
    """Read a mask file (white = hole) as a boolean HxW array."""
    return mask_from_image(read_image(path))


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
    """Refuse, before any work, an output path whose folder is missing or whose extension is no image."""
    if os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
        raise UserError(f"cannot write {path}: unknown image extension (use one of "
                        f"{', '.join(IMAGE_EXTENSIONS)})")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UserError(f"cannot write {path}: folder {directory} does not exist")


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
