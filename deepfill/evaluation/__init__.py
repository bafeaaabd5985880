"""Evaluation as a library: the paper's metrics (``tester``) of a model beside classical baselines, on
validation views with holes that every method and every run shares. The command ``test.py`` and
validation during training are both built on it.

    from deepfill.evaluation import evaluate, hole_source, read_views
    views, skipped = read_views(paths, config)                  # once; reused at every validation
    hole_of, _ = hole_source(config, len(paths) * config.val_windows)
    holes = [hole_of(view.index) for view in views]
    report = evaluate(inpainter, views, holes, baselines=["mean_fill"], progress=False)
    report.model["l1_hole"], report.to_dict(), report.sheet()    # the sheet: uint8 RGB, nothing written
"""
from deepfill.evaluation.baselines import usable_baselines
from deepfill.evaluation.geometry import evaluation_geometry
from deepfill.evaluation.holes import HoleSource, box_hole, center_hole, file_hole, free_form_hole, hole_source
from deepfill.evaluation.outputs import check_outputs, write_report
from deepfill.evaluation.pictures import MODEL, SHEET_ROWS, TITLES, grid_titles
from deepfill.evaluation.report import Report, finite_or_none, table
from deepfill.evaluation.run import Evaluation, Fill, evaluate, evaluate_pictures
from deepfill.evaluation.views import (View, check_readable, check_stems, load_truth, load_views, picture_views,
                                       read_views, view_stem)

__all__ = ["Evaluation", "Fill", "HoleSource", "MODEL", "Report", "SHEET_ROWS", "TITLES", "View", "box_hole",
           "center_hole", "check_outputs", "check_readable", "check_stems", "evaluate", "evaluate_pictures",
           "evaluation_geometry", "file_hole", "finite_or_none", "free_form_hole", "grid_titles", "hole_source",
           "load_truth",
           "load_views", "picture_views", "read_views", "table", "usable_baselines", "view_stem",
           "write_report"]
