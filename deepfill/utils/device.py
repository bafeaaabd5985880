"""Where the model runs, and how much memory it may use there."""
from __future__ import annotations

import os
import re
import sys

import paddle

from deepfill.utils.environment import keep_freed_memory
from deepfill.utils.errors import UserError


def pick_device(requested: str = "auto", cpu_threads: int = 0, training: bool = False, inference: bool = False
                ) -> str:
    """``auto`` → the first GPU when Paddle was built with CUDA and sees one, else the CPU, where the math
    runs on ``cpu_threads`` threads (0 = one per core; Paddle's own default is one) and, for ``training``
    and ``inference`` (``inpaint.py``, ``app.py``), glibc keeps freed memory for the next step, layer or
    fill (``keep_freed_memory``). Both are CPU tuning only: on a GPU the threads do nothing
    useful and the kept heap (up to 2 GiB per process, inherited by forked loader workers) is host memory
    held for nothing.

    All of Paddle's OpenMP work (its kernels such as Adam, MKL, oneDNN) runs on one pool, Intel's libiomp5,
    so it is not two pools fighting. On a free machine more threads make oneDNN's convolutions and MKL's
    products faster. On a machine whose cores are busy with other work every parallel region waits for its
    descheduled other threads: there, one thread is the better choice (docs/performance.md, Threads).
    """
    requested = own_gpu_under_launcher(requested)
    if requested == "auto":
        has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        requested = "gpu" if has_gpu else "cpu"
    try:
        place = paddle.set_device(requested)
    except (ValueError, RuntimeError) as error:
        raise UserError(f"cannot use device {requested!r}: {error}".splitlines()[0]) from None
    if paddle.device.get_device() == "cpu":
        global _threads
        _threads = cpu_threads or len(os.sched_getaffinity(0))
        restore_cpu_threads()
        if training or inference:
            keep_freed_memory()
    return place


_threads = 1


def own_gpu_under_launcher(requested: str) -> str:
    """``gpu:N`` for one of several processes started by ``paddle.distributed.launch`` → ``gpu``, which
    Paddle maps to the GPU the launcher gave this process (``--gpus``); as asked, every process would
    put its model on the same GPU. Says so on stderr, once, from the first process."""
    world = int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1)
    if world <= 1 or not re.fullmatch(r"gpu:\d+", requested):
        return requested
    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0") or 0)
    if rank == 0:
        print(f"note: device={requested} ignored under the launcher: each of the {world} processes uses its "
              "own GPU (the launcher's --gpus chooses them)", file=sys.stderr)
    return "gpu"


def restore_cpu_threads() -> None:
    """Set the math threads back to ``pick_device``'s choice. A Paddle Inference predictor leaves the
    calling thread's OpenMP count at 1 after it is built or run, and oneDNN fixes a primitive's thread
    count when the primitive is created — so without this, every convolution first run after a predictor
    call (eager work after the paddle-inference backend, say) would stay on one thread."""
    if hasattr(paddle, "base"):
        paddle.base.core.set_num_threads(_threads)


def available_bytes() -> int | None:
    """Memory free for this run: the GPU's total memory, or the CPU's available memory (Linux)."""
    if paddle.device.get_device().startswith("gpu"):
        return paddle.device.cuda.get_device_properties().total_memory
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def on_gpu() -> bool:
    """Whether Paddle's current device is a GPU."""
    return paddle.device.get_device().startswith("gpu")


def wait_for_device() -> None:
    """Wait until the GPU has finished the work queued so far (a no-op on the CPU): a timer stopped
    without it measures how fast work was queued, not done."""
    if on_gpu():
        paddle.device.cuda.synchronize()


def peak_device_memory() -> int | None:
    """The most GPU memory Paddle's allocator has held for tensors in this process, in bytes (None on
    the CPU)."""
    return paddle.device.cuda.max_memory_allocated() if on_gpu() else None
