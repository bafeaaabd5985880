"""Train DeepFill v1 (paper Algorithm 1): five WGAN-GP critic updates, each on a fresh batch and hole,
per generator update.

    python train.py                                   # the demo: bundled pictures, on a CPU
    python train.py --config configs/places2.yaml --set data=/data/places2/train.flist
    python train.py --config configs/places2.yaml --resume      # continue exactly where it stopped

Everything lands in ``run_dir``: ``step_XXXXXXXX.pdparams`` checkpoints (atomic; generator, critics,
optimisers, data position and random state, so a resumed run computes what the uninterrupted one would
have), ``train.log``, ``samples/`` pictures, and VisualDL logs (``visualdl --logdir RUN_DIR``).
Ctrl-C or SIGTERM finishes the current iteration, saves and stops; a second Ctrl-C stops at once.
"""
from __future__ import annotations

import argparse
import glob
import os
import shlex
import sys

from deepfill.utils.environment import prepare_paddle

prepare_paddle()

from deepfill.training.loop import train_and_report  # noqa: E402
from deepfill.training.parallel import DataParallel  # noqa: E402
from deepfill.utils.cli import ArgumentParser, run  # noqa: E402
from deepfill.utils.config import Config, load_config, settings_help  # noqa: E402
from deepfill.utils.device import pick_device  # noqa: E402

DEMO_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "demo.yaml")
DEMO_EXAMPLE = "chelsea"     # examples/images/chelsea.png: a held-out picture at the demo's own scale


def next_steps(config: Config, args: argparse.Namespace) -> str:
    """What to do with a finished run: evaluate it, fill holes with it, look at its sample grids."""
    plain_demo = args.config is None and not args.set
    evaluate = ["python", "test.py"] + ([] if plain_demo else
                                        [*(["--config", args.config] if args.config else []),
                                         "--checkpoint", config.run_dir])
    if config.data == "demo":
        picture = [f"examples/images/{DEMO_EXAMPLE}.png", f"examples/masks/{DEMO_EXAMPLE}.png",
                   f"{DEMO_EXAMPLE}_filled.png"]
    else:
        picture = ["PICTURE.png", "MASK.png", "filled.png"]
    fill = ["python", "inpaint.py", "--checkpoint", config.run_dir, "--image", picture[0], "--mask", picture[1],
            "--output", picture[2]]
    samples = sorted(glob.glob(os.path.join(config.run_dir, "samples", "step_*.png")))
    latest = f" (latest: {samples[-1]})" if samples else ""
    return "\n".join([
        "next:",
        f"  evaluate against mean fill, OpenCV, biharmonic and PatchMatch:  {shlex.join(evaluate)}",
        f"  fill the holes of a picture:  {shlex.join(fill)}",
        f"  sample grids (input | coarse | refined | truth | attention): {os.path.join(config.run_dir, 'samples')}"
        f"{latest}"])


def main() -> None:
    parser = ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=settings_help(load_config(None, (), DEMO_CONFIG)))
    parser.add_argument("--config", help=f"YAML settings (default: the demo, {os.path.relpath(DEMO_CONFIG)})")
    parser.add_argument("--resume", action="store_true", help="continue the latest checkpoint in run_dir")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override settings (repeatable; the keys are listed below)")
    args = parser.parse_args()
    config = load_config(args.config, args.set, DEMO_CONFIG)
    pick_device(config.device, config.cpu_threads, training=True)
    DataParallel.start()
    trainer, code = train_and_report(config, args.resume)
    if code:
        sys.exit(code)
    if trainer.rank == 0:
        print(next_steps(trainer.config, args))


if __name__ == "__main__":
    run(main)
