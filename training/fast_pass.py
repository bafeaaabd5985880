"""The critic steps' generator pass on the CPU, compiled: the largest share of a CPU training iteration.

Each critic step completes its batch with the generator, without gradients, and the critics then see
stage 2 only inside the hole (``algorithm.complete``). So the pass can run like inference: the convolution
stages as Paddle Inference programs on oneDNN (``models.compiled``, 2–3× faster than Paddle's eager CPU
kernels), the contextual attention eagerly between them and only at the positions that can reach a hole
pixel of any image of the batch (``models.hole_reach``). Inside the holes the result is the eager
generator's up to float rounding (oneDNN sums in another order); outside them it is not computed
faithfully, and is discarded.

The generator changes once per iteration (its update comes after the critic steps), so the programs take
its new weights then — ``generator_changed()`` — at ~0.3 s each, instead of being traced again. The
programs are built once per batch shape; the last two shapes are kept. The GPU path stays eager.
"""
from __future__ import annotations

from collections import OrderedDict

import paddle

from models.compiled import GeneratorBack, GeneratorFront, Program
from models.generator import InpaintGenerator
from models.hole_reach import hole_reach

KEPT_SHAPES = 2


class CompiledCriticPass:
    """``(x_incomplete, mask) → x_stage2`` of ``generator`` for the critic steps, with ``threads`` math
    threads. Call ``generator_changed()`` after every generator update."""

    def __init__(self, generator: InpaintGenerator, threads: int = 1) -> None:
        self.generator, self.threads = generator, threads
        self.version = 0
        self.programs: OrderedDict[tuple[int, ...], tuple[int, Program, Program]] = OrderedDict()

    def generator_changed(self) -> None:
        self.version += 1

    def _programs(self, shape: tuple[int, ...]) -> tuple[Program, Program]:
        batch, _, height, width = shape
        if shape not in self.programs:
            features = [batch, 4 * self.generator.refine.cnum, height // 4, width // 4]
            front = Program(GeneratorFront(self.generator), [[batch, 3, height, width], [batch, 1, height, width]],
                            self.threads)
            back = Program(GeneratorBack(self.generator), [features, features], self.threads)
            self.programs[shape] = (self.version, front, back)
            while len(self.programs) > KEPT_SHAPES:
                self.programs.popitem(last=False)
        version, front, back = self.programs[shape]
        if version != self.version:
            front.refresh()
            back.refresh()
            self.programs[shape] = (self.version, front, back)
        self.programs.move_to_end(shape)
        return front, back

    def __call__(self, x: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        """``x``: B×3×H×W with the holes zeroed; ``mask``: B×1×H×W, 1 = hole. Stage 2 (exact inside the holes)."""
        front, back = self._programs(tuple(x.shape))
        mask_array = mask.numpy()
        with paddle.no_grad():
            hallucinated, features = front(x.numpy(), mask_array)
            attended, _ = self.generator.refine.attend(paddle.to_tensor(features), mask,
                                                       hole_reach(self.generator.refine, mask_array))
            (x_stage2,) = back(hallucinated, attended.numpy())
        return paddle.to_tensor(x_stage2)
