"""oneDNN's convolutions as differentiable Paddle operations: the oneDNN backend of ``deepfill.models.kernels``,
which calls these functions only for eager float32 tensors on the CPU, and only once ``deepfill.utils.onednn`` has
passed its self-check. Each takes the arguments of the kernel of the same name and computes what Paddle's
kernel computes.

Training needs gradients of the first order (every step) and of the second (the critics' gradient
penalty differentiates a gradient). Both follow from one fact: the gradients of a convolution are again
convolutions of the same geometry. With y = conv(x, w) + b,

* dx = backward_data(dy, w) and (dw, db) = backward_weights(x, dy) (``_Convolution``);
* backward_data is linear in dy and in w: its gradients are conv(g, w) and backward_weights(g, dy)
  (``_BackwardData``);
* backward_weights is linear in x and in dy: its gradients are backward_data(dy, g_w) and
  conv(x, g_w) + g_b (``_BackwardWeights``).

Each is a ``PyLayer`` whose backward calls the others, so derivatives of any order are exact and run on
oneDNN. Where gradients will be taken, the forward call builds the plans its backward pass runs
(``OneDNN.prepare_convolution``): a shape oneDNN cannot run then fails in the call, which
``deepfill.models.kernels`` reruns with Paddle's kernel, rather than in the backward pass.

One caveat of Paddle's ``PyLayer``: its backward must return None for an input whose gradient is not
wanted, and ``paddle.grad(out, inputs=[x])`` marks the weights as not wanted without telling the layer,
which then fails. Code that calls ``paddle.grad`` through these convolutions must ask for the weights'
gradients too; the model never does (the critics' gradient penalty writes its input gradient out,
``Critic.input_gradient``).
"""
from __future__ import annotations

import numpy as np
import paddle
from paddle.autograd import PyLayer

from deepfill.models.activations import activate, refuse_second_derivative
from deepfill.utils import onednn
from deepfill.utils.onednn import Geometry


def dense(x: paddle.Tensor) -> paddle.Tensor:
    """``x`` in dense row-major memory (a copy only if it is a strided view): what oneDNN is handed."""
    return x.contiguous() if hasattr(x, "is_contiguous") and not x.is_contiguous() else x


def gradient_wanted(*tensors: paddle.Tensor) -> bool:
    """Whether a gradient will be taken through an operation on ``tensors``."""
    return paddle.is_grad_enabled() and any(not t.stop_gradient for t in tensors)


def _wants(*tensors: paddle.Tensor) -> tuple[bool, ...]:
    return tuple(not t.stop_gradient for t in tensors)


def _input_and_weight_gradients(ctx, x: paddle.Tensor, w: paddle.Tensor, dz: paddle.Tensor) -> tuple:
    """(dx, dw, db) of z = conv(x, w) + b given dz, each only if wanted (``ctx.wants``), each differentiable
    again (``_BackwardData``, ``_BackwardWeights``)."""
    dx = _BackwardData.apply(dz, w, tuple(x.shape), ctx.geometry) if ctx.wants[0] else None
    dw = db = None
    if ctx.wants[1] or ctx.wants[2]:
        dw, db = _BackwardWeights.apply(x, dz, tuple(w.shape[2:]), ctx.geometry)
    return dx, dw if ctx.wants[1] else None, db if ctx.wants[2] else None


class _Convolution(PyLayer):
    @staticmethod
    def forward(ctx, x, w, b, geometry: Geometry):
        ctx.geometry, ctx.wants = geometry, _wants(x, w, b)
        ctx.save_for_backward(x, w)
        return onednn.instance().forward(x, w, b, geometry)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensor()
        return _input_and_weight_gradients(ctx, x, w, dense(dy))


class _BackwardData(PyLayer):
    @staticmethod
    def forward(ctx, dy, w, x_shape: tuple[int, ...], geometry: Geometry):
        ctx.geometry, ctx.wants = geometry, _wants(dy, w)
        ctx.save_for_backward(dy, w)
        return onednn.instance().backward_data(dy, w, x_shape, geometry)

    @staticmethod
    def backward(ctx, g):
        dy, w = ctx.saved_tensor()
        g = dense(g)
        d_dy = _Convolution.apply(g, w, onednn.cpu_zeros((w.shape[0],)), ctx.geometry) if ctx.wants[0] else None
        d_w = _BackwardWeights.apply(g, dy, tuple(w.shape[2:]), ctx.geometry)[0] if ctx.wants[1] else None
        return d_dy, d_w


class _BackwardWeights(PyLayer):
    @staticmethod
    def forward(ctx, x, dy, kernel: tuple[int, int], geometry: Geometry):
        ctx.geometry, ctx.wants = geometry, _wants(x, dy)
        ctx.save_for_backward(x, dy)
        return onednn.instance().backward_weights(x, dy, kernel, geometry)

    @staticmethod
    def backward(ctx, g_w, g_b):
        x, dy = ctx.saved_tensor()
        g_w = dense(g_w)
        d_x = _BackwardData.apply(dy, g_w, tuple(x.shape), ctx.geometry) if ctx.wants[0] else None
        d_dy = _Convolution.apply(x, g_w, dense(g_b), ctx.geometry) if ctx.wants[1] else None
        return d_x, d_dy


class _ConvolutionELU(PyLayer):
    """ELU(conv(x, w) + b) in one oneDNN pass; first derivatives only, as Paddle's kernels' ELU
    (``deepfill.models.activations``)."""

    @staticmethod
    def forward(ctx, x, w, b, geometry: Geometry):
        ctx.geometry, ctx.wants = geometry, _wants(x, w, b)
        y = onednn.instance().forward(x, w, b, geometry, "elu")
        ctx.save_for_backward(x, w, y.detach())   # not y itself: y → its node → ctx → y would never be freed
        return y

    @staticmethod
    def backward(ctx, dy):
        refuse_second_derivative()
        x, w, y = ctx.saved_tensor()
        return _input_and_weight_gradients(ctx, x, w, onednn.instance().activation_backward(dense(dy), y, "elu"))


class _LeakyBackward(PyLayer):
    """dz = dy where y > 0, else 0.2 dy: linear in dy, with a mask that is constant almost everywhere, so
    its own gradient is the same masking of the incoming gradient (and nothing for y)."""

    @staticmethod
    def forward(ctx, dy, y):
        ctx.save_for_backward(y)
        return onednn.instance().activation_backward(dy, y, "leaky_relu")

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensor()
        return _LeakyBackward.apply(dense(g), y), None


class _ConvolutionLeaky(PyLayer):
    """LeakyReLU_0.2(conv(x, w) + b) in one oneDNN pass, with derivatives of any order (the critics')."""

    @staticmethod
    def forward(ctx, x, w, b, geometry: Geometry):
        ctx.geometry, ctx.wants = geometry, _wants(x, w, b)
        y = onednn.instance().forward(x, w, b, geometry, "leaky_relu")
        ctx.save_for_backward(x, w, y.detach())   # not y itself: y → its node → ctx → y would never be freed
        return y

    @staticmethod
    def backward(ctx, dy):
        x, w, y = ctx.saved_tensor()
        return _input_and_weight_gradients(ctx, x, w, _LeakyBackward.apply(dense(dy), y))


class _BiasELU(PyLayer):
    """ELU(z + b) per channel, on oneDNN in one pass; first derivatives only, as ``_ConvolutionELU``."""

    @staticmethod
    def forward(ctx, z, b):
        ctx.wants = _wants(z, b)
        y = onednn.instance().add_bias(z, b, elu=True)
        ctx.save_for_backward(y.detach())
        return y

    @staticmethod
    def backward(ctx, dy):
        refuse_second_derivative()
        (y,) = ctx.saved_tensor()
        dz = onednn.instance().activation_backward(dense(dy), y, "elu")
        return dz if ctx.wants[0] else None, dz.sum(axis=[0, 2, 3]) if ctx.wants[1] else None


_FUSED = {None: _Convolution, "elu": _ConvolutionELU, "leaky_relu": _ConvolutionLeaky}
"""The activations oneDNN applies as it writes a convolution's output; others follow it (``activate``)."""


def _backward_data(dy: paddle.Tensor, w: paddle.Tensor, x_shape: tuple[int, ...], geometry: Geometry
                   ) -> paddle.Tensor:
    """backward_data(dy, w) for an input of ``x_shape``: differentiable where a gradient will be taken."""
    if not gradient_wanted(dy, w):
        return onednn.instance().backward_data(dy, w, x_shape, geometry)
    onednn.instance().prepare_convolution(x_shape, w.shape, geometry, plain_forward=True)
    return _BackwardData.apply(dy, w, tuple(x_shape), geometry)


def _add_bias(z: paddle.Tensor, bias: paddle.Tensor, activation: str | None) -> paddle.Tensor:
    """z + bias per channel, then ``activation`` (None or "elu", fused)."""
    if activation is None:
        return z + bias.reshape([1, -1, 1, 1])
    if not gradient_wanted(z, bias):
        return onednn.instance().add_bias(z, bias, elu=True)
    onednn.instance().prepare_activation_gradient(z.shape, "elu")
    return _BiasELU.apply(z, bias)


UPSAMPLED_TAPS = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], np.float32)
"""Row r of the 4-tap kernel on the small image that equals taps 0..2 of a 3-tap kernel on the
image upsampled ×2 by repeating rows (``upsample_conv2d``)."""


def upsample_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, activation: str | None = None
                    ) -> paddle.Tensor:
    """A 3×3 TF-'SAME' convolution (then ``activation``) of ``x`` upsampled ×2 by repeating each row and
    column (``deepfill.models.kernels.upsample_twice``, which is the official nearest resize).

    This never builds the upsampled image: output row 2i reads input rows i-1 (tap 0) and i
    (taps 1 and 2), row 2i+1 reads rows i (taps 0 and 1) and i+1 (tap 2), so the whole layer is one
    transposed convolution of stride 2 with a 4×4 kernel made of sums of the 3×3 taps
    (``UPSAMPLED_TAPS``), i.e. the backward-data pass of a stride-2 convolution: 16 instead of 36
    multiply-adds per output pixel and channel pair. The kernel is built from ``weight`` with
    differentiable products, so its gradient reaches ``weight``."""
    n, _, h, w = x.shape
    taps = paddle.to_tensor(UPSAMPLED_TAPS, place=paddle.CPUPlace())
    kernel = paddle.matmul(paddle.matmul(taps, weight.transpose([1, 0, 2, 3])), taps, transpose_y=True)
    y = _backward_data(dense(x), kernel, (n, weight.shape[0], 2 * h, 2 * w), Geometry(2, 1, (1, 1, 1, 1)))
    fused = "elu" if activation == "elu" else None
    return activate(_add_bias(y, bias, fused), None if fused else activation)


def _transposable(geometry: Geometry) -> bool:
    top, bottom, left, right = geometry.padding
    return geometry.stride == 1 and top == bottom and left == right


def _as_transposed(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, geometry: Geometry,
                   activation: str | None) -> paddle.Tensor:
    """A stride-1, evenly padded convolution computed as the backward-data pass of the convolution with
    the kernel flipped and its channels swapped — the same sums, run by oneDNN's backward-data kernel
    where its forward kernel is the generic one (``forward_is_generic``). Then bias and ``activation``
    (None or "elu")."""
    n, _, h, w = x.shape
    flipped = weight.transpose([1, 0, 2, 3]).flip([2, 3])
    return _add_bias(_backward_data(x, flipped, (n, weight.shape[0], h, w), geometry), bias, activation)


def conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, stride: int, dilation: int,
           padding: tuple[int, int, int, int], activation: str | None = None) -> paddle.Tensor:
    """``deepfill.models.kernels.conv2d`` on oneDNN, with ELU and the leaky ReLU fused into the convolution."""
    geometry = Geometry(stride, dilation, tuple(padding))
    if bias is None:
        bias = onednn.cpu_zeros((weight.shape[0],))
    x, weight = dense(x), dense(weight)
    fused = activation if activation in _FUSED else None
    library = onednn.instance()
    if fused != "leaky_relu" and _transposable(geometry) and library.forward_is_generic(
            x.shape, weight.shape, geometry, fused):
        y = _as_transposed(x, weight, bias, geometry, fused)
    elif not gradient_wanted(x, weight, bias):
        y = library.forward(x, weight, bias, geometry, fused)
    else:
        library.prepare_convolution(x.shape, weight.shape, geometry)
        if fused is not None:
            library.prepare_activation_gradient(geometry.output_shape(tuple(x.shape), tuple(weight.shape)), fused)
        y = _FUSED[fused].apply(x, weight, bias, geometry)
    return activate(y, None if fused else activation)


def conv2d_input_gradient(dy: paddle.Tensor, weight: paddle.Tensor, x_shape: tuple[int, ...], stride: int,
                          dilation: int, padding: tuple[int, int, int, int]) -> paddle.Tensor:
    """``deepfill.models.kernels.conv2d_input_gradient`` on oneDNN: its backward-data pass, differentiable to any
    order."""
    return _backward_data(dense(dy), dense(weight), tuple(x_shape), Geometry(stride, dilation, tuple(padding)))


def leaky_relu_gradient(dy: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
    """``deepfill.models.kernels.leaky_relu_gradient`` on oneDNN, differentiable to any order in ``dy``."""
    dy, y = dense(dy), y.detach()
    if not gradient_wanted(dy):
        return onednn.instance().activation_backward(dy, y, "leaky_relu")
    onednn.instance().prepare_activation_gradient(y.shape, "leaky_relu")
    return _LeakyBackward.apply(dy, y)


def paste(attention: paddle.Tensor, patches: paddle.Tensor, grid: tuple[int, int], size: tuple[int, int],
          rate: int, padding: tuple[int, int, int, int]) -> paddle.Tensor:
    """``deepfill.models.kernels.paste`` on oneDNN: the transposed convolution of the attention map with the patches
    as its kernel, computed as the backward-data pass of the stride-``rate`` convolution with that kernel,
    one image at a time since each has its own patches (split, not sliced: a slice's gradient is a zero
    tensor of the whole). The same sums as Paddle's matrix product and ``F.fold``, in one JIT kernel,
    without the [N, positions, C·(2·rate)²] columns."""
    batch, channels = patches.shape[0], patches.shape[1] // (2 * rate) ** 2
    used = patches.shape[2]
    kernels = patches.transpose([0, 2, 1]).reshape([batch, used, channels, 2 * rate, 2 * rate])
    maps = attention.transpose([0, 2, 1]).reshape([batch, used, grid[0], grid[1]])
    geometry = Geometry(rate, 1, tuple(padding))
    return paddle.concat([_backward_data(dense(image_map), dense(image_kernels.reshape(image_kernels.shape[1:])),
                                         (1, channels, *size), geometry)
                          for image_map, image_kernels in zip(paddle.split(maps, batch), paddle.split(kernels, batch))])
