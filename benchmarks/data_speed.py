"""Pictures per second of the training loader, for 0–4 loader processes, beside what a GPU needs.

    python benchmarks/data_speed.py [--pictures 200] [--batches 12] [--workers 0 1 2 3 4] [--set key=value ...]

Writes ``--pictures`` synthetic 512×384 JPEGs (smooth noise, quality 90: about Places2's file size) to a
temporary folder and reads them through the training loader (``deepfill.data.dataset.training_loader``: decode,
256² view, batch) as ``train.py`` does, after one warm-up batch, for each ``num_workers``. Printed beside
it: what one Algorithm-1 iteration consumes (``critic_steps`` + 1 batches of ``batch_size``: 6 × 16 = 96
pictures) at an assumed ``--gpu-seconds`` per iteration (1.0 s: a guess for a GTX 1080 Ti-class GPU at
256², batch 16 — nothing here has been timed on a GPU).
"""
from __future__ import annotations

import os
import tempfile
import time

from deepfill.utils.environment import prepare_paddle

prepare_paddle()

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from deepfill.data.dataset import training_dataset, training_loader  # noqa: E402
from deepfill.utils.cli import ArgumentParser, run  # noqa: E402
from deepfill.utils.config import load_config  # noqa: E402

PLACES2 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "places2.yaml")


def write_pictures(folder: str, count: int) -> None:
    """``count`` 512×384 JPEGs of smooth colour noise (real photographs' decode cost, not noise's)."""
    rng = np.random.default_rng(0)
    for index in range(count):
        picture = cv2.resize(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (512, 384),
                             interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(os.path.join(folder, f"picture_{index:04d}.jpg"), picture, [cv2.IMWRITE_JPEG_QUALITY, 90])


def pictures_per_second(config, batches: int) -> float:
    stream = training_loader(training_dataset(config), config)
    try:
        stream.next()                                   # warm-up: loader processes start, first decodes
        start = time.perf_counter()
        for _ in range(batches):
            stream.next()
        return batches * config.batch_size / (time.perf_counter() - start)
    finally:
        stream.close()


def main() -> None:
    parser = ArgumentParser(prog="data_speed.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, default=200, help="synthetic JPEGs to write (default 200)")
    parser.add_argument("--batches", type=int, default=12, help="timed batches per setting (default 12)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="num_workers to try")
    parser.add_argument("--gpu-seconds", type=float, default=1.0,
                        help="assumed seconds per iteration on the GPU (default 1.0, a guess for a 1080 Ti)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override configs/places2.yaml's settings (e.g. batch_size=8)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_pictures(folder, args.pictures)
        base = load_config(PLACES2, [*args.set, f"data={folder}"])
        needed = (base.critic_steps + 1) * base.batch_size / args.gpu_seconds
        print(f"{args.pictures} JPEGs 512x384 -> {base.image_size}x{base.image_size} ({base.image_fit}), batch "
              f"{base.batch_size}, {len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.1f}")
        print(f"one iteration needs {base.critic_steps + 1} batches x {base.batch_size} = "
              f"{(base.critic_steps + 1) * base.batch_size} pictures: {needed:.0f} pictures/s at an assumed "
              f"{args.gpu_seconds:g} s per iteration")
        for workers in args.workers:
            config = load_config(PLACES2, [*args.set, f"data={folder}", f"num_workers={workers}"])
            rate = pictures_per_second(config, args.batches)
            print(f"num_workers={workers}: {rate:6.1f} pictures/s  ({rate / needed:4.2f}x what the GPU needs)")


if __name__ == "__main__":
    run(main)
