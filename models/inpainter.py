"""Inference with a trained generator on one picture of any size, as the official ``test.py`` does it.

The image goes in as [-1, 1] in the checkpoint's channel order, with the hole zeroed; the stage-2 result is
pasted into the hole. Sides that are not multiples of 8 are padded by mirroring (the padding is marked as
known context) and cropped back, instead of being cut off as in the official script.
"""
from __future__ import annotations

import os

import numpy as np
import paddle

from models.compiled import CompiledGenerator
from models.generator import InpaintGenerator
from utils.cli import UserError
from utils.flow import flow_to_color
from utils.image_io import to_uint8

MULTIPLE = 8
BYTES_PER_PIXEL = 1800  # peak memory grows linearly with the area since the attention is chunked (measured
                        # on CPU: 1.2 GB at 512², 2.4 GB at 1024², 7.4 GB at 2048², incl. ~0.3 GB for Paddle)


def needed_bytes(height: int, width: int) -> int:
    """Rough peak memory to complete one picture of this size."""
    return BYTES_PER_PIXEL * height * width


def available_bytes() -> int | None:
    """Memory free for this run: the GPU's total memory, or the CPU's available memory (Linux)."""
    if paddle.device.get_device().startswith("gpu"):
        return paddle.device.cuda.get_device_properties().total_memory
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def pick_device(requested: str = "auto", all_cpu_cores: bool = False) -> str:
    """``auto`` → the first GPU when Paddle was built with CUDA and sees one, else the CPU.

    Paddle's CPU math library runs on one thread by default. ``all_cpu_cores`` lets inference use every
    core (the attention's matrix products run ~2× faster on two); training leaves it off, because with
    more threads Paddle's CPU optimiser step slows every later forward pass down ~3×.
    """
    if requested == "auto":
        has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        requested = "gpu" if has_gpu else "cpu"
    try:
        place = paddle.set_device(requested)
    except (ValueError, RuntimeError) as error:
        raise UserError(f"cannot use device {requested!r}: {error}".splitlines()[0]) from None
    if all_cpu_cores and requested == "cpu" and hasattr(paddle, "base"):
        paddle.base.core.set_num_threads(len(os.sched_getaffinity(0)))
    return place


class Inpainter:
    """Wraps a generator in eval mode; call it with an 8-bit RGB image and a boolean hole mask.

    Only what reaches the hole is computed (``hole_only``). On the CPU the convolutions run compiled
    (``CompiledGenerator``, ~5× faster) unless ``compiled=False``.
    """

    def __init__(self, generator: InpaintGenerator, channel_order: str = "RGB",
                 compiled: bool | None = None) -> None:
        self.generator = generator
        self.generator.eval()
        self.channel_order = channel_order
        if compiled is None:
            compiled = paddle.device.get_device() == "cpu"
        self.compiled = CompiledGenerator(generator) if compiled else None

    def stage2(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, paddle.Tensor]:
        """The generator's stage-2 output (valid inside the hole) and offsets for NCHW arrays."""
        if self.compiled is not None:
            return self.compiled(x, mask)
        with paddle.no_grad():
            _, x_stage2, offsets = self.generator(paddle.to_tensor(x), paddle.to_tensor(mask), hole_only=True)
        return x_stage2.numpy(), offsets

    def __call__(self, image_rgb: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fill ``hole`` (HxW bool) in ``image_rgb`` (HxWx3 uint8).

        Returns the completed image (uint8 RGB, equal to the input outside the hole) and the attention
        flow picture (uint8 RGB, same size).
        """
        height, width = hole.shape
        if not hole.any():
            return image_rgb.copy(), np.full_like(image_rgb, 255)
        needed, free = needed_bytes(height, width), available_bytes()
        if free is not None and needed > free:
            raise UserError(f"a {width}x{height} picture needs about {needed / 2 ** 30:.0f} GiB but "
                            f"{free / 2 ** 30:.0f} GiB are available; downscale it or crop around the hole")
        pad = ((0, -height % MULTIPLE), (0, -width % MULTIPLE))
        image = np.pad(image_rgb, pad + ((0, 0),), mode="symmetric")
        mask = np.pad(hole, pad, mode="constant")
        if self.channel_order == "BGR":
            image = image[:, :, ::-1]
        m = mask[None, None].astype(np.float32)
        x = image.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1.0
        x_stage2, offsets = self.stage2(x * (1.0 - m), m)
        result = x_stage2[0].transpose(1, 2, 0)
        if self.channel_order == "BGR":
            result = result[:, :, ::-1]
        result = to_uint8(result)[:height, :width]
        completed = np.where(hole[:, :, None], result, image_rgb)
        scale = image.shape[0] // offsets.shape[2]
        flow = flow_to_color(offsets.numpy()[0]).repeat(scale, axis=0).repeat(scale, axis=1)
        return completed, flow[:height, :width]
