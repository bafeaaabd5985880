"""oneDNN's batched matrix product as a differentiable Paddle operation: the oneDNN backend of
``deepfill.models.kernels.matmul`` (the contextual attention's matching and pasting).

The gradients of a product are products again, so one ``PyLayer`` gives the first-order gradients the
generator step needs (nothing differentiates the attention twice: the gradient penalty's second derivative
runs through the critics alone).
"""
from __future__ import annotations

import paddle
from paddle.autograd import PyLayer

from deepfill.models.onednn_convolution import dense, gradient_wanted
from deepfill.utils import onednn


def gradient_products(transpose_a: bool, transpose_b: bool) -> tuple[tuple, tuple]:
    """How the gradients of y = op(a) op(b) are computed, as ``matmul`` arguments (first operand, second,
    transpose the first, transpose the second) over the names "a", "b" and "dy": d op(a) = dy op(b)ᵀ and
    d op(b) = op(a)ᵀ dy, and an operand stored transposed gets the transpose of its gradient:
    da = op(b) dyᵀ, db = dyᵀ op(a)."""
    da = ("b", "dy", transpose_b, True) if transpose_a else ("dy", "b", False, not transpose_b)
    db = ("dy", "a", True, transpose_a) if transpose_b else ("a", "dy", not transpose_a, False)
    return da, db


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
        operands = {"a": a, "b": b, "dy": dense(dy)}
        product = onednn.instance().matmul
        return tuple(product(operands[first], operands[second], t_first, t_second) if wanted else None
                     for wanted, (first, second, t_first, t_second) in zip(ctx.wants,
                                                                          gradient_products(*ctx.transposed)))


def matmul(a: paddle.Tensor, b: paddle.Tensor, transpose_a: bool = False, transpose_b: bool = False
           ) -> paddle.Tensor:
    """``deepfill.models.kernels.matmul`` on oneDNN: the batched product of 3-D ``a`` and ``b`` (batch first)."""
    a, b = dense(a), dense(b)
    library = onednn.instance()
    if not gradient_wanted(a, b):
        return library.matmul(a, b, transpose_a, transpose_b)
    y_shape = [a.shape[0], a.shape[2 if transpose_a else 1], b.shape[1 if transpose_b else 2]]
    shapes = {"a": a.shape, "b": b.shape, "dy": y_shape}
    for wanted, (first, second, t_first, t_second) in zip((not a.stop_gradient, not b.stop_gradient),
                                                          gradient_products(transpose_a, transpose_b)):
        if wanted:
            library.prepare_matmul(shapes[first], shapes[second], t_first, t_second)
    return _MatMul.apply(a, b, transpose_a, transpose_b)
