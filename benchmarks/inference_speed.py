"""Inference time and memory of the generator at several image sizes, on this machine's device.

    python benchmarks/inference_speed.py [--sizes 256 512] [--repeats 5] [--checkpoint CKPT] [--device auto]

Times one forward pass (the whole two-stage generator with a centred square hole of half the side),
after one warm-up pass, and prints the median seconds and the process's peak resident memory.
"""
from __future__ import annotations

import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import utils  # noqa: E402,F401  (quiets Paddle before it is imported)
import paddle  # noqa: E402
from models.generator import InpaintGenerator  # noqa: E402
from models.inpainter import Inpainter, pick_device  # noqa: E402
from utils.checkpoint import build_generator, load_checkpoint  # noqa: E402
from utils.cli import ArgumentParser, run  # noqa: E402


def main() -> None:
    parser = ArgumentParser(prog="inference_speed.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkpoint", help="weights to use (default: random initialisation)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device, all_cpu_cores=True)
    if args.checkpoint:
        checkpoint = load_checkpoint(args.checkpoint)
        inpainter = Inpainter(build_generator(checkpoint), checkpoint["channel_order"])
    else:
        paddle.seed(0)
        inpainter = Inpainter(InpaintGenerator())
    print(f"device {device}, paddle {paddle.__version__}, {os.cpu_count()} CPU cores")
    rng = np.random.default_rng(0)
    for size in args.sizes:
        image = rng.integers(0, 256, (size, size, 3)).astype(np.uint8)
        hole = np.zeros((size, size), bool)
        hole[size // 4:3 * size // 4, size // 4:3 * size // 4] = True
        inpainter(image, hole)
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            inpainter(image, hole)
            seconds.append(time.perf_counter() - start)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{size}x{size}: median {statistics.median(seconds):.3f} s "
              f"(min {min(seconds):.3f}, max {max(seconds):.3f}, {args.repeats} runs), "
              f"peak RSS so far {peak:.0f} MiB")


if __name__ == "__main__":
    run(main)
