"""Time of each hd-strategy on a big picture with a small hole (what ``crop`` and ``resize`` are for).

    python benchmarks/hd_strategy.py --strategy crop                          # one mode; last line machine-readable
    python benchmarks/hd_strategy.py --strategies crop,resize,full --repeats 1   # a table, one process per mode

The picture is ``examples/images/astronaut.png`` scaled to ``--size``² with a centred ``--hole``² hole, filled
as ``inpaint.py --hd-strategy`` fills it (``deepfill.inpainting.strategy.fill``). One warm-up pass, then the median
of ``--repeats`` timed passes; peak memory is the process's, so the table runs every mode in its own
process. The figures are in docs/performance.md (Big photos).
"""
from __future__ import annotations

import os
import resource
import statistics
import sys
import time

import cv2
import numpy as np

from fresh_process import measure_fresh
from deepfill.utils.environment import prepare_paddle

prepare_paddle()

import paddle  # noqa: E402

from deepfill.inpainting.filler import Filler  # noqa: E402
from deepfill.inpainting.strategy import STRATEGIES, fill  # noqa: E402
from deepfill.models.checkpoint import load_checkpoint  # noqa: E402
from deepfill.models.generator import InpaintGenerator  # noqa: E402
from deepfill.utils.cli import ArgumentParser, UserError, run  # noqa: E402
from deepfill.utils.device import pick_device  # noqa: E402
from deepfill.utils.image_io import read_image, to_rgb8  # noqa: E402

PICTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "images",
                       "astronaut.png")


def measure(args) -> None:
    """Time one mode in this process and print ``strategy=S ... median_s=X peak_rss_mb=Y`` last."""
    pick_device(args.device)
    if args.checkpoint:
        generator = load_checkpoint(args.checkpoint).build_generator()
    else:
        paddle.seed(0)
        generator = InpaintGenerator()
    inpainter = Filler(generator)
    image = cv2.resize(to_rgb8(read_image(PICTURE)), (args.size, args.size), interpolation=cv2.INTER_CUBIC)
    hole = np.zeros((args.size, args.size), bool)
    start = (args.size - args.hole) // 2
    hole[start:start + args.hole, start:start + args.hole] = True
    began = time.perf_counter()
    completed, _, _ = fill(inpainter, image, hole, args.strategy)
    warm_up = time.perf_counter() - began
    seconds = []
    for _ in range(args.repeats):
        began = time.perf_counter()
        completed, _, _ = fill(inpainter, image, hole, args.strategy)
        seconds.append(time.perf_counter() - began)
    identical = bool((completed[~hole] == image[~hole]).all())
    print(f"warm-up {warm_up:.2f} s, min {min(seconds):.3f} s, max {max(seconds):.3f} s over {args.repeats} runs")
    print(f"strategy={args.strategy} size={args.size} hole={args.hole} median_s={statistics.median(seconds):.3f} "
          f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} "
          f"known_pixels_identical={identical}")


def table(args) -> None:
    """Run every mode in a fresh process; one row each, with its time as a fraction of ``full``'s."""
    rows = {}
    print(f"{args.size}x{args.size} picture, {args.hole}x{args.hole} hole")
    print(f"{'strategy':>8} {'median s':>9} {'peak RSS MB':>12} {'known pixels':>13}")
    for strategy in args.strategies:
        command = [sys.executable, os.path.abspath(__file__), "--strategy", strategy, "--size", str(args.size),
                   "--hole", str(args.hole), "--repeats", str(args.repeats), "--device", args.device]
        command += ["--checkpoint", args.checkpoint] if args.checkpoint else []
        fields, failure = measure_fresh(command)
        if fields is None:
            print(f"{strategy:>8} failed: {failure}", flush=True)
            continue
        rows[strategy] = float(fields["median_s"])
        kept = "identical" if fields["known_pixels_identical"] == "True" else "CHANGED"
        print(f"{strategy:>8} {rows[strategy]:>9.3f} {float(fields['peak_rss_mb']):>12.0f} {kept:>13}", flush=True)
    if "full" in rows:
        print(" ".join(f"{name}/full={seconds / rows['full']:.4f}" for name, seconds in rows.items()
                       if name != "full"))


def main() -> None:
    parser = ArgumentParser(prog="hd_strategy.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategy", default="crop", choices=STRATEGIES, help="the mode to time (default crop)")
    parser.add_argument("--strategies", help="comma-separated modes: print a table, one process per mode")
    parser.add_argument("--size", type=int, default=2048, help="picture side (default 2048)")
    parser.add_argument("--hole", type=int, default=100, help="side of the centred square hole (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes after the warm-up (default 3)")
    parser.add_argument("--checkpoint", help="weights to use (default: random initialisation; time is the same)")
    parser.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, gpu or gpu:N")
    args = parser.parse_args()
    if not 0 < args.hole < args.size:
        raise UserError(f"--hole must be between 1 and --size - 1, got {args.hole}")
    if args.repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {args.repeats}")
    if args.strategies:
        args.strategies = [name.strip() for name in args.strategies.split(",") if name.strip()]
        unknown = [name for name in args.strategies if name not in STRATEGIES]
        if unknown:
            raise UserError(f"unknown strategy {unknown[0]!r} (choose from {', '.join(STRATEGIES)})")
        table(args)
    else:
        measure(args)


if __name__ == "__main__":
    run(main)
