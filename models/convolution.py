"""The 2-D convolution every layer of the model runs (``conv2d``): on the CPU in eager mode on oneDNN
(``utils.onednn``, 2–4× Paddle's own CPU kernels), elsewhere Paddle's ``F.conv2d``.

Training needs gradients of the first order (every step) and of the second (the critics' gradient
penalty differentiates a gradient). Both follow from one fact: the gradients of a convolution are again
convolutions of the same geometry. With y = conv(x, w) + b,

* dx = backward_data(dy, w) and (dw, db) = backward_weights(x, dy) (``_Convolution``);
* backward_data is linear in dy and in w: its gradients are conv(g, w) and backward_weights(g, dy)
  (``_BackwardData``);
* backward_weights is linear in x and in dy: its gradients are backward_data(dy, g_w) and
  conv(x, g_w) + g_b (``_BackwardWeights``).

Each is a ``PyLayer`` whose backward calls the others, so derivatives of any order are exact and run on
oneDNN. GPU tensors, static graphs (``paddle.jit`` exports and the compiled inference programs) and other
dtypes take Paddle's kernels, as does everything when ``use_onednn(False)`` or when oneDNN cannot be used.

One caveat of Paddle's ``PyLayer``: its backward must return None for an input whose gradient is not
wanted, and ``paddle.grad(out, inputs=[x])`` marks the weights as not wanted without telling the layer,
which then fails. Code that calls ``paddle.grad`` through these convolutions must ask for the weights'
gradients too; the critics' gradient penalty instead writes its input gradient out
(``Critic.input_gradient``, with ``conv2d_input_gradient`` and ``leaky_relu_gradient``).
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle.autograd import PyLayer

from utils import onednn
from utils.onednn import Geometry

_enabled = True


def use_onednn(enabled: bool) -> None:
    """Whether CPU convolutions in eager mode run on oneDNN (the default) or on Paddle's own kernels."""
    global _enabled
    _enabled = enabled


def onednn_active() -> bool:
    """Whether eager CPU convolutions currently run on oneDNN."""
    return _enabled and onednn.instance() is not None


def dense(x: paddle.Tensor) -> paddle.Tensor:
    """``x`` in dense row-major memory (a copy only if it is a strided view): what oneDNN is handed."""
    return x.contiguous() if hasattr(x, "is_contiguous") and not x.is_contiguous() else x


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
    """ELU(conv(x, w) + b) in one oneDNN pass; first derivatives only (the generator's layers, which
    nothing differentiates twice)."""

    @staticmethod
    def forward(ctx, x, w, b, geometry: Geometry):
        ctx.geometry, ctx.wants = geometry, _wants(x, w, b)
        y = onednn.instance().forward(x, w, b, geometry, "elu")
        ctx.save_for_backward(x, w, y.detach())   # not y itself: y → its node → ctx → y would never be freed
        return y

    @staticmethod
    def backward(ctx, dy):
        if paddle.is_grad_enabled():
            raise NotImplementedError("second derivatives through a fused convolution + ELU are not implemented")
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
        if paddle.is_grad_enabled():
            raise NotImplementedError("second derivatives through a fused convolution + ELU are not implemented")
        (y,) = ctx.saved_tensor()
        dz = onednn.instance().activation_backward(dense(dy), y, "elu")
        return dz if ctx.wants[0] else None, dz.sum(axis=[0, 2, 3]) if ctx.wants[1] else None


class _ELUFromOutput(PyLayer):
    """ELU (α = 1) that keeps only its output for backward: dx = dy where y > 0, else dy · (y + 1), the
    formula of Paddle's own ELU gradient kernels, which read the output too. Paddle's ``elu`` node keeps its
    input as well, so on Paddle's kernels (a GPU) each generator layer held its convolution's output beside
    the ELU's, which the next convolution keeps anyway. First derivatives only, as ``_ConvolutionELU``."""

    @staticmethod
    def forward(ctx, x):
        y = F.elu(x)
        ctx.save_for_backward(y.detach())   # not y itself: y → its node → ctx → y would never be freed
        return y

    @staticmethod
    def backward(ctx, dy):
        if paddle.is_grad_enabled():
            raise NotImplementedError("second derivatives through the generator's ELU are not implemented")
        (y,) = ctx.saved_tensor()
        return paddle.where(y > 0, dy, dy * (y + 1.0))


@paddle.jit.not_to_static
def elu(x: paddle.Tensor) -> paddle.Tensor:
    """ELU (α = 1) with the values and gradients of ``F.elu``, remembering only its output for backward
    (``_ELUFromOutput``) where a gradient will be taken; ``F.elu`` itself elsewhere (no gradient, static
    graphs)."""
    if paddle.in_dynamic_mode() and paddle.is_grad_enabled() and not x.stop_gradient:
        return _ELUFromOutput.apply(x)
    return F.elu(x)


UPSAMPLED_TAPS = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], np.float32)
"""Row r of the 4-tap kernel on the small image that equals taps 0..2 of a 3-tap kernel on the
image upsampled ×2 by repeating rows (``upsample_conv2d``)."""


@paddle.jit.not_to_static
def _onednn_upsample_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, elu: bool
                            ) -> paddle.Tensor:
    n, _, h, w = x.shape
    taps = paddle.to_tensor(UPSAMPLED_TAPS, place=paddle.CPUPlace())
    kernel = paddle.matmul(paddle.matmul(taps, weight.transpose([1, 0, 2, 3])), taps, transpose_y=True)
    y = _BackwardData.apply(dense(x), kernel, (n, weight.shape[0], 2 * h, 2 * w), Geometry(2, 1, (1, 1, 1, 1)))
    if not elu:
        return y + bias.reshape([1, -1, 1, 1])
    if not paddle.is_grad_enabled() or (y.stop_gradient and bias.stop_gradient):
        return onednn.instance().add_bias(y, bias, elu=True)
    return _BiasELU.apply(y, bias)


def upsample_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, elu: bool = False
                    ) -> paddle.Tensor:
    """On oneDNN (``runs_on_onednn(x)``): a 3×3 TF-'SAME' convolution (then ELU if ``elu``) of ``x``
    upsampled ×2 by repeating each row and column (``layers.upsample_twice``, which is the official
    nearest resize).

    This never builds the upsampled image: output row 2i reads input rows i-1 (tap 0) and i
    (taps 1 and 2), row 2i+1 reads rows i (taps 0 and 1) and i+1 (tap 2), so the whole layer is one
    transposed convolution of stride 2 with a 4×4 kernel made of sums of the 3×3 taps
    (``UPSAMPLED_TAPS``), i.e. the backward-data pass of a stride-2 convolution: 16 instead of 36
    multiply-adds per output pixel and channel pair. The kernel is built from ``weight`` with
    differentiable products, so its gradient reaches ``weight``."""
    return _onednn_upsample_conv2d(x, weight, bias, elu)


@paddle.jit.not_to_static
def runs_on_onednn(x: paddle.Tensor, dims: int = 4) -> bool:
    """Whether an operation on ``x`` runs on oneDNN here: CPU, eager, float32, ``dims`` axes (NCHW for a
    convolution; ``models.matmul`` asks for 3)."""
    return (_enabled and paddle.in_dynamic_mode() and x.place.is_cpu_place() and x.dtype == paddle.float32
            and len(x.shape) == dims and onednn.instance() is not None)


def _transposable(geometry: Geometry) -> bool:
    top, bottom, left, right = geometry.padding
    return geometry.stride == 1 and top == bottom and left == right


def _as_transposed(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, geometry: Geometry,
                   activation: str | None) -> paddle.Tensor:
    """A stride-1, evenly padded convolution computed as the backward-data pass of the convolution with
    the kernel flipped and its channels swapped — the same sums, run by oneDNN's backward-data kernel
    where its forward kernel is the generic one (``forward_is_generic``). Then bias and activation."""
    n, _, h, w = x.shape
    flipped = weight.transpose([1, 0, 2, 3]).flip([2, 3])
    z = _BackwardData.apply(x, flipped, (n, weight.shape[0], h, w), geometry)
    if activation is None:
        return z + bias.reshape([1, -1, 1, 1])
    if not paddle.is_grad_enabled() or (z.stop_gradient and bias.stop_gradient):
        return onednn.instance().add_bias(z, bias, elu=True)
    return _BiasELU.apply(z, bias)


@paddle.jit.not_to_static
def _onednn_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, geometry: Geometry,
                   activation: str | None) -> paddle.Tensor:
    if bias is None:
        bias = onednn.cpu_zeros((weight.shape[0],))
    x, weight = dense(x), dense(weight)
    if activation != "leaky_relu" and _transposable(geometry) and onednn.instance().forward_is_generic(
            x.shape, weight.shape, geometry, activation):
        return _as_transposed(x, weight, bias, geometry, activation)
    if activation is None:
        return _Convolution.apply(x, weight, bias, geometry)
    if not paddle.is_grad_enabled() or (x.stop_gradient and weight.stop_gradient and bias.stop_gradient):
        return onednn.instance().forward(x, weight, bias, geometry, activation)
    fused = {"elu": _ConvolutionELU, "leaky_relu": _ConvolutionLeaky}[activation]
    return fused.apply(x, weight, bias, geometry)


@paddle.jit.not_to_static
def conv2d_input_gradient(dy: paddle.Tensor, weight: paddle.Tensor, x_shape: tuple[int, ...], stride: int,
                          dilation: int, padding: tuple[int, int, int, int]) -> paddle.Tensor:
    """On oneDNN: the gradient of ``conv2d`` with respect to its input (of ``x_shape``) given ``dy``, itself
    differentiable to any order (with respect to ``dy`` and ``weight``)."""
    return _BackwardData.apply(dense(dy), dense(weight), tuple(x_shape), Geometry(stride, dilation, tuple(padding)))


@paddle.jit.not_to_static
def leaky_relu_gradient(dy: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
    """On oneDNN: the gradient through y = leaky_relu(z) (slope 0.2) with respect to z, given ``dy``;
    differentiable to any order with respect to ``dy``."""
    return _LeakyBackward.apply(dense(dy), y.detach())


def conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, stride: int, dilation: int,
           padding: tuple[int, int, int, int], activation: str | None = None) -> paddle.Tensor:
    """``F.conv2d`` of NCHW ``x`` with ``padding`` (top, bottom, left, right), followed by ``activation``:
    None, "elu" (the generator's; first derivatives only on oneDNN) or "leaky_relu" (slope 0.2, the
    critics'; derivatives of any order). On oneDNN where it applies, with the activation fused."""
    if runs_on_onednn(x):
        return _onednn_conv2d(x, weight, bias, Geometry(stride, dilation, tuple(padding)), activation)
    y = F.conv2d(x, weight, bias, stride=stride, dilation=dilation, padding=list(padding))
    if activation == "elu":
        return elu(y)
    return F.leaky_relu(y, onednn.LEAKY_SLOPE) if activation == "leaky_relu" else y
