"""Validation pictures as the model sees them: each picture gives ``val_windows`` views of
``image_size`` pixels, cut as training cuts them, so that the numbers measure the model at the scale it
learnt. A picture that cannot be read or fitted is "unreadable": the evaluation of a set skips it and says
so, rather than stopping hours into a run."""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from deepfill.data.dataset import evaluation_view
from deepfill.utils.cli import UserError
from deepfill.utils.config import Config
from deepfill.utils.image_io import read_image, to_rgb8


class View(NamedTuple):
    """One evaluated picture: ``name`` (the file name of its pictures in a save folder), ``image`` (uint8
    RGB, ``image_size`` square) and ``index``, its place in the list of views, which picks its hole
    (``holes.hole_source``), so that the same view gets the same hole whoever evaluates it."""
    name: str
    image: np.ndarray
    index: int


def load_views(path: str, place: int, config: Config) -> list[np.ndarray]:
    """The views of validation picture ``place`` as the model is fed them, uint8 RGB: the centre of the
    training view, or ``val_windows`` windows at positions drawn from (seed, place, window). A picture no
    view can be made of is as unreadable as a damaged file."""
    image = to_rgb8(read_image(path, config.max_image_pixels))
    rngs = [None] if config.val_windows == 1 else [np.random.default_rng([config.seed, place, window])
                                                   for window in range(config.val_windows)]
    try:
        return [evaluation_view(image, config.image_size, config.image_fit, rng) for rng in rngs]
    except Exception as error:      # cv2.error, MemoryError: a picture no view can be made of (1×10⁸ pixels)
        raise UserError(f"cannot use {path}: {type(error).__name__} while fitting its "
                        f"{image.shape[1]}x{image.shape[0]} pixels to {config.image_size}") from None


def view_stem(path: str, window: int, windows: int) -> str:
    """The file name (without extension) of a view's pictures in a save folder."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem if windows == 1 else f"{stem}_window{window}"


def picture_views(path: str, place: int, config: Config) -> list[View]:
    """The views of validation picture ``place`` (``path``), named and placed in the list of views."""
    windows = config.val_windows
    return [View(view_stem(path, window, windows), image, place * windows + window)
            for window, image in enumerate(load_views(path, place, config))]


def read_views(paths: list[str], config: Config) -> tuple[list[View], list[str]]:
    """The views of every readable picture of ``paths``, and the unreadable ones (not fatal: named in
    the result). For a caller that evaluates the same views many times (validation during training):
    read them once, keep them in memory."""
    views, skipped = [], []
    for place, path in enumerate(paths):
        try:
            views.extend(picture_views(path, place, config))
        except UserError:
            skipped.append(path)
    return views, skipped


def load_truth(path: str, config: Config) -> np.ndarray:
    """Validation picture ``path``'s (first) view as the model is fed it, uint8 RGB."""
    return load_views(path, 0, config)[0]


def check_readable(paths: list[str], config: Config) -> None:
    """Refuse, before any work, a set in which no image can be read (reading up to the first good one)."""
    problems = []
    for path in paths:
        try:
            load_truth(path, config)
            return
        except UserError as error:
            problems.append(str(error))
    raise UserError(f"none of the {len(paths)} images can be read (first: {problems[0]})")


def check_stems(paths: list[str]) -> None:
    """A save folder names results after the input; refuse two inputs that would share a name."""
    seen: dict[str, str] = {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in seen:
            raise UserError(f"{seen[stem]} and {path} would both be saved as {stem}.png; "
                            "rename one or evaluate them separately")
        seen[stem] = path
