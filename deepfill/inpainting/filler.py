"""Inference with a trained generator on one picture of any size, as the official ``test.py`` does it.

The picture goes in through the pixel boundary (``deepfill.utils.pixels``: [-1, 1] in the checkpoint's channel
order), with the hole zeroed; the stage-2 result is pasted into the hole. Sides that are not multiples of 8
are padded by mirroring (the padding is marked as known context) and cropped back, instead of being cut off
as in the official script. The generator itself runs in one of the backends of ``deepfill.inpainting.runners``
(eagerly, computing only what reaches the hole, or an exported model's full graph).
"""
from __future__ import annotations

import numpy as np

from deepfill.inpainting.runners import EagerRunner, Runner
from deepfill.models.checkpoint_file import Checkpoint
from deepfill.models.generator import InpaintGenerator
from deepfill.utils.errors import UserError
from deepfill.utils.device import available_bytes
from deepfill.utils.flow import flow_to_color
from deepfill.utils.pixels import composite, from_model, hole_to_model, to_model

MULTIPLE = 8


class TooLarge(UserError):
    """A picture whose completion would not fit in memory (the app answers it with 413, not 400)."""


def check_memory(height: int, width: int, needed: int) -> None:
    """Refuse a picture whose completion (``needed`` bytes) would not fit in the memory available."""
    free = available_bytes()
    if free is not None and needed > free:
        raise TooLarge(f"a {width}x{height} picture needs about {needed / 2 ** 30:.0f} GiB but "
                       f"{free / 2 ** 30:.0f} GiB are available; fill it with the hd-strategy crop or resize, "
                       "or downscale it")


class Filler:
    """Fills holes in pictures with a generator or an exported model; call it with an 8-bit RGB image and
    a boolean hole mask. The commands and the app use it directly; the Python API's ``deepfill.Inpainter``
    wraps it with loading, device choice and lenient input types.

    ``model`` is an ``InpaintGenerator``, run eagerly (``EagerRunner``; on the kernels the entry point chose,
    ``deepfill.models.kernels``: oneDNN's on the CPU), or a runner from ``deepfill.inpainting.runners`` (an exported
    model).
    """

    def __init__(self, model: InpaintGenerator | Runner, channel_order: str = "RGB",
                 training_size: int = 256) -> None:
        if isinstance(model, InpaintGenerator):
            model = EagerRunner(model)
        self.runner = model
        self.channel_order = channel_order
        self.training_size = training_size   # the side of the model's training pictures: the hd-strategy's windows

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> "Filler":
        """The checkpoint's generator, fed in its channel order, with the hd-strategy's windows sized from
        its training pictures."""
        return cls(checkpoint.build_generator(), checkpoint.spec.channel_order,
                   training_size=checkpoint.spec.image_size)

    def check_fits(self, height: int, width: int) -> None:
        """Refuse, before any work, a picture of this size that this model could not complete in memory."""
        padded = (height + -height % MULTIPLE, width + -width % MULTIPLE)
        check_memory(height, width, self.runner.needed_bytes(*padded))

    def stage2(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's stage-2 output (valid inside the hole) and offsets for NCHW arrays."""
        return self.runner(x, mask)

    def __call__(self, image_rgb: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fill ``hole`` (HxW bool) in ``image_rgb`` (HxWx3 uint8).

        Returns the completed image (uint8 RGB, equal to the input outside the hole) and the attention
        flow picture (uint8 RGB, same size).
        """
        height, width = hole.shape
        if not hole.any():
            return image_rgb.copy(), np.full_like(image_rgb, 255)
        self.check_fits(height, width)
        pad = ((0, -height % MULTIPLE), (0, -width % MULTIPLE))
        mask = hole_to_model(np.pad(hole, pad, mode="constant"))
        x = to_model(np.pad(image_rgb, pad + ((0, 0),), mode="symmetric"), self.channel_order)
        x_stage2, offsets = self.stage2(x * (1.0 - mask), mask)
        result = from_model(x_stage2, self.channel_order)[0, :height, :width]
        scale = x.shape[2] // offsets.shape[2]
        flow = flow_to_color(offsets[0]).repeat(scale, axis=0).repeat(scale, axis=1)
        return composite(result, image_rgb, hole), flow[:height, :width]
