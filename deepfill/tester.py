"""The paper's metrics (Table 1: mean l1, mean l2, PSNR, TV loss) plus SSIM, defined once here, and the
classical baselines, so that test.py scores the model and every baseline with the same code.

Images are float arrays on [0, 1], HxWxC, of any size. Every metric is computed per image, over the whole
image and over the hole only, then averaged over the set. The paper does not say how its TV is normalised;
here it is the mean over pixels of |∂x| + |∂y| in percent, and the ground truth's TV is reported beside it
so a reader can judge over-smoothing. PSNR and SSIM come from scikit-image; SSIM over the hole is the mean
of scikit-image's local SSIM map over the hole's pixels.

A metric that does not exist for an image is ``nan`` (a hole-only metric of an empty hole, SSIM of a
picture narrower than 3 pixels); PSNR of a perfect completion is ``+inf``. ``average`` leaves both out.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

METRICS = ("l1", "l2", "psnr", "tv", "ssim", "l1_hole", "l2_hole", "psnr_hole", "tv_hole", "ssim_hole")

BIHARMONIC_MAX_HOLE = 256 * 256
"""Largest hole (pixels) the biharmonic baseline is run on: its sparse solve grows faster than the hole
(docs/performance.md, Evaluation baselines)."""


def total_variation(image: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean of |I[i+1, j] − I[i, j]| + |I[i, j+1] − I[i, j]| over pixels (in ``region``) and channels, in %."""
    down = np.abs(image[1:, :-1] - image[:-1, :-1])
    right = np.abs(image[:-1, 1:] - image[:-1, :-1])
    variation = down + right
    if region is not None:
        variation = variation[region[:-1, :-1]]
    return float(variation.mean() * 100) if variation.size else 0.0


def psnr(truth: np.ndarray, output: np.ndarray) -> float:
    """10·log10(1 / mean squared error); +inf for identical inputs, nan for empty ones."""
    if truth.size == 0:
        return math.nan
    if np.array_equal(truth, output):
        return math.inf
    return float(peak_signal_noise_ratio(truth, output, data_range=1.0))


def ssim(truth: np.ndarray, output: np.ndarray, hole: np.ndarray) -> tuple[float, float]:
    """SSIM over the whole image and over the hole. The 7-pixel window shrinks (odd, at least 3) to fit
    small pictures; below 3 pixels SSIM is undefined (nan)."""
    window = min(7, *truth.shape[:2])
    window -= 1 - window % 2
    if window < 3:
        return math.nan, math.nan
    whole, local = structural_similarity(truth, output, channel_axis=2, data_range=1.0, win_size=window,
                                         full=True)
    return float(whole), float(local[hole].mean()) if hole.any() else math.nan


def image_metrics(output: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    """All metrics (``METRICS``) of one completed image against its ground truth; ``hole`` is HxW bool."""
    error = output - truth
    inside = error[hole]
    ssim_whole, ssim_hole = ssim(truth, output, hole)
    empty = not inside.size
    return {
        "l1": float(np.abs(error).mean() * 100), "l2": float((error ** 2).mean() * 100),
        "psnr": psnr(truth, output), "tv": total_variation(output), "ssim": ssim_whole,
        "l1_hole": math.nan if empty else float(np.abs(inside).mean() * 100),
        "l2_hole": math.nan if empty else float((inside ** 2).mean() * 100),
        "psnr_hole": psnr(truth[hole], output[hole]),
        "tv_hole": math.nan if empty else total_variation(output, hole), "ssim_hole": ssim_hole,
    }


def average(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the set, leaving out undefined values (nan) and perfect PSNRs (+inf): the
    mean is +inf only when every defined value is, nan when none is defined."""
    result = {}
    for key in rows[0]:
        values = np.array([row[key] for row in rows], dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            result[key] = float(finite.mean())
        else:
            result[key] = math.inf if np.any(values == math.inf) else math.nan
    return result


def mean_fill(image_rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Baseline: the hole painted with the known pixels' mean colour (the floor any method must beat)."""
    result = image_rgb.copy()
    result[hole] = np.round(image_rgb[~hole].mean(axis=0)).astype(np.uint8)
    return result


def telea(image_rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Baseline: OpenCV's fast-marching inpainting (Telea 2004), radius 5."""
    return cv2.inpaint(image_rgb, hole.astype(np.uint8), 5, cv2.INPAINT_TELEA)


def navier_stokes(image_rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Baseline: OpenCV's Navier–Stokes inpainting (Bertalmio et al. 2001), radius 5."""
    return cv2.inpaint(image_rgb, hole.astype(np.uint8), 5, cv2.INPAINT_NS)


def biharmonic(image_rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Baseline: scikit-image's biharmonic inpainting (smooth continuation of the border into the hole)."""
    from skimage.restoration import inpaint_biharmonic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        filled = inpaint_biharmonic(image_rgb, hole, channel_axis=-1)
    return np.clip(np.round(filled * 255), 0, 255).astype(np.uint8)


def patchmatch(image_rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Baseline: PatchMatch (Barnes et al. 2009), the paper's Table 1 baseline, from ``patchmatch-cython``
    with a fixed seed. Its mask is True = hole like ours, and its patch distance treats channels alike, so
    RGB and BGR give the same completion (checked in the tests)."""
    from patchmatch_cython import inpaint_pyramid
    return inpaint_pyramid(image_rgb, hole, seed=0)


BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "mean_fill": mean_fill, "opencv_telea": telea, "opencv_ns": navier_stokes, "biharmonic": biharmonic,
    "patchmatch": patchmatch,
}
"""Each takes an HxWx3 uint8 RGB image and an HxW bool hole (True = fill) and returns the completed image."""


def baseline_unavailable(name: str, largest_hole: int) -> str | None:
    """Why baseline ``name`` cannot run on holes of up to ``largest_hole`` pixels here, or None if it can."""
    if name == "biharmonic" and largest_hole > BIHARMONIC_MAX_HOLE:
        return (f"holes of up to {largest_hole} pixels exceed its limit of {BIHARMONIC_MAX_HOLE} "
                "(seconds per image)")
    if name == "patchmatch":
        try:
            import patchmatch_cython  # noqa: F401
        except ImportError as error:
            return f"patchmatch-cython cannot be imported ({error}); pip install patchmatch-cython"
    return None


def run_baseline(name: str, image_rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Baseline ``name``'s completion, with the known pixels restored exactly so that every method is
    scored on the same context."""
    return np.where(hole[:, :, None], BASELINES[name](image_rgb, hole), image_rgb)
