"""Contextual attention as one static graph of tensor operations, for export (``paddle.jit`` → Paddle
Inference, ``paddle2onnx`` → ONNX Runtime) with a dynamic batch, height and width.

``deepfill/models/attention.py`` computes the same numbers in bounded memory, but it plans its chunks and its
usable background patches with numpy from the mask, so its work depends on the data and cannot be traced
once for every picture. This is the official graph step by step, each step a traceable operation:

1. ``f``, ``b`` and the mask are downscaled by ``rate`` (TF1 nearest, align_corners=True);
2. 3×3 patches of the downscaled ``b`` (unfold), L2-normalised (norm clamped at 1e-4), are matched
   against the 3×3 patches of ``f`` by one batched matrix product: the score matrix [N, Lf, Lb];
3. fuse: a k×k identity convolution over the score matrix, first in row-major, then (after swapping the
   two axes of both positions) in column-major order of the positions. An identity kernel only adds the
   k diagonal neighbours, so it is written as k shifted slices of the zero-padded matrix (the same sums
   without a convolution's k²-times larger im2col buffer);
4. background patches that touch the hole (``mm``) are masked, softmax of ``scores × 10``, masked again;
5. offsets = argmax position as (row, col) minus the own position;
6. paste: the attention-weighted sum of the 4×4 full-resolution patches of ``b`` (unfold, batched matrix
   product), placed back by a transposed convolution with stride ``rate`` (with a fixed identity kernel per
   channel: each patch value lands on its pixel, overlaps add up), divided by 4.

The score matrix holds (H·W/rate²/16)² numbers per image, as in the official graph: 1 GiB at 1024², so an
exported model is for pictures up to about that size (``needed_bytes``).

Sides must be multiples of ``2·rate`` here (the padding of the 4×4 stride-``rate`` patches assumes it);
the generator's features are, for pictures whose sides are multiples of 8. ``mask`` has batch 1 (one hole
for every image) or N (each image its own hole); the official graph uses the first mask for the batch,
which is the same when the masks are equal.
"""
from __future__ import annotations

import paddle
import paddle.nn.functional as F

from deepfill.models.attention import patch_norm
from deepfill.models.layers import resize_nearest, same_padding


def _unfold_same(x: paddle.Tensor, kernel: int, stride: int) -> paddle.Tensor:
    """``extract_image_patches`` with TF 'SAME' padding, [N, C·k·k, L]; sides multiples of the stride."""
    before, after = same_padding(x.shape[2], kernel, stride)
    left, right = same_padding(x.shape[3], kernel, stride)
    return F.unfold(x, kernel_sizes=kernel, strides=stride, paddings=[before, left, after, right])


def _zero_pad(x: paddle.Tensor, before: int, after: int, axis: int) -> paddle.Tensor:
    """Zeros before and after ``x`` along ``axis``, by concatenation: paddle2onnx 2.1 converts ``F.pad``'s
    fill value from uninitialised memory now and then (measured: one export in six pasted garbage)."""
    parts = [x]
    for count, where in ((before, 0), (after, 1)):
        if count:
            zeros = paddle.zeros_like(paddle.slice(x, [axis], [0], [count]))
            parts.insert(0 if where == 0 else len(parts), zeros)
    return paddle.concat(parts, axis=axis)


def _diagonal_sum(scores: paddle.Tensor, fuse_k: int) -> paddle.Tensor:
    """The official k×k identity-kernel convolution ('SAME', zero padding) over [N, L1, L2]."""
    before, after = same_padding(1, fuse_k)
    padded = _zero_pad(_zero_pad(scores, before, after, 1), before, after, 2)
    total = None
    for k in range(fuse_k):
        end = k - (fuse_k - 1) or None
        term = padded[:, k:end, k:end]
        total = term if total is None else total + term
    return total


def _fuse(scores: paddle.Tensor, fg: tuple, bg: tuple, fuse_k: int) -> paddle.Tensor:
    """Both fuse passes: row-major order of the positions, then column-major order."""
    (hf, wf), (hb, wb) = fg, bg
    y = _diagonal_sum(scores, fuse_k)
    y = y.reshape([-1, hf, wf, hb, wb]).transpose([0, 2, 1, 4, 3]).reshape([-1, wf * hf, wb * hb])
    y = _diagonal_sum(y, fuse_k)
    return y.reshape([-1, wf, hf, wb, hb]).transpose([0, 2, 1, 4, 3]).reshape([-1, hf * wf, hb * wb])


def _paste(columns: paddle.Tensor, channels: int, fg: tuple, kernel: int, stride: int) -> paddle.Tensor:
    """[N, C·k·k, Lf] patch columns → N×C×H×W image, overlapping patches summed (what ``F.fold`` and the
    official transposed convolution do): a grouped transposed convolution with an identity kernel."""
    identity = paddle.eye(kernel * kernel, dtype=columns.dtype).reshape([kernel * kernel, 1, kernel, kernel])
    weight = paddle.tile(identity, [channels, 1, 1, 1])
    padding, _ = same_padding(stride, kernel, stride)      # symmetric for sides that are multiples of stride
    image = columns.reshape([-1, channels * kernel * kernel, fg[0], fg[1]])
    return F.conv2d_transpose(image, weight, stride=stride, padding=padding, groups=channels)


def contextual_attention_graph(f: paddle.Tensor, b: paddle.Tensor, mask: paddle.Tensor | None = None,
                               ksize: int = 3, stride: int = 1, rate: int = 2, fuse_k: int = 3,
                               softmax_scale: float = 10.0, fuse: bool = True
                               ) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Reconstruct ``f`` from patches of ``b``; returns ``(y, offsets)`` as ``contextual_attention`` does
    (with ``per_sample_mask`` when ``mask`` has a batch of N), traceable with dynamic N, H and W.

    Args:
        f, b: NCHW features of the same shape (the generator attends its features to themselves), sides
            multiples of 2·rate.
        mask: 1×1×H×W or N×1×H×W, 1 = hole, at the resolution of ``b``.
    Returns:
        y: like ``f``. offsets: int64 [N, 2, H/rate, W/rate], (row, col) from each foreground position to
            its best-matching background patch, at matching resolution.
    """
    channels = f.shape[1]
    height, width = f.shape[2], f.shape[3]
    fg = bg = (height // rate, width // rate)
    raw = _unfold_same(b, 2 * rate, rate * stride)
    small_f = resize_nearest(f, *fg)
    small_b = resize_nearest(b, *bg)

    patches = _unfold_same(small_b, ksize, stride)
    patches = patches / patch_norm(patches)
    scores = paddle.matmul(_unfold_same(small_f, ksize, 1), patches, transpose_x=True)
    if fuse:
        scores = _fuse(scores, fg, bg, fuse_k)

    if mask is None:
        usable = paddle.ones_like(scores[:1, :1])
    else:
        window = _unfold_same(resize_nearest(mask.astype(scores.dtype), *bg), ksize, stride)
        usable = paddle.cast(paddle.mean(window, axis=1, keepdim=True) == 0, scores.dtype)
    attention = F.softmax(scores * usable * softmax_scale, axis=-1) * usable

    best = paddle.argmax(attention, axis=-1).reshape([-1, fg[0], fg[1]])
    rows = paddle.arange(fg[0], dtype="int64").reshape([1, -1, 1])
    cols = paddle.arange(fg[1], dtype="int64").reshape([1, 1, -1])
    offsets = paddle.stack([best // bg[1] - rows, best % bg[1] - cols], axis=1)

    columns = paddle.matmul(raw, attention, transpose_y=True)
    return _paste(columns, channels, fg, 2 * rate, rate) / 4.0, offsets
