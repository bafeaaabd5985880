"""DeepFill v2's critic, SN-PatchGAN (official ``build_sn_patch_gan_discriminator``, neuralgym's
``conv2d_spectral_norm``): six spectral-normalised 5×5 stride-2 TF-'SAME' convs (64, 128, 256, 256, 256,
256) with leaky ReLU 0.2, whose last feature map, flattened in NHWC order, is the vector of scores — one
per patch, no dense layer, trained with the hinge loss (``models.losses_v2``).

Spectral normalisation as neuralgym computes it, which is not what Paddle's or PyTorch's built-ins do:

* one power iteration per forward pass, from the stored vector ``u`` ([1, out]): v = l2(u Wᵀ),
  u' = l2(v W), σ = v W u'ᵀ with W the kernel as a [k·k·in, out] matrix and l2(x) = x / (‖x‖ + 1e-12);
  the conv uses W / σ;
* ``u`` becomes u' after every forward pass — training or not (the official graph assigns it whenever the
  critic runs);
* the gradient flows through v, u' and σ to W (neuralgym stops none of it).

The order of W's rows (HWI in TF, IHW here) permutes v only, so u' and σ are the same.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from deepfill.models import kernels
from deepfill.models.layers import SameConv2D

WIDTHS = (64, 128, 256, 256, 256, 256)
EPSILON = 1e-12


def _l2(x: paddle.Tensor) -> paddle.Tensor:
    return x / (paddle.sqrt(paddle.sum(x * x)) + EPSILON)


class SpectralNormConv(SameConv2D):
    """A 5×5 stride-2 TF-'SAME' conv whose kernel is divided by its spectral norm, estimated by one power
    iteration from the persistent buffer ``u`` (saved in checkpoints, so that a resumed run continues the
    same iteration)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 5, stride=2, activation="leaky_relu")
        self.register_buffer("u", paddle.normal(shape=[1, out_channels]))

    def normalised_weight(self) -> paddle.Tensor:
        """W / σ, and ``u`` set to the iteration's new vector."""
        matrix = self.weight.reshape([self.weight.shape[0], -1])    # [out, in·k·k] = Wᵀ
        v = _l2(paddle.matmul(self.u, matrix))
        u = _l2(paddle.matmul(v, matrix, transpose_y=True))
        sigma = paddle.sum(paddle.matmul(v, matrix, transpose_y=True) * u)
        self.u = u.detach()
        return self.weight / sigma

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return kernels.conv2d(x, self.normalised_weight(), self.bias, self.s, self.d, self.padding_for(x.shape),
                              self.activation)


class SNPatchGAN(nn.Layer):
    """The critic of ``in_channels`` inputs (3, or 4 with the mask when ``gan_with_mask``); any size.
    ``forward(x)`` → scores [N, h·w·256], flattened as TF flattens NHWC."""

    def __init__(self, in_channels: int = 4) -> None:
        super().__init__()
        convs, previous = [], in_channels
        for i, width in enumerate(WIDTHS, start=1):
            convs.append((f"conv{i}", SpectralNormConv(previous, width)))
            previous = width
        self.convs = nn.Sequential(*convs)
        self.in_channels = in_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"this critic takes {self.in_channels} channels, got {x.shape[1]}")
        x = self.convs(x)
        return x.transpose([0, 2, 3, 1]).reshape([x.shape[0], -1])
