"""Evaluate a checkpoint on a validation set with the paper's metrics (Table 1), beside classical baselines
that see the same images and the same holes.

    python test.py                          # the demo: its checkpoint on windows of the held-out pictures
    python test.py --config configs/places2.yaml --checkpoint CKPT --data /data/places2/val.flist \\
        --mask center --report report.json --save-dir eval_pictures

Each picture gives ``val_windows`` views: with 1, the centre of the training view (``image_fit``); with
N > 1, N ``image_size`` windows cut as training cuts them, at positions drawn from (seed, picture, window).
Each view gets a hole that depends only on its place in the list of views: ``--mask box`` draws the
training recipe's box from (seed, place), ``--mask center`` is the paper's centred ``hole_size`` square,
``--mask free_form`` draws DeepFill v2's training holes (its brush strokes united with the box) from (seed,
place), and ``--mask DIR`` gives view i the i-th mask file of DIR (sorted; white = hole; resized to the
image). Every run and every method therefore sees the same views and holes. Unreadable images (damaged, foreign,
declaring more than ``max_image_pixels``) are skipped, named on stderr and counted in the report.
``--report`` and ``--save-dir`` are checked writable before any work.

The JSON report holds ``model`` and ``baselines`` (l1, l2, psnr, tv, ssim, each also over the hole),
``gt_tv``, ``count`` and how it was made; a value that does not exist (every PSNR infinite) is ``null``.
"""
from __future__ import annotations

import argparse
import os
import sys

from deepfill.utils.environment import prepare_paddle

prepare_paddle()

from deepfill.data.dataset import list_sources  # noqa: E402
from deepfill.evaluation import (check_outputs, check_readable, check_stems, evaluate_pictures,  # noqa: E402
                                 evaluation_geometry, finite_or_none, hole_source, table, usable_baselines,
                                 write_report)
from deepfill.inpainting.filler import Filler  # noqa: E402
from deepfill.models import kernels  # noqa: E402
from deepfill.models.checkpoint import load_checkpoint  # noqa: E402
from deepfill.tester import BASELINES  # noqa: E402
from deepfill.utils.cli import ArgumentParser, UserError, run  # noqa: E402
from deepfill.utils.config import Config, load_config, settings_help  # noqa: E402
from deepfill.utils.device import pick_device  # noqa: E402

DEMO_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "demo.yaml")

def parse_arguments(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    """Command line → (settings with the command line's overrides applied, the remaining arguments)."""
    parser = ArgumentParser(prog="test.py", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=settings_help(load_config(None, (), DEMO_CONFIG)))
    parser.add_argument("--config", help=f"YAML settings (default: the demo, {os.path.relpath(DEMO_CONFIG)})")
    parser.add_argument("--checkpoint", help="weights: a file, a training run folder (its latest), a "
                        "converted official checkpoint or a pretrained name (places2, celeba, celebahq, "
                        "imagenet, places2_v2, celebahq_v2) (default: checkpoint, else run_dir)")
    parser.add_argument("--data", help="validation images: folder, file list or 'demo' (default: val_data)")
    parser.add_argument("--mask", help="box (v1's training holes), center (hole_size square), free_form (v2's "
                        "training holes: brush strokes and the box) or a folder of mask pictures, white = hole "
                        "(default: val_mask)")
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
    kernels.choose(config.onednn, config.cpu_precision)
    result = evaluate_pictures(Filler.from_checkpoint(checkpoint), paths, config, holes, baselines,
                               args.save_dir)
    report = finite_or_none({
        **result.to_dict(), "baselines_skipped": unavailable, "checkpoint": checkpoint.path,
        "model_spec": checkpoint.spec.to_dict(), "channel_order": checkpoint.spec.channel_order,
        "data": config.val_data, "mask": config.val_mask, "image_size": config.image_size,
        "hole_size": config.hole_size, "seed": config.seed,
        "cpu_precision": config.cpu_precision if kernels.backend() == "onednn" else "float32"})
    print(table(report))
    print(f"{result.summary()}, {config.val_mask} holes, checkpoint {checkpoint.path}")
    if args.report:
        write_report(args.report, report)
        print(f"wrote {args.report}", file=sys.stderr)

if __name__ == "__main__":
    run(main)
