"""Computing only what can change a hole pixel — the shortcut of inference and of the critic steps.

A user's picture keeps its known pixels, and the critics see the real pixels outside the hole, so only the
stage-2 output inside the hole matters there. Two things follow from the layers' receptive fields:

* ``hole_reach``: tracing the hole back through the layers after the contextual attention (the attention
  decoder and the merge) and through the attention's 4×4 paste gives the foreground positions whose
  attention output can reach the hole; every other position is skipped;
* ``fill_holes``: the layers after the last strided or dilated conv of each stage (the coarse network's
  decoder; ``RefineNetwork.decode``) are stride-1 convs and ×2 upsamplings, so their output over the
  hole's bounding box (``Window``) needs their input only over that box grown by their receptive fields.
  They run on those windows alone: about a third of the area for the training hole (128² of 256²).

Nothing here restates the generator: ``fill_holes`` runs the generator's own modules and methods (the
coarse ``body`` in two parts, ``RefineNetwork.encode``/``attend``/``decode``), finding the coarse
decoder by the layers' strides and dilations. A layer whose receptive field it does not know (``_steps``)
is refused by name. Both leave every hole pixel as the full graph computes it (``tests/test_golden.py``,
``tests/test_fast_attention.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from deepfill.models.generator import ATTENTION_RATE, CoarseNetwork, InpaintGenerator, RefineNetwork, with_mask_channels
from deepfill.models.layers import GenConv, GenDeconv, same_padding

Named = tuple[str, nn.Layer]
Step = tuple[int, int, int]    # (upsampling factor, rows read before, rows read after), in that order


def _steps(name: str, layer: nn.Layer) -> list[Step]:
    """What ``layer``'s output reads of its input, as steps in order: a nearest upsampling by a factor,
    then each output row (and column) reading ``before`` … ``after`` rows around it. A ``TypeError``
    naming the layer for a layer whose reach this does not know."""
    if isinstance(layer, GenDeconv):
        (scale, before, after), = _steps(f"{name}.conv", layer.conv)
        return [(2 * scale, before, after)]
    if isinstance(layer, GenConv) and layer.conv.s == 1:
        before, after = same_padding(1, layer.conv.k, 1, layer.conv.d)   # stride 1: the same for any side
        return [(1, before, after)]
    kind = f"{type(layer).__name__}, stride {layer.conv.s}" if isinstance(layer, GenConv) else type(layer).__name__
    raise TypeError(f"deepfill.models.hole_reach cannot bound the receptive field of {name} ({kind}): the layers it "
                    "runs on the hole's window must be stride-1 GenConv or GenDeconv (×2 upsampling)")


def _all_steps(layers: list[Named]) -> list[Step]:
    return [step for name, layer in layers for step in _steps(name, layer)]


def _named(prefix: str, body: nn.Sequential) -> list[Named]:
    return [(f"{prefix}.{name}", layer) for name, layer in body.named_children()]


def _widens(layer: nn.Layer) -> bool:
    """A conv that strides or dilates: its input window would be most of the map."""
    return isinstance(layer, GenConv) and (layer.conv.s > 1 or layer.conv.d > 1)


def coarse_decoder(coarse: CoarseNetwork) -> tuple[list[Named], list[Named]]:
    """``coarse.body`` as the layers up to its last strided or dilated conv, run on the whole picture,
    and the decoder after them, which ``fill_holes`` runs on the hole's window (every layer of it checked
    by ``_steps``)."""
    layers = _named("coarse.body", coarse.body)
    start = max((i + 1 for i, (_, layer) in enumerate(layers) if _widens(layer)), default=0)
    _all_steps(layers[start:])
    return layers[:start], layers[start:]


def refine_decoder(refine: RefineNetwork) -> list[Named]:
    """The layers between ``RefineNetwork.decode``'s inputs and its output, in order (its docstring)."""
    return _named("refine.attention_decoder", refine.attention_decoder) + _named("refine.merge", refine.merge)


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


def _region_back(step: Step, region: np.ndarray) -> np.ndarray:
    """The input pixels of one step that its output ``region`` (bool H×W) depends on."""
    scale, before, after = step
    for axis in (0, 1):
        region = _grow(region, before, after, axis)
    if scale > 1:                  # nearest upsampling repeats each input pixel scale × scale times
        height, width = region.shape
        region = region.reshape(height // scale, scale, width // scale, scale).any(axis=(1, 3))
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
    for step in reversed(_all_steps(refine_decoder(refine))):
        region = _region_back(step, region)
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


def _interval_back(step: Step, low: int, high: int, size: int) -> tuple[int, int, int]:
    """The input rows [low', high') and input size of one step whose output rows [low, high), of ``size``,
    depend on them (as ``_region_back``, for an interval)."""
    scale, before, after = step
    low, high = max(low - before, 0), min(high + after, size)
    return low // scale, -(-high // scale), size // scale


def window_back(layers: list[Named], window: Window) -> Window:
    """The input window ``layers`` (in order) need for ``window`` of their output."""
    top, bottom, height = window.top, window.bottom, window.height
    left, right, width = window.left, window.right, window.width
    for step in reversed(_all_steps(layers)):
        top, bottom, height = _interval_back(step, top, bottom, height)
        left, right, width = _interval_back(step, left, right, width)
    return Window(top, bottom, left, right, height, width)


def on_window(run: Callable[..., paddle.Tensor], inputs: list[paddle.Tensor], layers: list[Named],
              window: Window) -> paddle.Tensor:
    """``run(*inputs)`` over ``window`` of its output, placed in a zero map of the full size, computed from
    the inputs' ``window_back`` alone. ``run`` must reach its inputs (all of one size) only through
    ``layers``, in order, and pointwise steps. Exact: each layer spoils only the rim of its input that lies
    inside the map (at the map's own edges its padding — zeros, or the mirror of padding=SYMMETRIC/REFLECT,
    which reaches as far as the zeros' — is the full map's), and the input window includes every such rim."""
    source = window_back(layers, window)
    output = run(*(source.crop(x) for x in inputs))
    scale = window.height // source.height
    top, left = window.top - source.top * scale, window.left - source.left * scale
    return window.place(output[:, :, top:top + window.bottom - window.top, left:left + window.right - window.left])


def _sequence(layers: list[Named], x: paddle.Tensor) -> paddle.Tensor:
    for _, layer in layers:
        x = layer(x)
    return x


def fill_holes(generator: InpaintGenerator, x: paddle.Tensor, mask: paddle.Tensor, holes: np.ndarray | None = None
               ) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Stage 2 (with its attention offsets) of the holed ``x`` exactly as ``generator`` computes it over
    the holes' bounding box, and 0 outside it; the offsets only where ``hole_reach`` keeps them. The
    windows are planned on the host from ``holes``, ``mask``'s host copy (read back from the device
    when not given: a synchronisation on a GPU)."""
    if holes is None:
        holes = mask.numpy()
    coarse, refine = generator.coarse, generator.refine
    front, decoder = coarse_decoder(coarse)
    needed = hole_reach(refine, holes)
    window = hole_window(holes)
    if window is None:
        return generator(x, mask, needed, holes)[1:]
    features = _sequence(front, with_mask_channels(x, mask))
    x_stage1 = on_window(lambda f: coarse.output(_sequence(decoder, f)), [features], decoder, window)
    hallucinated, features = refine.encode(generator.paste(x, x_stage1, mask), mask)
    attended, offsets = refine.attend(features, mask, needed, holes)
    return on_window(refine.decode, [hallucinated, attended], refine_decoder(refine), window), offsets
