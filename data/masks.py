"""Training holes (paper §5; official ``random_bbox`` / ``bbox2mask``) and the spatially discounted
reconstruction weight (paper §3.1).

A hole is a ``hole_size`` box at a uniformly random place, shrunk by a random 0..``max_delta``/2 pixels on
each side; the critics' local view is the unshrunk box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def random_masks(rng: np.random.Generator, batch: int, image_size: int, hole_size: int,
                 max_delta: int, per_image: bool) -> tuple[np.ndarray, list[Box]]:
    """Masks [batch, 1, H, W] and their boxes: one shared hole (official) or one per image."""
    count = batch if per_image else 1
    boxes = [random_box(rng, image_size, hole_size) for _ in range(count)]
    masks = np.stack([box_mask(rng, box, image_size, max_delta) for box in boxes])[:, None]
    if not per_image:
        masks, boxes = np.repeat(masks, batch, axis=0), boxes * batch
    return masks, boxes


def spatial_discount(height: int, width: int, gamma: float) -> np.ndarray:
    """Weight ``max(γ^min(i, H-i), γ^min(j, W-j))``: pixels near the known border count more, because
    far inside a hole many completions are plausible (official ``spatial_discounting_mask``)."""
    i = np.arange(height)[:, None]
    j = np.arange(width)[None, :]
    return np.maximum(gamma ** np.minimum(i, height - i), gamma ** np.minimum(j, width - j)).astype(np.float32)
