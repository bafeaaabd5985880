"""Peak tensor memory of one critic update and one generator update, above what training holds between
updates (weights, Adam's moments, cached index tensors).

    python benchmarks/step_memory.py [--config configs/places2.yaml] [--set key=value ...]

Runs on the demo pictures in a throw-away folder, after one warm-up iteration (Adam's moments exist from
then on). The figures are the peaks of Paddle's own allocator: on a GPU of device memory, on the CPU of
host memory (``onednn=false`` there for what a GPU's kernels keep; oneDNN's buffers are not counted). On a
GPU this is what decides the largest batch that fits; it scales about linearly with ``batch_size``.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable

from deepfill.utils.environment import prepare_paddle  # noqa: E402

prepare_paddle()

import paddle  # noqa: E402
from paddle.base import core  # noqa: E402
from deepfill.training.trainer import Trainer  # noqa: E402
from deepfill.utils.cli import ArgumentParser, UserError, run  # noqa: E402
from deepfill.utils.config import load_config  # noqa: E402
from deepfill.utils.device import on_gpu, pick_device, wait_for_device  # noqa: E402

PLACES2 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "places2.yaml")


def peak_above_start(work: Callable[[], object]) -> int:
    """Bytes of tensor memory ``work`` needed at its peak beyond what was allocated when it started."""
    wait_for_device()
    if on_gpu():
        paddle.device.cuda.reset_max_memory_allocated()
        start = paddle.device.cuda.memory_allocated()
        work()
        wait_for_device()
        return paddle.device.cuda.max_memory_allocated() - start
    if not hasattr(core, "host_memory_stat_reset_peak_value"):
        raise UserError(f"measuring the CPU's peak needs Paddle 3 (Paddle {paddle.__version__} cannot reset "
                        "its host-memory peak); on a GPU any version works")
    core.host_memory_stat_reset_peak_value("Allocated", 0)
    start = core.host_memory_stat_current_value("Allocated", 0)
    work()
    return core.host_memory_stat_peak_value("Allocated", 0) - start


def main() -> None:
    parser = ArgumentParser(prog="step_memory.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=PLACES2, help="YAML settings (default: configs/places2.yaml)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override settings, as for train.py (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(args.config, [*args.set, "data=demo", "num_workers=0", "val_every=0",
                                           f"run_dir={folder}"])
        device = pick_device(config.device, config.cpu_threads, training=True)
        trainer = Trainer(config)
        try:
            trainer.iteration()
            critic = peak_above_start(trainer.critic_step)
            generator = peak_above_start(trainer.generator_step)
        finally:
            trainer.close()
    print(f"device {device}, paddle {paddle.__version__}, onednn={config.onednn}: {config.image_size}x"
          f"{config.image_size}, batch {config.batch_size}, cnum {config.cnum}")
    print(f"peak tensor memory above the weights and optimiser state: critic update {critic / 2 ** 20:.0f} MiB, "
          f"generator update {generator / 2 ** 20:.0f} MiB")


if __name__ == "__main__":
    run(main)
