"""Validation during training: the paper's metrics on the same validation views and holes every
``val_every`` generator updates, so that a researcher sees on day two whether a five-day run is learning and
can pick the checkpoint that fills holes best (``best.pdparams``).

As the official code's static views (``STATIC_VIEW_SIZE``: the same 30 validation pictures every time), the
views are the first ``val_count`` pictures of ``val_data`` (30 when 0), read once at the start as
``test.py`` reads them (``val_windows`` views each), with the holes ``test.py`` draws for them from the seed
(``val_mask``). The generator runs in eval mode without gradients and nothing here draws from a random
generator training uses, so a run with validation computes the same losses as one without, and resumes
exactly. A validation that cannot be done (no readable picture, an error while filling) is a warning in the
log, never the end of a run.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from deepfill.data.dataset import list_sources
from deepfill.evaluation.holes import hole_source
from deepfill.evaluation.report import Report
from deepfill.evaluation.run import evaluate
from deepfill.evaluation.views import read_views
from deepfill.inpainting.filler import Filler
from deepfill.inpainting.runners import EagerRunner
from deepfill.models.generator import InpaintGenerator
from deepfill.utils.config import Config
from deepfill.utils.errors import UserError

STATIC_VIEW_SIZE = 30
"""Pictures validated when ``val_count`` is 0: the official ``STATIC_VIEW_SIZE``."""
SHEET_ROWS = 16
"""Views shown in the validation picture (all are measured)."""


class Validation:
    """The fixed views and holes of one run's validation, and the best result so far."""

    def __init__(self, config: Config, warn: Callable[[str], None], enabled: bool = True) -> None:
        """``enabled``: whether this process validates (the first of a data-parallel run does, alone)."""
        self.config, self.warn = config, warn
        self.views, self.holes = [], []
        self.best_step, self.best_l1_hole = 0, math.inf
        if config.val_every and enabled:
            self._read_views()

    @property
    def active(self) -> bool:
        return bool(self.views)

    def due(self, step: int) -> bool:
        return self.active and step % self.config.val_every == 0

    def _read_views(self) -> None:
        config = self.config
        try:
            paths = list_sources(config.val_data)[:config.val_count or STATIC_VIEW_SIZE]
            views, skipped = read_views(paths, config)
            holes, _ = hole_source(config, len(paths) * config.val_windows)
            self.holes = [holes(view.index) for view in views]
        except UserError as error:
            self.warn(f"warning: validation off: {error} (set val_data=... or val_every=0)")
            return
        for path in skipped:
            self.warn(f"warning: validation skips unreadable picture {path}")
        if not views:
            self.warn(f"warning: validation off: none of the {len(paths)} pictures of {config.val_data} "
                      "can be read")
        self.views = views

    def run(self, generator: InpaintGenerator) -> Report | None:
        """The metrics of ``generator`` (as it is now) on the validation views, or None with a warning if
        they could not be computed. The generator is back in training mode afterwards."""
        runner = EagerRunner(generator, lean_buffers=False)
        inpainter = Filler(runner, self.config.channel_order, training_size=self.config.image_size)
        try:
            return evaluate(inpainter, self.views, self.holes, progress=False, sheet_rows=SHEET_ROWS)
        except Exception as error:      # a validation must never end a run of days
            self.warn(f"warning: validation failed ({type(error).__name__}: {error}); training goes on")
            return None
        finally:
            generator.train()

    def improved(self, step: int, report: Report) -> bool:
        """Whether ``report`` (made at ``step``) has the lowest hole l1 so far; remembers it if so."""
        value = report.model["l1_hole"]
        if not value < self.best_l1_hole:
            return False
        self.best_step, self.best_l1_hole = step, value
        return True

    def state(self) -> np.ndarray:
        """What a checkpoint keeps of the validation: the best step and its hole l1."""
        return np.array([self.best_step, self.best_l1_hole], np.float64)

    def restore(self, stored: np.ndarray | None) -> None:
        if stored is not None:
            self.best_step, self.best_l1_hole = int(stored[0]), float(stored[1])

