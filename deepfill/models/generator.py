"""The two-stage generator (paper §3.1, Figure 2/3): a coarse dilated-conv network, then a refinement
network whose hallucination branch and contextual-attention branch are merged.

Layer names follow the official variable scopes (``conv1`` … ``allconv17``) so that a converted TF
checkpoint maps name for name. Inputs are NCHW on [-1, 1]; ``mask`` is N1HW with 1 = hole; sides must be
multiples of 8 (``inpaint.py`` pads other sizes).
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
import paddle
import paddle.nn as nn

from deepfill.models.attention import contextual_attention
from deepfill.models.attention_graph import contextual_attention_graph
from deepfill.models.layers import GenConv, GenDeconv, resize_nearest, resize_nearest_array


def with_mask_channels(x: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
    """The 5-channel input both stages see: image, a plane of ones, and the mask."""
    ones = paddle.ones_like(x[:, :1])
    return paddle.concat([x, ones, ones * mask], axis=1)


ATTENTION_RATE = 2  # matching at 1/8 of the image: features at 1/4, downscaled by 2

# (features, their hole mask — a tensor or its host copy —, needed positions or None) → (attended, offsets)
Attention = Callable[..., tuple[paddle.Tensor, paddle.Tensor]]


@paddle.jit.not_to_static
def chunked_attention(features: paddle.Tensor, feature_mask: paddle.Tensor | np.ndarray,
                      needed: np.ndarray | None = None) -> tuple[paddle.Tensor, paddle.Tensor]:
    """The contextual attention of ``features`` on themselves as ``deepfill.models.attention`` computes it: in
    bounded memory, and only at the ``needed`` positions when given. One mask per image (or one for all).

    Never converted to a static graph (it plans on the host; the export traces ``graph_attention``): Paddle
    2.6's ``to_static`` rewrites the ``forward`` of every layer it traces through, so the generator's eager
    calls after an export go through its converter, which fails on this module's Python."""
    return contextual_attention(features, features, feature_mask, rate=ATTENTION_RATE, per_sample_mask=True,
                                needed=needed)


def graph_attention(features: paddle.Tensor, feature_mask: paddle.Tensor,
                    needed: np.ndarray | None = None) -> tuple[paddle.Tensor, paddle.Tensor]:
    """The same attention as one traceable graph (``deepfill.models.attention_graph``), which the export puts in
    ``RefineNetwork.attention``'s place: every position, since what to skip depends on the hole."""
    if needed is not None:
        raise ValueError("the traceable attention computes every position; it takes no needed positions")
    return contextual_attention_graph(features, features, feature_mask, rate=ATTENTION_RATE)


def _dilated_stack(prefix: str, channels: int, padding: str) -> list[tuple[str, GenConv]]:
    return [(f"{prefix}{i}_atrous", GenConv(channels, channels, 3, dilation=rate, padding=padding))
            for i, rate in zip((7, 8, 9, 10), (2, 4, 8, 16))]


class CoarseNetwork(nn.Layer):
    """Stage 1: encoder, four dilated convs, decoder; output clipped to [-1, 1]."""

    def __init__(self, cnum: int = 32, padding: str = "SAME") -> None:
        super().__init__()
        c = cnum
        conv, deconv = partial(GenConv, padding=padding), partial(GenDeconv, padding=padding)
        self.body = nn.Sequential(
            ("conv1", conv(5, c, 5)),
            ("conv2_downsample", conv(c, 2 * c, 3, 2)),
            ("conv3", conv(2 * c, 2 * c, 3)),
            ("conv4_downsample", conv(2 * c, 4 * c, 3, 2)),
            ("conv5", conv(4 * c, 4 * c, 3)),
            ("conv6", conv(4 * c, 4 * c, 3)),
            *_dilated_stack("conv", 4 * c, padding),
            ("conv11", conv(4 * c, 4 * c, 3)),
            ("conv12", conv(4 * c, 4 * c, 3)),
            ("conv13_upsample", deconv(4 * c, 2 * c)),
            ("conv14", conv(2 * c, 2 * c, 3)),
            ("conv15_upsample", deconv(2 * c, c)),
            ("conv16", conv(c, c // 2, 3)),
            ("conv17", conv(c // 2, 3, 3, activation=None)),
        )

    def forward(self, x: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        return self.output(self.body(with_mask_channels(x, mask)))

    @staticmethod
    def output(x: paddle.Tensor) -> paddle.Tensor:
        """The stage's last step after its output conv: v1 clips to [-1, 1] (v2, ``deepfill.models.gated``: tanh)."""
        return paddle.clip(x, -1.0, 1.0)


class RefineNetwork(nn.Layer):
    """Stage 2: hallucination branch (dilated convs) ‖ attention branch (contextual attention), merged.

    ``forward`` is ``encode`` → ``attend`` → ``decode``, the steps ``deepfill.models.hole_reach.fill_holes`` also
    calls. ``attention`` is the contextual attention ``attend`` runs (``chunked_attention``); the export
    sets it to ``graph_attention`` while it traces the generator, so that the exported graph is this
    forward pass too.
    """

    attention: Attention = staticmethod(chunked_attention)

    def __init__(self, cnum: int = 32, per_sample_mask: bool = False, padding: str = "SAME") -> None:
        super().__init__()
        c = self.cnum = cnum
        conv, deconv = partial(GenConv, padding=padding), partial(GenDeconv, padding=padding)
        self.per_sample_mask = per_sample_mask
        self.hallucination = nn.Sequential(
            ("xconv1", conv(5, c, 5)),
            ("xconv2_downsample", conv(c, c, 3, 2)),
            ("xconv3", conv(c, 2 * c, 3)),
            ("xconv4_downsample", conv(2 * c, 2 * c, 3, 2)),
            ("xconv5", conv(2 * c, 4 * c, 3)),
            ("xconv6", conv(4 * c, 4 * c, 3)),
            *_dilated_stack("xconv", 4 * c, padding),
        )
        self.attention_encoder = nn.Sequential(
            ("pmconv1", conv(5, c, 5)),
            ("pmconv2_downsample", conv(c, c, 3, 2)),
            ("pmconv3", conv(c, 2 * c, 3)),
            ("pmconv4_downsample", conv(2 * c, 4 * c, 3, 2)),
            ("pmconv5", conv(4 * c, 4 * c, 3)),
            ("pmconv6", conv(4 * c, 4 * c, 3, activation="relu")),
        )
        self.attention_decoder = nn.Sequential(
            ("pmconv9", conv(4 * c, 4 * c, 3)),
            ("pmconv10", conv(4 * c, 4 * c, 3)),
        )
        self.merge = nn.Sequential(
            ("allconv11", conv(8 * c, 4 * c, 3)),
            ("allconv12", conv(4 * c, 4 * c, 3)),
            ("allconv13_upsample", deconv(4 * c, 2 * c)),
            ("allconv14", conv(2 * c, 2 * c, 3)),
            ("allconv15_upsample", deconv(2 * c, c)),
            ("allconv16", conv(c, c // 2, 3)),
            ("allconv17", conv(c // 2, 3, 3, activation=None)),
        )

    def forward(self, x: paddle.Tensor, mask: paddle.Tensor, needed: np.ndarray | None = None,
                holes: np.ndarray | None = None) -> tuple[paddle.Tensor, paddle.Tensor]:
        hallucinated, features = self.encode(x, mask)
        attended, offsets = self.attend(features, mask, needed, holes)
        return self.decode(hallucinated, attended), offsets

    def encode(self, x: paddle.Tensor, mask: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        """The two branches up to the attention: hallucinated features and the features to match."""
        xnow = with_mask_channels(x, mask)
        return self.hallucination(xnow), self.attention_encoder(xnow)

    def attend(self, features: paddle.Tensor, mask: paddle.Tensor, needed: np.ndarray | None = None,
               holes: np.ndarray | None = None) -> tuple[paddle.Tensor, paddle.Tensor]:
        """Contextual attention of the features on themselves, the hole masked out of the background.
        ``needed`` (bool, at matching resolution) limits the work to the positions a caller keeps.
        ``holes``: ``mask``'s host copy, if the caller has one; the attention then reads nothing back
        from the device."""
        size = features.shape[2], features.shape[3]
        feature_mask = resize_nearest(mask, *size) if holes is None else resize_nearest_array(holes, *size)
        if not self.per_sample_mask:
            feature_mask = feature_mask[:1]          # the official graph: the first image's hole for the batch
        return self.attention(features, feature_mask, needed)

    def decode(self, hallucinated: paddle.Tensor, attended: paddle.Tensor) -> paddle.Tensor:
        """Stage 2's output from the two branches: ``attended`` through ``attention_decoder`` and then,
        beside ``hallucinated``, ``merge``. Nothing else between its inputs and its output: so
        ``deepfill.models.hole_reach`` bounds what an output window reads by those two bodies' layers."""
        merged = paddle.concat([hallucinated, self.attention_decoder(attended)], axis=1)
        return self.output(self.merge(merged))

    @property
    def attention_channels(self) -> int:
        """Channels of the features the attention matches."""
        return 4 * self.cnum

    output = staticmethod(CoarseNetwork.output)


class InpaintGenerator(nn.Layer):
    """Coarse-to-fine generator. ``forward(x, mask)`` → ``(x_stage1, x_stage2, offsets)``.

    ``x`` should already have its hole zeroed (the official ``x_incomplete``); stage 2 sees the coarse
    result pasted into the hole. Neither output is composited with the known pixels — callers do that.
    ``padding`` is the official PADDING switch of every conv ("SAME", "SYMMETRIC", "REFLECT"; see
    ``deepfill.models.layers``); it changes no weight's shape.
    """

    def __init__(self, cnum: int = 32, per_sample_mask: bool = False, padding: str = "SAME") -> None:
        super().__init__()
        self.coarse = CoarseNetwork(cnum, padding)
        self.refine = RefineNetwork(cnum, per_sample_mask, padding)

    def forward(self, x: paddle.Tensor, mask: paddle.Tensor, needed: np.ndarray | None = None,
                holes: np.ndarray | None = None) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        """``needed``: the attention positions whose output the caller keeps (inference computes them
        with ``deepfill.models.hole_reach``); the others are skipped, so outside the hole ``x_stage2`` and the
        offsets then differ from the official graph's, inside they are the same. ``holes``: ``mask``'s
        host copy, if the caller has one (``RefineNetwork.attend``)."""
        x_stage1 = self.coarse(x, mask)
        x_stage2, offsets = self.refine(self.paste(x, x_stage1, mask), mask, needed, holes)
        return x_stage1, x_stage2, offsets

    @staticmethod
    def paste(x: paddle.Tensor, x_stage1: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        """Stage 2's input: the coarse result inside the hole, the given pixels outside."""
        return x_stage1 * mask + x * (1.0 - mask)
