"""Computing only what can change a hole pixel — the shortcut of inference and of the critic steps.

A user's picture keeps its known pixels, and the critics see the real pixels outside the hole, so only the
stage-2 output inside the hole matters there. Two things follow from the layers' receptive fields:

* ``hole_reach``: tracing the hole back through the layers after the contextual attention (the attention
  decoder and the merge) and through the attention's 4×4 paste gives the foreground positions whose
  attention output can reach the hole; every other position is skipped;
* ``fill_holes``: the layers after the last dilated conv of each stage (the coarse network's decoder, the
  attention decoder and the merge) are stride-1 convs and ×2 upsamplings, so their output over the hole's
  bounding box (``Window``) needs their input only over that box grown by their receptive fields. They run
  on those windows alone: about a third of the area for the training hole (128² of 256²).

Both leave every hole pixel as the full graph computes it (``tests/test_fast_attention.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from models.generator import ATTENTION_RATE, InpaintGenerator, RefineNetwork, with_mask_channels
from models.layers import GenConv, GenDeconv, nearest_index, same_padding


def _grow(region: np.ndarray, before: int, after: int, axis: int) -> np.ndarray:
    """Inputs an output region reads along ``axis``: output p reads inputs p-before … p+after."""
    grown = region.copy()
    for shift in range(-before, after + 1):
        if shift:
            moved = np.roll(region, shift, axis=axis)
            edge = [slice(None)] * 2
            edge[axis] = slice(0, shift) if shift > 0 else slice(shift, None)
            moved[tuple(edge)] = False
            grown |= moved
    return grown


def _reach_back(layer: nn.Layer, region: np.ndarray) -> np.ndarray:
    """The input pixels of a stride-1 ``GenConv``/``GenDeconv`` that its output ``region`` depends on."""
    if isinstance(layer, GenDeconv):
        region = _reach_back(layer.conv, region)
        rows = nearest_index(region.shape[0] // 2, region.shape[0])
        cols = nearest_index(region.shape[1] // 2, region.shape[1])
        source = np.zeros((region.shape[0] // 2, region.shape[1] // 2), bool)
        np.logical_or.at(source, (rows[:, None], cols[None, :]), region)
        return source
    conv = layer.conv
    if not isinstance(layer, GenConv) or conv.s != 1:
        raise TypeError(f"cannot trace the receptive field through {layer!r}")
    for axis in (0, 1):
        before, after = same_padding(region.shape[axis], conv.k, 1, conv.d)
        region = _grow(region, before, after, axis)
    return region


def _paste_reach(region: np.ndarray, rate: int) -> np.ndarray:
    """Foreground positions whose pasted 2·rate × 2·rate patch (stride ``rate``, TF 'SAME') overlaps
    ``region`` at feature resolution."""
    height, width = region.shape
    top, _ = same_padding(height, 2 * rate, rate)
    left, _ = same_padding(width, 2 * rate, rate)
    padded = np.zeros((height + 4 * rate, width + 4 * rate), bool)
    padded[2 * rate:2 * rate + height, 2 * rate:2 * rate + width] = region
    needed = np.zeros((height // rate, width // rate), bool)
    for dy in range(2 * rate):
        for dx in range(2 * rate):
            y0, x0 = 2 * rate - top + dy, 2 * rate - left + dx
            needed |= padded[y0:y0 + height:rate, x0:x0 + width:rate][:height // rate, :width // rate]
    return needed


def hole_reach(refine: RefineNetwork, hole: np.ndarray) -> np.ndarray:
    """The attention positions (at matching resolution) whose output can change a pixel of ``hole``
    (bool H×W, or a float mask N×1×H×W whose union is taken) in the stage-2 output of ``refine``."""
    region = hole.max(axis=(0, 1)) > 0.5 if hole.ndim == 4 else hole.astype(bool)
    for layer in [*reversed(list(refine.merge)), *reversed(list(refine.attention_decoder))]:
        region = _reach_back(layer, region)
    return _paste_reach(region, ATTENTION_RATE)


@dataclass(frozen=True)
class Window:
    """Rows [top, bottom) and columns [left, right) of a feature map of ``height`` × ``width``."""
    top: int
    bottom: int
    left: int
    right: int
    height: int
    width: int

    def crop(self, x: paddle.Tensor) -> paddle.Tensor:
        return x[:, :, self.top:self.bottom, self.left:self.right]

    def place(self, x: paddle.Tensor) -> paddle.Tensor:
        """``x`` (the window's content) at its place in a zero map of the full size."""
        return F.pad(x, [self.left, self.width - self.right, self.top, self.height - self.bottom])


def hole_window(mask: np.ndarray) -> Window | None:
    """The bounding box of every hole of an N×1×H×W ``mask`` (None when there is no hole)."""
    rows, cols = np.nonzero(mask.max(axis=(0, 1)) > 0.5)
    if rows.size == 0:
        return None
    return Window(int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1, *mask.shape[2:])


def _interval_back(layer: nn.Layer, low: int, high: int, size: int) -> tuple[int, int, int]:
    """The input rows [low', high') and input size of a stride-1 ``GenConv``/``GenDeconv`` whose output
    rows [low, high), of ``size``, depend on them (as ``_reach_back``, for an interval)."""
    if isinstance(layer, GenDeconv):
        low, high, size = _interval_back(layer.conv, low, high, size)
        return low // 2, -(-high // 2), size // 2      # the ×2 upsampling repeats each row
    conv = layer.conv
    if not isinstance(layer, GenConv) or conv.s != 1:
        raise TypeError(f"cannot trace the receptive field through {layer!r}")
    before, after = same_padding(size, conv.k, 1, conv.d)
    return max(low - before, 0), min(high + after, size), size


def window_back(layers: list[nn.Layer], window: Window) -> Window:
    """The input window ``layers`` (stride-1 convs and ×2 upsamplings, in order) need for ``window`` of
    their output."""
    top, bottom, height = window.top, window.bottom, window.height
    left, right, width = window.left, window.right, window.width
    for layer in reversed(layers):
        top, bottom, height = _interval_back(layer, top, bottom, height)
        left, right, width = _interval_back(layer, left, right, width)
    return Window(top, bottom, left, right, height, width)


def run_window(layers: list[nn.Layer], x: paddle.Tensor, source: Window, target: Window) -> paddle.Tensor:
    """``layers`` applied to ``x``, the content of their input over ``source`` (``window_back`` of
    ``target``), cut to ``target`` of their output. Exact: each layer spoils only the rim of its input
    that lies inside the map (at the map's own edges its padding — zeros, or the mirror of
    padding=SYMMETRIC/REFLECT, which reaches as far as the zeros' — is the full map's), and ``source``
    includes every such rim."""
    for layer in layers:
        x = layer(x)
    scale = target.height // source.height
    top, left = target.top - source.top * scale, target.left - source.left * scale
    return x[:, :, top:top + target.bottom - target.top, left:left + target.right - target.left]


def fill_holes(generator: InpaintGenerator, x: paddle.Tensor, mask: paddle.Tensor, holes: np.ndarray | None = None
               ) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Stage 2 (with its attention offsets) of the holed ``x`` exactly as ``generator`` computes it over
    the holes' bounding box, and 0 outside it; the offsets only where ``hole_reach`` keeps them. The
    windows are planned on the host from ``holes``, ``mask``'s host copy (read back from the device
    when not given: a synchronisation on a GPU)."""
    if holes is None:
        holes = mask.numpy()
    window = hole_window(holes)
    if window is None:
        return generator(x, mask, hole_reach(generator.refine, holes), holes)[1:]
    coarse, refine = generator.coarse, generator.refine
    body, head = coarse.split()
    features = body(with_mask_channels(x, mask))
    source = window_back(head, window)
    x_stage1 = window.place(coarse.output(run_window(head, source.crop(features), source, window)))
    hallucinated, features = refine.encode(generator.paste(x, x_stage1, mask), mask)
    attended, offsets = refine.attend(features, mask, hole_reach(refine, holes), holes)
    merge, decoder = list(refine.merge), list(refine.attention_decoder)
    at_merge = window_back(merge, window)
    at_decoder = window_back(decoder, at_merge)
    merged = paddle.concat([at_merge.crop(hallucinated),
                            run_window(decoder, at_decoder.crop(attended), at_decoder, at_merge)], axis=1)
    x_stage2 = refine.output(run_window(merge, merged, at_merge, window))
    return window.place(x_stage2), offsets
