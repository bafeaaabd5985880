"""The one boundary between pictures and the model.

Pictures are uint8 RGB, H×W×3 (or N×H×W×3); the model takes float32 N×C×H×W on [-1, 1] in the channel
order its weights were trained on (``ModelSpec.channel_order``: the official weights saw OpenCV's BGR
arrays). Everything that feeds the model or shows what it made — inference, the training data, the sample
grids, evaluation — goes through these functions, so the channel order is flipped in exactly one place on
the way in and one on the way out.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import paddle


def to_model_layout(rgb: np.ndarray, channel_order: str) -> np.ndarray:
    """uint8 RGB pictures (H×W×3 or N×H×W×3) → uint8 N×3×H×W in ``channel_order``: the model's layout,
    not yet on its range (``normalise``). The training loader sends batches in this form, a quarter of
    float32's bytes through its pipes and to the device."""
    batch = rgb[None] if rgb.ndim == 3 else rgb
    if channel_order == "BGR":
        batch = batch[..., ::-1]
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def normalise(pixels: np.ndarray) -> np.ndarray:
    """uint8 values → float32 on [-1, 1]: x / 127.5 - 1."""
    return pixels.astype(np.float32) / 127.5 - 1.0


def to_model(rgb: np.ndarray, channel_order: str) -> np.ndarray:
    """uint8 RGB pictures (H×W×3 or N×H×W×3) → float32 N×3×H×W on [-1, 1] in ``channel_order``."""
    return normalise(to_model_layout(rgb, channel_order))


UNIT_VALUES = normalise(np.arange(256, dtype=np.uint8))
"""What ``normalise`` makes of each of the 256 uint8 values."""


@lru_cache(maxsize=None)
def _device_unit_values(device: str) -> paddle.Tensor:
    return paddle.to_tensor(UNIT_VALUES)


def to_model_on_device(pixels: np.ndarray) -> paddle.Tensor:
    """uint8 N×3×H×W (``to_model_layout``) → float32 on [-1, 1] on the current device, bit for bit
    ``normalise(pixels)``: the uint8 values are sent (one copy) and looked up on the device in
    ``UNIT_VALUES`` (sent once per device). A lookup, not arithmetic there, because a GPU's division (or a
    multiplication by 1/127.5 fused with the subtraction) may round differently from NumPy's."""
    index = paddle.to_tensor(pixels).astype("int32")
    return paddle.gather(_device_unit_values(paddle.device.get_device()), index.flatten()).reshape(index.shape)


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
