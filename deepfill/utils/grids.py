"""Pictures that explain themselves: a header row naming the columns of a grid of equal-width panels, so a
sample picture or an evaluation strip can be read without the documentation beside it."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
LARGEST_SCALE, SMALLEST_SCALE = 0.45, 0.28


def title_scale(titles: Sequence[str], width: int) -> float:
    """The largest font scale (within readable bounds) at which every title fits ``width`` pixels."""
    scale = LARGEST_SCALE
    while scale > SMALLEST_SCALE and max(cv2.getTextSize(t, FONT, scale, 1)[0][0] for t in titles) > width - 4:
        scale = round(scale - 0.02, 2)
    return scale


def with_titles(grid: np.ndarray, titles: Sequence[str]) -> np.ndarray:
    """``grid`` (uint8 HxWx3, ``len(titles)`` columns of equal width) under a white header row that names
    each column, centred above it (a title too long for its column is cut at the column's edge)."""
    if not titles or grid.shape[1] % len(titles):
        raise ValueError(f"a grid {grid.shape[1]} pixels wide cannot hold {len(titles)} equal columns")
    width = grid.shape[1] // len(titles)
    scale = title_scale(titles, width)
    text_height = cv2.getTextSize("Ag", FONT, scale, 1)[0][1]
    height = text_height + 9
    header = np.full((height, grid.shape[1], 3), 255, np.uint8)
    for column, title in enumerate(titles):
        cell = np.ascontiguousarray(header[:, column * width:(column + 1) * width])
        text_width = cv2.getTextSize(title, FONT, scale, 1)[0][0]
        cv2.putText(cell, title, (max(1, (width - text_width) // 2), text_height + 3), FONT, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
        header[:, column * width:(column + 1) * width] = cell
    return np.concatenate([header, grid], axis=0)
