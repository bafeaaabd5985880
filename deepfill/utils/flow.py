"""Attention offsets → the familiar colour picture (the Middlebury optical-flow colour wheel).

Hue gives the direction from a hole pixel to the background patch it copied from, saturation the distance
relative to the largest displacement in the picture; a pixel that attends to itself is white.
"""
from __future__ import annotations

import numpy as np

# (number of hues between, start colour) for red→yellow→green→cyan→blue→magenta→red
_WHEEL_SEGMENTS = ((15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)),
                   (4, (0, 255, 0), (0, 255, 255)), (11, (0, 255, 255), (0, 0, 255)),
                   (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0)))


def color_wheel() -> np.ndarray:
    """The 55 hues of the wheel as float RGB in [0, 255], each segment a linear ramp between its ends."""
    hues = []
    for steps, start, end in _WHEEL_SEGMENTS:
        ramp = np.arange(steps, dtype=np.float64)[:, None] / steps
        hues.append(np.floor(np.array(start) + ramp * (np.array(end) - np.array(start))))
    return np.concatenate(hues)


def flow_to_color(offsets: np.ndarray) -> np.ndarray:
    """``offsets`` [2, H, W] (row, col displacement, as ``contextual_attention`` returns) → uint8 RGB [H, W, 3].

    Like the official picture, the first channel drives the horizontal axis of the wheel.
    """
    u, v = offsets[0].astype(np.float64), offsets[1].astype(np.float64)
    radius = np.sqrt(u ** 2 + v ** 2)
    scale = radius.max() + np.finfo(np.float64).eps
    u, v, radius = u / scale, v / scale, radius / scale
    wheel = color_wheel() / 255.0
    position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (len(wheel) - 1)
    below = np.floor(position).astype(int)
    above = (below + 1) % len(wheel)
    weight = (position - below)[..., None]
    color = (1 - weight) * wheel[below] + weight * wheel[above]
    inside = (radius <= 1)[..., None]
    color = np.where(inside, 1 - radius[..., None] * (1 - color), color * 0.75)
    return np.floor(255 * color).astype(np.uint8)


def color_key(side: int) -> np.ndarray:
    """The key to the flow picture: a side×side uint8 RGB disc in which every point has the colour a hole
    pixel gets when the patch it copied lies in that direction from it (centre: itself; rim: the largest
    displacement of the picture), on white inside a grey ring.

    It is drawn with ``flow_to_color`` itself, so it stays right whatever convention the wheel follows.
    """
    centre = (side - 1) / 2
    rows, cols = np.mgrid[0:side, 0:side].astype(np.float64) - centre
    radius = max(centre - 1.5, 1.0)
    outside = np.hypot(rows, cols) > radius
    offsets = np.stack([rows, cols])
    offsets[:, outside] = 0
    key = flow_to_color(offsets)
    ring = np.abs(np.hypot(rows, cols) - (radius + 0.75)) <= 0.75
    key[ring] = 128
    return key


def add_key(picture: np.ndarray, hole: np.ndarray | None = None) -> np.ndarray:
    """A copy of a flow picture (H×W×3) with its colour key in the corner that hides the fewest hole
    pixels, bottom right when that is a tie (the key is a quarter of the shorter side, 16 to 128 pixels;
    pictures under 32 pixels keep none)."""
    height, width = picture.shape[:2]
    side = int(np.clip(min(height, width) // 4, 16, 128))
    if min(height, width) < 32:
        return picture.copy()
    margin = max(side // 16, 1)
    bottom, right = height - side - margin, width - side - margin
    corners = [(bottom, right), (bottom, margin), (margin, right), (margin, margin)]   # first wins a tie
    covered = [0 if hole is None else int(hole[top:top + side, left:left + side].sum())
               for top, left in corners]
    top, left = corners[covered.index(min(covered))]
    result = picture.copy()
    result[top:top + side, left:left + side] = color_key(side)
    return result
