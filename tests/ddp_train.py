"""One data-parallel training process for tests/test_training.py, started by Paddle's launcher:

    python -m paddle.distributed.launch --nproc_per_node 2 tests/ddp_train.py OUT [--set key=value ...]

It trains with the given settings (on the demo's defaults, as train.py would) but gives each process a run
folder of its own (``OUT/rank<N>``), so that anything a process other than the first wrote would show, and
then saves this process's final weights as ``OUT/weights<N>.npz`` so that the processes can be compared.
"""
from __future__ import annotations

import os
import sys

from deepfill.utils.environment import prepare_paddle

prepare_paddle()

import numpy as np  # noqa: E402
import paddle.distributed as dist  # noqa: E402

from deepfill.training.loop import train  # noqa: E402
from deepfill.training.parallel import DataParallel  # noqa: E402
from deepfill.utils.config import load_config  # noqa: E402
from deepfill.utils.device import pick_device  # noqa: E402

DEMO_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "demo.yaml")


def main() -> None:
    out, arguments = sys.argv[1], sys.argv[2:]
    rank = dist.get_rank()
    settings = [a for a in arguments if a != "--set"] + [f"run_dir={os.path.join(out, f'rank{rank}')}"]
    config = load_config(None, settings, DEMO_CONFIG)
    pick_device(config.device, config.cpu_threads, training=True)
    DataParallel.start()
    trainer = train(config)
    models = {"generator": trainer.generator, "critic_local": trainer.local_critic,
              "critic_global": trainer.global_critic}
    np.savez(os.path.join(out, f"weights{rank}.npz"),
             **{f"{part}.{name}": value.numpy() for part, model in models.items()
                for name, value in model.state_dict().items()})


if __name__ == "__main__":
    main()
