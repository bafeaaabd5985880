"""Training pictures and their holes: the Places2-style loader (a file list or a folder, 256×256 views) and
the random 128×128 boxes and free-form strokes.

The code lives in ``deepfill.data``; this folder keeps the names the card gives.
"""
from deepfill.data.dataset import ImageDataset, list_sources, training_dataset, training_loader
from deepfill.data.masks import official_brush_strokes, random_box, random_masks

__all__ = ["ImageDataset", "list_sources", "training_dataset", "training_loader", "official_brush_strokes",
           "random_box", "random_masks"]
