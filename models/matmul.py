"""The contextual attention's batched matrix products (``matmul``): on the CPU in eager mode on oneDNN
(``utils.onednn``, about 4× Paddle's CPU ``matmul`` here, 160 against 40 GMAC/s), elsewhere Paddle's.

Matching and pasting in the attention are two large products per chunk, and with Paddle's kernel they were
half the time of a critic step's generator pass. The gradients of a product are products again, so one
``PyLayer`` gives the first-order gradients the generator step needs (nothing differentiates the attention
twice: the gradient penalty's second derivative runs through the critics alone).
"""
from __future__ import annotations

import paddle
from paddle.autograd import PyLayer

from models.convolution import dense, onednn_active
from utils import onednn


class _MatMul(PyLayer):
    @staticmethod
    def forward(ctx, a, b, transpose_a: bool, transpose_b: bool):
        ctx.transposed = (transpose_a, transpose_b)
        ctx.wants = (not a.stop_gradient, not b.stop_gradient)
        ctx.save_for_backward(a, b)
        return onednn.instance().matmul(a, b, transpose_a, transpose_b)

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved_tensor()
        dy = dense(dy)
        product = onednn.instance().matmul
        da = db = None
        # y = op(a) op(b): d op(a) = dy op(b)ᵀ and d op(b) = op(a)ᵀ dy, each written in the stored layout.
        if ctx.transposed == (False, False):
            da = product(dy, b, False, True) if ctx.wants[0] else None
            db = product(a, dy, True, False) if ctx.wants[1] else None
        elif ctx.transposed == (True, False):
            da = product(b, dy, False, True) if ctx.wants[0] else None
            db = product(a, dy, False, False) if ctx.wants[1] else None
        elif ctx.transposed == (False, True):
            da = product(dy, b, False, False) if ctx.wants[0] else None
            db = product(dy, a, True, False) if ctx.wants[1] else None
        else:
            da = product(b, dy, True, True) if ctx.wants[0] else None
            db = product(dy, a, True, True) if ctx.wants[1] else None
        return da, db


def matmul(a: paddle.Tensor, b: paddle.Tensor, transpose_a: bool = False, transpose_b: bool = False
           ) -> paddle.Tensor:
    """``paddle.matmul`` of 3-D float32 ``a`` and ``b`` (batch first), on oneDNN where it can run."""
    if (onednn_active() and paddle.in_dynamic_mode() and a.place.is_cpu_place() and len(a.shape) == 3
            and len(b.shape) == 3 and a.dtype == paddle.float32 and b.dtype == paddle.float32):
        return _MatMul.apply(dense(a), dense(b), transpose_a, transpose_b)
    return paddle.matmul(a, b, transpose_x=transpose_a, transpose_y=transpose_b)
