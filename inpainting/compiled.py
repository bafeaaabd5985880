"""The generator compiled for CPU inference: its convolution stages run as Paddle Inference programs on
oneDNN, the contextual attention between them stays eager.

Paddle's eager CPU convolutions reach ~10 GMAC/s on one core here; the same layers exported with
``paddle.jit`` and run by Paddle Inference with oneDNN reach ~95 GMAC/s on two. The attention cannot be
exported once and for all, because what it computes depends on the hole (which background patches are
usable, which positions reach the hole), so the network is cut around it:

* ``front``: the coarse network, the stage-1 paste, and the two refinement branches up to the attention;
* the attention (``RefineNetwork.attend`` on the positions ``hole_reach`` keeps), eager;
* ``back``: the attention decoder and the merge.

The stages are exported and run by Paddle Inference, built per input size (about 2 s each) and kept for
the last few sizes. (Training stays eager: tracing the critic steps' generator pass with
``paddle.jit.to_static`` on oneDNN was 2.3× faster but crashed Paddle 3.3.1 in a long test session.)
"""
from __future__ import annotations

import os
import tempfile
import warnings
from collections import OrderedDict

import numpy as np
import paddle
import paddle.nn as nn

from inpainting.hole_reach import hole_reach
from models.generator import InpaintGenerator

KEPT_SIZES = 4


class _Front(nn.Layer):
    def __init__(self, generator: InpaintGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: paddle.Tensor, mask: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        x_stage1 = self.generator.coarse(x, mask)
        return self.generator.refine.encode(self.generator.paste(x, x_stage1, mask), mask)


class _Back(nn.Layer):
    def __init__(self, generator: InpaintGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, hallucinated: paddle.Tensor, attended: paddle.Tensor) -> paddle.Tensor:
        return self.generator.refine.decode(hallucinated, attended)


class _Program:
    """One exported stage run by a Paddle Inference predictor on oneDNN."""

    def __init__(self, layer: nn.Layer, shapes: list[list[int]], threads: int) -> None:
        from paddle import inference
        specs = [paddle.static.InputSpec(shape, "float32") for shape in shapes]
        with tempfile.TemporaryDirectory(prefix="deepfill_") as folder:
            prefix = os.path.join(folder, "stage")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")       # Paddle's notes on tracing, not the user's business
                paddle.jit.save(paddle.jit.to_static(layer, input_spec=specs, full_graph=True), prefix)
            program = prefix + (".json" if os.path.exists(prefix + ".json") else ".pdmodel")
            config = inference.Config(program, prefix + ".pdiparams")
            config.disable_gpu()
            config.enable_mkldnn()
            config.set_cpu_math_library_num_threads(threads)
            if program.endswith(".json"):          # PIR programs (Paddle 3): memory reuse needs the new executor
                config.enable_new_ir(True)
                config.enable_new_executor(True)
            config.enable_memory_optim()
            config.disable_glog_info()
            self.predictor = inference.create_predictor(config)

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        for name, array in zip(self.predictor.get_input_names(), arrays):
            self.predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(array, np.float32))
        self.predictor.run()
        return [self.predictor.get_output_handle(name).copy_to_cpu()
                for name in self.predictor.get_output_names()]


class CompiledGenerator:
    """Stage-2 output of an ``InpaintGenerator`` (eval mode, batch 1) for inference on the CPU.

    Inside the hole the result equals the eager generator's up to float rounding (oneDNN sums in another
    order: ~1e-6 per layer); outside the hole it is not computed faithfully (only what reaches the hole is).
    """

    def __init__(self, generator: InpaintGenerator, threads: int | None = None) -> None:
        self.generator = generator
        self.threads = threads or len(os.sched_getaffinity(0))
        self.programs: OrderedDict[tuple[int, int], tuple[_Program, _Program]] = OrderedDict()

    def _programs(self, height: int, width: int) -> tuple[_Program, _Program]:
        key = (height, width)
        if key not in self.programs:
            channels = 4 * self.generator.refine.cnum
            features = [1, channels, height // 4, width // 4]
            with paddle.no_grad():
                front = _Program(_Front(self.generator), [[1, 3, height, width], [1, 1, height, width]],
                                 self.threads)
                back = _Program(_Back(self.generator), [features, features], self.threads)
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

