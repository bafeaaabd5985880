"""Training holes: the official box (paper §5; official ``random_bbox`` / ``bbox2mask``) and, as an option,
free-form brush strokes (the irregular-hole setting of Liu et al. 2018, drawn like DeepFill v2's
``brush_stroke_mask``).

Every hole lies inside a ``hole_size`` box at a uniformly random place, and that box is what the local
critic and the discounted l1 look at. A box hole is the box shrunk by a random 0..``max_delta``/2 pixels on
each side; free-form strokes are drawn inside the box, so the local critic keeps its fixed input size and
still sees the whole hole with some context around it. All randomness comes from the ``rng`` passed in, so
a seed reproduces the holes exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np

MASK_TYPES = ("box", "free_form")


@dataclass(frozen=True)
class Box:
    """The local box (top, left, height, width) that the local critic and the l1 loss look at."""
    top: int
    left: int
    height: int
    width: int


def random_box(rng: np.random.Generator, image_size: int, hole_size: int) -> Box:
    """A ``hole_size`` square anywhere inside the image (official: top, left in [0, size - hole))."""
    top, left = rng.integers(0, max(image_size - hole_size, 1), size=2)
    return Box(int(top), int(left), hole_size, hole_size)


def box_mask(rng: np.random.Generator, box: Box, image_size: int, max_delta: int) -> np.ndarray:
    """HxW float32 mask (1 = hole) of ``box`` shrunk by 0..max_delta/2 on each side."""
    shrink_h, shrink_w = rng.integers(0, max_delta // 2 + 1, size=2)
    mask = np.zeros((image_size, image_size), np.float32)
    mask[box.top + shrink_h:box.top + box.height - shrink_h,
         box.left + shrink_w:box.left + box.width - shrink_w] = 1.0
    return mask


def brush_strokes(rng: np.random.Generator, side: int) -> np.ndarray:
    """``side``×``side`` uint8 canvas (1 = hole) with 1–3 random zig-zag strokes of random width.

    DeepFill v2's recipe for a 256² image, measured in units of a 128-pixel box: 4–11 segments per stroke
    turning by about 2π/5, segment length ~ N(r, r/2) with r = √2·side/4, width 12–40 pixels. The canvas
    is then turned by a random multiple of 90° (v2 meant to flip it but discards the flipped copy), so that
    strokes run in every direction."""
    canvas = np.zeros((side, side), np.uint8)
    radius, scale = math.sqrt(2) * side / 4, side / 128
    for _ in range(int(rng.integers(1, 4))):
        vertices = int(rng.integers(4, 12))
        spread = rng.uniform(0, 2 * math.pi / 15, size=2)
        low, high = 2 * math.pi / 5 - spread[0], 2 * math.pi / 5 + spread[1]
        angles = rng.uniform(low, high, size=vertices)
        angles[::2] = 2 * math.pi - angles[::2]
        points = [(int(rng.integers(0, side)), int(rng.integers(0, side)))]
        for angle in angles:
            length = float(np.clip(rng.normal(radius, radius / 2), 0, 2 * radius))
            x = int(np.clip(points[-1][0] + length * math.cos(angle), 0, side - 1))
            y = int(np.clip(points[-1][1] + length * math.sin(angle), 0, side - 1))
            points.append((x, y))
        width = max(1, int(rng.uniform(12, 40) * scale))
        for start, end in pairwise(points):
            cv2.line(canvas, start, end, 1, width)
        for point in points:
            cv2.circle(canvas, point, width // 2, 1, -1)
    return np.ascontiguousarray(np.rot90(canvas, int(rng.integers(0, 4))))


def stroke_mask(rng: np.random.Generator, box: Box, image_size: int) -> np.ndarray:
    """HxW float32 mask (1 = hole) of free-form strokes drawn inside ``box``."""
    mask = np.zeros((image_size, image_size), np.float32)
    mask[box.top:box.top + box.height, box.left:box.left + box.width] = brush_strokes(rng, box.height)
    return mask


def random_masks(rng: np.random.Generator, batch: int, image_size: int, hole_size: int,
                 max_delta: int, per_image: bool, kind: str = "box") -> tuple[np.ndarray, list[Box]]:
    """Masks [batch, 1, H, W] and their boxes: one shared hole (official) or one per image; ``kind`` is
    ``box`` (official) or ``free_form``."""
    if kind not in MASK_TYPES:
        raise ValueError(f"mask kind must be one of {MASK_TYPES}, got {kind!r}")
    count = batch if per_image else 1
    boxes = [random_box(rng, image_size, hole_size) for _ in range(count)]
    if kind == "box":
        masks = [box_mask(rng, box, image_size, max_delta) for box in boxes]
    else:
        masks = [stroke_mask(rng, box, image_size) for box in boxes]
    masks = np.stack(masks)[:, None]
    if not per_image:
        masks, boxes = np.repeat(masks, batch, axis=0), boxes * batch
    return masks, boxes
