"""The model's activations by name, with one meaning whichever kernels run them (``deepfill.models.kernels``).

* "elu" (α = 1): the generator's. ``elu`` keeps only its output for backward (``_ELUFromOutput``), and so
  does oneDNN's fused convolution + ELU (``deepfill.models.onednn_convolution``). Neither can give a second derivative:
  that would need the ELU's input, or its output as a node of the graph (which a ``PyLayer`` cannot keep
  without a reference cycle). Nothing needs one — the gradient penalty differentiates the critics twice,
  never the generator — so both refuse it with the same error (``refuse_second_derivative``) rather than
  one of them working and the other not.
* "relu": the v1 attention branch's last encoder layer (``pmconv6``).
* "leaky_relu" (slope ``LEAKY_SLOPE``): the critics'; derivatives of any order.
"""
from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle.autograd import PyLayer

from deepfill.utils.onednn import LEAKY_SLOPE

ACTIVATIONS = (None, "elu", "relu", "leaky_relu")
"""What ``activate`` and the kernels' ``activation`` arguments take (None: none)."""


def refuse_second_derivative() -> None:
    """Raise, in the backward of an ELU that is being differentiated with ``create_graph``."""
    if paddle.is_grad_enabled():
        raise NotImplementedError("second derivatives through the generator's ELU are not implemented: it "
                                  "keeps only its output for backward (deepfill.models.activations)")


class _ELUFromOutput(PyLayer):
    """ELU (α = 1) that keeps only its output for backward: dx = dy where y > 0, else dy · (y + 1), the
    formula of Paddle's own ELU gradient kernels, which read the output too. Paddle's ``elu`` node keeps its
    input as well, so each generator layer would hold its convolution's output beside the ELU's, which the
    next convolution keeps anyway."""

    @staticmethod
    def forward(ctx, x):
        y = F.elu(x)
        ctx.save_for_backward(y.detach())   # not y itself: y → its node → ctx → y would never be freed
        return y

    @staticmethod
    def backward(ctx, dy):
        refuse_second_derivative()
        (y,) = ctx.saved_tensor()
        return paddle.where(y > 0, dy, dy * (y + 1.0))


@paddle.jit.not_to_static
def elu(x: paddle.Tensor) -> paddle.Tensor:
    """ELU (α = 1) with the values and first derivatives of ``F.elu``, remembering only its output for
    backward where a gradient will be taken; ``F.elu`` itself elsewhere (no gradient, static graphs)."""
    if paddle.in_dynamic_mode() and paddle.is_grad_enabled() and not x.stop_gradient:
        return _ELUFromOutput.apply(x)
    return F.elu(x)


def activate(x: paddle.Tensor, activation: str | None) -> paddle.Tensor:
    """``activation`` (one of ``ACTIVATIONS``) of ``x``."""
    if activation is None:
        return x
    if activation == "elu":
        return elu(x)
    if activation == "relu":
        return F.relu(x)
    if activation == "leaky_relu":
        return F.leaky_relu(x, LEAKY_SLOPE)
    raise ValueError(f"unknown activation {activation!r}; one of {ACTIVATIONS}")
