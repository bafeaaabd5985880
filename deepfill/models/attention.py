"""Contextual attention (paper §4.1), computing exactly what the official ``contextual_attention`` computes,
in bounded memory.

Foreground features ``f`` are matched against 3×3 background patches of ``b`` by cosine similarity, the
score matrix is "fused" to favour coherent patches, masked so that only known background is attended,
soft-maxed with scale 10, and the attended 4×4 full-resolution background patches are pasted back (a
transposed convolution: ``deepfill.models.kernels.paste`` for the whole map where a gradient is wanted, else a
matrix product and ``F.fold`` row tile by row tile) and divided by 4, as in the official graph. Matching runs at
1/``rate`` resolution (nearest, align_corners=True), pasting at full resolution.

The official graph builds the whole (foreground × background) score matrix, which grows with the fourth
power of the image side (17 GB at 2048²). Here the same numbers are computed a rectangle of foreground
positions (a row tile) against a rectangle of background patches (a column tile) at a time, each pair
two matrix products on unfolded patches:

* the fuse step (two passes of a 3×3 identity convolution over the score matrix, first in row-major, then
  in column-major order of the positions) adds the score matrix at shifts along its diagonal. Each tile
  is laid out with the ring of neighbours the fuse reads (``_Tile``) so that every shift of either pass
  is one constant offset into the flattened scores: a pass is the sum of three views of one buffer
  (``_FusePlan``), where gathering shifted rows and columns took half of the attention's time at 2048²;
* background patches that touch the hole get zero attention after the softmax: they are dropped after the
  fuse (which still reads the scores of those at the hole's edge) and enter the softmax's denominator as
  the ``exp(0)`` terms they are in the official graph. A big hole's inside is not scored at all: the
  column tiles go around it (``_column_tiles``), and their softmaxes are joined as they come
  (``_Softmax``);
* foreground positions whose output cannot reach the pixels a caller keeps (``needed``) are skipped, and
  each row tile's paste is folded into the output at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle.autograd import PyLayer

from deepfill.models import kernels
from deepfill.models.layers import resize_nearest, resize_nearest_array, same_padding

CHUNK_ELEMENTS = 2 ** 24  # scores held per tile (64 MB in float32); a few buffers of that size are alive at once


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


def _to_device(*arrays: np.ndarray) -> list[paddle.Tensor]:
    """Integer host arrays as device tensors of the same shapes, sent in one copy: on a GPU every
    ``paddle.to_tensor`` is a blocking transfer, and the attention plans dozens of index arrays per call."""
    flat = paddle.to_tensor(np.concatenate([np.asarray(a, np.int64).reshape(-1) for a in arrays]))
    tensors, start = [], 0
    for array in arrays:
        tensors.append(flat[start:start + array.size].reshape(list(array.shape)))
        start += array.size
    return tensors


def _row_major(column_major: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Row-major ids of positions given by their column-major index; -1 outside the grid."""
    height, width = grid
    inside = (column_major >= 0) & (column_major < height * width)
    return np.where(inside, (column_major % height) * width + column_major // height, -1)


@dataclass(frozen=True)
class _Fuse:
    """The fuse's geometry: it adds the scores at diagonal shifts -``before``…``after`` (TF 'SAME' padding
    of a ``fuse_k``-wide identity kernel; no shift but 0 without the fuse)."""
    before: int
    after: int

    @classmethod
    def of(cls, fuse_k: int, fuse: bool) -> "_Fuse":
        return cls(*same_padding(1, fuse_k)) if fuse else cls(0, 0)

    @property
    def shifts(self) -> range:
        return range(-self.before, self.after + 1)

    @property
    def ring(self) -> int:
        return self.before + self.after

    @property
    def guard(self) -> tuple[int, int]:
        """Zero score rows before and after a tile's runs, so that every shifted view of either pass lies
        inside the buffer (a view reaches one row and one background row beyond the ring)."""
        return (self.before + 2, self.after + 2) if self.ring else (0, 0)


class _Tile:
    """A rectangle of foreground positions (at matching resolution) and the layout of its score rows.

    The scores are ``runs`` runs of ``stride`` rows, between zero guard rows. Run j holds the foreground
    row ``top - before + j`` — above and below the rectangle, the positions the second pass reads there:
    the column-major neighbours, which wrap into the next column at the picture's top and bottom — over
    the rectangle's columns, widened by the ``before``/``after`` positions the first pass reads on either
    side. Each run is consecutive in row-major order, so the first pass's shift s is s rows away and the
    second's s runs away. ``rows``: the row-major foreground id of every score row (-1: a zero row);
    ``blank``: the score rows whose first-pass result is zero in the official graph (a column-major
    neighbour past the picture's corner: its padding)."""

    def __init__(self, rectangle: tuple[int, int, int, int], grid: tuple[int, int], fuse: _Fuse) -> None:
        top, bottom, left, right = rectangle
        height, width = grid
        self.top, self.left, self.height, self.width = top, left, bottom - top, right - left
        self.grid_width = width
        self.stride = self.width + fuse.ring
        run_rows = np.arange(top - fuse.before, bottom + fuse.after)
        ids = _row_major(np.arange(left, right)[None, :] * height + run_rows[:, None], grid)
        inside = ids >= 0
        start = np.where(inside[:, 0], ids[:, 0], ids[:, min(1, self.width - 1)] - 1)   # continue over a -1
        runs = start[:, None] + np.arange(-fuse.before, self.width + fuse.after)[None, :]
        runs[(runs < 0) | (runs >= height * width) | ~inside.any(axis=1, keepdims=True)] = -1
        front, back = fuse.guard
        self.rows = np.concatenate([np.full(front, -1), runs.reshape(-1), np.full(back, -1)])
        slots = front + np.arange(len(run_rows))[:, None] * self.stride + fuse.before + np.arange(self.width)
        self.blank = slots[~inside & inside.any(axis=1, keepdims=True)]
        self.first = front + fuse.before * self.stride        # the first score row of the rectangle's runs

    @property
    def count(self) -> int:
        """Score rows from ``first`` that cover the rectangle (with the ring slots between its rows)."""
        return self.height * self.stride

    def positions(self, fuse: _Fuse) -> tuple[np.ndarray, np.ndarray]:
        """Row-major ids of the rectangle's positions and their rows among its ``count`` rows."""
        ys, xs = np.meshgrid(np.arange(self.height), np.arange(self.width), indexing="ij")
        ids = (self.top + ys) * self.grid_width + self.left + xs
        return ids.reshape(-1), (ys * self.stride + fuse.before + xs).reshape(-1)


def _tiles(wanted: np.ndarray, rows_per_tile: int, fuse: _Fuse) -> list[tuple[int, int, int, int]]:
    """Rectangles (top, bottom, left, right) covering the ``wanted`` positions, each with about
    ``rows_per_tile`` score rows or fewer (ring and guards included): near-square, since the ring grows
    with the perimeter; each shrunk to the wanted positions inside it, empty ones left out."""
    ys, xs = np.nonzero(wanted)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    room = max(1, rows_per_tile - sum(fuse.guard))
    width = max(1, min(right - left, math.isqrt(room) - fuse.ring))
    height = max(1, min(bottom - top, room // (width + fuse.ring) - fuse.ring))
    if height == bottom - top:
        width = max(width, min(right - left, room // (height + fuse.ring) - fuse.ring))
    width = -(-(right - left) // -(-(right - left) // width))          # even out the tiles
    height = -(-(bottom - top) // -(-(bottom - top) // height))
    rectangles = []
    for y in range(top, bottom, height):
        for x in range(left, right, width):
            rows, cols = np.nonzero(wanted[y:y + height, x:x + width])
            if rows.size:
                rectangles.append((y + rows.min(), y + rows.max() + 1, x + cols.min(), x + cols.max() + 1))
    return rectangles


def _largest_empty_box(full: np.ndarray) -> tuple[int, int, int, int, int]:
    """The largest rectangle of False in a bool grid, as (area, top, bottom, left, right): per row, the
    classic stack over the heights of the False columns ending there."""
    height, width = full.shape
    heights = np.zeros(width + 1, np.int64)
    best = (0, 0, 0, 0, 0)
    for row in range(height):
        heights[:width] = np.where(full[row], 0, heights[:width] + 1)
        stack: list[int] = []
        for col in range(width + 1):
            while stack and heights[stack[-1]] >= heights[col]:
                tall = heights[stack.pop()]
                left = stack[-1] + 1 if stack else 0
                if tall * (col - left) > best[0]:
                    best = (tall * (col - left), row + 1 - tall, row + 1, left, col)
            stack.append(col)
    return best


SKIPPED_BACKGROUND = 8   # a hole's inside is left out of the scores when it is over 1/8 of the background


def _column_tiles(usable: np.ndarray, whole: bool) -> list[tuple[int, int, int, int]]:
    """Rectangles of background patches to score, covering the ``usable`` ones (bool grid): one box, or,
    when the largest box of unusable patches inside it is over 1/``SKIPPED_BACKGROUND`` of it, the four
    bands around that box (each tile's ring still reads the box's edge, as the fuse needs). A big hole's
    inside is then not scored at all: a quarter of the matching's work for the benchmark's quarter hole."""
    top, bottom, left, right = _box(usable)
    if whole:
        return [(top, bottom, left, right)]
    area, hole_top, hole_bottom, hole_left, hole_right = _largest_empty_box(usable[top:bottom, left:right])
    if area * SKIPPED_BACKGROUND <= (bottom - top) * (right - left):
        return [(top, bottom, left, right)]
    hole_top, hole_bottom = hole_top + top, hole_bottom + top
    hole_left, hole_right = hole_left + left, hole_right + left
    bands = [(top, hole_top, left, right), (hole_bottom, bottom, left, right),
             (hole_top, hole_bottom, left, hole_left), (hole_top, hole_bottom, hole_right, right)]
    tiles = []
    for band_top, band_bottom, band_left, band_right in bands:
        inside = usable[band_top:band_bottom, band_left:band_right]
        if inside.any():
            ys, xs = np.nonzero(inside)
            tiles.append((band_top + ys.min(), band_top + ys.max() + 1, band_left + xs.min(), band_left + xs.max() + 1))
    return tiles


class _Columns:
    """One column tile: its ``_Tile`` layout over the background grid, and (after ``load``) the scaled
    patches of its score columns (``keys``, [N, K, columns], zero for -1), the usable patches among its
    columns (``ids``: background ids; ``positions``: their columns in the layout), their raw patches for
    the paste (``raw``) and their per-image weights (None when every image may use them all). ``host``:
    the index arrays ``load`` takes on the device, in this order."""

    def __init__(self, rectangle: tuple[int, int, int, int], bg: tuple[int, int], fuse: _Fuse,
                 usable: np.ndarray) -> None:
        self.rectangle, self.tile = rectangle, _Tile(rectangle, bg, fuse)
        ids, positions = self.tile.positions(fuse)
        keep = usable.any(axis=0)[ids]
        ids, positions = ids[keep], self.tile.first + positions[keep]
        top, bottom, left, right = rectangle
        local = (ids // bg[1] - top) * (right - left) + ids % bg[1] - left
        rows = self.tile.rows
        self.host = [np.maximum(rows, 0), rows >= 0, ids, positions, local]
        image_usable = usable[:, ids]
        if usable.shape[0] > 1 and not image_usable.all():
            self.host.append(image_usable)

    def load(self, arrays: list[paddle.Tensor], patches: paddle.Tensor, scale: paddle.Tensor, b: paddle.Tensor,
             rate: int, step: int) -> None:
        index, valid, self.ids, self.positions, local, *weight = arrays
        self.keys = _take(patches, index, 2) * (_take(scale, index, 2) * valid.astype(patches.dtype))
        raw = _raw_patches(b, self.rectangle, rate, step)
        if local.shape[0] < raw.shape[2]:              # some patches of the rectangle are not usable
            raw = _take(raw, local, 2)
        self.raw = raw
        self.weight = weight[0].astype(patches.dtype) if weight else None


def _raw_patches(b: paddle.Tensor, rectangle: tuple[int, int, int, int], rate: int, step: int) -> paddle.Tensor:
    """The paste's 2·rate × 2·rate patches of ``b`` (stride ``step``, TF 'SAME' padding) at the background
    positions of ``rectangle``, [N, C·(2·rate)², positions]: an unfold of the rectangle's pixels alone, so
    that the whole map's patches (4× its size, 0.5 GB at 2048²) are never held."""
    kernel = 2 * rate
    spans = []
    for axis, (low, high) in enumerate((rectangle[:2], rectangle[2:])):
        side = b.shape[2 + axis]
        before, _ = same_padding(side, kernel, step)
        first, last = low * step - before, (high - 1) * step - before + kernel     # pixels [first, last)
        spans.append((max(first, 0), min(last, side), max(-first, 0), max(last - side, 0)))
    (top, bottom, pad_top, pad_bottom), (left, right, pad_left, pad_right) = spans
    window = b if (top, bottom, left, right) == (0, b.shape[2], 0, b.shape[3]) else b[:, :, top:bottom, left:right]
    return F.unfold(window, kernel_sizes=kernel, strides=step, paddings=[pad_top, pad_left, pad_bottom, pad_right])


def _shifted_sum(flat: paddle.Tensor, start: int, length: int, offsets: list[int]) -> paddle.Tensor:
    """Sum over ``offsets`` of ``flat[:, start + offset : start + offset + length]``: views of one buffer
    per image ([N, size])."""
    for offset in offsets:
        if start + offset < 0 or start + offset + length > flat.shape[1]:
            raise AssertionError(f"shifted view [{start + offset}, +{length}) outside {flat.shape[1]}")
    views = [flat[:, start + offset:start + offset + length] for offset in offsets]
    return views[0] if len(views) == 1 else paddle.add_n(views)


def _shifted_sum_adjoint(d: paddle.Tensor, size: int, start: int, offsets: list[int]) -> paddle.Tensor:
    """The gradient of ``_shifted_sum`` over a buffer of ``size``: each view's gradient is ``d`` at its
    place, so the buffer's is again a sum of views, of ``d`` padded with zeros once."""
    low, high = min(offsets), max(offsets)
    batch, length = d.shape
    padded = paddle.concat([paddle.zeros([batch, start + high], d.dtype), d,
                            paddle.zeros([batch, size - start - low - length], d.dtype)], axis=1)
    return _shifted_sum(padded, 0, size, [high - offset for offset in offsets])


@dataclass(frozen=True)
class _FusePlan:
    """Where the fuse's two passes read each image's scores of a row tile against a column tile (``_Tile``
    layouts on both axes), flattened per image: pass 1 (row-major order) moves s rows and s columns, pass 2
    (column-major) s runs of either layout. Pass 1 is kept from score row ``before + 1`` on, pass 2 for
    the row tile's ``count`` rows from its ``first``; ``blank`` rows and columns of pass 1 are zero."""
    shape: tuple[int, int, int]                # [N, score rows, score columns]
    once: tuple[int, int, list[int]]           # (start, length, offsets) in the scores
    twice: tuple[int, int, list[int]]          # in pass 1's result
    blank_rows: tuple[int, ...]               # rows of pass 1's result
    blank_columns: tuple[int, ...]

    @classmethod
    def of(cls, shape: tuple[int, int, int], rows: _Tile, columns: _Tile, fuse: _Fuse) -> "_FusePlan":
        _, height, width = shape
        first = fuse.before + 1
        start = rows.first - first
        return cls(shape, (first * width, (height - fuse.ring - 2) * width, [s * (width + 1) for s in fuse.shifts]),
                   (start * width, rows.count * width,
                    [s * (rows.stride * width + columns.stride) for s in fuse.shifts]),
                   tuple(int(row) - first for row in rows.blank), tuple(int(column) for column in columns.blank))

    def values(self, scores: paddle.Tensor) -> paddle.Tensor:
        batch, _, width = self.shape
        once = _shifted_sum(scores.reshape([batch, -1]), *self.once)
        self._blank(once)
        twice = _shifted_sum(once, *self.twice)
        return twice.reshape([batch, -1, width])

    def gradient(self, d_twice: paddle.Tensor) -> paddle.Tensor:
        batch, height, width = self.shape
        d_once = _shifted_sum_adjoint(d_twice.reshape([batch, -1]), self.once[1], self.twice[0], self.twice[2])
        self._blank(d_once)
        return _shifted_sum_adjoint(d_once, height * width, self.once[0], self.once[2]).reshape(list(self.shape))

    def _blank(self, once: paddle.Tensor) -> None:
        batch, _, width = self.shape
        for row in self.blank_rows:
            once[:, row * width:(row + 1) * width] = 0.0
        if self.blank_columns:
            grid = once.reshape([batch, -1, width])
            for column in self.blank_columns:
                grid[:, :, column] = 0.0


class _Fused(PyLayer):
    """The fuse with its gradient as the same sums of views run backwards: differentiating the views
    themselves made a zero buffer of the whole per view (a third of a training step's attention)."""

    @staticmethod
    def forward(ctx, scores: paddle.Tensor, plan: _FusePlan) -> paddle.Tensor:
        ctx.plan = plan
        return plan.values(scores)

    @staticmethod
    def backward(ctx, d_twice: paddle.Tensor) -> paddle.Tensor:
        return ctx.plan.gradient(d_twice)


def _fuse(scores: paddle.Tensor, rows: _Tile, columns: _Columns, fuse: _Fuse) -> paddle.Tensor:
    """The official fuse of the scores [N, row layout, column layout], for the ``rows.count`` rows from
    ``rows.first``, as [N, count, column layout] (``_FusePlan``)."""
    plan = _FusePlan.of(tuple(scores.shape), rows, columns.tile, fuse)
    return plan.values(scores) if scores.stop_gradient else _Fused.apply(scores, plan)


def _attend(logits: paddle.Tensor, weight: paddle.Tensor | None
            ) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """The softmax of one column tile's logits [N, rows, columns] (one fused kernel), after the per-image
    ``weight`` [N, columns] (0 for the patches an image may not use: their logit becomes 0, their attention
    0), as ``(attention, largest, total, best, key)``: the largest logit, the sum of exp(logit - largest)
    (1 / the softmax there), the argmax and the logit there (-inf where the attention there is 0), [N, rows,
    1] each but ``best`` [N, rows]."""
    if weight is not None:
        weight = weight.unsqueeze(1)
        logits = logits * weight
    attention = F.softmax(logits, axis=-1)
    top = paddle.argmax(attention, axis=-1)
    largest, total = _at(logits, top), 1.0 / _at(attention, top)
    if weight is None:
        return attention, largest, total, top, largest
    attention = attention * weight
    best = paddle.argmax(attention, axis=-1)
    key = paddle.where(_at(attention, best) > 0, _at(logits, best), paddle.full_like(largest, -np.inf))
    return attention, largest, total, best, key


def _at(x: paddle.Tensor, index: paddle.Tensor) -> paddle.Tensor:
    """``x`` [N, rows, columns] at one column per row (``index`` [N, rows]), as [N, rows, 1]: a gather from
    the flattened tensor (``take_along_axis`` expands its operands to each other's shape first)."""
    batch, rows, columns = x.shape
    flat_index = paddle.arange(batch * rows, dtype=index.dtype) * columns + index.reshape([-1])
    return paddle.gather(x.reshape([-1]), flat_index).reshape([batch, rows, 1])


class _Softmax:
    """The softmax over every column tile of a row tile's rows (every image at once), joined one tile at a
    time: each tile's softmax (and its paste, which is linear in it) is weighed into the running one by
    its share of the sum of exp(logit - largest so far). The weights are convex (each at most 1), so nothing overflows
    however far apart the tiles' logits are; the argmax goes to the larger logit, ties to the smaller
    background id, as the official argmax does."""

    def __init__(self) -> None:
        self.pasted = None

    def add(self, pasted: paddle.Tensor, largest: paddle.Tensor, total: paddle.Tensor, best: paddle.Tensor,
            key: paddle.Tensor) -> None:
        """One tile's ``_attend`` results (``pasted``: its attention or paste; ``best``: background ids)."""
        if self.pasted is None:
            self.pasted, self.largest, self.total, self.best, self.key = pasted, largest, total, best, key
            return
        top = paddle.maximum(self.largest, largest)
        before, added = self.total * paddle.exp(self.largest - top), total * paddle.exp(largest - top)
        self.total = before + added
        if self.pasted.stop_gradient and pasted.stop_gradient:      # in place: no [N, rows, C·16] copies
            self.pasted.multiply_(before / self.total).add_(pasted.multiply_(added / self.total))
        else:
            self.pasted = self.pasted * (before / self.total) + pasted * (added / self.total)
        self.largest = top
        take = (key > self.key) | ((key == self.key) & (best.unsqueeze(-1) < self.best.unsqueeze(-1)))
        self.key = paddle.where(take, key, self.key)
        self.best = paddle.where(take.squeeze(-1), best, self.best)

    def result(self, zeros: int) -> tuple[paddle.Tensor, paddle.Tensor]:
        """The paste (or attention) and the argmax, with ``zeros`` more logits equal to 0 in the softmax
        (the patches no image may use, which the official graph attends with weight exp(0)/sum)."""
        if not zeros:
            return self.pasted, self.best
        return self.pasted / (1.0 + zeros * paddle.exp(-self.largest) / self.total), self.best


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
        chunk_elements: scores computed at once; bounds the memory, not the result.
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
    wanted = needed if needed is not None else np.ones(fg, bool)
    usable = _usable_background(mask if per_sample_mask or mask is None else mask[:1], bg, ksize, stride)
    if not usable.any() or not wanted.any():
        return _nothing_attended(f, fg, bg, wanted)
    fg_size = fg[0] * fg[1]
    outside = bg[0] * bg[1] - int(usable.any(axis=0).sum())    # unusable everywhere: exp(0) terms
    geometry = _Fuse.of(fuse_k, fuse)
    # Where a gradient is wanted (training's generator step) and the whole attention map [N, positions, L]
    # fits in one tile, the map is pasted at once (``kernels.paste``), which lets a backend run the paste as
    # the one transposed convolution it is, with a cheap backward pass. Otherwise each row tile's paste is
    # folded into the output as it comes: without gradients that is the leaner way.
    whole_map = (paddle.is_grad_enabled() and not f.stop_gradient
                 and batch * fg_size * (bg[0] * bg[1] - outside) <= chunk_elements)

    column_tiles = [_Columns(rectangle, bg, geometry, usable)
                    for rectangle in _column_tiles(usable.any(axis=0).reshape(bg), whole_map)]
    score_columns = sum(columns.tile.rows.size for columns in column_tiles)
    tiles = [_Tile(rectangle, fg, geometry)
             for rectangle in _tiles(wanted, max(1, chunk_elements // (batch * score_columns)), geometry)]
    query_ids = np.unique(np.concatenate([tile.rows for tile in tiles]))
    query_ids = query_ids[query_ids >= 0]              # the foreground patches the tiles score
    placed = np.zeros(fg_size, np.int64)                # 1 + row among all tiles' rows; 0: not computed
    tile_arrays, done = [], 0
    for tile in tiles:
        ids, rows_in_tile = tile.positions(geometry)
        keep = wanted.reshape(-1)[ids]
        placed[ids[keep]] = 1 + done + rows_in_tile[keep]
        done += tile.count
        tile_arrays.append([np.searchsorted(query_ids, np.maximum(tile.rows, 0)), tile.rows >= 0, rows_in_tile, keep])
    uploaded = iter(_to_device(query_ids, placed, *(array for columns in column_tiles for array in columns.host),
                               *(array for arrays in tile_arrays for array in arrays)))   # one copy per call
    query_index, placed = next(uploaded), next(uploaded)

    f_small = resize_nearest(f, *fg)
    b_small = f_small if b is f else resize_nearest(b, *bg)
    patches = _same_unfold(b_small, ksize, stride)
    scale = softmax_scale / patch_norms(b_small, ksize, stride)      # cosine × softmax scale
    for columns in column_tiles:
        columns.load([next(uploaded) for _ in columns.host], patches, scale, b, rate, rate * stride)
    if not (b_small is f_small and stride == 1):
        patches = _same_unfold(f_small, ksize, 1)
    queries = _take(patches, query_index, 2)
    del patches

    top, bottom = same_padding(height, 2 * rate, rate)
    left, right = same_padding(width, 2 * rate, rate)
    y = None if whole_map else paddle.zeros_like(f)
    maps, best = [], [paddle.full([batch, 1], -1, "int64")]
    for tile in tiles:
        query_index, valid, in_tile, kept = (next(uploaded) for _ in range(4))
        rows = _take(queries, query_index, 2) * valid.astype(f.dtype)
        attended, tile_best = _attend_tile(rows, tile, column_tiles, geometry, outside, whole_map)
        best.append(tile_best)
        if whole_map:
            maps.append(attended)
        else:                   # the rectangle's positions in order, a wanted one's paste or zero
            columns = _take(attended, in_tile, 1) * kept.astype(f.dtype).reshape([1, -1, 1])
            box = (tile.top, tile.top + tile.height, tile.left, tile.left + tile.width)
            y = _add_piece(y, _fold(columns, box, (height, width), rate, (top, left)), (height, width))

    offsets = _offsets(_take(paddle.concat(best, axis=1), placed, 1), fg, bg, not wanted.all())
    if not whole_map:
        return y, offsets
    columns = _take(paddle.concat([paddle.zeros([batch, 1, maps[0].shape[2]], maps[0].dtype), *maps], axis=1),
                    placed, 1)
    pasted = kernels.paste(columns, column_tiles[0].raw, fg, (height, width), rate, (top, bottom, left, right))
    return pasted / 4.0, offsets


def _attend_tile(rows: paddle.Tensor, tile: _Tile, column_tiles: list[_Columns], fuse: _Fuse, outside: int,
                 whole_map: bool) -> tuple[paddle.Tensor, paddle.Tensor]:
    """One row tile (``rows``: its foreground patches, [N, K, score rows]) against every column tile: its
    ``count`` rows' paste [N, count, C·(2·rate)²] (or, for ``whole_map``, their attention over the usable
    patches) and their argmax as background ids [N, count]. Every image at once: one product, fuse and
    softmax per column tile, whatever the batch."""
    joined = _Softmax()
    for columns in column_tiles:
        scores = kernels.matmul(rows, columns.keys, transpose_a=True)        # [N, row layout, column layout]
        if fuse.ring:
            scores = _fuse(scores, tile, columns, fuse)
        logits = _take(scores, columns.positions, 2)
        del scores
        attention, largest, total, found, key = _attend(logits, columns.weight)
        if not whole_map:
            attention = kernels.matmul(attention, columns.raw, transpose_b=True)
        joined.add(attention, largest, total, paddle.gather(columns.ids, found.reshape([-1])).reshape(found.shape),
                   key)
    return joined.result(outside)


def _box(wanted: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box (top, bottom, left, right) of the wanted positions."""
    ys, xs = np.nonzero(wanted)
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


def _fold(columns: paddle.Tensor, box: tuple[int, int, int, int], size: tuple[int, int], rate: int,
          padding: tuple[int, int]) -> tuple[paddle.Tensor, int, int]:
    """The paste's overlap-add (``F.fold``) of the attended patches ``columns`` [N, positions, C·(2·rate)²]
    of the foreground positions in ``box`` (row-major), divided by 4 as in the official graph: the piece
    of the map of ``size`` they cover (cut where the map's 'SAME' ``padding`` lies) and its first row and
    column."""
    top, bottom, left, right = box
    height, width = rate * (bottom - top + 1), rate * (right - left + 1)
    y = F.fold(columns.transpose([0, 2, 1]), output_sizes=[height, width], kernel_sizes=2 * rate, strides=rate)
    row, col = rate * top - padding[0], rate * left - padding[1]        # the piece's first pixel in the map
    cut = (max(0, -row), height - max(0, row + height - size[0]), max(0, -col), width - max(0, col + width - size[1]))
    if cut != (0, height, 0, width):
        y = y[:, :, cut[0]:cut[1], cut[2]:cut[3]]
    return y / 4.0, max(row, 0), max(col, 0)


def _add_piece(y: paddle.Tensor, piece: tuple[paddle.Tensor, int, int], size: tuple[int, int]) -> paddle.Tensor:
    """``y`` plus a ``_fold`` piece at its place; in place unless gradients are wanted."""
    values, row, col = piece
    bottom, right = row + values.shape[2], col + values.shape[3]
    if y.stop_gradient and values.stop_gradient:
        y[:, :, row:bottom, col:right] += values
        return y
    return y + F.pad(values, [col, size[1] - right, row, size[0] - bottom])


def patch_norm(patches: paddle.Tensor) -> paddle.Tensor:
    """Each background patch's L2 norm, at least 1e-4 (the official ``max(sqrt(sum of squares), 1e-4)``).
    Clipped before the square root rather than after: the same values and, wherever the official gradient
    is finite, the same gradient; but an all-zero patch (pmconv6 ends in a ReLU, so whole patches can be
    zero) gets a zero gradient instead of 0 × ∞ = NaN, which ended demo runs after a few hundred updates."""
    return paddle.sqrt(paddle.clip(paddle.sum(patches * patches, axis=1, keepdim=True), min=1e-8))


def patch_norms(features: paddle.Tensor, ksize: int, stride: int) -> paddle.Tensor:
    """``patch_norm`` of the ksize × ksize patches of ``features`` ([N, 1, L]), from the per-pixel sums of
    squares over the channels: the same sums as over the unfolded patches, on a C-times smaller map."""
    squares = paddle.sum(features * features, axis=1, keepdim=True)
    return paddle.sqrt(paddle.clip(paddle.sum(_same_unfold(squares, ksize, stride), axis=1, keepdim=True), min=1e-8))


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


def _offsets(best_cols: paddle.Tensor, fg: tuple[int, int], bg: tuple[int, int], skipped: bool) -> paddle.Tensor:
    """(row, col) displacement of each foreground position's best patch; 0 where nothing was computed
    (``best_cols`` -1)."""
    batch = best_cols.shape[0]
    best = best_cols.reshape([batch, fg[0], fg[1]])
    own_rows = paddle.arange(fg[0], dtype="int64").reshape([1, -1, 1])
    own_cols = paddle.arange(fg[1], dtype="int64").reshape([1, 1, -1])
    offsets = paddle.stack([best // bg[1] - own_rows, best % bg[1] - own_cols], axis=1)
    if skipped:
        offsets = paddle.where((best >= 0).unsqueeze(1), offsets, paddle.zeros_like(offsets))
    return offsets


def _nothing_attended(f: paddle.Tensor, fg: tuple[int, int], bg: tuple[int, int], wanted: np.ndarray
                      ) -> tuple[paddle.Tensor, paddle.Tensor]:
    """No usable background (or nothing needed): every attention weight is 0, as in the official graph,
    whose argmax then points at the first background patch (where wanted)."""
    best = paddle.to_tensor(np.where(wanted.reshape(1, -1), 0, -1).repeat(f.shape[0], axis=0))
    return paddle.zeros_like(f), _offsets(best, fg, bg, not wanted.all())
