"""How a big photo meets a model trained on small pictures (the official 256×256 with holes up to 128×128,
the demo 64×64): the hd-strategy. Its sizes follow the model's training side T (``ModelSpec.image_size``,
``Filler.training_size``); for the official models T = 256 gives the figures in brackets.

* ``full`` runs the model on the whole picture (time and memory grow with its area; docs/performance.md).
* ``crop`` runs it on a window around each hole: the hole's bounding box plus T/2 pixels on every side
  [128], at least T on a side [256], cut to the picture; windows that overlap are merged, so every hole
  sees all the context it would have inside its window. Cost follows the holes, not the picture; and the
  model sees pictures of the size it was trained on: the demo model fills the example cat's holes with
  11.4 % L1 on the whole 451×300 picture, 6.1 % in 64×64 windows.
* ``resize`` runs it on a copy whose longer side is ``RESIZE_SIDE`` and upsamples the filled hole only; fast,
  but the filling is as blurry as the downscale.
* ``auto`` is ``crop`` for pictures over 4T pixels on a side [1024], ``full`` otherwise (what the page uses).

Whatever the mode, only hole pixels change: every known pixel of the result is the input's.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deepfill.inpainting.filler import Filler
from deepfill.utils.cli import UserError
from deepfill.utils.flow import add_key
from deepfill.utils.image_io import paste_hole, to_rgb8
from deepfill.utils.pixels import composite

STRATEGIES = ("full", "crop", "resize")
CHOICES = (*STRATEGIES, "auto")
RESIZE_SIDE = 512
OFFICIAL_SIDE = 256


def auto_crop_side(training_size: int = OFFICIAL_SIDE) -> int:
    """Pictures with a side over this are filled in windows by ``auto``: four training sides."""
    return 4 * training_size


def resolve(strategy: str, height: int, width: int, training_size: int = OFFICIAL_SIDE) -> str:
    """The mode that runs for ``strategy`` on a height×width picture (``auto`` decided here)."""
    if strategy not in CHOICES:
        raise UserError(f"unknown hd-strategy {strategy!r} (choose one of {', '.join(CHOICES)})")
    if strategy == "auto":
        return "crop" if max(height, width) > auto_crop_side(training_size) else "full"
    return strategy


def _span(low: int, high: int, size: int, margin: int, min_side: int) -> tuple[int, int]:
    """[low, high) grown by ``margin`` and to at least ``min_side``, then slid (not cut) inside [0, size)."""
    low, high = low - margin, high + margin
    if high - low < min_side:
        grow = min_side - (high - low)
        low, high = low - grow // 2, high + grow - grow // 2
    if low < 0:
        low, high = 0, high - low
    if high > size:
        low, high = max(low - (high - size), 0), size
    return low, high


def crop_windows(hole: np.ndarray, margin: int = OFFICIAL_SIDE // 2, min_side: int = OFFICIAL_SIDE
                 ) -> list[tuple[int, int, int, int]]:
    """Disjoint windows (top, left, bottom, right) that together hold every hole pixel, each hole whole
    with at least ``margin`` pixels of context around its bounding box where the picture allows."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    height, width = hole.shape
    windows = []
    for x, y, w, h, _ in stats[1:count]:
        top, bottom = _span(int(y), int(y + h), height, margin, min_side)
        left, right = _span(int(x), int(x + w), width, margin, min_side)
        windows.append((top, left, bottom, right))
    merged = True
    while merged:
        merged = False
        for i in range(len(windows)):
            for j in range(i + 1, len(windows)):
                a, b = windows[i], windows[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    windows[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del windows[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(windows)


def fill(inpainter: Filler, image_rgb: np.ndarray, hole: np.ndarray, strategy: str = "full"
         ) -> tuple[np.ndarray, np.ndarray, str]:
    """Fill ``hole`` (H×W bool) in ``image_rgb`` (H×W×3 uint8) in one of the modes.

    Returns the completed picture (equal to the input outside the hole), the attention flow picture
    (white where nothing was attended) and the mode that ran.
    """
    height, width = hole.shape
    side = inpainter.training_size
    mode = resolve(strategy, height, width, side)
    if mode == "crop":
        completed = image_rgb.copy()
        flow = np.full_like(image_rgb, 255)
        for top, left, bottom, right in crop_windows(hole, side // 2, side):
            window = (slice(top, bottom), slice(left, right))
            completed[window], flow[window] = inpainter(image_rgb[window], hole[window])
        return completed, flow, mode
    scale = RESIZE_SIDE / max(height, width)
    if mode == "resize" and scale < 1 and hole.any():
        size = (max(round(width * scale), 1), max(round(height * scale), 1))
        small = cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)
        # Every small pixel that mixes in any hole pixel is part of the small hole, so no unknown colour
        # leaks into the context the model sees.
        small_hole = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        small_completed, small_flow = inpainter(small, small_hole)
        upsampled = cv2.resize(small_completed, (width, height), interpolation=cv2.INTER_CUBIC)
        flow = cv2.resize(small_flow, (width, height), interpolation=cv2.INTER_NEAREST)
        return composite(upsampled, image_rgb, hole), flow, mode
    completed, flow = inpainter(image_rgb, hole)
    return completed, flow, mode


@dataclass(frozen=True)
class Filled:
    """A user's picture after filling: ``picture`` in the input's own layout (grey, colour, alpha, 8 or
    16 bit; identical outside the hole), ``flow`` the keyed attention picture (uint8 RGB), ``mode`` the
    hd-strategy that ran."""
    picture: np.ndarray
    flow: np.ndarray
    mode: str


def fill_picture(inpainter: Filler, original: np.ndarray, hole: np.ndarray, strategy: str = "full"
                 ) -> Filled:
    """What ``inpaint.py`` and the app both do with a decoded picture and its hole (same size), so that
    the two give byte-identical results."""
    completed, flow, mode = fill(inpainter, to_rgb8(original), hole, strategy)
    return Filled(paste_hole(original, completed, hole), add_key(flow, hole), mode)
