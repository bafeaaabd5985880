"""The generator compiled for CPU inference: its convolution stages run as Paddle Inference programs on
oneDNN, the contextual attention between them stays eager.

Paddle's eager CPU convolutions reach ~10 GMAC/s on one core here; the same layers exported with
``paddle.jit`` and run by Paddle Inference with oneDNN reach ~95 GMAC/s on two. The attention cannot be
exported once and for all, because what it computes depends on the hole (which background patches are
usable, which positions reach the hole), so the network is cut around it:

* ``front``: the coarse network, the stage-1 paste, and the two refinement branches up to the attention;
* the attention (``RefineNetwork.attend`` on the positions ``hole_reach`` keeps), eager;
* ``back``: the attention decoder and the merge.

The stages are exported and run by Paddle Inference (``models.compiled.Program``), built per input size
(about 2 s each) and kept for the last few sizes.
"""
from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np
import paddle

from models.compiled import GeneratorBack, GeneratorFront, Program
from models.generator import InpaintGenerator
from models.hole_reach import hole_reach

KEPT_SIZES = 4


class CompiledGenerator:
    """Stage-2 output of an ``InpaintGenerator`` (eval mode, batch 1) for inference on the CPU.

    Inside the hole the result equals the eager generator's up to float rounding (oneDNN sums in another
    order: ~1e-6 per layer); outside the hole it is not computed faithfully (only what reaches the hole is).
    """

    def __init__(self, generator: InpaintGenerator, threads: int | None = None) -> None:
        self.generator = generator
        self.threads = threads or len(os.sched_getaffinity(0))
        self.programs: OrderedDict[tuple[int, int], tuple[Program, Program]] = OrderedDict()

    def _programs(self, height: int, width: int) -> tuple[Program, Program]:
        key = (height, width)
        if key not in self.programs:
            channels = self.generator.refine.attention_channels
            features = [1, channels, height // 4, width // 4]
            with paddle.no_grad():
                front = Program(GeneratorFront(self.generator), [[1, 3, height, width], [1, 1, height, width]],
                                 self.threads)
                back = Program(GeneratorBack(self.generator), [features, features], self.threads)
            self.programs[key] = (front, back)
            while len(self.programs) > KEPT_SIZES:
                self.programs.popitem(last=False)
        self.programs.move_to_end(key)
        return self.programs[key]

    def __call__(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, paddle.Tensor]:
        """``x``: 1×3×H×W on [-1, 1] with the hole zeroed; ``mask``: 1×1×H×W, 1 = hole.
        Returns (x_stage2 as an array, attention offsets)."""
        front, back = self._programs(x.shape[2], x.shape[3])
        hallucinated, features = front(x, mask)
        with paddle.no_grad():
            attended, offsets = self.generator.refine.attend(paddle.to_tensor(features), paddle.to_tensor(mask),
                                                             hole_reach(self.generator.refine, mask))
        (x_stage2,) = back(hallucinated, attended.numpy())
        return x_stage2, offsets

