"""The WGAN-GP critics (paper §3.2): a local critic on the box around the hole and a global critic on the
whole image. Four 5×5 stride-2 TF-'SAME' convs with leaky ReLU 0.2, then a linear layer to one score
(no sigmoid: Wasserstein critic).

Features are flattened in NCHW order here; the official graph flattens NHWC, so the TF checkpoint
converter reorders the dense kernel (``utils/tf_checkpoint.py``).
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from models.convolution import leaky_relu_gradient, runs_on_onednn
from models.layers import SameConv2D, tf_bias, tf_kernel


class Critic(nn.Layer):
    """One critic for ``input_size`` × ``input_size`` images (the linear layer depends on the size)."""

    def __init__(self, widths: tuple[int, ...], input_size: int) -> None:
        super().__init__()
        convs, previous, side = [], 3, input_size
        for i, width in enumerate(widths, start=1):
            convs.append((f"conv{i}", SameConv2D(previous, width, 5, stride=2)))
            previous, side = width, -(-side // 2)
        self.convs = nn.Sequential(*convs)
        self.fc = nn.Linear(previous * side * side, 1, weight_attr=tf_kernel(), bias_attr=tf_bias())
        self.input_size = input_size

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            raise ValueError(f"this critic was built for {self.input_size}×{self.input_size} inputs, "
                             f"got {x.shape[2]}×{x.shape[3]}")
        for conv in self.convs:
            x = conv(x, "leaky_relu")
        return self.fc(x.reshape([x.shape[0], -1]))  # reshape, not flatten: the gradient penalty needs its double grad

    def input_gradient(self, x: paddle.Tensor) -> paddle.Tensor:
        """d(score)/dx for each image of ``x``, kept in the graph so that the gradient penalty built on it
        can be minimised (second derivatives).

        On oneDNN this is the backward pass written out — through the linear layer, each leaky ReLU and
        each convolution's input gradient — because ``paddle.grad`` would also compute every weight's
        gradient there (``models.convolution``'s caveat), a quarter of the penalty's work, thrown away.
        Elsewhere it is ``paddle.grad`` with ``create_graph``."""
        if not runs_on_onednn(x):
            if x.stop_gradient:
                x = x.detach()
                x.stop_gradient = False
            return paddle.grad(self(x), x, create_graph=True)[0]
        inputs, outputs = [], []
        for conv in self.convs:
            inputs.append(x.shape)
            x = conv(x, "leaky_relu")
            outputs.append(x)
        gradient = self.fc.weight[:, 0].reshape([1, *x.shape[1:]]).expand(x.shape)
        for conv, shape, y in zip(reversed(self.convs), reversed(inputs), reversed(outputs)):
            gradient = conv.input_gradient(leaky_relu_gradient(gradient, y), shape)
        return gradient


def local_critic(input_size: int = 128) -> Critic:
    """Critic of the 128×128 (at 256² training) box around the hole: widths 64, 128, 256, 512."""
    return Critic((64, 128, 256, 512), input_size)


def global_critic(input_size: int = 256) -> Critic:
    """Critic of the whole image: widths 64, 128, 256, 256."""
    return Critic((64, 128, 256, 256), input_size)
