"""The hole each validation view gets. A hole depends only on the view's place in the list of views (and
the seed), never on the method or the run, so every method and every evaluation of a set sees the same
holes and their numbers can be compared."""
from __future__ import annotations

import os
from typing import Callable

import cv2
import numpy as np

from deepfill.data.dataset import list_sources
from deepfill.data.masks import random_masks
from deepfill.utils.cli import UserError
from deepfill.utils.config import Config
from deepfill.utils.image_io import read_mask

HoleSource = Callable[[int], np.ndarray]


def box_hole(config: Config, index: int) -> np.ndarray:
    """The hole of validation view ``index``: the training recipe's box, drawn from (seed, index)."""
    rng = np.random.default_rng([config.seed, index])
    masks, _ = random_masks(rng, 1, config.image_size, config.hole_size, config.max_delta, per_image=True)
    return masks[0, 0] > 0.5


def free_form_hole(config: Config, index: int) -> np.ndarray:
    """The hole of validation view ``index`` for DeepFill v2's setting: the official v2
    ``brush_stroke_mask`` over the whole picture united with the box, drawn as v2's training draws them
    (mask type ``box_and_strokes``), from (seed, index) as ``box_hole`` is."""
    rng = np.random.default_rng([config.seed, index])
    masks, _ = random_masks(rng, 1, config.image_size, config.hole_size, config.max_delta, per_image=True,
                            kind="box_and_strokes")
    return masks[0, 0] > 0.5


def center_hole(image_size: int, hole_size: int) -> np.ndarray:
    """The paper's Table 1 hole: a ``hole_size`` square in the middle of the picture."""
    hole = np.zeros((image_size, image_size), bool)
    start = (image_size - hole_size) // 2
    hole[start:start + hole_size, start:start + hole_size] = True
    return hole


def file_hole(path: str, image_size: int, max_pixels: int | None = None) -> np.ndarray:
    """A mask file (white = hole) resized to the image with nearest neighbours; refused if it leaves
    nothing to fill or nothing to fill from."""
    mask = cv2.resize(read_mask(path, max_pixels).astype(np.uint8), (image_size, image_size),
                      interpolation=cv2.INTER_NEAREST) > 0
    if not mask.any():
        raise UserError(f"mask {path} has no hole at {image_size}x{image_size} (white marks the hole)")
    if mask.all():
        raise UserError(f"mask {path} covers the whole picture (white marks the hole, black the known part)")
    return mask


def hole_source(config: Config, count: int) -> tuple[HoleSource, int]:
    """The hole of each of ``count`` views by place (``config.val_mask``: box, center, free_form or a folder
    of mask files, view i taking the i-th), and the largest hole's pixel count (some baselines have a
    limit; for free_form strokes, which may reach anywhere, the picture's).

    Mask files are all read here, before any work, so that a short or broken mask set is refused at once.
    """
    mode = config.val_mask
    if mode in ("box", "center", "free_form"):
        if config.hole_size >= config.image_size:
            raise UserError(f"--mask {mode} needs hole_size < image_size, got {config.hole_size} and "
                            f"{config.image_size}")
        if mode == "center":
            hole = center_hole(config.image_size, config.hole_size)
            return (lambda index: hole), int(hole.sum())
        if mode == "free_form":
            return (lambda index: free_form_hole(config, index)), config.image_size ** 2
        return (lambda index: box_hole(config, index)), config.hole_size ** 2
    if not os.path.isdir(mode):
        raise UserError(f"--mask must be box, center, free_form or a folder of mask pictures; {mode!r} is none "
                        "of these")
    paths = list_sources(mode)
    if len(paths) < count:
        raise UserError(f"{mode} holds {len(paths)} masks for {count} views (view i takes mask i)")
    limit = config.max_image_pixels
    largest = max(int(file_hole(path, config.image_size, limit).sum()) for path in paths[:count])
    return (lambda index: file_hole(paths[index], config.image_size, limit)), largest
