"""Time and memory of the generator's forward pass, as inpaint.py runs it.

    python benchmarks/inference.py --size 512 --repeats 5          # one size; last line is machine-readable
    python benchmarks/inference.py --sizes 256,512,1024,2048       # a table, each size in a fresh process

The input is a random image with a centred square hole of a quarter of its area. One warm-up pass, then
the median of ``--repeats`` timed passes. Peak memory is the process's peak resident set (and the GPU's
peak allocation on a GPU), so a table runs every size in its own process. The process is set up as
``inpaint.py`` and ``app.py`` set theirs up (``pick_device(inference=True)``); the warm-up and the peak
after it (``first_s``, ``first_peak_rss_mb``) are what one ``inpaint.py`` fill costs, plans and all, the
peak after every pass what a long-lived ``app.py`` reaches. ``--backend`` picks how the generator runs
(``deepfill.inpainting.runners``): ``eager`` (the default) computes only what reaches the hole;
``paddle-inference`` and ``onnxruntime`` run the exported full graph — of ``--checkpoint`` if it is an
exported folder, else of the
weights exported to a temporary folder first.
"""
from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time

import numpy as np  # noqa: E402

from fresh_process import measure_fresh  # noqa: E402
from deepfill.utils.environment import prepare_paddle  # noqa: E402

prepare_paddle()

import paddle  # noqa: E402
from deepfill.inpainting.export import export_model, is_export  # noqa: E402
from deepfill.inpainting.open_model import EXPORTED_BACKENDS, check_backend, open_model  # noqa: E402
from deepfill.models import kernels  # noqa: E402
from deepfill.models.checkpoint import load_checkpoint  # noqa: E402
from deepfill.models.checkpoint_file import Checkpoint
from deepfill.models.generator import InpaintGenerator  # noqa: E402
from deepfill.models.spec import ModelSpec  # noqa: E402
from deepfill.utils.device import pick_device, wait_for_device  # noqa: E402
from deepfill.utils.cli import ArgumentParser, UserError, add_cpu_precision, run  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_checkpoint(folder: str) -> str:
    """Randomly initialised weights (seed 0) saved as a checkpoint, for exporting without one."""
    from deepfill.models.checkpoint_file import save_checkpoint
    paddle.seed(0)
    path = os.path.join(folder, "random.pdparams")
    save_checkpoint(path, ModelSpec(source="random initialisation"), {"generator": InpaintGenerator().state_dict()})
    return path


def exported(checkpoint: str | None, backend: str, scratch: str) -> str:
    """An exported folder for an exported backend: ``checkpoint`` if it is one, else an export of its
    weights (or of random ones) made in ``scratch``."""
    if checkpoint and is_export(checkpoint):
        return checkpoint
    source: Checkpoint = load_checkpoint(checkpoint or random_checkpoint(scratch))
    folder = os.path.join(scratch, "export")
    export_model(source, folder, (EXPORTED_BACKENDS[backend],), report=lambda line: None)
    return folder


def open_backend(checkpoint: str | None, backend: str | None, scratch: str):
    """The ``Filler`` to time."""
    if backend in EXPORTED_BACKENDS:
        checkpoint = exported(checkpoint, backend, scratch)
    return open_model(checkpoint or random_checkpoint(scratch), backend)


def time_attention(inpainter) -> list[float]:
    """Where the generator runs eagerly, have its contextual attention's seconds appended to the list
    returned, one entry per pass (the warm-up first); otherwise the list stays empty."""
    seconds: list[float] = []
    generator = getattr(inpainter.runner, "generator", None)
    if generator is None:
        return seconds
    attend = generator.refine.attend

    def timed(*args, **kwargs):
        wait_for_device()
        start = time.perf_counter()
        result = attend(*args, **kwargs)
        wait_for_device()
        seconds.append(time.perf_counter() - start)
        return result

    generator.refine.attend = timed
    return seconds


def measure(args) -> None:
    """Time one size in this process and print ``size=S median_s=X peak_rss_mb=Y`` last."""
    device = pick_device(args.device, inference=True)
    kernels.choose(precision=args.cpu_precision)
    with tempfile.TemporaryDirectory(prefix="deepfill-bench-") as scratch:
        inpainter = open_backend(args.checkpoint, args.backend, scratch)
    size = args.size
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    mask = np.zeros((1, 1, size, size), np.float32)
    mask[..., size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
    x *= 1 - mask
    loaded = peak_rss_mb()              # Paddle and the model, before any pass
    attention = time_attention(inpainter)
    start = time.perf_counter()
    inpainter.stage2(x, mask)
    warm_up = time.perf_counter() - start
    first_peak = peak_rss_mb()
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        inpainter.stage2(x, mask)
        seconds.append(time.perf_counter() - start)
    attention_s = f" attention_s={statistics.median(attention[1:]):.3f}" if attention else ""
    threads = len(os.sched_getaffinity(0))
    mode = inpainter.runner.name
    print(f"device {device}, paddle {paddle.__version__}, {mode}, {threads} threads; warm-up {warm_up:.2f} s, "
          f"min {min(seconds):.3f} s, max {max(seconds):.3f} s over {args.repeats} runs")
    gpu = ""
    if str(device).startswith(("gpu", "Place(gpu")):
        gpu = f" peak_gpu_mb={paddle.device.cuda.max_memory_allocated() / 2 ** 20:.0f}"
    print(f"size={size} median_s={statistics.median(seconds):.3f} peak_rss_mb={peak_rss_mb():.0f}{gpu} "
          f"threads={threads} backend={mode} precision={args.cpu_precision} first_s={warm_up:.3f} first_peak_rss_mb={first_peak:.0f} "
          f"loaded_rss_mb={loaded:.0f}{attention_s}")


def parse_sizes(text: str) -> list[int]:
    try:
        return [int(size) for size in text.split(",") if size.strip()]
    except ValueError:
        raise UserError(f"--sizes expects comma-separated integers, got {text!r}") from None


def table(args) -> None:
    """Run every size in a fresh process and print one row per size (an exported backend's export is
    made once, here, so that it is not part of any size's peak memory)."""
    with tempfile.TemporaryDirectory(prefix="deepfill-bench-") as scratch:
        checkpoint = args.checkpoint
        if args.backend in EXPORTED_BACKENDS:
            checkpoint = exported(checkpoint, args.backend, scratch)
        print(f"{'size':>6} {'median s':>9} {'peak RSS MB':>12}  backend")
        for size in args.sizes:
            command = [sys.executable, os.path.abspath(__file__), "--size", str(size), "--repeats",
                       str(args.repeats), "--device", args.device, "--cpu-precision", args.cpu_precision]
            command += ["--checkpoint", checkpoint] if checkpoint else []
            command += ["--backend", args.backend] if args.backend else []
            fields, failure = measure_fresh(command)
            if fields is None:
                print(f"{size:>6} failed: {failure}", flush=True)
                continue
            print(f"{size:>6} {float(fields['median_s']):>9.3f} {float(fields['peak_rss_mb']):>12.0f}  "
                  f"{fields['backend']}", flush=True)


def main() -> None:
    parser = ArgumentParser(prog="inference.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="image side (multiple of 8)")
    parser.add_argument("--sizes", help="comma-separated sides: print a table, one process per size")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes after the warm-up (default 5)")
    parser.add_argument("--checkpoint", help="weights to use, or an exported folder (default: random "
                                             "initialisation)")
    parser.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, gpu or gpu:N")
    parser.add_argument("--backend", help="eager (the default), paddle-inference or onnxruntime "
                                          "(an exported full graph)")
    add_cpu_precision(parser)
    args = parser.parse_args()
    check_backend(args.backend)
    args.sizes = parse_sizes(args.sizes) if args.sizes else None
    for size in [args.size, *(args.sizes or [])]:
        if size < 16 or size % 8:
            raise UserError(f"sizes must be multiples of 8 and at least 16, got {size}")
    if args.repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {args.repeats}")
    if args.sizes:
        table(args)
    else:
        measure(args)


if __name__ == "__main__":
    run(main)
