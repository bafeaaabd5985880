"""Check a GPU setup in about a minute: Paddle's own check, one training iteration, one fill.

    python tools/check_gpu.py [--device gpu] [--set key=value ...]

Runs ``paddle.utils.run_check()`` with Paddle's warnings shown (the commands hide them; the one that
matters here says that the installed wheel was not built for this GPU's architecture — see
docs/gpu.md for the wheel per GPU generation), then two Algorithm-1 iterations of configs/places2.yaml on
the demo pictures (256², batch 16, five critic updates; the second is timed) and one 512×512 fill with
the untrained generator, and prints seconds per iteration, seconds per fill and the peak GPU memory.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("GLOG_minloglevel", "1")     # Paddle's warnings (W lines) visible, not its INFO

from deepfill.utils.environment import prepare_paddle  # noqa: E402

prepare_paddle()

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from deepfill.inpainting.filler import Filler  # noqa: E402
from deepfill.models.generator import InpaintGenerator  # noqa: E402
from deepfill.training.trainer import Trainer  # noqa: E402
from deepfill.utils.cli import ArgumentParser, run  # noqa: E402
from deepfill.utils.config import load_config  # noqa: E402
from deepfill.utils.device import peak_device_memory, pick_device, wait_for_device  # noqa: E402

PLACES2 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "places2.yaml")
FILL_SIDE = 512


def timed(action) -> float:
    start = time.perf_counter()
    action()
    wait_for_device()
    return time.perf_counter() - start


def main() -> None:
    parser = ArgumentParser(prog="check_gpu.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="gpu", help="gpu (default), gpu:N, or cpu to try the script")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override configs/places2.yaml's settings (e.g. batch_size=8)")
    args = parser.parse_args()
    print(f"paddle {paddle.__version__}, compiled with CUDA: {paddle.device.is_compiled_with_cuda()}", flush=True)
    if args.device.startswith("gpu"):
        paddle.utils.run_check()
    device = pick_device(args.device, training=True)
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(PLACES2, [*args.set, "data=demo", "num_workers=0", f"run_dir={folder}"])
        trainer = Trainer(config)
        try:
            first = timed(trainer.iteration)
            second = timed(trainer.iteration)
        finally:
            trainer.close()
    print(f"training on {device}: {config.image_size}x{config.image_size}, batch {config.batch_size}, "
          f"{config.critic_steps} critic updates: {second:.2f} s per iteration (the first, with warm-up, "
          f"{first:.2f} s)")
    generator = InpaintGenerator(config.cnum)
    inpainter = Filler(generator)
    picture = np.random.default_rng(0).integers(0, 256, (FILL_SIDE, FILL_SIDE, 3), dtype=np.uint8)
    hole = np.zeros((FILL_SIDE, FILL_SIDE), bool)
    hole[160:352, 128:320] = True
    inpainter(picture, hole)
    fill = timed(lambda: inpainter(picture, hole))
    print(f"one {FILL_SIDE}x{FILL_SIDE} fill: {fill:.2f} s")
    peak = peak_device_memory()
    if peak is not None:
        print(f"peak GPU memory (tensors): {peak / 2 ** 30:.2f} GiB")
    if not str(device).lower().startswith(("place(gpu", "cuda")):
        print(f"note: this ran on {device}, not a GPU", file=sys.stderr)


if __name__ == "__main__":
    run(main)
