"""The Python API's ``Inpainter``: numpy pictures in, numpy pictures out, any checkpoint or pretrained name.

A thin layer over ``deepfill.inpainting.filler.Filler`` (which owns the pre- and post-processing through the
pixel boundary ``deepfill.utils.pixels``): it loads the model, picks the device, and turns the many ways a caller may
hold a picture and a mask (a PIL image, a 0/1 or 0/255 array, booleans, a mask picture with colour
channels) into the one form the model takes — refusing, with a clear message, what it cannot mean.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from deepfill.inpainting.filler import Filler
from deepfill.models import kernels
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models.checkpoint_file import Checkpoint
from deepfill.models.spec import ModelSpec
from deepfill.utils.device import pick_device
from deepfill.utils.errors import UserError
from deepfill.utils.image_io import mask_from_image


def as_image(image: object, what: str = "image") -> np.ndarray:
    """An 8-bit RGB picture (H×W×3; a PIL RGB image works too), contiguous; anything else is refused."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise UserError(f"{what} must be uint8 RGB of shape (H, W, 3), got {array.dtype} {array.shape} (for "
                        "greyscale use np.repeat(grey[..., None], 3, axis=2), for RGBA image[..., :3])")
    return np.ascontiguousarray(array)


def as_hole(mask: object, shape: tuple[int, int], what: str = "mask") -> np.ndarray:
    """The hole as an H×W boolean array: True, white (> half the range, any colour channel, 8 or 16 bit),
    1 in a 0/1 integer mask, or ≥ 0.5 in a float mask is the hole."""
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array.max(axis=2) if array.shape[2] < 4 else array[:, :, :3].max(axis=2)
    if array.ndim != 2 or array.shape != tuple(shape):
        raise UserError(f"{what} has shape {array.shape} but the image is {shape[0]}x{shape[1]} (H, W)")
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return array >= 0.5
    if np.issubdtype(array.dtype, np.integer):
        return array > 0 if array.max(initial=0) <= 1 else mask_from_image(array)
    raise UserError(f"{what} must be boolean or numeric, got {array.dtype}")


class Inpainter:
    """A DeepFill v1 model ready to fill holes: ``inpainter(image, mask)`` → the completed picture.

    Build it with ``Inpainter.from_pretrained("places2")`` (or any checkpoint path ``inpaint.py`` takes).
    Pictures are uint8 RGB, H×W×3, any size; the result has the same size and equals the input outside the
    hole. The channel order the weights expect (BGR for the official ones) is handled inside.
    """

    def __init__(self, checkpoint: Checkpoint, device: str = "auto", cpu_precision: str = "float32") -> None:
        self.device = pick_device(device)
        kernels.choose(precision=cpu_precision)
        self.checkpoint_path = checkpoint.path
        self.spec: ModelSpec = checkpoint.spec
        self._filler = Filler.from_checkpoint(checkpoint)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str = "auto", cpu_precision: str = "float32"
                        ) -> "Inpainter":
        """Load ``places2``, ``celeba``, ``celebahq``, ``imagenet`` (DeepFill v1) or ``places2_v2``,
        ``celebahq_v2`` (DeepFill v2; downloaded, converted and cached on first use), or a checkpoint file /
        training run folder. ``device``: auto, cpu, gpu or gpu:N. ``cpu_precision``: float32 (the official
        arithmetic) or bfloat16, faster on processors with bfloat16 instructions (``kernels.choose``)."""
        return cls(load_checkpoint(os.fspath(name_or_path)), device, cpu_precision)

    def __call__(self, image: object, mask: object) -> np.ndarray:
        """Fill the hole ``mask`` marks in ``image``; returns uint8 RGB of the image's size."""
        picture = as_image(image)
        completed, _ = self._filler(picture, as_hole(mask, picture.shape[:2]))
        return completed

    def batch(self, images: Sequence[object], masks: Sequence[object]) -> list[np.ndarray]:
        """Fill each image's own hole (sizes may differ); everything is checked before any work.

        Each picture is completed on its own, as one call would: the official graph's batches share the
        first image's hole in the attention, which would be wrong for the others."""
        if len(images) != len(masks):
            raise UserError(f"{len(images)} images but {len(masks)} masks")
        pictures = [as_image(image, f"image {i}") for i, image in enumerate(images)]
        holes = [as_hole(mask, picture.shape[:2], f"mask {i}") for i, (mask, picture)
                 in enumerate(zip(masks, pictures))]
        return [self._filler(picture, hole)[0] for picture, hole in zip(pictures, holes)]

    def __repr__(self) -> str:
        return f"Inpainter({self.checkpoint_path!r}: {self.spec.describe()}, device {self.device})"
