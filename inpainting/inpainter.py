"""Inference with a trained generator on one picture of any size, as the official ``test.py`` does it.

The picture goes in through the pixel boundary (``utils.pixels``: [-1, 1] in the checkpoint's channel
order), with the hole zeroed; the stage-2 result is pasted into the hole. Sides that are not multiples of 8
are padded by mirroring (the padding is marked as known context) and cropped back, instead of being cut off
as in the official script. Only what reaches the hole is computed (``hole_reach``).
"""
from __future__ import annotations

import numpy as np
import paddle

from inpainting.compiled import CompiledGenerator
from models.hole_reach import hole_reach
from models.generator import InpaintGenerator
from utils.errors import UserError
from utils.device import available_bytes
from utils.flow import flow_to_color
from utils.pixels import composite, from_model, hole_to_model, to_model

MULTIPLE = 8
BYTES_PER_PIXEL = 1800  # peak memory grows linearly with the area since the attention is chunked (measured
                        # on CPU: 1.2 GB at 512², 2.4 GB at 1024², 7.4 GB at 2048², incl. ~0.3 GB for Paddle)


def needed_bytes(height: int, width: int) -> int:
    """Rough peak memory to complete one picture of this size."""
    return BYTES_PER_PIXEL * height * width


class TooLarge(UserError):
    """A picture whose completion would not fit in memory (the app answers it with 413, not 400)."""


def check_memory(height: int, width: int) -> None:
    """Refuse a picture whose completion would not fit in the memory available."""
    needed, free = needed_bytes(height, width), available_bytes()
    if free is not None and needed > free:
        raise TooLarge(f"a {width}x{height} picture needs about {needed / 2 ** 30:.0f} GiB but "
                       f"{free / 2 ** 30:.0f} GiB are available; fill it with the hd-strategy crop or resize, "
                       "or downscale it")


class Inpainter:
    """Wraps a generator in eval mode; call it with an 8-bit RGB image and a boolean hole mask.

    On the CPU the convolutions run compiled (``CompiledGenerator``, ~5× faster) unless ``compiled=False``.
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
            _, x_stage2, offsets = self.generator(paddle.to_tensor(x), paddle.to_tensor(mask),
                                                  hole_reach(self.generator.refine, mask))
        return x_stage2.numpy(), offsets

    def __call__(self, image_rgb: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fill ``hole`` (HxW bool) in ``image_rgb`` (HxWx3 uint8).

        Returns the completed image (uint8 RGB, equal to the input outside the hole) and the attention
        flow picture (uint8 RGB, same size).
        """
        height, width = hole.shape
        if not hole.any():
            return image_rgb.copy(), np.full_like(image_rgb, 255)
        check_memory(height, width)
        pad = ((0, -height % MULTIPLE), (0, -width % MULTIPLE))
        mask = hole_to_model(np.pad(hole, pad, mode="constant"))
        x = to_model(np.pad(image_rgb, pad + ((0, 0),), mode="symmetric"), self.channel_order)
        x_stage2, offsets = self.stage2(x * (1.0 - mask), mask)
        result = from_model(x_stage2, self.channel_order)[0, :height, :width]
        scale = x.shape[2] // offsets.shape[2]
        flow = flow_to_color(offsets.numpy()[0]).repeat(scale, axis=0).repeat(scale, axis=1)
        return composite(result, image_rgb, hole), flow[:height, :width]
