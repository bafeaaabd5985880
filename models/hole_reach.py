"""Which attention positions can change a hole pixel of the output — inference's shortcut.

A user's picture keeps its known pixels, so only the stage-2 output inside the hole matters. Tracing the
hole back through the receptive fields of the layers after the contextual attention (the attention decoder
and the merge) and through the attention's 4×4 paste gives the foreground positions whose attention output
can reach the hole; every other position only changes pixels that are replaced by known ones, so skipping
it leaves the completed picture unchanged (``tests/test_fast_attention.py`` checks this).
"""
from __future__ import annotations

import numpy as np
import paddle.nn as nn

from models.generator import ATTENTION_RATE, RefineNetwork
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
