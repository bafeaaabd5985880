"""A part of a network exported once and run by Paddle Inference on oneDNN — the CPU's fast path.

Paddle's eager CPU convolutions are im2col + MKL products (~35 GMAC/s on one core of the EPYC this was
written on, MKL held to AVX2 on AMD); the same layers exported with ``paddle.jit`` and run by Paddle
Inference go through oneDNN (AVX-512 here), 2–3× faster. Eager mode never uses oneDNN in Paddle 3.3
(``FLAGS_use_mkldnn`` / ``FLAGS_use_onednn`` change nothing there), and Paddle Inference is forward only,
so only passes without gradients can use it: inference, and the generator pass of training's critic steps.

A predictor keeps its own copy of the weights. ``refresh()`` re-saves the layer's current weights next to
the program exported once and builds a new predictor from them (~0.3 s), which is how training keeps up
with a generator that changes between iterations without tracing the network again.
"""
from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np
import paddle
import paddle.nn as nn

from models.generator import InpaintGenerator
from utils.device import restore_cpu_threads



def create_predictor(program: str, params: str, threads: int, gpu: int | None = None):
    """A Paddle Inference predictor for a saved program: on the CPU with oneDNN and ``threads`` math
    threads, or on GPU ``gpu``; memory reuse on (PIR programs, Paddle 3, need the new executor for it)."""
    from paddle import inference
    config = inference.Config(program, params)
    if gpu is not None:
        config.enable_use_gpu(256, gpu)
    else:
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads)
    if program.endswith(".json"):
        config.enable_new_ir(True)
        config.enable_new_executor(True)
    config.enable_memory_optim()
    config.disable_glog_info()
    return inference.create_predictor(config)

class Program:
    """``layer`` traced for inputs of ``shapes`` (float32), run by a Paddle Inference predictor on oneDNN
    with ``threads`` math threads. Call it with NumPy arrays; it returns the outputs as arrays."""

    def __init__(self, layer: nn.Layer, shapes: list[list[int]], threads: int) -> None:
        self.threads = threads
        self.folder = tempfile.TemporaryDirectory(prefix="deepfill_")   # removed with the object
        self.prefix = os.path.join(self.folder.name, "stage")
        specs = [paddle.static.InputSpec(shape, "float32") for shape in shapes]
        with paddle.no_grad():
            self.static = paddle.jit.to_static(layer, input_spec=specs, full_graph=True)
        self.refresh()

    def refresh(self) -> None:
        """Take the layer's current weights (the trace is kept: only the weights are written again)."""
        with warnings.catch_warnings(), paddle.no_grad():
            warnings.simplefilter("ignore")           # Paddle's notes on tracing, not the user's business
            paddle.jit.save(self.static, self.prefix)
        program = self.prefix + (".json" if os.path.exists(self.prefix + ".json") else ".pdmodel")
        self.predictor = create_predictor(program, self.prefix + ".pdiparams", self.threads)
        restore_cpu_threads()

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        for name, array in zip(self.predictor.get_input_names(), arrays):
            self.predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(array, np.float32))
        self.predictor.run()
        restore_cpu_threads()
        return [self.predictor.get_output_handle(name).copy_to_cpu()
                for name in self.predictor.get_output_names()]


class GeneratorFront(nn.Layer):
    """The generator up to its contextual attention: the coarse network, the stage-1 paste and the two
    refinement branches. Returns (hallucinated features, features to match)."""

    def __init__(self, generator: InpaintGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: paddle.Tensor, mask: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        x_stage1 = self.generator.coarse(x, mask)
        return self.generator.refine.encode(self.generator.paste(x, x_stage1, mask), mask)


class GeneratorBack(nn.Layer):
    """The generator after its contextual attention: the attention decoder and the merge → stage 2."""

    def __init__(self, generator: InpaintGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, hallucinated: paddle.Tensor, attended: paddle.Tensor) -> paddle.Tensor:
        return self.generator.refine.decode(hallucinated, attended)
