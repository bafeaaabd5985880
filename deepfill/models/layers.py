"""The two primitives where every DeepFill port drifts from the official TensorFlow graph.

* ``SameConv2D`` pads exactly like TF's ``padding='SAME'``: for a stride-2 conv on an even size that is 0
  before and 1 after, and for a dilated conv it accounts for the dilation (Paddle's own 'SAME' does not).
* ``resize_nearest`` is TF1's ``resize_nearest_neighbor(align_corners=True)``, neuralgym's default resize,
  which Paddle's ``F.interpolate`` cannot express.

Both also work while ``paddle.jit.to_static`` traces the generator with a dynamic height and width (the
export, ``deepfill/inpainting/export.py``): a side is then a graph value, not an int. The padding is then the one of
a side that is a multiple of the stride (every side in the generator is, for pictures whose sides are
multiples of 8), and the resize computes its source rows in the graph, with the same float32 arithmetic.

``GenConv`` / ``GenDeconv`` are the generator's ``gen_conv`` / ``gen_deconv`` built from them. With the
official PADDING switch at SYMMETRIC or REFLECT, ``gen_conv`` instead mirrors p = rate·(k−1)/2 rows and
columns on every side of its input and convolves without padding (``mirror_pad``); the stride-2 convs then
start one row and column earlier than with 'SAME'.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import paddle
import paddle.nn as nn

from deepfill.models import kernels
from deepfill.models.activations import ACTIVATIONS
from deepfill.models.kernels import upsample_twice
from deepfill.utils.errors import UserError


def known_side(size: object) -> bool:
    """Whether a side (an entry of ``x.shape``) is a number, rather than a traced graph value."""
    return isinstance(size, (int, np.integer)) and size >= 0


def same_padding(size: int | paddle.Tensor, kernel: int, stride: int = 1, dilation: int = 1
                 ) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) along one axis: the extra odd pixel goes after. A traced side
    (``known_side`` false) is taken to be a multiple of the stride."""
    if not known_side(size):
        size = stride
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def tf_kernel() -> paddle.ParamAttr:
    """TF1's default kernel initializer, Glorot (Xavier) uniform; the official code's ``tf.layers.conv2d``
    and ``tf.layers.dense`` calls set none, and their biases start at zero (``tf_bias``). Paddle's own
    default is He normal, twice the variance per layer: through the generator's 17 ELU layers it leaves
    28–65 % of an untrained model's output pixels clipped at ±1, where no gradient flows, and a short run
    (the demo) paints grey blocks; with Glorot none are clipped."""
    return paddle.ParamAttr(initializer=nn.initializer.XavierUniform())


def tf_bias() -> paddle.ParamAttr:
    """TF1's default bias initializer: zeros."""
    return paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))


def mirror_pad(x: paddle.Tensor, pad: int, mode: str) -> paddle.Tensor:
    """``tf.pad`` of NCHW ``x`` by ``pad`` rows and columns on every side, mode "SYMMETRIC" (the edge row is
    repeated: c b a | a b c …) or "REFLECT" (it is not: c b | a b c …). Paddle's ``F.pad`` has no
    symmetric mode, so both are flipped slices, which also trace with a dynamic height and width. Too
    small a map (TF refuses it too) is a user error: a picture too small for the model."""
    edge = 0 if mode == "SYMMETRIC" else 1
    for axis in (2, 3):
        side = x.shape[axis]
        if known_side(side) and pad + edge > side:
            raise UserError(f"a {side}-pixel feature map is too small for {mode} padding of {pad} "
                            f"(the picture is too small for this model's padding={mode})")
        cut = [slice(None)] * 4
        cut[axis] = slice(edge, edge + pad)
        before = paddle.flip(x[tuple(cut)], [axis])
        cut[axis] = slice(-pad - edge, -edge or None)
        after = paddle.flip(x[tuple(cut)], [axis])
        x = paddle.concat([before, x, after], axis=axis)
    return x


class SameConv2D(nn.Conv2D):
    """Conv2D whose padding is TF 'SAME', computed from the input size at call time; initialised as TF's;
    followed by ``activation`` (one of ``deepfill.models.activations.ACTIVATIONS``: the kernels may apply it as they
    write the convolution's output). With ``padding`` "SYMMETRIC" or "REFLECT" (the official PADDING
    switch) the input is mirrored by dilation·(k−1)/2 on every side instead and the convolution has no
    padding (official ``gen_conv``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, padding: str = "SAME", activation: str | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         dilation=dilation, weight_attr=tf_kernel(), bias_attr=tf_bias())
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; one of {ACTIVATIONS}")
        self.k, self.s, self.d = kernel_size, stride, dilation
        self.mode = padding
        self.activation = activation

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.mode != "SAME":
            x = mirror_pad(x, self.d * (self.k - 1) // 2, self.mode)
            return kernels.conv2d(x, self.weight, self.bias, self.s, self.d, (0, 0, 0, 0), self.activation)
        return kernels.conv2d(x, self.weight, self.bias, self.s, self.d, self.padding_for(x.shape), self.activation)

    def padding_for(self, shape) -> tuple[int, int, int, int]:
        """TF-'SAME' padding (top, bottom, left, right) of an NCHW input of ``shape``."""
        top, bottom = same_padding(shape[2], self.k, self.s, self.d)
        left, right = same_padding(shape[3], self.k, self.s, self.d)
        return top, bottom, left, right

    def input_gradient(self, dy: paddle.Tensor, x_shape: list[int]) -> paddle.Tensor:
        """The gradient of the convolution alone (no activation) with respect to an input of ``x_shape``,
        given ``dy``; differentiable again (``deepfill.models.kernels.conv2d_input_gradient``). 'SAME' padding only."""
        return kernels.conv2d_input_gradient(dy, self.weight, tuple(x_shape), self.s, self.d,
                                             self.padding_for(x_shape))


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


@lru_cache(maxsize=256)
def _device_nearest_index(size_in: int, size_out: int, device: str) -> paddle.Tensor:
    """``nearest_index`` on ``device``, sent there once: it depends on the sizes alone, and on a GPU each
    ``paddle.to_tensor`` is a blocking copy (the generator asks for 7 of them per pass)."""
    return paddle.to_tensor(nearest_index(size_in, size_out))


def resize_nearest_array(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """``resize_nearest`` of a host array (…×H×W), for what the host computes from a mask."""
    rows = nearest_index(array.shape[-2], height)
    cols = nearest_index(array.shape[-1], width)
    return array[..., rows[:, None], cols[None, :]]


def traced_nearest_index(size_in: paddle.Tensor, size_out: paddle.Tensor) -> paddle.Tensor:
    """``nearest_index`` computed in the graph, for traced sides. The same float32 scale and product; the
    rounding stays in float32, which is exact here: a product below 2**22 is a multiple of its ulp (at
    most 0.5), so adding 0.5 cannot round across an integer. (For one output row the scale does not
    matter: row 0 always reads row 0.) The last source row is computed once, in int64, and used twice:
    Paddle Inference 3.3's in-place pass overwrote a shared float ``size_in - 1`` with the division's
    result, which made every row 0 (``tests/test_export.py`` runs the exported programs)."""
    last_in = paddle.cast(size_in, "int64") - 1
    steps_out = paddle.maximum(paddle.cast(size_out, "float32") - 1.0, paddle.ones([], "float32"))
    product = paddle.arange(size_out, dtype="float32") * (paddle.cast(last_in, "float32") / steps_out)
    return paddle.minimum(paddle.cast(paddle.floor(product + 0.5), "int64"), last_in)


def resize_nearest(x: paddle.Tensor, height: int | paddle.Tensor, width: int | paddle.Tensor
                   ) -> paddle.Tensor:
    """Nearest resize of an NCHW tensor exactly as TF1 ``resize_nearest_neighbor(align_corners=True)``.
    Sides may be traced graph values (see the module's docstring)."""
    index = []
    for size_in, size_out in ((x.shape[2], height), (x.shape[3], width)):
        if known_side(size_in) and known_side(size_out) and paddle.in_dynamic_mode():
            index.append(_device_nearest_index(int(size_in), int(size_out), paddle.device.get_device()))
        elif known_side(size_in) and known_side(size_out):
            index.append(paddle.to_tensor(nearest_index(int(size_in), int(size_out))))
        else:
            index.append(traced_nearest_index(size_in, size_out))
    return paddle.index_select(paddle.index_select(x, index[0], axis=2), index[1], axis=3)


class GenConv(nn.Layer):
    """``gen_conv``: TF-'SAME' conv with bias, ELU by default (``activation=None`` for the output layer,
    "relu" for the attention branch's ``pmconv6``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, activation: str | None = "elu", padding: str = "SAME") -> None:
        super().__init__()
        self.conv = SameConv2D(in_channels, out_channels, kernel_size, stride, dilation, padding, activation)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv(x)


class GenDeconv(nn.Layer):
    """``gen_deconv``: nearest ×2 upsampling (align_corners=True) followed by a 3×3 ``GenConv``."""

    def __init__(self, in_channels: int, out_channels: int, padding: str = "SAME") -> None:
        super().__init__()
        self.conv = GenConv(in_channels, out_channels, 3, padding=padding)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        conv = self.conv.conv
        if not (known_side(x.shape[2]) and known_side(x.shape[3])):
            return self.conv(resize_nearest(x, x.shape[2] * 2, x.shape[3] * 2))
        if conv.mode != "SAME":
            return self.conv(upsample_twice(x))
        return kernels.upsample_conv2d(x, conv.weight, conv.bias, conv.activation)
