"""The one boundary between pictures and the model.

Pictures are uint8 RGB, H×W×3 (or N×H×W×3); the model takes float32 N×C×H×W on [-1, 1] in the channel
order its weights were trained on (``ModelSpec.channel_order``: the official weights saw OpenCV's BGR
arrays). Everything that feeds the model or shows what it made — inference, the training data, the sample
grids, evaluation — goes through these functions, so the channel order is flipped in exactly one place on
the way in and one on the way out.
"""
from __future__ import annotations

import numpy as np


def to_model(rgb: np.ndarray, channel_order: str) -> np.ndarray:
    """uint8 RGB pictures (H×W×3 or N×H×W×3) → float32 N×3×H×W on [-1, 1] in ``channel_order``."""
    batch = rgb[None] if rgb.ndim == 3 else rgb
    if channel_order == "BGR":
        batch = batch[..., ::-1]
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / 127.5 - 1.0


def to_uint8(unit_range: np.ndarray) -> np.ndarray:
    """Values on [-1, 1] → uint8, rounded (TF's official test.py truncates; rounding is closer)."""
    return np.clip(np.round((unit_range + 1.0) * 127.5), 0, 255).astype(np.uint8)


def from_model(x: np.ndarray, channel_order: str) -> np.ndarray:
    """Model output, N×3×H×W on [-1, 1] in ``channel_order`` → uint8 RGB pictures N×H×W×3."""
    batch = np.asarray(x).transpose(0, 2, 3, 1)
    if channel_order == "BGR":
        batch = batch[..., ::-1]
    return to_uint8(batch)


def hole_to_model(hole: np.ndarray) -> np.ndarray:
    """Boolean holes (H×W or N×H×W, True = missing) → float32 mask N×1×H×W, 1 = hole."""
    batch = hole[None] if hole.ndim == 2 else hole
    return batch[:, None].astype(np.float32)


def composite(filled: np.ndarray, known: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The model's pixels inside ``hole``, ``known``'s everywhere else (pictures H×W×C, hole H×W)."""
    return np.where(hole[..., None], filled, known)
