"""The pictures of an evaluation: per view a strip [input | model | each baseline | truth] under a header
naming the columns, and a sheet of the first strips under one header, so that the completions behind the
numbers can be looked at without the documentation beside them."""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from deepfill.utils.files import make_folder
from deepfill.utils.grids import with_titles
from deepfill.utils.image_io import write_image

MODEL = "model"
TITLES = {MODEL: "model", "mean_fill": "mean fill", "opencv_telea": "Telea", "opencv_ns": "Navier-Stokes",
          "biharmonic": "biharmonic", "patchmatch": "PatchMatch"}
SHEET_ROWS = 16


def grid_titles(methods: Iterable[str]) -> list[str]:
    """The column names of an evaluation strip: input, each method, truth."""
    return ["input", *(TITLES.get(name, name) for name in methods), "truth"]


def view_strip(given: np.ndarray, outputs: dict[str, np.ndarray], truth: np.ndarray) -> np.ndarray:
    """One view's row, uint8 RGB without a header: the input with its hole painted white, each method's
    completion (in the order of ``outputs``), the ground truth."""
    return np.concatenate([given, *outputs.values(), truth], axis=1)


def titled_sheet(strips: list[np.ndarray], titles: list[str]) -> np.ndarray:
    """``strips`` stacked under one header of ``titles``, uint8 RGB."""
    return with_titles(np.concatenate(strips, axis=0), titles)


def save_view_pictures(save_dir: str, stem: str, outputs: dict[str, np.ndarray], strip: np.ndarray,
                       titles: list[str]) -> None:
    """Each method's completion as ``save_dir/<method>/<stem>.png`` and the titled strip as
    ``save_dir/grid/<stem>.png`` (atomic writes: a full disk leaves the earlier views' pictures whole)."""
    for name, output in outputs.items():
        make_folder(os.path.join(save_dir, name))
        write_image(os.path.join(save_dir, name, f"{stem}.png"), output[:, :, ::-1])
    make_folder(os.path.join(save_dir, "grid"))
    write_image(os.path.join(save_dir, "grid", f"{stem}.png"), with_titles(strip, titles)[:, :, ::-1])


def save_sheet(save_dir: str, sheet: np.ndarray) -> None:
    """``save_dir/grids.png``: the overview sheet."""
    write_image(os.path.join(save_dir, "grids.png"), sheet[:, :, ::-1])
