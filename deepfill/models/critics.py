"""The WGAN-GP critics (paper §3.2): a local critic on the box around the hole and a global critic on the
whole image. Four 5×5 stride-2 TF-'SAME' convs with leaky ReLU 0.2, then a linear layer to one score
(no sigmoid: Wasserstein critic).

With the official GAN_WITH_MASK switch the global critic also sees the hole mask, as a 4th input channel
after the image's (official: the global critic only, not the local one); its gradient penalty is then the
gradient with respect to the image channels (``input_gradient``).

Features are flattened in NCHW order here; the official graph flattens NHWC, so the TF checkpoint
converter reorders the dense kernel (``deepfill/models/official.py``, ``dense_kernel``).
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from deepfill.models import kernels
from deepfill.models.layers import SameConv2D, tf_bias, tf_kernel


class Critic(nn.Layer):
    """One critic for ``input_size`` × ``input_size`` images (the linear layer depends on the size); with
    ``mask_channel`` it also takes the hole mask as a 4th input channel."""

    def __init__(self, widths: tuple[int, ...], input_size: int, mask_channel: bool = False) -> None:
        super().__init__()
        self.mask_channel = mask_channel
        convs, previous, side = [], 4 if mask_channel else 3, input_size
        for i, width in enumerate(widths, start=1):
            convs.append((f"conv{i}", SameConv2D(previous, width, 5, stride=2, activation="leaky_relu")))
            previous, side = width, -(-side // 2)
        self.convs = nn.Sequential(*convs)
        self.fc = nn.Linear(previous * side * side, 1, weight_attr=tf_kernel(), bias_attr=tf_bias())
        self.input_size = input_size

    def with_mask(self, x: paddle.Tensor, mask: paddle.Tensor | None) -> paddle.Tensor:
        """The critic's input: ``x``, and with ``mask_channel`` the mask [n, 1, H, W] after it (repeated
        when ``x`` holds several batches of n, as real and completed images scored together)."""
        if not self.mask_channel:
            return x
        if mask is None:
            raise ValueError("this critic also sees the hole mask (gan_with_mask); give it")
        return paddle.concat([x, paddle.tile(mask, [x.shape[0] // mask.shape[0], 1, 1, 1])], axis=1)

    def forward(self, x: paddle.Tensor, mask: paddle.Tensor | None = None) -> paddle.Tensor:
        """Scores of images ``x``; ``mask`` (the holes) is used only by a critic with ``mask_channel``."""
        if x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            raise ValueError(f"this critic was built for {self.input_size}×{self.input_size} inputs, "
                             f"got {x.shape[2]}×{x.shape[3]}")
        return self.score(self.with_mask(x, mask))

    def score(self, x: paddle.Tensor) -> paddle.Tensor:
        """Scores of the critic's whole input (``with_mask``)."""
        x = self.convs(x)
        return self.fc(x.reshape([x.shape[0], -1]))

    def input_gradient(self, x: paddle.Tensor, mask: paddle.Tensor | None = None) -> paddle.Tensor:
        """d(score)/dx for each image of ``x``, kept in the graph so that the gradient penalty built on it
        can be minimised (second derivatives). With ``mask_channel``, the score is of ``x`` and ``mask``
        and the gradient is the image channels' alone: the mask is a condition, the same for real and
        completed images.

        It is the backward pass written out — through the linear layer, each leaky ReLU and each
        convolution's input gradient (``deepfill.models.kernels``) — rather than ``paddle.grad`` with
        ``create_graph``: that would also compute every weight's gradient, a quarter of the penalty's
        work, thrown away, and minimising the penalty would then differentiate the whole backward pass a
        second time. Written out, the forward pass only decides where each leaky ReLU passes its gradient
        (a mask whose own gradient is zero almost everywhere), so it runs without a graph, and the
        penalty's gradient is the first derivative of this explicit computation."""
        channels = x.shape[1]
        x = self.with_mask(x, mask)
        shapes, outputs = [], []
        with paddle.no_grad():
            for conv in self.convs:
                shapes.append(x.shape)
                x = conv(x)
                outputs.append(x)
        gradient = self.fc.weight[:, 0].reshape([1, *x.shape[1:]]).expand(x.shape)
        for conv, shape, y in zip(reversed(self.convs), reversed(shapes), reversed(outputs)):
            gradient = conv.input_gradient(kernels.leaky_relu_gradient(gradient, y), shape)
        return gradient[:, :channels]


def local_critic(input_size: int = 128) -> Critic:
    """Critic of the 128×128 (at 256² training) box around the hole: widths 64, 128, 256, 512."""
    return Critic((64, 128, 256, 512), input_size)


def global_critic(input_size: int = 256, mask_channel: bool = False) -> Critic:
    """Critic of the whole image: widths 64, 128, 256, 256; ``mask_channel``: also of the hole mask
    (official GAN_WITH_MASK)."""
    return Critic((64, 128, 256, 256), input_size, mask_channel)
