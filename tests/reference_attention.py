"""Contextual attention (paper §4.1), batched, computing what the official ``contextual_attention`` computes.

Foreground features ``f`` are matched against 3×3 background patches of ``b`` by cosine similarity (a
convolution with L2-normalised patches, here a batched matrix product), the score map is "fused" to favour
coherent patches, masked so that only known background is attended, soft-maxed with scale 10, and the
attended full-resolution 4×4 background patches are pasted back with a transposed convolution (here
``F.fold``), divided by 4 as in the official graph.

Matching runs at 1/``rate`` resolution (nearest, align_corners=True), pasting at full resolution.
"""
from __future__ import annotations

import paddle
import paddle.nn.functional as F

from deepfill.models.layers import resize_nearest, same_padding


def _same_unfold(x: paddle.Tensor, kernel: int, stride: int) -> paddle.Tensor:
    """``extract_image_patches`` with TF 'SAME' padding, as [N, C*k*k, L] (channel-major patches)."""
    top, bottom = same_padding(x.shape[2], kernel, stride)
    left, right = same_padding(x.shape[3], kernel, stride)
    return F.unfold(x, kernel_sizes=kernel, strides=stride, paddings=[top, left, bottom, right])


def _fuse(scores: paddle.Tensor, fg_hw: tuple[int, int], bg_hw: tuple[int, int],
          fuse_k: int) -> paddle.Tensor:
    """Favour large coherent matches: sum scores along the diagonal of the (fg × bg) score matrix, first
    in row-major order of both positions, then in column-major order (the official two passes)."""
    batch = scores.shape[0]
    (hf, wf), (hb, wb) = fg_hw, bg_hw

    def diagonal_sum(y: paddle.Tensor) -> paddle.Tensor:
        """The official conv with a k×k identity kernel ('SAME'), as a sum of k shifted copies: the
        same numbers without the k²-times larger im2col buffer a convolution would allocate."""
        top, bottom = same_padding(y.shape[2], fuse_k)
        left, right = same_padding(y.shape[3], fuse_k)
        padded = F.pad(y, [left, right, top, bottom])
        height, width = y.shape[2], y.shape[3]
        total = padded[:, :, :height, :width]
        for k in range(1, fuse_k):
            total = total + padded[:, :, k:k + height, k:k + width]
        return total

    y = diagonal_sum(scores.reshape([batch, 1, hf * wf, hb * wb]))
    y = y.reshape([batch, hf, wf, hb, wb]).transpose([0, 2, 1, 4, 3])
    y = diagonal_sum(y.reshape([batch, 1, wf * hf, wb * hb]))
    y = y.reshape([batch, wf, hf, wb, hb]).transpose([0, 2, 1, 4, 3])
    return y.reshape([batch, hf * wf, hb * wb])


def contextual_attention(f: paddle.Tensor, b: paddle.Tensor, mask: paddle.Tensor | None = None,
                         ksize: int = 3, stride: int = 1, rate: int = 2, fuse_k: int = 3,
                         softmax_scale: float = 10.0, fuse: bool = True,
                         per_sample_mask: bool = False) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Reconstruct ``f`` from patches of ``b``; returns ``(y, offsets)``.

    Args:
        f, b: NCHW foreground and background features (same batch and channels; sides divisible by rate).
        mask: N1HW, 1 = hole, at the resolution of ``b``. Background patches touching the hole are never
            attended. The official graph uses the first sample's mask for the whole batch; set
            ``per_sample_mask`` to honour a different mask per image (training with per-image holes).
        rate: matching runs at 1/rate resolution; pasting uses 2·rate × 2·rate raw patches.
    Returns:
        y: like ``f``. offsets: int64 [N, 2, H/rate, W/rate], the (row, col) displacement from each
            foreground position to its best-matching background patch, at matching resolution.
    """
    if f.shape[0] != b.shape[0] or f.shape[1] != b.shape[1]:
        raise ValueError(f"f {f.shape} and b {b.shape} must share batch and channels")
    for side in (*f.shape[2:], *b.shape[2:]):
        if side % rate:
            raise ValueError(f"feature sides must be divisible by rate={rate}, got f {f.shape}, b {b.shape}")
    batch, channels, height, width = f.shape
    raw = _same_unfold(b, 2 * rate, rate * stride)

    f = resize_nearest(f, height // rate, width // rate)
    b = resize_nearest(b, b.shape[2] // rate, b.shape[3] // rate)
    fg_hw, bg_hw = (f.shape[2], f.shape[3]), (b.shape[2], b.shape[3])

    patches = _same_unfold(b, ksize, stride)
    norm = paddle.sqrt(paddle.sum(patches * patches, axis=1, keepdim=True))
    patches = patches / paddle.clip(norm, min=1e-4)
    scores = paddle.matmul(_same_unfold(f, ksize, 1), patches, transpose_x=True)
    if fuse:
        scores = _fuse(scores, fg_hw, bg_hw, fuse_k)

    if mask is None:
        usable = paddle.ones([1, 1, bg_hw[0] * bg_hw[1]], dtype=scores.dtype)
    else:
        mask = mask if per_sample_mask else mask[:1]
        mask = resize_nearest(mask.astype(scores.dtype), bg_hw[0], bg_hw[1])
        window = _same_unfold(mask, ksize, stride)
        usable = (paddle.mean(window, axis=1, keepdim=True) == 0).astype(scores.dtype)
    attention = F.softmax(scores * usable * softmax_scale, axis=-1) * usable

    best = paddle.argmax(attention, axis=-1).reshape([batch, fg_hw[0], fg_hw[1]])
    rows = paddle.arange(fg_hw[0], dtype="int64").reshape([1, -1, 1])
    cols = paddle.arange(fg_hw[1], dtype="int64").reshape([1, 1, -1])
    offsets = paddle.stack([best // bg_hw[1] - rows, best % bg_hw[1] - cols], axis=1)

    columns = paddle.matmul(raw, attention, transpose_y=True)
    top, bottom = same_padding(height, 2 * rate, rate)
    left, right = same_padding(width, 2 * rate, rate)
    y = F.fold(columns, output_sizes=[height, width], kernel_sizes=2 * rate, strides=rate,
               paddings=[top, left, bottom, right])
    return y / 4.0, offsets
