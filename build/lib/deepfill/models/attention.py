"""Contextual attention (paper §4.1), computing exactly what the official ``contextual_attention`` computes,
in bounded memory.

Foreground features ``f`` are matched against 3×3 background patches of ``b`` by cosine similarity, the
score matrix is "fused" to favour coherent patches, masked so that only known background is attended,
soft-maxed with scale 10, and the attended 4×4 full-resolution background patches are pasted back (a
transposed convolution: ``deepfill.models.kernels.paste`` for the whole map where a gradient is wanted, else a
matrix product and ``F.fold`` chunk by chunk) and divided by 4, as in the official graph. Matching runs at
1/``rate`` resolution (nearest, align_corners=True), pasting at full resolution.

The official graph builds the whole (foreground × background) score matrix, which grows with the fourth
power of the image side (17 GB at 2048²). Here the same numbers are computed for a chunk of foreground
positions at a time, each chunk a few matrix products on unfolded patches:

* the fuse step (two passes of a 3×3 identity convolution over the score matrix, first in row-major, then
  in column-major order of the positions) only reaches neighbouring rows and columns, so a chunk computes
  its raw scores on the chunk plus that halo, and the fuse becomes shifted gathers of the raw scores;
* background patches that touch the hole get zero attention after the softmax; they are left out of the
  matrix products (only the halo the fuse needs is scored) and enter the softmax's denominator as the
  ``exp(0)`` terms they are in the official graph;
* foreground positions whose output cannot reach the pixels a caller keeps (``needed``) are skipped.
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F

from deepfill.models import kernels
from deepfill.models.layers import resize_nearest, resize_nearest_array, same_padding

CHUNK_ELEMENTS = 2 ** 24  # raw scores held per chunk (64 MB in float32); a few such buffers are alive at once


_GATHER_GRADIENT_OK = not paddle.__version__.startswith("2.")


def _take(x: paddle.Tensor, index: paddle.Tensor, axis: int) -> paddle.Tensor:
    """``x`` at ``index`` along ``axis``. ``paddle.gather`` is the faster of the two on the CPU,
    but in Paddle 2.6 its gradient along an axis other than 0 is wrong (measured), so a tensor that
    needs a gradient goes through ``index_select`` there."""
    if _GATHER_GRADIENT_OK or x.stop_gradient:
        return paddle.gather(x, index, axis=axis)
    return paddle.index_select(x, index, axis=axis)


def _same_unfold(x: paddle.Tensor, kernel: int, stride: int) -> paddle.Tensor:
    """``extract_image_patches`` with TF 'SAME' padding, as [N, C*k*k, L] (channel-major patches)."""
    top, bottom = same_padding(x.shape[2], kernel, stride)
    left, right = same_padding(x.shape[3], kernel, stride)
    return F.unfold(x, kernel_sizes=kernel, strides=stride, paddings=[top, left, bottom, right])


def _neighbours(ids: np.ndarray, grid: tuple[int, int], shifts: np.ndarray, column_major: bool) -> np.ndarray:
    """Row-major ids of the positions ``shifts`` steps away from ``ids`` along the flattened grid, counted
    in row-major or column-major order (the orders of the two fuse passes); -1 past either end.
    Returns [len(shifts), len(ids)]."""
    height, width = grid
    order = (ids % width) * height + ids // width if column_major else ids
    moved = order[None, :] + shifts[:, None]
    inside = (moved >= 0) & (moved < height * width)
    if column_major:
        moved = (moved % height) * width + moved // height
    return np.where(inside, moved, -1)


class _FuseAxis:
    """Along one axis of the score matrix (foreground rows or background columns), which positions the two
    fuse passes read for the output positions ``ids``.

    Pass 2 (column-major order) reads pass-1 results at ``mid``; pass 1 (row-major order) reads raw scores
    at ``raw``. ``pass1``/``pass2`` hold, per shift, gather indices into each pass's input, which carries
    one zero entry past its end (TF's zero padding of the score matrix); pass 1 gathers that zero entry
    once more at the end, so that its own output carries the zero entry pass 2 needs. All are host arrays
    (``gathers`` lists them in the order ``_fuse`` takes them, to be sent to the device in one copy)."""

    def __init__(self, ids: np.ndarray, grid: tuple[int, int], fuse_k: int) -> None:
        before, _ = same_padding(1, fuse_k)
        shifts = np.arange(fuse_k) - before
        to_mid = _neighbours(ids, grid, shifts, column_major=True)
        self.mid = _present(to_mid)
        to_raw = _neighbours(self.mid, grid, shifts, column_major=False)
        self.raw = _present(to_raw)
        self.pass1 = [_positions(np.append(ids_k, -1), self.raw, grid) for ids_k in to_raw]
        self.pass2 = [_positions(ids_k, self.mid, grid) for ids_k in to_mid]

    @property
    def gathers(self) -> list[np.ndarray]:
        return [*self.pass1, *self.pass2]


def _to_device(*arrays: np.ndarray) -> list[paddle.Tensor]:
    """Integer host arrays as device tensors of the same shapes, sent in one copy: on a GPU every
    ``paddle.to_tensor`` is a blocking transfer, and a chunk of the attention needs a dozen index arrays."""
    flat = paddle.to_tensor(np.concatenate([np.asarray(a, np.int64).reshape(-1) for a in arrays]))
    tensors, start = [], 0
    for array in arrays:
        tensors.append(flat[start:start + array.size].reshape(list(array.shape)))
        start += array.size
    return tensors


def _fuse(scores: paddle.Tensor, rows: list[paddle.Tensor], cols: list[paddle.Tensor]) -> paddle.Tensor:
    """The official fuse (a k×k identity convolution over the score matrix, in row-major and then in
    column-major order of the positions) as sums of shifted gathers of the raw scores, which end in a
    zero row and column. ``rows`` and ``cols``: the ``_FuseAxis.gathers`` of each axis, on the device."""
    half = len(rows) // 2
    for row_gathers, col_gathers in ((rows[:half], cols[:half]), (rows[half:], cols[half:])):
        total = None
        for row_index, col_index in zip(row_gathers, col_gathers):
            term = _take(_take(scores, row_index, 1), col_index, 2)
            total = term if total is None else total + term
        scores = total
    return scores


def _present(ids: np.ndarray) -> np.ndarray:
    return np.unique(ids[ids >= 0])


def _positions(ids: np.ndarray, subset: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Index of each id within the sorted ``subset``; -1 ids map to the zero entry past its end."""
    lookup = np.full(grid[0] * grid[1] + 1, len(subset), np.int64)
    lookup[subset] = np.arange(len(subset))
    return lookup[ids]


def _usable_background(mask: paddle.Tensor | np.ndarray | None, bg: tuple[int, int], ksize: int, stride: int
                       ) -> np.ndarray:
    """[M, Lb] bool: background patches that lie wholly outside the hole (M = 1 or the batch). A host
    ``mask`` is used as it is; a device one is read back (a synchronisation on a GPU)."""
    if mask is None:
        return np.ones((1, bg[0] * bg[1]), bool)
    if isinstance(mask, paddle.Tensor):
        mask = mask.numpy()
    hole = resize_nearest_array(np.asarray(mask)[:, 0], *bg) != 0      # masks are 0 (known) or 1 (hole)
    top, bottom = same_padding(bg[0], ksize, stride)
    left, right = same_padding(bg[1], ksize, stride)
    padded = np.pad(hole, ((0, 0), (top, bottom), (left, right)))
    rows, cols = (bg[0] + top + bottom - ksize) // stride + 1, (bg[1] + left + right - ksize) // stride + 1
    touched = np.zeros((hole.shape[0], rows, cols), bool)
    for dy in range(ksize):
        for dx in range(ksize):
            touched |= padded[:, dy:dy + stride * (rows - 1) + 1:stride, dx:dx + stride * (cols - 1) + 1:stride]
    return ~touched.reshape(hole.shape[0], -1)


def _chunks(ids: np.ndarray, fg_width: int, per_chunk: int) -> list[np.ndarray]:
    """Split foreground ids (row-major order) into runs of about ``per_chunk`` positions, never fewer than a
    row: the fuse halo is about two rows, so smaller chunks would mostly recompute halo."""
    size = max(per_chunk, fg_width)
    return [ids[start:start + size] for start in range(0, len(ids), size)]


def contextual_attention(f: paddle.Tensor, b: paddle.Tensor, mask: paddle.Tensor | np.ndarray | None = None,
                         ksize: int = 3, stride: int = 1, rate: int = 2, fuse_k: int = 3,
                         softmax_scale: float = 10.0, fuse: bool = True, per_sample_mask: bool = False,
                         needed: np.ndarray | None = None, chunk_elements: int = CHUNK_ELEMENTS
                         ) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Reconstruct ``f`` from patches of ``b``; returns ``(y, offsets)``.

    Args:
        f, b: NCHW foreground and background features (same batch and channels; sides divisible by rate).
        mask: N1HW, 1 = hole, at the resolution of ``b``: a tensor or (better on a GPU: nothing is read
            back) its host copy. Background patches touching the hole are never attended. The official
            graph uses the first sample's mask for the whole batch; set ``per_sample_mask`` to honour a
            different mask per image (training with per-image holes).
        rate: matching runs at 1/rate resolution; pasting uses 2·rate × 2·rate raw patches.
        needed: optional bool (H/rate, W/rate): the foreground positions whose output the caller uses;
            the others are not computed (their output is 0 and their offset is 0).
        chunk_elements: raw scores computed at once; bounds the memory, not the result.
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
    fg, bg = (height // rate, width // rate), (b.shape[2] // rate, b.shape[3] // rate)
    if needed is not None and needed.shape != fg:
        raise ValueError(f"needed must have shape {fg}, got {needed.shape}")
    f_small = resize_nearest(f, *fg)
    f_patches = _same_unfold(f_small, ksize, 1)
    b_small = f_small if b is f else resize_nearest(b, *bg)
    b_patches = f_patches if b_small is f_small and stride == 1 else _same_unfold(b_small, ksize, stride)

    usable = _usable_background(mask if per_sample_mask or mask is None else mask[:1], bg, ksize, stride)
    cols = np.flatnonzero(usable.any(axis=0))
    rows = np.flatnonzero(needed.reshape(-1)) if needed is not None else np.arange(fg[0] * fg[1])
    fg_size = fg[0] * fg[1]
    if len(cols) == 0 or len(rows) == 0:
        return _nothing_attended(f, fg, bg)

    outside = bg[0] * bg[1] - len(cols)          # unusable everywhere: exp(0) terms of the softmax
    col_plan = _FuseAxis(cols, bg, fuse_k) if fuse else None
    score_cols = np.append(col_plan.raw, -1) if fuse else cols
    skipped_rows = len(rows) < fg_size
    cols_index, usable_cols, score_index, *col_gathers = _to_device(
        cols, usable[:, cols], score_cols, *(col_plan.gathers if fuse else []),
        *([_scatter_index(rows, fg_size)] if skipped_rows else []))
    scatter = col_gathers.pop() if skipped_rows else None
    weight = usable_cols.astype(f.dtype).unsqueeze(1)
    raw_used = _take(_same_unfold(b, 2 * rate, rate * stride), cols_index, 2)
    used_index = paddle.maximum(score_index, paddle.zeros_like(score_index))
    b_used = _take(b_patches, used_index, 2)
    col_scale = _take(1.0 / patch_norms(b_small, ksize, stride), used_index, 2) \
        * (score_index >= 0).astype(f.dtype)     # -1: the zero patch, scored 0
    per_chunk = max(1, chunk_elements // (batch * len(score_cols)))
    # Where a gradient is wanted (training's generator step) and the whole attention map [N, positions, L]
    # fits in one chunk (it grows with the square of the area, which the chunks exist to avoid), the map is
    # pasted at once (``kernels.paste``), which lets a backend run the paste as the one transposed
    # convolution it is, with a cheap backward pass. Otherwise each chunk's attended columns are kept and
    # folded: without gradients that is the leaner way.
    whole_map = (paddle.is_grad_enabled() and not f.stop_gradient
                 and batch * len(rows) * len(cols) <= chunk_elements)
    pasted, best = [], []
    for chunk in _chunks(rows, fg[1], per_chunk):
        if fuse:
            row_plan = _FuseAxis(chunk, fg, fuse_k)
            raw_rows, *row_gathers = _to_device(row_plan.raw, *row_plan.gathers)
            scores = _fuse(_match(f_patches, b_used, col_scale, raw_rows, zero_row=True), row_gathers, col_gathers)
        else:
            scores = _match(f_patches, b_used, col_scale, *_to_device(chunk))
        attention = _masked_softmax(scores * (weight * softmax_scale), outside) * weight
        best.append(paddle.argmax(attention, axis=-1))
        pasted.append(attention if whole_map else kernels.matmul(attention, raw_used, transpose_b=True))

    columns = pasted[0] if len(pasted) == 1 else paddle.concat(pasted, axis=1)
    best_cols = paddle.gather(cols_index, paddle.concat(best, axis=1).reshape([-1]))
    best_cols = best_cols.reshape([batch, len(rows)])
    if skipped_rows:
        columns, best_cols = _scatter_rows(columns, best_cols, scatter)
    offsets = _offsets(best_cols, fg, bg, rows if len(rows) < fg_size else None)

    top, bottom = same_padding(height, 2 * rate, rate)
    left, right = same_padding(width, 2 * rate, rate)
    if whole_map:
        return kernels.paste(columns, raw_used, fg, (height, width), rate, (top, bottom, left, right)) / 4.0, offsets
    y = F.fold(columns.transpose([0, 2, 1]), output_sizes=[height, width], kernel_sizes=2 * rate,
               strides=rate, paddings=[top, left, bottom, right])
    return y / 4.0, offsets


def patch_norm(patches: paddle.Tensor) -> paddle.Tensor:
    """Each background patch's L2 norm, at least 1e-4 (the official ``max(sqrt(sum of squares), 1e-4)``).
    Clipped before the square root rather than after: the same values and, wherever the official gradient
    is finite, the same gradient; but an all-zero patch (pmconv6 ends in a ReLU, so whole patches can be
    zero) gets a zero gradient instead of 0 × ∞ = NaN, which ended demo runs after a few hundred updates."""
    return paddle.sqrt(paddle.clip(paddle.sum(patches * patches, axis=1, keepdim=True), min=1e-8))


def _match(f_patches: paddle.Tensor, b_used: paddle.Tensor, col_scale: paddle.Tensor, rows: paddle.Tensor,
           zero_row: bool = False) -> paddle.Tensor:
    """Cosine scores [N, len(rows), L] of foreground positions ``rows`` against the L patches ``b_used``:
    their dot products times ``col_scale`` (each patch's inverse norm; fewer numbers to scale than the
    patches themselves); with ``zero_row``, a last row of zeros (the zero patch, the fuse's padding)."""
    f_rows = _take(f_patches, rows, 2)
    scores = kernels.matmul(f_rows, b_used, transpose_a=True) * col_scale
    if zero_row:
        scores = paddle.concat([scores, paddle.zeros([scores.shape[0], 1, scores.shape[2]], scores.dtype)], axis=1)
    return scores


def patch_norms(features: paddle.Tensor, ksize: int, stride: int) -> paddle.Tensor:
    """``patch_norm`` of the ksize × ksize patches of ``features`` ([N, 1, L]), from the per-pixel sums of
    squares over the channels: the same sums as over the unfolded patches, on a C-times smaller map."""
    squares = paddle.sum(features * features, axis=1, keepdim=True)
    return paddle.sqrt(paddle.clip(paddle.sum(_same_unfold(squares, ksize, stride), axis=1, keepdim=True), min=1e-8))


def _masked_softmax(logits: paddle.Tensor, zeros: int) -> paddle.Tensor:
    """Softmax over the last axis as if ``zeros`` further logits equal to 0 were present."""
    top = paddle.max(logits, axis=-1, keepdim=True)
    if zeros:
        top = paddle.maximum(top, paddle.zeros_like(top))
    top = top.detach()
    exp = paddle.exp(logits - top)
    total = paddle.sum(exp, axis=-1, keepdim=True)
    if zeros:
        total = total + zeros * paddle.exp(-top)
    return exp / total


def _scatter_index(rows: np.ndarray, fg_size: int) -> np.ndarray:
    """For each foreground position, 1 + its place among the computed ``rows``, or 0 (a zero row)."""
    source = np.zeros(fg_size, np.int64)
    source[rows] = np.arange(1, len(rows) + 1)
    return source


def _scatter_rows(columns: paddle.Tensor, best_cols: paddle.Tensor, index: paddle.Tensor
                  ) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Place the computed rows among zero rows for the skipped foreground positions (``_scatter_index``,
    on the device)."""
    batch = columns.shape[0]
    columns = paddle.concat([paddle.zeros([batch, 1, columns.shape[2]], columns.dtype), columns], axis=1)
    best_cols = paddle.concat([paddle.full([batch, 1], -1, best_cols.dtype), best_cols], axis=1)
    return _take(columns, index, 1), _take(best_cols, index, 1)


def _offsets(best_cols: paddle.Tensor, fg: tuple[int, int], bg: tuple[int, int],
             rows: np.ndarray | None) -> paddle.Tensor:
    """(row, col) displacement of each foreground position's best patch; 0 where nothing was computed."""
    batch = best_cols.shape[0]
    best = best_cols.reshape([batch, fg[0], fg[1]])
    own_rows = paddle.arange(fg[0], dtype="int64").reshape([1, -1, 1])
    own_cols = paddle.arange(fg[1], dtype="int64").reshape([1, 1, -1])
    offsets = paddle.stack([best // bg[1] - own_rows, best % bg[1] - own_cols], axis=1)
    if rows is not None:
        offsets = paddle.where((best >= 0).unsqueeze(1), offsets, paddle.zeros_like(offsets))
    return offsets


def _nothing_attended(f: paddle.Tensor, fg: tuple[int, int], bg: tuple[int, int]
                      ) -> tuple[paddle.Tensor, paddle.Tensor]:
    """No usable background (or nothing needed): every attention weight is 0, as in the official graph,
    whose argmax then points at the first background patch."""
    best = paddle.zeros([f.shape[0], fg[0] * fg[1]], "int64")
    return paddle.zeros_like(f), _offsets(best, fg, bg, None)
