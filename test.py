"""Evaluate a checkpoint on a validation set with the paper's metrics (Table 1), beside classical baselines
that see the same images and the same holes.

    python test.py                          # the demo: its checkpoint on windows of the held-out pictures
    python test.py --config configs/places2.yaml --checkpoint CKPT --data /data/places2/val.flist \\
        --mask center --report report.json --save-dir eval_pictures

Each picture gives ``val_windows`` views: with 1, the centre of the training view (``image_fit``); with
N > 1, N ``image_size`` windows cut as training cuts them, at positions drawn from (seed, picture, window).
Each view gets a hole that depends only on its place in the list of views: ``--mask box`` draws the
training recipe's box from (seed, place), ``--mask center`` is the paper's centred ``hole_size`` square and
``--mask DIR`` gives view i the i-th mask file of DIR (sorted; white = hole; resized to the image). Every
run and every method therefore sees the same views and holes. Unreadable images (damaged, foreign,
declaring more than ``max_image_pixels``) are skipped, named on stderr and counted in the report.
``--report`` and ``--save-dir`` are checked writable before any work.

The JSON report holds ``model`` and ``baselines`` (l1, l2, psnr, tv, ssim, each also over the hole),
``gt_tv``, ``count`` and how it was made; a value that does not exist (every PSNR infinite) is ``null``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from typing import Callable

from utils.environment import prepare_paddle

prepare_paddle()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data.dataset import evaluation_view, list_sources  # noqa: E402
from data.masks import random_masks  # noqa: E402
from inpainting.inpainter import Inpainter  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from models.checkpoint_file import Checkpoint
from models.spec import ModelSpec  # noqa: E402
from tester import BASELINES, average, baseline_unavailable, image_metrics, run_baseline, total_variation  # noqa: E402
from utils.cli import ArgumentParser, UserError, run  # noqa: E402
from utils.config import Config, load_config, settings_help  # noqa: E402
from utils.device import pick_device  # noqa: E402
from utils.files import atomic_path, check_writable_file, check_writable_folder, make_folder  # noqa: E402
from utils.grids import with_titles  # noqa: E402
from utils.image_io import read_image, read_mask, to_rgb8, write_image  # noqa: E402

DEMO_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "demo.yaml")
MODEL = "model"
TITLES = {MODEL: "model", "mean_fill": "mean fill", "opencv_telea": "Telea", "opencv_ns": "Navier-Stokes",
          "biharmonic": "biharmonic", "patchmatch": "PatchMatch"}
SHEET_ROWS = 16
HoleSource = Callable[[int], np.ndarray]


def box_hole(config: Config, index: int) -> np.ndarray:
    """The hole of validation image ``index``: the training recipe's box, drawn from (seed, index)."""
    rng = np.random.default_rng([config.seed, index])
    masks, _ = random_masks(rng, 1, config.image_size, config.hole_size, config.max_delta, per_image=True)
    return masks[0, 0] > 0.5


def center_hole(image_size: int, hole_size: int) -> np.ndarray:
    """The paper's Table 1 hole: a ``hole_size`` square in the middle of the picture."""
    hole = np.zeros((image_size, image_size), bool)
    start = (image_size - hole_size) // 2
    hole[start:start + hole_size, start:start + hole_size] = True
    return hole


def file_hole(path: str, image_size: int, max_pixels: int | None = None) -> np.ndarray:
    """A mask file (white = hole) resized to the image with nearest neighbours; refused if it leaves
    nothing to fill or nothing to fill from."""
    mask = cv2.resize(read_mask(path, max_pixels).astype(np.uint8), (image_size, image_size),
                      interpolation=cv2.INTER_NEAREST) > 0
    if not mask.any():
        raise UserError(f"mask {path} has no hole at {image_size}x{image_size} (white marks the hole)")
    if mask.all():
        raise UserError(f"mask {path} covers the whole picture (white marks the hole, black the known part)")
    return mask


def hole_source(config: Config, count: int) -> tuple[HoleSource, int]:
    """The hole of each of ``count`` views by place, and the largest hole's pixel count.

    Mask files are all read here, before any work, so that a short or broken mask set is refused at once.
    """
    mode = config.val_mask
    if mode in ("box", "center"):
        if config.hole_size >= config.image_size:
            raise UserError(f"--mask {mode} needs hole_size < image_size, got {config.hole_size} and "
                            f"{config.image_size}")
        if mode == "center":
            hole = center_hole(config.image_size, config.hole_size)
            return (lambda index: hole), int(hole.sum())
        return (lambda index: box_hole(config, index)), config.hole_size ** 2
    if not os.path.isdir(mode):
        raise UserError(f"--mask must be box, center or a folder of mask pictures; {mode!r} is none of these")
    paths = list_sources(mode)
    if len(paths) < count:
        raise UserError(f"{mode} holds {len(paths)} masks for {count} views (view i takes mask i)")
    limit = config.max_image_pixels
    largest = max(int(file_hole(path, config.image_size, limit).sum()) for path in paths[:count])
    return (lambda index: file_hole(paths[index], config.image_size, limit)), largest


def check_stems(paths: list[str]) -> None:
    """``--save-dir`` names results after the input; refuse two inputs that would share a name."""
    seen: dict[str, str] = {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in seen:
            raise UserError(f"{seen[stem]} and {path} would both be saved as {stem}.png; "
                            "rename one or evaluate them separately")
        seen[stem] = path


def usable_baselines(names: list[str], largest_hole: int) -> tuple[list[str], dict[str, str]]:
    """The baselines that can run here, and why each of the others cannot (also said on stderr)."""
    usable, skipped = [], {}
    for name in names:
        reason = baseline_unavailable(name, largest_hole)
        if reason:
            skipped[name] = reason
            print(f"note: baseline {name} skipped: {reason}", file=sys.stderr)
        else:
            usable.append(name)
    return usable, skipped


def grid_titles(outputs: dict[str, np.ndarray]) -> list[str]:
    """The column names of an evaluation strip: input, each method, truth."""
    return ["input", *(TITLES.get(name, name) for name in outputs), "truth"]


def save_pictures(save_dir: str, stem: str, given: np.ndarray, outputs: dict[str, np.ndarray],
                  truth: np.ndarray) -> np.ndarray:
    """Each method's completion as ``save_dir/<method>/<stem>.png`` and the strip
    [input | each method | ground truth], under a header naming them, as ``save_dir/grid/<stem>.png``.
    Returns the strip without its header."""
    for name, output in outputs.items():
        make_folder(os.path.join(save_dir, name))
        write_image(os.path.join(save_dir, name, f"{stem}.png"), output[:, :, ::-1])
    make_folder(os.path.join(save_dir, "grid"))
    grid = np.concatenate([given, *outputs.values(), truth], axis=1)
    write_image(os.path.join(save_dir, "grid", f"{stem}.png"), with_titles(grid, grid_titles(outputs))[:, :, ::-1])
    return grid


def save_sheet(save_dir: str, strips: list[np.ndarray], titles: list[str]) -> None:
    """``save_dir/grids.png``: the first ``SHEET_ROWS`` strips stacked under one header, an overview."""
    if strips:
        sheet = with_titles(np.concatenate(strips[:SHEET_ROWS], axis=0), titles)
        write_image(os.path.join(save_dir, "grids.png"), sheet[:, :, ::-1])


def load_views(path: str, place: int, config: Config) -> list[np.ndarray]:
    """The views of validation picture ``place`` as the model is fed them, uint8 RGB: the centre of the
    training view, or ``val_windows`` windows at positions drawn from (seed, place, window). A picture no
    view can be made of is as unreadable as a damaged file."""
    image = to_rgb8(read_image(path, config.max_image_pixels))
    rngs = [None] if config.val_windows == 1 else [np.random.default_rng([config.seed, place, window])
                                                   for window in range(config.val_windows)]
    try:
        return [evaluation_view(image, config.image_size, config.image_fit, rng) for rng in rngs]
    except Exception as error:      # cv2.error, MemoryError: a picture no view can be made of (1×10⁸ pixels)
        raise UserError(f"cannot use {path}: {type(error).__name__} while fitting its "
                        f"{image.shape[1]}x{image.shape[0]} pixels to {config.image_size}") from None


def view_stem(path: str, window: int, windows: int) -> str:
    """The file name (without extension) of a view's pictures in ``--save-dir``."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem if windows == 1 else f"{stem}_window{window}"


def load_truth(path: str, config: Config) -> np.ndarray:
    """Validation picture ``path``'s (first) view as the model is fed it, uint8 RGB."""
    return load_views(path, 0, config)[0]


def check_readable(paths: list[str], config: Config) -> None:
    """Refuse, before any work, a set in which no image can be read (reading up to the first good one)."""
    problems = []
    for path in paths:
        try:
            load_truth(path, config)
            return
        except UserError as error:
            problems.append(str(error))
    raise UserError(f"none of the {len(paths)} images can be read (first: {problems[0]})")


def evaluation_geometry(config: Config, spec: ModelSpec) -> Config:
    """Evaluate at the geometry the model was trained at (its record), unless the user set another:
    then keep the user's, with a warning naming both. The box's shrink ``max_delta`` follows the hole
    (a quarter of it, the official 32 of 128) unless set."""
    changes = {}
    for name in ("image_size", "hole_size"):
        ours, theirs = getattr(config, name), getattr(spec, name)
        if ours == theirs:
            continue
        if name in config.explicit:
            print(f"warning: evaluating at {name}={ours}, but the checkpoint was trained at {name}={theirs}",
                  file=sys.stderr)
        else:
            changes[name] = theirs
    if changes and "max_delta" not in config.explicit:
        changes["max_delta"] = changes.get("hole_size", config.hole_size) // 4
    return dataclasses.replace(config, **changes).validate()


def evaluate(config: Config, checkpoint: Checkpoint, paths: list[str], holes: HoleSource, baselines: list[str],
             save_dir: str | None = None) -> dict:
    """Metrics of the model and ``baselines`` over the views of ``paths`` (``val_windows`` each; view i
    gets hole i), averaged over the views of the readable pictures (at least one: ``check_readable``)."""
    inpainter = Inpainter.from_checkpoint(checkpoint)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in (MODEL, *baselines)}
    truth_tv, truth_tv_hole, skipped, strips = [], [], [], []
    windows = config.val_windows
    with tqdm(total=len(paths) * windows, desc="evaluating", unit="view") as progress:   # closed on errors too
        for place, path in enumerate(paths):
            try:
                views = load_views(path, place, config)
            except UserError as error:
                skipped.append(path)
                progress.update(windows)
                tqdm.write(f"warning: skipping {error}", file=sys.stderr)
                continue
            for window, truth in enumerate(views):
                hole = holes(place * windows + window)
                given = truth.copy()
                given[hole] = 255
                outputs = {MODEL: inpainter(given, hole)[0]}
                outputs.update({name: run_baseline(name, given, hole) for name in baselines})
                truth_float = truth.astype(np.float64) / 255
                for name, output in outputs.items():
                    rows[name].append(image_metrics(output.astype(np.float64) / 255, truth_float, hole))
                truth_tv.append(total_variation(truth_float))
                truth_tv_hole.append(total_variation(truth_float, hole))
                if save_dir:
                    strips.append(save_pictures(save_dir, view_stem(path, window, windows), given, outputs, truth))
                progress.update(1)
    if save_dir:
        save_sheet(save_dir, strips, grid_titles({name: None for name in (MODEL, *baselines)}))
    return {"model": average(rows[MODEL]), "baselines": {name: average(rows[name]) for name in baselines},
            "gt_tv": float(np.mean(truth_tv)), "gt_tv_hole": float(np.mean(truth_tv_hole)),
            "count": len(rows[MODEL]), "pictures": len(paths) - len(skipped), "windows": windows,
            "skipped": {"count": len(skipped), "paths": skipped}}


def finite_or_none(value: object) -> object:
    """The report with every nan or inf replaced by None, so that it is strict JSON."""
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
    """The report shaped like the paper's Table 1: methods as rows, whole image then hole as columns."""
    span = CELL * len(COLUMNS)
    heading = "".join(f"{title:>{CELL}}" for _, title, _ in COLUMNS)
    lines = [f"{'':<{NAME}}{'whole image':^{span}} |{'hole':^{span}}", f"{'method':<{NAME}}{heading} |{heading}"]
    for name, values in [("deepfill v1", report["model"]), *report["baselines"].items()]:
        lines.append(f"{name:<{NAME}}{_cells(values, '')} |{_cells(values, '_hole')}")
    truth = {"tv": report["gt_tv"], "tv_hole": report["gt_tv_hole"]}
    lines.append(f"{'ground truth':<{NAME}}{_cells(truth, '')} |{_cells(truth, '_hole')}")
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    """Command line → (settings with the command line's overrides applied, the remaining arguments)."""
    parser = ArgumentParser(prog="test.py", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=settings_help(load_config(None, (), DEMO_CONFIG)))
    parser.add_argument("--config", help=f"YAML settings (default: the demo, {os.path.relpath(DEMO_CONFIG)})")
    parser.add_argument("--checkpoint", help="weights: a file, a training run folder (its latest), a "
                        "converted official checkpoint or a pretrained name (places2, celeba, celebahq, "
                        "imagenet) (default: checkpoint, else run_dir)")
    parser.add_argument("--data", help="validation images: folder, file list or 'demo' (default: val_data)")
    parser.add_argument("--mask", help="box (training holes), center (hole_size square) or a folder of mask "
                        "pictures, white = hole (default: val_mask)")
    parser.add_argument("--baselines", help=f"comma-separated, from {', '.join(BASELINES)}; '' for none "
                        "(default: baselines)")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate the first N images (default: val_count)")
    parser.add_argument("--report", help="write the JSON report here")
    parser.add_argument("--save-dir", help="write each method's completions and [input | methods | truth] grids")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override settings (repeatable)")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.set, DEMO_CONFIG)
    for option, field in (("data", "val_data"), ("mask", "val_mask"), ("baselines", "baselines"),
                          ("limit", "val_count")):
        if getattr(args, option) is not None:
            setattr(config, field, getattr(args, option))
            config.explicit = config.explicit | {field}
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    if config.val_count < 0:
        raise UserError(f"val_count must be 0 (all) or more, got {config.val_count}")
    unknown = sorted(set(config.baseline_names()) - set(BASELINES))
    if unknown:
        raise UserError(f"unknown baseline {unknown[0]!r} (choose from {', '.join(BASELINES)})")
    return config, args


def check_outputs(report: str | None, save_dir: str | None) -> None:
    """Refuse, before any work, outputs that could not be written (a missing or read-only folder, a
    folder where the report should go, a file where the pictures' folder should be)."""
    if report:
        check_writable_file(report, "--report")
    if save_dir:
        if not os.path.isdir(os.path.dirname(os.path.abspath(save_dir))):
            raise UserError(f"cannot write {save_dir}: its parent folder does not exist")
        check_writable_folder(save_dir, "--save-dir")


def main(argv: list[str] | None = None) -> None:
    config, args = parse_arguments(argv)
    check_outputs(args.report, args.save_dir)
    checkpoint_path = args.checkpoint or config.checkpoint or config.run_dir
    if checkpoint_path == config.run_dir and not os.path.exists(checkpoint_path):
        raise UserError(f"checkpoint not found: {checkpoint_path} (run `python train.py` first for the demo)")
    checkpoint = load_checkpoint(checkpoint_path)
    config = evaluation_geometry(config, checkpoint.spec)
    print(f"evaluating at {config.image_size}x{config.image_size} with {config.hole_size}x{config.hole_size} "
          f"{config.val_mask} holes; model: {checkpoint.spec.describe()}")
    paths = list_sources(config.val_data)[:config.val_count or None]
    if args.save_dir:
        check_stems(paths)
    check_readable(paths, config)
    holes, largest_hole = hole_source(config, len(paths) * config.val_windows)
    baselines, unavailable = usable_baselines(config.baseline_names(), largest_hole)
    pick_device(config.device)
    report = evaluate(config, checkpoint, paths, holes, baselines, args.save_dir)
    report.update({"baselines_skipped": unavailable, "checkpoint": checkpoint.path,
                   "model_spec": checkpoint.spec.to_dict(),
                   "channel_order": checkpoint.spec.channel_order, "data": config.val_data,
                   "mask": config.val_mask, "image_size": config.image_size, "hole_size": config.hole_size,
                   "seed": config.seed})
    report = finite_or_none(report)
    print(table(report))
    skipped = f", {report['skipped']['count']} unreadable skipped" if report["skipped"]["count"] else ""
    views = (f"{report['count']} windows of {report['pictures']} pictures" if config.val_windows > 1
             else f"{report['count']} images")
    print(f"{views}{skipped}, {config.val_mask} holes, checkpoint {report['checkpoint']}")
    if args.report:
        with atomic_path(args.report) as temporary, open(temporary, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, allow_nan=False)
        print(f"wrote {args.report}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
