"""The evaluation loop: each view's hole painted white, filled by the model and by each baseline, every
completion measured against the truth with ``tester``'s metrics and averaged over the views.

Two ways in, one loop: ``evaluate`` takes views already in memory (validation during training, which
reads its pictures once and reuses them), ``evaluate_pictures`` reads a validation set picture by picture
(any size of set), skipping and counting the unreadable ones."""
from __future__ import annotations

import sys
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from deepfill.evaluation.holes import HoleSource
from deepfill.evaluation.pictures import MODEL, SHEET_ROWS, grid_titles, save_sheet, save_view_pictures, view_strip
from deepfill.evaluation.report import Report
from deepfill.evaluation.views import View, picture_views
from deepfill.tester import average, image_metrics, run_baseline, total_variation
from deepfill.utils.cli import UserError
from deepfill.utils.config import Config

# What the model is to an evaluation: (uint8 RGB HxWx3, bool HxW hole) -> (completion uint8 RGB, flow).
# An ``inpainting.Filler`` is one.
Fill = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class Evaluation:
    """Metrics gathered one view at a time, with the first ``sheet_rows`` views' strips for the sheet;
    with ``save_dir``, each view's pictures are written as it is measured (a long run leaves what it has
    done)."""

    def __init__(self, inpainter: Fill, baselines: Sequence[str] = (), save_dir: str | None = None,
                 sheet_rows: int = SHEET_ROWS) -> None:
        self.inpainter, self.baselines = inpainter, list(baselines)
        self.save_dir, self.sheet_rows = save_dir, sheet_rows
        self.titles = grid_titles([MODEL, *self.baselines])
        self.rows: dict[str, list[dict[str, float]]] = {name: [] for name in (MODEL, *self.baselines)}
        self.truth_tv: list[float] = []
        self.truth_tv_hole: list[float] = []
        self.strips: list[np.ndarray] = []

    def add(self, name: str, truth: np.ndarray, hole: np.ndarray) -> None:
        """Measure every method on ``truth`` (uint8 RGB) with ``hole`` (bool) painted white."""
        if hole.shape != truth.shape[:2]:
            raise ValueError(f"view {name}: hole {hole.shape} does not match the picture {truth.shape[:2]}")
        given = truth.copy()
        given[hole] = 255
        outputs = {MODEL: self.inpainter(given, hole)[0]}
        outputs.update({baseline: run_baseline(baseline, given, hole) for baseline in self.baselines})
        truth_float = truth.astype(np.float64) / 255
        for method, output in outputs.items():
            self.rows[method].append(image_metrics(output.astype(np.float64) / 255, truth_float, hole))
        self.truth_tv.append(total_variation(truth_float))
        self.truth_tv_hole.append(total_variation(truth_float, hole))
        strip = view_strip(given, outputs, truth)
        if len(self.strips) < self.sheet_rows:
            self.strips.append(strip)
        if self.save_dir:
            save_view_pictures(self.save_dir, name, outputs, strip, self.titles)

    def report(self, pictures: int, windows: int, skipped: list[str]) -> Report:
        """The averages over the views added (at least one); with ``save_dir``, also writes the sheet."""
        if not self.truth_tv:
            raise ValueError("no view was evaluated")
        report = Report(model=average(self.rows[MODEL]),
                        baselines={name: average(self.rows[name]) for name in self.baselines},
                        gt_tv=float(np.mean(self.truth_tv)), gt_tv_hole=float(np.mean(self.truth_tv_hole)),
                        count=len(self.truth_tv), pictures=pictures, windows=windows, skipped=list(skipped),
                        titles=self.titles, strips=self.strips)
        if self.save_dir:
            save_sheet(self.save_dir, report.sheet())
        return report


def evaluate(inpainter: Fill, views: Sequence[View | tuple[str, np.ndarray]], holes: Sequence[np.ndarray],
             baselines: Sequence[str] = (), save_dir: str | None = None, progress: bool = True,
             sheet_rows: int = SHEET_ROWS) -> Report:
    """Metrics of ``inpainter`` and ``baselines`` (names from ``tester.BASELINES`` that can run:
    ``baselines.usable_baselines``) over ``views`` in memory (``View``s or (name, uint8 RGB) pairs), view i
    with ``holes[i]`` (bool, the view's size). Nothing is written unless ``save_dir`` is given; the
    report's ``sheet()`` holds the first ``sheet_rows`` views' completions."""
    if len(views) != len(holes):
        raise ValueError(f"{len(views)} views but {len(holes)} holes")
    evaluation = Evaluation(inpainter, baselines, save_dir, sheet_rows)
    for view, hole in tqdm(list(zip(views, holes)), desc="evaluating", unit="view", disable=not progress):
        evaluation.add(view[0], view[1], hole)
    return evaluation.report(pictures=len(views), windows=1, skipped=[])


def evaluate_pictures(inpainter: Fill, paths: list[str], config: Config, holes: HoleSource,
                      baselines: Sequence[str] = (), save_dir: str | None = None, progress: bool = True) -> Report:
    """Metrics over the views of the pictures ``paths`` (``config.val_windows`` each, read one picture at a
    time; the view at place i gets ``holes(i)``), averaged over the views of the readable pictures (at
    least one: ``views.check_readable``). An unreadable picture is skipped, named on stderr and counted."""
    evaluation = Evaluation(inpainter, baselines, save_dir)
    windows, skipped = config.val_windows, []
    with tqdm(total=len(paths) * windows, desc="evaluating", unit="view", disable=not progress) as bar:
        for place, path in enumerate(paths):
            try:
                views = picture_views(path, place, config)
            except UserError as error:
                skipped.append(path)
                bar.update(windows)
                tqdm.write(f"warning: skipping {error}", file=sys.stderr)
                continue
            for view in views:
                evaluation.add(view.name, view.image, holes(view.index))
                bar.update(1)
    return evaluation.report(pictures=len(paths) - len(skipped), windows=windows, skipped=skipped)
