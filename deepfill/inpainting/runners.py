"""The backends that compute the generator's stage-2 output for ``Filler``: one interface, three ways.

Every runner is called with NCHW float32 arrays — ``x`` N×3×H×W on [-1, 1] in the model's channel order,
the hole zeroed, ``mask`` N×1×H×W (or 1×1×H×W), 1 = hole, sides multiples of 8 — and returns
``(x_stage2, offsets)`` as numpy arrays. The picture handling around it (padding, channel order, the
composite, the flow picture) is ``Filler``'s alone, so every backend fills a picture the same way.

* ``eager``: Paddle's eager kernels (oneDNN on the CPU), only what reaches the hole (``fill_holes``);
* ``paddle-inference`` / ``onnxruntime``: an exported folder (``deepfill/inpainting/export.py``), the official full
  graph, run by Paddle Inference or ONNX Runtime without the training code.
"""
from __future__ import annotations

import os
from typing import Protocol

import numpy as np
import paddle

from deepfill.models.hole_reach import fill_holes
from deepfill.models.generator import InpaintGenerator
from deepfill.utils.device import restore_cpu_threads
from deepfill.utils import onednn
from deepfill.utils.errors import UserError
from deepfill.utils.streams import captured_output

BACKENDS = ("eager", "paddle-inference", "onnxruntime")
MULTIPLE = 8
# Peak memory of the eager runner per pixel, Paddle's own included, for refusing a picture that would not fit
# before any work (``Filler.check_fits``): it grows linearly with the area since the attention is chunked;
# an upper bound of the peaks in docs/performance.md.
BYTES_PER_PIXEL = 1800
# oneDNN work buffers kept between layers in one-shot inference: small, so that the blocked copies are not
# held while the attention reaches the peak (``deepfill.utils.onednn``; docs/performance.md, Work buffers).
INFERENCE_KEPT_BUFFER_BYTES = 4 << 20
GRAPH_BYTES_PER_PIXEL = 1000   # an exported full graph: this per pixel, a few (H·W/64)² score matrices
GRAPH_BASE_BYTES = 2 ** 29      # and the runtime itself (``_ExportedRunner.needed_bytes``)


class Runner(Protocol):
    """What ``Filler`` needs of a backend."""

    name: str

    def __call__(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x_stage2, offsets)`` for NCHW ``x`` and ``mask``."""

    def needed_bytes(self, height: int, width: int) -> int:
        """Rough peak memory for one picture of this size."""


def _threads() -> int:
    return len(os.sched_getaffinity(0))


class EagerRunner:
    """The generator on Paddle's eager kernels, computing only what reaches the hole (``fill_holes``)."""

    name = "eager"

    def __init__(self, generator: InpaintGenerator, lean_buffers: bool = True) -> None:
        """``lean_buffers``: keep only small oneDNN work buffers between layers, as one-shot inference
        wants; a training process validating its generator keeps training's setting (False)."""
        self.generator = generator
        self.generator.eval()
        if lean_buffers:
            onednn.keep_buffers_up_to(INFERENCE_KEPT_BUFFER_BYTES)

    def __call__(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with paddle.no_grad():
            x_stage2, offsets = fill_holes(self.generator, paddle.to_tensor(x), paddle.to_tensor(mask), mask)
        return x_stage2.numpy(), offsets.numpy()

    def needed_bytes(self, height: int, width: int) -> int:
        """Rough peak memory for one picture of this size."""
        return BYTES_PER_PIXEL * height * width


class _ExportedRunner:
    """What both runtimes of an exported folder share: the input contract and the memory estimate."""

    score_copies = 5           # (H·W/64)² float32 score matrices alive at the peak

    def check(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if x.ndim != 4 or x.shape[1] != 3 or mask.ndim != 4 or mask.shape[1] != 1:
            raise UserError(f"an exported model takes N x 3 x H x W images and N x 1 x H x W masks, got "
                            f"{list(x.shape)} and {list(mask.shape)}")
        if x.shape[2] % MULTIPLE or x.shape[3] % MULTIPLE:
            raise UserError(f"an exported model takes sides that are multiples of {MULTIPLE}, got "
                            f"{x.shape[3]}x{x.shape[2]}")
        if mask.shape[2:] != x.shape[2:] or mask.shape[0] not in (1, x.shape[0]):
            raise UserError(f"the mask {list(mask.shape)} does not fit the images {list(x.shape)} (batch 1 "
                            "or one mask per image, same height and width)")
        return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(mask, np.float32)

    def needed_bytes(self, height: int, width: int) -> int:
        """The full graph holds whole (H·W/64)² score matrices, as the official graph does."""
        positions = height * width // (MULTIPLE * MULTIPLE)
        return self.score_copies * 4 * positions ** 2 + GRAPH_BYTES_PER_PIXEL * height * width + GRAPH_BASE_BYTES


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


class PaddleInferenceRunner(_ExportedRunner):
    """An exported Paddle program run by Paddle Inference (oneDNN on the CPU, CUDA on a GPU)."""

    name = "paddle-inference"

    def __init__(self, folder: str, files: dict) -> None:
        program, params = (os.path.join(folder, files.get(key, "")) for key in ("program", "params"))
        for path in (program, params):
            if not os.path.isfile(path):
                raise UserError(f"the exported model lacks {path}")
        device = paddle.device.get_device()
        gpu = int(device.partition(":")[2] or 0) if device.startswith("gpu") else None
        self.predictor = create_predictor(program, params, _threads(), gpu)
        restore_cpu_threads()
        self.first_run = True

    def __call__(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for name, array in zip(("image", "mask"), self.check(x, mask)):
            self.predictor.get_input_handle(name).copy_from_cpu(array)
        if self.first_run:
            with captured_output():            # oneDNN's passes print their checks on the first run
                self.predictor.run()
            self.first_run = False
        else:
            self.predictor.run()
        restore_cpu_threads()       # the predictor leaves OpenMP at one thread for later eager work
        x_stage2, offsets = (self.predictor.get_output_handle(name).copy_to_cpu()
                             for name in self.predictor.get_output_names())
        return x_stage2, offsets


class OnnxRuntimeRunner(_ExportedRunner):
    """An exported ONNX model run by ONNX Runtime (CUDA when Paddle runs on a GPU and ORT has it)."""

    name = "onnxruntime"
    score_copies = 10          # its memory planner keeps about twice as many as Paddle Inference

    def __init__(self, path: str) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise UserError("this exported model is ONNX, which needs ONNX Runtime: pip install onnxruntime "
                            "(or pip install .[onnx] in the project)") from None
        if not os.path.isfile(path):
            raise UserError(f"the exported model lacks {path}")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3                  # errors only: its notes are not the user's business
        providers = ["CPUExecutionProvider"]
        if (paddle.device.get_device().startswith("gpu")
                and "CUDAExecutionProvider" in onnxruntime.get_available_providers()):
            providers.insert(0, "CUDAExecutionProvider")
        self.session = onnxruntime.InferenceSession(path, options, providers=providers)

    def __call__(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.check(x, mask)
        x_stage2, offsets = self.session.run(["x_stage2", "offsets"], {"image": image, "mask": mask})
        return x_stage2, offsets
