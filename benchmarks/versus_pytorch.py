"""Training speed against the PyTorch port, one iteration of each in turn.

    python benchmarks/versus_pytorch.py --port DIR --python PYTHON [--rounds 4] [--set batch_size=4 ...]

``--port`` is a checkout of daa233/generative-inpainting-pytorch (the same graph shape) and ``--python``
an interpreter with PyTorch; this project never imports PyTorch, the port runs in a subprocess of that
interpreter. A machine's speed can drift over minutes, so two separate runs cannot be compared: after one warm-up iteration each, this alternates one Algorithm-1
iteration of this project (in this process, as ``train_speed.py`` runs it, on the demo pictures) with
one of the port, and prints both medians and their ratio — and the ratio this project's oneDNN kernels
alone would give (their seconds per iteration against the port's): the least any overhead-free version of
the same arithmetic on the same kernels could reach.

The port's iteration is its own training loop's at the config's size and batch: five calls of its trainer,
the fifth with the generator loss, on random images (its data loading is not timed). Its own order of
updates fails on PyTorch ≥ 1.5 (the critic step changes the critics' weights in place before the generator
loss's backward runs through them), so here both backward passes run before the two optimiser steps: the
same work.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import tempfile

from deepfill.utils.environment import prepare_paddle  # noqa: E402

prepare_paddle()

from train_speed import PhaseClock, Variant  # noqa: E402
from deepfill.training.algorithm import adversarial  # noqa: E402
from deepfill.utils.cli import ArgumentParser, run  # noqa: E402
from deepfill.utils.config import load_config  # noqa: E402
from deepfill.utils.device import pick_device  # noqa: E402
from deepfill.utils.errors import UserError  # noqa: E402

PLACES2_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                              "places2.yaml")
PORT_FILES = ("trainer.py", os.path.join("model", "networks.py"), os.path.join("utils", "tools.py"))

PORT_ITERATION = r"""
import sys, time, types
sys.path.insert(0, ".")
try:
    import torchvision  # noqa: F401  (the port's networks import it, nothing here uses it)
except ImportError:
    stub = types.ModuleType("torchvision")
    stub.transforms, stub.utils = types.ModuleType("transforms"), types.ModuleType("utils")
    sys.modules.update({"torchvision": stub, "torchvision.transforms": stub.transforms,
                        "torchvision.utils": stub.utils})
import torch, yaml
from trainer import Trainer
from utils.tools import mask_image, random_bbox

size, batch, threads = (int(v) for v in sys.argv[1:4])
torch.set_num_threads(threads)
torch.manual_seed(0)
config = yaml.safe_load(open("configs/config.yaml"))
config.update(cuda=False, gpu_ids=None, batch_size=batch, image_shape=[size, size, 3],
              mask_shape=[size // 2, size // 2], max_delta_shape=[size // 8, size // 8])
trainer = Trainer(config)


def update(with_generator):
    truth = torch.rand(batch, 3, size, size) * 2 - 1
    boxes = random_bbox(config, batch_size=batch)
    x, mask = mask_image(truth, boxes, config)
    losses, _, _ = trainer(x, boxes, mask, truth, with_generator)
    trainer.optimizer_d.zero_grad()
    (losses["wgan_d"] + losses["wgan_gp"] * config["wgan_gp_lambda"]).backward()
    if with_generator:
        trainer.optimizer_g.zero_grad()
        (losses["l1"] * config["l1_loss_alpha"] + losses["ae"] * config["ae_loss_alpha"]
         + losses["wgan_g"] * config["gan_loss_alpha"]).backward()
        trainer.optimizer_g.step()
    trainer.optimizer_d.step()


print("ready", flush=True)
for _ in sys.stdin:
    start = time.perf_counter()
    for step in range(1, config["n_critic"] + 1):
        update(step == config["n_critic"])
    print(time.perf_counter() - start, flush=True)
"""


class PortRunner:
    """The port's training loop in a subprocess of ``python``: one iteration per request."""

    def __init__(self, folder: str, python: str, size: int, batch: int, threads: int) -> None:
        missing = [name for name in PORT_FILES if not os.path.isfile(os.path.join(folder, name))]
        if missing:
            raise UserError(f"--port {folder} is not a checkout of daa233/generative-inpainting-pytorch "
                            f"(no {missing[0]})")
        self.errors = tempfile.TemporaryFile("w+")      # a file, not a pipe: warnings cannot fill it and stall
        try:
            self.process = subprocess.Popen([python, "-c", PORT_ITERATION, str(size), str(batch), str(threads)],
                                            cwd=folder, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=self.errors, text=True)
        except OSError as error:
            raise UserError(f"cannot run --python {python}: {error.strerror}") from None
        self.read()

    def read(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.errors.seek(0)
            last = (self.errors.read().strip().splitlines() or ["no output"])[-1]
            raise UserError(f"the PyTorch port stopped: {last}")
        return line

    def iteration(self) -> float:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return float(self.read())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()
        self.errors.close()


def main() -> None:
    parser = ArgumentParser(prog="versus_pytorch.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", required=True, help="a checkout of daa233/generative-inpainting-pytorch")
    parser.add_argument("--python", required=True, help="a Python interpreter with PyTorch, to run the port")
    parser.add_argument("--rounds", type=int, default=4, help="timed iterations of each (default 4)")
    parser.add_argument("--config", default=PLACES2_CONFIG,
                        help="YAML settings (default: configs/places2.yaml, the official recipe)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override settings, as for train.py (repeatable)")
    args = parser.parse_args()
    if args.rounds < 1:
        raise UserError("--rounds must be at least 1")
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(args.config, [*args.set, "data=demo", f"run_dir={folder}/a"])
        if config.cnum != 32:
            raise UserError(f"the port's networks have the official width (cnum 32); this config has {config.cnum}")
        if not adversarial(config, 0):
            raise UserError("this config starts with reconstruction-only updates (reconstruction_iters or "
                            "pretrain_coarse); the port's iterations are Algorithm 1's")
        pick_device(config.device, config.cpu_threads, training=True)
        threads = config.cpu_threads or len(os.sched_getaffinity(0))
        port = PortRunner(os.path.abspath(args.port), args.python, config.image_size, config.batch_size, threads)
        ours = Variant("", config, PhaseClock(), phases=False, kernels=True)
        ours.iteration(timed=False)
        port.iteration()
        port_seconds = []
        for _ in range(args.rounds):
            ours.iteration()
            port_seconds.append(port.iteration())
        port.close()
        ours.trainer.close()
    mine, theirs = statistics.median(ours.seconds), statistics.median(port_seconds)
    print(f"{config.image_size}x{config.image_size}, batch {config.batch_size}, {threads} threads, "
          f"{args.rounds} alternating rounds")
    print(f"this project: median {mine:.2f} s per iteration ({' '.join(f'{s:.2f}' for s in ours.seconds)})")
    print(f"PyTorch port: median {theirs:.2f} s per iteration ({' '.join(f'{s:.2f}' for s in port_seconds)})")
    print(f"ratio {mine / theirs:.3f}")
    times = ours.kernel_times
    if times.calls:
        in_kernels = sum(times.seconds.values()) / len(ours.seconds)
        work = sum(times.multiply_adds.values()) / len(ours.seconds)
        print(f"of this project's iteration, oneDNN's kernels: {in_kernels:.2f} s for {work / 1e9:.0f} GMAC "
              f"({work / 1e9 / in_kernels:.0f} GMAC/s); their ratio to the port alone {in_kernels / theirs:.3f}")


if __name__ == "__main__":
    run(main)
