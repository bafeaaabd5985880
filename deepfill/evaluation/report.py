"""What an evaluation found: the averaged metrics of the model and each baseline, the truth's own total
variation (the reference for the TV columns), how many views they come from, and the first views'
completions as one picture. Its dictionary is the JSON report's core; its table is the paper's Table 1."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from deepfill.evaluation.pictures import titled_sheet


@dataclasses.dataclass
class Report:
    """An evaluation's result. ``model`` and each of ``baselines`` map ``tester.METRICS`` to their mean over
    the views (nan where a metric does not exist, inf for a PSNR that is infinite on every view);
    ``pictures`` and ``windows`` say where the ``count`` views came from (pictures given in memory count as
    one window each); ``skipped`` lists the unreadable pictures; ``strips`` are the first views' rows
    [input | model | baselines | truth] and ``titles`` their column names."""
    model: dict[str, float]
    baselines: dict[str, dict[str, float]]
    gt_tv: float
    gt_tv_hole: float
    count: int
    pictures: int
    windows: int
    skipped: list[str]
    titles: list[str]
    strips: list[np.ndarray] = dataclasses.field(repr=False)

    def to_dict(self) -> dict:
        """The JSON report's numbers, strict JSON (a value that does not exist is None)."""
        return finite_or_none({
            "model": self.model, "baselines": self.baselines, "gt_tv": self.gt_tv, "gt_tv_hole": self.gt_tv_hole,
            "count": self.count, "pictures": self.pictures, "windows": self.windows,
            "skipped": {"count": len(self.skipped), "paths": list(self.skipped)}})

    def sheet(self) -> np.ndarray:
        """The first views' strips stacked under one header naming the columns, uint8 RGB: what
        ``grids.png`` holds, for a caller that writes it where it wants (training's samples)."""
        return titled_sheet(self.strips, self.titles)

    def summary(self) -> str:
        """What the numbers were measured on, in words: '9 windows of 3 pictures, 1 unreadable skipped'."""
        views = (f"{self.count} windows of {self.pictures} pictures" if self.windows > 1
                 else f"{self.count} images")
        return views + (f", {len(self.skipped)} unreadable skipped" if self.skipped else "")


def finite_or_none(value: object) -> object:
    """``value`` with every nan or inf (in nested dicts and lists) replaced by None, so that it is strict
    JSON."""
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


COLUMNS = (("l1", "L1 %", 2), ("l2", "L2 %", 2), ("psnr", "PSNR", 2), ("tv", "TV %", 2), ("ssim", "SSIM", 3))
CELL, NAME = 8, 16


def _cells(values: dict[str, float | None], suffix: str) -> str:
    def cell(key: str, digits: int) -> str:
        value = values.get(key + suffix)
        if value is None or math.isnan(value):
            return f"{'-':>{CELL}}"
        return f"{'inf':>{CELL}}" if math.isinf(value) else f"{value:>{CELL}.{digits}f}"
    return "".join(cell(key, digits) for key, _, digits in COLUMNS)


def table(report: dict) -> str:
    """A report's dictionary (``Report.to_dict``) shaped like the paper's Table 1: methods as rows, whole
    image then hole as columns, the ground truth's total variation last."""
    span = CELL * len(COLUMNS)
    heading = "".join(f"{title:>{CELL}}" for _, title, _ in COLUMNS)
    lines = [f"{'':<{NAME}}{'whole image':^{span}} |{'hole':^{span}}", f"{'method':<{NAME}}{heading} |{heading}"]
    for name, values in [("deepfill v1", report["model"]), *report["baselines"].items()]:
        lines.append(f"{name:<{NAME}}{_cells(values, '')} |{_cells(values, '_hole')}")
    truth = {"tv": report["gt_tv"], "tv_hole": report["gt_tv_hole"]}
    lines.append(f"{'ground truth':<{NAME}}{_cells(truth, '')} |{_cells(truth, '_hole')}")
    return "\n".join(lines)
