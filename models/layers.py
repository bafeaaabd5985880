"""The two primitives where every DeepFill port drifts from the official TensorFlow graph.

* ``SameConv2D`` pads exactly like TF's ``padding='SAME'``: for a stride-2 conv on an even size that is 0
  before and 1 after, and for a dilated conv it accounts for the dilation (Paddle's own 'SAME' does not).
* ``resize_nearest`` is TF1's ``resize_nearest_neighbor(align_corners=True)``, neuralgym's default resize,
  which Paddle's ``F.interpolate`` cannot express.

``GenConv`` / ``GenDeconv`` are the generator's ``gen_conv`` / ``gen_deconv`` built from them.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) along one axis: the extra odd pixel goes after."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class SameConv2D(nn.Conv2D):
    """Conv2D whose padding is TF 'SAME', computed from the input size at call time."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         dilation=dilation)
        self.k, self.s, self.d = kernel_size, stride, dilation

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        top, bottom = same_padding(x.shape[2], self.k, self.s, self.d)
        left, right = same_padding(x.shape[3], self.k, self.s, self.d)
        return F.conv2d(x, self.weight, self.bias, stride=self.s, dilation=self.d,
                        padding=[top, bottom, left, right])


@lru_cache(maxsize=256)
def nearest_index(size_in: int, size_out: int) -> np.ndarray:
    """Source rows for TF1 nearest resize with align_corners=True.

    TF computes the scale in float32 and rounds half away from zero (``roundf``); the product is formed in
    float32 as TF does, the rounding in float64 so that adding 0.5 cannot itself round.
    """
    if size_out > 1:
        scale = np.float32(size_in - 1) / np.float32(size_out - 1)
    else:
        scale = np.float32(size_in) / np.float32(size_out)
    product = (np.arange(size_out, dtype=np.float32) * scale).astype(np.float64)
    return np.minimum(np.floor(product + 0.5), size_in - 1).astype(np.int64)


def resize_nearest(x: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
    """Nearest resize of an NCHW tensor exactly as TF1 ``resize_nearest_neighbor(align_corners=True)``."""
    rows = paddle.to_tensor(nearest_index(x.shape[2], height))
    cols = paddle.to_tensor(nearest_index(x.shape[3], width))
    return paddle.index_select(paddle.index_select(x, rows, axis=2), cols, axis=3)


class GenConv(nn.Layer):
    """``gen_conv``: TF-'SAME' conv with bias, ELU by default (``activation=None`` for the output layer)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, activation: str | None = "elu") -> None:
        super().__init__()
        self.conv = SameConv2D(in_channels, out_channels, kernel_size, stride, dilation)
        self.activation = {"elu": F.elu, "relu": F.relu, None: None}[activation]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv(x)
        return self.activation(x) if self.activation is not None else x


class GenDeconv(nn.Layer):
    """``gen_deconv``: nearest ×2 upsampling (align_corners=True) followed by a 3×3 ``GenConv``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = GenConv(in_channels, out_channels, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv(resize_nearest(x, x.shape[2] * 2, x.shape[3] * 2))
