"""Training holes: the official box (paper §5; official ``random_bbox`` / ``bbox2mask``) and, as an option,
free-form brush strokes (the irregular-hole setting of Liu et al. 2018, drawn like DeepFill v2's
``brush_stroke_mask``); and DeepFill v2's own holes (``box_and_strokes``): the official v2
``brush_stroke_mask`` over the whole image (``official_brush_strokes``), united with the box.

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

MASK_TYPES = ("box", "free_form", "box_and_strokes")


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


def _integer(rng: np.random.Generator | np.random.RandomState, low: int, high: int) -> int:
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(low, high))
    return int(rng.integers(low, high))


def official_brush_strokes(rng: np.random.Generator | np.random.RandomState, height: int, width: int
                           ) -> np.ndarray:
    """HxW float32 mask (1 = hole): DeepFill v2's ``brush_stroke_mask``, draw for draw and pixel for pixel
    (with PIL, as the official code draws): 1–3 strokes of 4–11 segments turning by about 2π/5, segment
    length ~ N(r, r//2) clipped to [0, 2r] with r = √(H²+W²)/8, width 12–40, a disc at every vertex.

    Kept as the official code has it: the start vertex and the clipping swap the picture's axes (exact on
    square pictures, which v2 trains on), and the two flips it draws for are discarded (the draws still
    happen). Given ``numpy.random.RandomState(seed)`` it reproduces the official mask after
    ``numpy.random.seed(seed)`` (``tests/test_v2_training.py``); a ``Generator`` gives the same
    distribution."""
    from PIL import Image, ImageDraw
    radius = math.sqrt(height * height + width * width) / 8
    canvas = Image.new("L", (width, height), 0)
    low_angle, spread = 2 * math.pi / 5, 2 * math.pi / 15
    for _ in range(_integer(rng, 1, 4)):
        count = _integer(rng, 4, 12)
        angle_min, angle_max = low_angle - rng.uniform(0, spread), low_angle + rng.uniform(0, spread)
        angles = [rng.uniform(angle_min, angle_max) for _ in range(count)]
        angles = [2 * math.pi - a if i % 2 == 0 else a for i, a in enumerate(angles)]
        first_limit, second_limit = canvas.size          # (W, H), named (h, w) in the official code
        vertices = [(_integer(rng, 0, second_limit), _integer(rng, 0, first_limit))]
        for angle in angles:
            length = np.clip(rng.normal(loc=radius, scale=radius // 2), 0, 2 * radius)
            x = np.clip(vertices[-1][0] + length * math.cos(angle), 0, second_limit)
            y = np.clip(vertices[-1][1] + length * math.sin(angle), 0, first_limit)
            vertices.append((int(x), int(y)))
        draw = ImageDraw.Draw(canvas)
        stroke = int(rng.uniform(12, 40))
        draw.line(vertices, fill=1, width=stroke)
        for x, y in vertices:
            draw.ellipse((x - stroke // 2, y - stroke // 2, x + stroke // 2, y + stroke // 2), fill=1)
    rng.normal(), rng.normal()                           # the discarded flips
    return np.asarray(canvas, np.float32)


def random_masks(rng: np.random.Generator, batch: int, image_size: int, hole_size: int,
                 max_delta: int, per_image: bool, kind: str = "box") -> tuple[np.ndarray, list[Box]]:
    """Masks [batch, 1, H, W] and their boxes: one shared hole (official) or one per image; ``kind`` is
    ``box`` (official v1), ``free_form`` or ``box_and_strokes`` (official v2: the box united with
    ``official_brush_strokes`` over the whole image)."""
    if kind not in MASK_TYPES:
        raise ValueError(f"mask kind must be one of {MASK_TYPES}, got {kind!r}")
    count = batch if per_image else 1
    boxes = [random_box(rng, image_size, hole_size) for _ in range(count)]
    if kind == "box":
        masks = [box_mask(rng, box, image_size, max_delta) for box in boxes]
    elif kind == "box_and_strokes":
        masks = [np.maximum(box_mask(rng, box, image_size, max_delta),
                            official_brush_strokes(rng, image_size, image_size)) for box in boxes]
    else:
        masks = [stroke_mask(rng, box, image_size) for box in boxes]
    masks = np.stack(masks)[:, None]
    if not per_image:
        masks, boxes = np.repeat(masks, batch, axis=0), boxes * batch
    return masks, boxes
