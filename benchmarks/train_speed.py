"""Seconds per training iteration (Algorithm 1: ``critic_steps`` critic updates + one generator update;
with ``--set reconstruction_iters=N`` larger than the iterations run, one generator update of the
reconstruction phase).

    python benchmarks/train_speed.py [--config FILE] [--iterations 3] [--set key=value ...]

Runs on the demo pictures (any ``data`` setting is replaced) in a throw-away folder, after one warm-up
iteration, and prints the median seconds per iteration, images per second and peak resident memory.
"""
from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time

from utils.environment import prepare_paddle  # noqa: E402

prepare_paddle()

import paddle  # noqa: E402
from training.trainer import Trainer  # noqa: E402
from utils.device import pick_device  # noqa: E402
from utils.cli import ArgumentParser, run  # noqa: E402
from utils.config import load_config  # noqa: E402

DEMO_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "demo.yaml")


def main() -> None:
    parser = ArgumentParser(prog="train_speed.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=DEMO_CONFIG, help="YAML settings (default: the demo's)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations after the warm-up (default 3)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override settings, as for train.py (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(args.config, [*args.set, "data=demo", f"run_dir={folder}"])
        device = pick_device(config.device)
        trainer = Trainer(config)
        trainer.iteration()
        seconds = []
        for _ in range(args.iterations):
            start = time.perf_counter()
            trainer.iteration()
            seconds.append(time.perf_counter() - start)
        trainer.close()
    median = statistics.median(seconds)
    images = config.batch_size * (config.critic_steps + 1 if trainer.adversarial else 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps = f"{config.critic_steps} critic steps" if trainer.adversarial else "reconstruction phase, no critics"
    print(f"device {device}, paddle {paddle.__version__}: {config.image_size}x{config.image_size}, "
          f"batch {config.batch_size}, {steps}")
    print(f"median {median:.2f} s per iteration ({images / median:.1f} images/s), "
          f"peak RSS {peak:.0f} MiB, {args.iterations} iterations")


if __name__ == "__main__":
    run(main)
