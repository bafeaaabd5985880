"""Evaluate a checkpoint on a validation set with the paper's metrics, beside the PatchMatch and OpenCV
baselines.

    python test.py                                    # the demo: the demo run's checkpoint, bundled pictures
    python test.py --checkpoint CKPT --data /data/places2/val.flist --report report.json --save-dir out/

Each image is fitted to ``image_size`` (centre crop) and gets a random ``hole_size`` hole drawn from
(seed, image number) — the same holes on every run and for every method. The JSON report holds
``model`` and ``baselines`` (l1, l2, psnr, tv, ssim, each also over the hole), ``gt_tv`` and ``count``.
"""
from __future__ import annotations

import json
import os
import sys

import utils  # noqa: F401  (quiets Paddle before it is imported)
import numpy as np
from tqdm import tqdm

from data.dataset import ImageDataset, list_sources
from data.masks import random_masks
from models.inpainter import Inpainter, pick_device
from tester import BASELINES, METRICS, average, image_metrics, total_variation
from utils.checkpoint import build_generator, load_checkpoint
from utils.cli import ArgumentParser, UserError, run
from utils.config import Config, load_config
from utils.files import atomic_path
from utils.image_io import write_image

DEMO_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "demo.yaml")


def evaluation_hole(config: Config, index: int) -> np.ndarray:
    """The hole of validation image ``index``: the training recipe's box, drawn from (seed, index)."""
    rng = np.random.default_rng([config.seed, index])
    masks, _ = random_masks(rng, 1, config.image_size, config.hole_size, config.max_delta, per_image=True)
    return masks[0, 0] > 0.5


def evaluate(config: Config, checkpoint_path: str, save_dir: str | None = None) -> dict:
    """Metrics of the model and the baselines over ``config.val_data``."""
    checkpoint = load_checkpoint(checkpoint_path)
    inpainter = Inpainter(build_generator(checkpoint), checkpoint["channel_order"])
    paths = list_sources(config.val_data)
    if config.val_count:
        paths = paths[:config.val_count]
    dataset = ImageDataset(paths, config.image_size)
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
    baselines = {name: BASELINES[name] for name in config.baseline_names()}
    rows: dict[str, list[dict[str, float]]] = {"model": [], **{name: [] for name in baselines}}
    truth_tv, truth_tv_hole = [], []
    for index in tqdm(range(len(paths)), desc="evaluating", unit="image"):
        truth = dataset.centred_rgb(index)
        hole = evaluation_hole(config, index)
        given = truth.copy()
        given[hole] = 255
        outputs = {"model": inpainter(given, hole)[0]}
        outputs.update({name: method(given, hole) for name, method in baselines.items()})
        truth_float = truth.astype(np.float64) / 255
        for name, output in outputs.items():
            rows[name].append(image_metrics(output.astype(np.float64) / 255, truth_float, hole))
        truth_tv.append(total_variation(truth_float))
        truth_tv_hole.append(total_variation(truth_float, hole))
        if save_dir:
            stem = f"{index:05d}_{os.path.splitext(os.path.basename(paths[index]))[0]}"
            panels = [given, *outputs.values(), truth]
            write_image(os.path.join(save_dir, f"{stem}.png"), np.concatenate(panels, axis=1)[:, :, ::-1])
    return {"model": average(rows["model"]),
            "baselines": {name: average(rows[name]) for name in baselines},
            "gt_tv": float(np.mean(truth_tv)), "gt_tv_hole": float(np.mean(truth_tv_hole)),
            "count": len(paths), "checkpoint": checkpoint["path"], "data": config.val_data,
            "image_size": config.image_size, "hole_size": config.hole_size, "seed": config.seed}


def table(report: dict) -> str:
    """The report as a fixed-width table, methods as rows."""
    lines = [f"{'method':<16}" + "".join(f"{m:>11}" for m in METRICS)]
    for name, values in [("deepfill (ours)", report["model"]), *report["baselines"].items()]:
        lines.append(f"{name:<16}" + "".join(f"{values[m]:>11.3f}" for m in METRICS))
    lines.append(f"{'ground truth':<16}" + f"{'':>33}{report['gt_tv']:>11.3f}{'':>44}{report['gt_tv_hole']:>11.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = ArgumentParser(prog="test.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help=f"YAML settings (default: the demo, {os.path.relpath(DEMO_CONFIG)})")
    parser.add_argument("--checkpoint", help="weights (file or training run folder; default: run_dir)")
    parser.add_argument("--data", help="validation images: folder, file list or 'demo' (default: val_data)")
    parser.add_argument("--report", help="write the JSON report here")
    parser.add_argument("--save-dir", help="write [input | ours | baselines | truth] pictures here")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override settings (repeatable)")
    args = parser.parse_args()
    config = load_config(args.config or DEMO_CONFIG, args.set)
    unknown = sorted(set(config.baseline_names()) - set(BASELINES))
    if unknown:
        raise UserError(f"unknown baseline {unknown[0]!r} (choose from {', '.join(BASELINES)})")
    if args.data:
        config.val_data = args.data
    checkpoint = args.checkpoint or config.checkpoint or config.run_dir
    if not os.path.exists(checkpoint):
        hint = " (run `python train.py` first for the demo)" if checkpoint == config.run_dir else ""
        raise UserError(f"checkpoint not found: {checkpoint}{hint}")
    if args.report and not os.path.isdir(os.path.dirname(os.path.abspath(args.report))):
        raise UserError(f"cannot write {args.report}: its folder does not exist")
    pick_device(config.device, all_cpu_cores=True)
    report = evaluate(config, checkpoint, args.save_dir)
    print(table(report))
    print(f"{report['count']} images, checkpoint {report['checkpoint']}")
    if args.report:
        with atomic_path(args.report) as temporary, open(temporary, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
        print(f"wrote {args.report}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
