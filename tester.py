"""The paper's metrics (L1, L2, PSNR, TV, and SSIM) and the classical baselines they are compared with.

The code lives in ``deepfill.tester``; ``test.py`` runs them over a validation set (``deepfill.evaluation``).
"""
from deepfill.tester import (BASELINES, average, image_metrics, psnr, run_baseline, ssim,  # noqa: F401
                             total_variation)
