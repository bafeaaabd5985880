"""Evaluation as a library: the paper's metrics (``tester``) of a model beside classical baselines, on
validation views with holes that every method and every run shares. The command ``test.py`` and
validation during training are both built on it.

    from evaluation import evaluate, read_views, hole_source
    views, _ = read_views(paths[:16], config)
    holes = [hole_source(config, len(views))[0](view.index) for view in views]
    report = evaluate(inpainter, views, holes, baselines=["mean_fill"], progress=False)
    report.model["l1_hole"], report.sheet()
"""
from evaluation.baselines import usable_baselines
from evaluation.geometry import evaluation_geometry
from evaluation.holes import HoleSource, box_hole, center_hole, file_hole, hole_source
from evaluation.outputs import check_outputs, write_report
from evaluation.pictures import MODEL, SHEET_ROWS, TITLES, grid_titles
from evaluation.report import Report, finite_or_none, table
from evaluation.run import Evaluation, Fill, evaluate, evaluate_pictures
from evaluation.views import (View, check_readable, check_stems, load_truth, load_views, picture_views,
                              read_views, view_stem)

__all__ = ["Evaluation", "Fill", "HoleSource", "MODEL", "Report", "SHEET_ROWS", "TITLES", "View", "box_hole",
           "center_hole", "check_outputs", "check_readable", "check_stems", "evaluate", "evaluate_pictures",
           "evaluation_geometry", "file_hole", "finite_or_none", "grid_titles", "hole_source", "load_truth",
           "load_views", "picture_views", "read_views", "table", "usable_baselines", "view_stem",
           "write_report"]
