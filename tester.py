"""The paper's metrics (Table 1: mean l1, mean l2, PSNR, TV loss) plus SSIM, defined once (SPEC §5) and
used by test.py for the model and the baselines alike.

Images are float arrays on [0, 1], HxWx3. Every metric is computed per image, over the whole image and
over the hole only, then averaged over the set. The paper does not say how its TV is normalised; here
it is the mean over pixels of |∂x| + |∂y| in percent, and the ground truth's TV is reported beside it
so a reader can judge over-smoothing.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

METRICS = ("l1", "l2", "psnr", "tv", "ssim", "l1_hole", "l2_hole", "psnr_hole", "tv_hole")


def total_variation(image: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean of |I[i+1, j] − I[i, j]| + |I[i, j+1] − I[i, j]| over pixels (in ``region``) and channels, in %."""
    down = np.abs(image[1:, :-1] - image[:-1, :-1])
    right = np.abs(image[:-1, 1:] - image[:-1, :-1])
    variation = down + right
    if region is not None:
        variation = variation[region[:-1, :-1]]
    return float(variation.mean() * 100) if variation.size else 0.0


def image_metrics(output: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    """All metrics of one completed image against its ground truth; ``hole`` is HxW bool."""
    error = output - truth
    inside = error[hole]

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        return float(peak_signal_noise_ratio(a, b, data_range=1.0)) if np.any(a != b) else math.inf

    return {
        "l1": float(np.abs(error).mean() * 100), "l2": float((error ** 2).mean() * 100),
        "psnr": psnr(truth, output), "tv": total_variation(output),
        "ssim": float(structural_similarity(truth, output, channel_axis=2, data_range=1.0)),
        "l1_hole": float(np.abs(inside).mean() * 100), "l2_hole": float((inside ** 2).mean() * 100),
        "psnr_hole": psnr(truth[hole], output[hole]), "tv_hole": total_variation(output, hole),
    }


def average(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the set (PSNR of a perfect image, +inf, is left out of its mean)."""
    result = {}
    for key in rows[0]:
        values = [row[key] for row in rows if math.isfinite(row[key])]
        result[key] = float(np.mean(values)) if values else math.inf
    return result


def telea(image_rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Baseline: OpenCV's fast-marching inpainting (Telea 2004), radius 5."""
    return cv2.inpaint(image_rgb, hole.astype(np.uint8), 5, cv2.INPAINT_TELEA)


def patchmatch(image_rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Baseline: PatchMatch (Barnes et al. 2009), the paper's Table 1 baseline; fixed seed."""
    from patchmatch_cython import inpaint_pyramid
    return inpaint_pyramid(image_rgb, hole, seed=0)


BASELINES = {"patchmatch": patchmatch, "opencv_telea": telea}
