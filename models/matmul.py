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

from models.convolution import dense, runs_on_onednn
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
        transpose_a, transpose_b = ctx.transposed
        # y = op(a) op(b): d op(a) = dy op(b)ᵀ and d op(b) = op(a)ᵀ dy. An operand stored transposed gets
        # the transpose of its gradient: da = op(b) dyᵀ, db = dyᵀ op(a).
        da = db = None
        if ctx.wants[0]:
            da = product(b, dy, transpose_b, True) if transpose_a else product(dy, b, False, not transpose_b)
        if ctx.wants[1]:
            db = product(dy, a, True, transpose_a) if transpose_b else product(a, dy, not transpose_a, False)
        return da, db


def matmul(a: paddle.Tensor, b: paddle.Tensor, transpose_a: bool = False, transpose_b: bool = False
           ) -> paddle.Tensor:
    """``paddle.matmul`` of 3-D float32 ``a`` and ``b`` (batch first), on oneDNN where it can run."""
    if runs_on_onednn(a, dims=3) and runs_on_onednn(b, dims=3):
        return _MatMul.apply(dense(a), dense(b), transpose_a, transpose_b)
    return paddle.matmul(a, b, transpose_x=transpose_a, transpose_y=transpose_b)
