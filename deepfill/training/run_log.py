"""What a run shows: the progress bar, ``train.log``, VisualDL scalars and the sample pictures."""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import paddle
from tqdm import tqdm

from deepfill.evaluation.report import Report
from deepfill.tester import METRICS
from deepfill.utils.config import Config
from deepfill.utils.flow import add_key, flow_to_color
from deepfill.utils.grids import with_titles
from deepfill.utils.image_io import write_image
from deepfill.utils.pixels import from_model

LOG_NAME = "train.log"
SAMPLE_COLUMNS = ("input", "coarse", "refined", "truth", "attention")


def sample_picture(tensors: list[paddle.Tensor], channel_order: str, rows: int = 4) -> np.ndarray:
    """Rows of [input with hole | coarse | refined | ground truth | attention flow (with its colour key in
    the corner farthest from the hole)] (``SAMPLE_COLUMNS``), uint8 RGB; ``with_titles`` adds the header
    naming them when the picture is written."""
    images, mask, x_stage1, x_stage2, offsets = (t[:rows].numpy() for t in tensors)
    known = images * (1 - mask)
    panels = [from_model(x, channel_order) for x in
              (known + mask, x_stage1 * mask + known, x_stage2 * mask + known, images)]
    flows = [flow_to_color(flow) for flow in offsets]
    scale = images.shape[2] // flows[0].shape[0]
    holes = mask[:, 0] > 0.5
    panels.append(np.stack([add_key(flow.repeat(scale, axis=0).repeat(scale, axis=1), hole)
                            for flow, hole in zip(flows, holes)]))
    return np.concatenate([np.concatenate(row, axis=1) for row in zip(*panels)], axis=0)


def scalar_tag(name: str) -> str:
    """VisualDL tag of a scalar: critic scores apart from the losses."""
    return f"critic/{name}" if name.startswith(("real_", "fake_")) else f"loss/{name}"


class RunLog:
    """Progress bar, ``train.log``, VisualDL scalars and sample pictures of a run; silent in all but the
    first process."""

    def __init__(self, config: Config, step: int, active: bool) -> None:
        self.config, self.active = config, active
        if active:
            from visualdl import LogWriter
            os.makedirs(os.path.join(config.run_dir, "samples"), exist_ok=True)
            self.file = open(os.path.join(config.run_dir, LOG_NAME), "a", encoding="utf-8", buffering=1)
            self.writer = LogWriter(logdir=os.path.join(config.run_dir, "visualdl"))
            self.bar = tqdm(total=config.max_iters, initial=step, desc="training", unit="it",
                            dynamic_ncols=True)

    def note(self, message: str, echo: bool = False) -> None:
        """A time-stamped line in ``train.log``, and on the terminal if ``echo``."""
        if not self.active:
            return
        self.file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        if echo:
            self.bar.write(message, file=sys.stderr)

    def record(self, step: int, scalars: dict[str, float], tensors: list[paddle.Tensor], seconds: float,
               lr: float) -> None:
        """Progress bar every step; scalars every ``log_every`` steps; a picture every ``sample_every``."""
        if not self.active:
            return
        c = self.config
        self.bar.update(1)
        shown = {"G": "total_g_loss", "l1": "l1_loss", "ae": "ae_loss", "D": "d_loss", "gp": "gp_loss"}
        if scalars:                  # read only every log_every steps (``Trainer.scalars_due``)
            self.bar.set_postfix({short: f"{scalars[name]:.3f}" for short, name in shown.items() if name in scalars})
        if step % c.log_every == 0 or step == 1:
            for name, value in scalars.items():
                self.writer.add_scalar(scalar_tag(name), value, step)
            self.writer.add_scalar("train/lr", lr, step)
            self.writer.add_scalar("time/seconds_per_iteration", seconds, step)
            self.note(f"step {step}: " + " ".join(f"{k}={v!r}" for k, v in scalars.items())
                      + f" lr={lr!r} seconds={seconds:.3f}")
        if step % c.sample_every == 0 or step == c.max_iters:
            picture = with_titles(sample_picture(tensors, c.channel_order), SAMPLE_COLUMNS)
            write_image(os.path.join(c.run_dir, "samples", f"step_{step:08d}.png"), picture[:, :, ::-1])
            self.writer.add_image("samples", picture, step)

    def validation(self, step: int, report: Report, seconds: float) -> None:
        """A validation's metrics: ``val/<metric>`` in VisualDL (whole image and hole), one ``val`` line in
        ``train.log`` and a shorter one on the terminal, and the views' completions as
        ``samples/val_XXXXXXXX.png`` (input | model | truth, titled) and in VisualDL."""
        if not self.active:
            return
        values = report.model
        for name in METRICS:
            if math.isfinite(values[name]):
                self.writer.add_scalar(f"val/{name}", values[name], step)
        self.writer.add_scalar("time/seconds_per_validation", seconds, step)
        self.note(f"val step={step} " + " ".join(f"{name}={values[name]!r}" for name in METRICS)
                  + f" views={report.count} seconds={seconds:.3f}")
        self.bar.write(f"val step {step}: hole l1 {values['l1_hole']:.2f} %, hole psnr {values['psnr_hole']:.2f} dB, "
                       f"psnr {values['psnr']:.2f} dB ({report.count} views, {seconds:.1f} s)", file=sys.stderr)
        sheet = report.sheet()
        write_image(os.path.join(self.config.run_dir, "samples", f"val_{step:08d}.png"), sheet[:, :, ::-1])
        self.writer.add_image("val", sheet, step)

    def unreadable(self, step: int, paths: list[str], total: int) -> None:
        """Name newly found unreadable files in the log and keep their running count in VisualDL."""
        if not self.active or not paths:
            return
        for path in paths:
            self.note(f"unreadable image skipped: {path}")
        self.note(f"{total} unreadable images skipped so far", echo=True)
        self.writer.add_scalar("data/unreadable_images", total, step)

    def close(self) -> None:
        if self.active:
            self.bar.close()
            self.writer.close()
            self.file.close()
            self.active = False
