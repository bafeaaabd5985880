"""DeepFill v2's generator (Yu et al., ICCV 2019, "Free-Form Image Inpainting with Gated Convolution"), as
the official ``master`` branch's ``build_inpaint_net`` computes it.

It is v1's coarse-to-fine network (``deepfill.models.generator``) with three differences, and nothing else:

* every convolution is gated (``gen_conv`` of v2): a TF-'SAME' conv to ``cnum`` channels whose first half
  goes through the activation (ELU; ReLU for ``pmconv6``) and is multiplied by the sigmoid of the second
  half, so a layer of width ``cnum`` passes on ``cnum / 2`` channels. The output convs (3 channels) are
  not gated;
* the width is ``cnum = 48`` and stage 2 sees the 3-channel pasted picture, without v1's ones and mask
  planes (stage 1 still sees them: 5 channels);
* both stages end in ``tanh`` instead of a clip to [-1, 1].

The layers keep the official scope names, so ``deepfill.models.official.generator_tf_name`` maps a TF checkpoint
onto them as for v1, and the classes subclass v1's so that inference (``deepfill.models.hole_reach``, the runners,
the export) runs either generation unchanged.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from deepfill.models import kernels
from deepfill.models.activations import activate
from deepfill.models.generator import CoarseNetwork, InpaintGenerator, RefineNetwork
from deepfill.models.layers import GenConv, GenDeconv, SameConv2D, known_side, resize_nearest

V2_CNUM = 48


class GatedConv(GenConv):
    """v2's ``gen_conv``: conv to ``out_channels``, then activation(first half) · sigmoid(second half), so
    ``out_channels / 2`` come out; ``activation=None`` (the output layer) returns the conv as it is."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, activation: str | None = "elu") -> None:
        nn.Layer.__init__(self)
        self.conv = SameConv2D(in_channels, out_channels, kernel_size, stride, dilation)
        self.activation = activation

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.gate(self.conv(x))

    def gate(self, y: paddle.Tensor) -> paddle.Tensor:
        if self.activation is None:
            return y
        features, gate = paddle.split(y, 2, axis=1)
        return activate(features, self.activation) * F.sigmoid(gate)


class GatedDeconv(GenDeconv):
    """v2's ``gen_deconv``: nearest ×2 upsampling (align_corners=True), then a 3×3 ``GatedConv``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        nn.Layer.__init__(self)
        self.conv = GatedConv(in_channels, out_channels, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not (known_side(x.shape[2]) and known_side(x.shape[3])):
            return self.conv(resize_nearest(x, x.shape[2] * 2, x.shape[3] * 2))
        conv = self.conv.conv
        return self.conv.gate(kernels.upsample_conv2d(x, conv.weight, conv.bias))


def _dilated_stack(prefix: str, width: int) -> list[tuple[str, GatedConv]]:
    return [(f"{prefix}{i}_atrous", GatedConv(width // 2, width, 3, dilation=rate))
            for i, rate in zip((7, 8, 9, 10), (2, 4, 8, 16))]


class GatedCoarseNetwork(CoarseNetwork):
    """Stage 1 of v2: v1's layers, gated, at ``cnum`` 48; ends in tanh."""

    def __init__(self, cnum: int = V2_CNUM, in_channels: int = 5) -> None:
        nn.Layer.__init__(self)
        c = cnum
        self.body = nn.Sequential(
            ("conv1", GatedConv(in_channels, c, 5)),
            ("conv2_downsample", GatedConv(c // 2, 2 * c, 3, 2)),
            ("conv3", GatedConv(c, 2 * c, 3)),
            ("conv4_downsample", GatedConv(c, 4 * c, 3, 2)),
            ("conv5", GatedConv(2 * c, 4 * c, 3)),
            ("conv6", GatedConv(2 * c, 4 * c, 3)),
            *_dilated_stack("conv", 4 * c),
            ("conv11", GatedConv(2 * c, 4 * c, 3)),
            ("conv12", GatedConv(2 * c, 4 * c, 3)),
            ("conv13_upsample", GatedDeconv(2 * c, 2 * c)),
            ("conv14", GatedConv(c, 2 * c, 3)),
            ("conv15_upsample", GatedDeconv(c, c)),
            ("conv16", GatedConv(c // 2, c // 2, 3)),
            ("conv17", GatedConv(c // 4, 3, 3, activation=None)),
        )

    @staticmethod
    def output(x: paddle.Tensor) -> paddle.Tensor:
        return paddle.tanh(x)


class GatedRefineNetwork(RefineNetwork):
    """Stage 2 of v2: hallucination ‖ contextual-attention branches, gated, on the 3-channel pasted
    picture; ends in tanh."""

    def __init__(self, cnum: int = V2_CNUM, per_sample_mask: bool = False) -> None:
        nn.Layer.__init__(self)
        c = self.cnum = cnum
        self.per_sample_mask = per_sample_mask
        self.hallucination = nn.Sequential(
            ("xconv1", GatedConv(3, c, 5)),
            ("xconv2_downsample", GatedConv(c // 2, c, 3, 2)),
            ("xconv3", GatedConv(c // 2, 2 * c, 3)),
            ("xconv4_downsample", GatedConv(c, 2 * c, 3, 2)),
            ("xconv5", GatedConv(c, 4 * c, 3)),
            ("xconv6", GatedConv(2 * c, 4 * c, 3)),
            *_dilated_stack("xconv", 4 * c),
        )
        self.attention_encoder = nn.Sequential(
            ("pmconv1", GatedConv(3, c, 5)),
            ("pmconv2_downsample", GatedConv(c // 2, c, 3, 2)),
            ("pmconv3", GatedConv(c // 2, 2 * c, 3)),
            ("pmconv4_downsample", GatedConv(c, 4 * c, 3, 2)),
            ("pmconv5", GatedConv(2 * c, 4 * c, 3)),
            ("pmconv6", GatedConv(2 * c, 4 * c, 3, activation="relu")),
        )
        self.attention_decoder = nn.Sequential(
            ("pmconv9", GatedConv(2 * c, 4 * c, 3)),
            ("pmconv10", GatedConv(2 * c, 4 * c, 3)),
        )
        self.merge = nn.Sequential(
            ("allconv11", GatedConv(4 * c, 4 * c, 3)),
            ("allconv12", GatedConv(2 * c, 4 * c, 3)),
            ("allconv13_upsample", GatedDeconv(2 * c, 2 * c)),
            ("allconv14", GatedConv(c, 2 * c, 3)),
            ("allconv15_upsample", GatedDeconv(c, c)),
            ("allconv16", GatedConv(c // 2, c // 2, 3)),
            ("allconv17", GatedConv(c // 4, 3, 3, activation=None)),
        )

    @property
    def attention_channels(self) -> int:
        return 2 * self.cnum

    def encode(self, x: paddle.Tensor, mask: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        """v2's stage 2 reads the pasted picture alone (the official ``xnow = x``)."""
        return self.hallucination(x), self.attention_encoder(x)

    @staticmethod
    def output(x: paddle.Tensor) -> paddle.Tensor:
        return paddle.tanh(x)


class GatedGenerator(InpaintGenerator):
    """DeepFill v2's coarse-to-fine generator. ``forward(x, mask)`` → ``(x_stage1, x_stage2, offsets)``
    exactly as v1's (``x`` with its hole zeroed, 1 = hole). The sketch-guided variant (6 input channels)
    is not built."""

    def __init__(self, cnum: int = V2_CNUM, per_sample_mask: bool = False) -> None:
        nn.Layer.__init__(self)
        self.coarse = GatedCoarseNetwork(cnum)
        self.refine = GatedRefineNetwork(cnum, per_sample_mask)

