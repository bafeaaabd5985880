"""Seconds per training iteration (Algorithm 1: ``critic_steps`` critic updates + one generator update).

    python benchmarks/train_speed.py [--config FILE] [--iterations 3] [--phases] [--kernels]
                                     [--set key=value ...] [--compare key=value ...]

Runs on the demo pictures (any ``data`` setting is replaced) in a throw-away folder, after one warm-up
iteration, and prints the median seconds per iteration, images per second, peak resident memory and, on a
GPU, the peak GPU memory of tensors.
``--phases`` also prints where an iteration's time goes (median per phase over the timed iterations);
``--kernels`` also prints the seconds spent in oneDNN's kernels (convolutions and products, with their
multiply-adds and speed, to set against the processor's: docs/performance.md, "The ceiling"), in the layout
reorders around them, and in everything else;
``--compare`` times a second trainer with other settings, alternating iterations with the first.
"""
from __future__ import annotations

import functools
import os
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from typing import Callable

from deepfill.utils.environment import prepare_paddle  # noqa: E402

prepare_paddle()

import paddle  # noqa: E402
from deepfill.models import kernels  # noqa: E402
from deepfill.training import algorithm  # noqa: E402
from deepfill.training.trainer import Trainer  # noqa: E402
from deepfill.utils.device import peak_device_memory, pick_device, wait_for_device  # noqa: E402
from deepfill.utils.cli import ArgumentParser, run  # noqa: E402
from deepfill.utils.config import Config, load_config  # noqa: E402
from deepfill.utils.onednn import KernelTimes, instance as onednn_instance  # noqa: E402

DEMO_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "demo.yaml")
PHASES = ("data and holes", "critic step: generator pass (no grad)", "critic step: critics + penalty, forward",
          "critic step: backward (double backward of the penalty)", "critic step: Adam",
          "generator step: generator forward", "generator step: critics + losses, forward",
          "generator step: backward", "generator step: Adam")


class PhaseClock:
    """Exclusive wall time per phase: a wrapped call's time minus the wrapped calls inside it, so the
    phases add up to the iteration. Synchronises the device at every boundary, so that a GPU's
    asynchronous kernels are charged to the phase that launched them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.inner: list[float] = []
        on_cpu = paddle.device.get_device().startswith("cpu")   # synchronize() refuses the CPU
        self.synchronize = (lambda: None) if on_cpu else paddle.device.synchronize

    def wrap(self, function: Callable, phase: Callable[..., str]) -> Callable:
        @functools.wraps(function)
        def timed(*args, **kwargs):
            self.synchronize()
            self.inner.append(0.0)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.synchronize()
                spent = time.perf_counter() - start
                nested = self.inner.pop()
                self.seconds[phase(*args, **kwargs)] += spent - nested
                if self.inner:
                    self.inner[-1] += spent
        return timed


def instrument_algorithm(clock: PhaseClock) -> None:
    """Charge the losses and steps of ``deepfill.training.algorithm`` to ``PHASES`` (once per process)."""
    for name, phase in (("critic_losses", 2), ("critic_step", 3), ("generator_losses", 6), ("generator_step", 7)):
        setattr(algorithm, name, clock.wrap(getattr(algorithm, name), lambda *a, phase=phase, **k: PHASES[phase]))


def instrument(trainer: Trainer, clock: PhaseClock) -> None:
    """Charge the trainer's own work (generator passes, data, Adam) to ``PHASES``."""
    nets = trainer.nets
    nets.generator.forward = clock.wrap(nets.generator.forward, lambda *a, **k: PHASES[
        5 if paddle.is_grad_enabled() else 1])
    trainer.next_batch = clock.wrap(trainer.next_batch, lambda: PHASES[0])
    trainer.update = clock.wrap(trainer.update, lambda optimizer, _: PHASES[4 if optimizer is nets.opt_d else 8])
    nets.completion_without_gradient = clock.wrap(nets.completion_without_gradient, lambda *a: PHASES[1])


KERNEL_KINDS = {"forward": "convolutions, forward", "backward_data": "convolutions, backward data",
                "backward_weights": "convolutions, backward weights", "matmul": "attention's matrix products",
                "activation_backward": "activation gradients", "add_bias": "bias additions"}


class Variant:
    """One trainer being timed: its settings, per-iteration seconds, per-phase seconds and, with
    ``kernels``, the time in oneDNN's kernels over the timed iterations."""

    def __init__(self, label: str, config: Config, clock: PhaseClock, phases: bool, kernels: bool = False
                 ) -> None:
        self.label, self.config, self.clock = label, config, clock
        self.trainer = Trainer(config)
        if phases:
            instrument(self.trainer, self.clock)
        self.seconds: list[float] = []
        self.per_phase: dict[str, list[float]] = defaultdict(list)
        self.kernel_times = KernelTimes() if kernels else None

    def iteration(self, timed: bool = True) -> None:
        # process-wide: each variant's own, when two alternate
        chosen = kernels.choose(self.config.onednn, self.config.cpu_precision)
        if chosen == "onednn":
            onednn_instance().times = self.kernel_times if timed else None
        self.clock.seconds.clear()
        start = time.perf_counter()
        self.trainer.iteration()
        wait_for_device()
        if chosen == "onednn":
            onednn_instance().times = None
        if timed:
            self.seconds.append(time.perf_counter() - start)
            for phase in PHASES:
                self.per_phase[phase].append(self.clock.seconds.get(phase, 0.0))

    def report_kernels(self) -> None:
        """Mean seconds per iteration in oneDNN's kernels, in the reorders around them and elsewhere."""
        times, count = self.kernel_times, len(self.seconds)
        iteration = sum(self.seconds) / count
        if not times.calls:
            print("  no oneDNN kernel ran (Paddle's kernels: onednn=false, or not on the CPU)")
            return
        in_kernels, reorders = sum(times.seconds.values()) / count, times.reorder_seconds / count
        work = sum(times.multiply_adds.values()) / count

        def line(label: str, seconds: float, rest: str = "") -> None:
            print(f"  {label:<55} {seconds:7.2f} s  {100 * seconds / iteration:5.1f} %  {rest}".rstrip())

        line("oneDNN kernels", in_kernels, f"{work / 1e9:7.1f} GMAC at {work / 1e9 / in_kernels:5.1f} GMAC/s")
        for kind, seconds in sorted(times.seconds.items(), key=lambda item: -item[1]):
            macs = times.multiply_adds[kind] / count
            speed = f"{macs / 1e9:7.1f} GMAC at {macs / 1e9 / (seconds / count):5.1f} GMAC/s" if macs else ""
            line(f"  {KERNEL_KINDS.get(kind, kind)} ({times.calls[kind] // count} calls)", seconds / count, speed)
        line("layout reorders around oneDNN's kernels", reorders)
        line("everything else (Paddle's operations, autograd, Python)", iteration - in_kernels - reorders)

    def report(self, phases: bool) -> None:
        if self.kernel_times is not None:
            self.report_kernels()
        median = statistics.median(self.seconds)
        images = self.config.batch_size * (self.config.critic_steps + 1 if self.trainer.adversarial else 1)
        if phases:
            for phase in PHASES:
                value = statistics.median(self.per_phase[phase])
                print(f"  {phase:<55} {value:7.2f} s  {100 * value / median:5.1f} %")
        print(f"{self.label}median {median:.2f} s per iteration ({images / median:.1f} images/s), "
              f"{len(self.seconds)} iterations: {' '.join(f'{s:.2f}' for s in self.seconds)}")


def main() -> None:
    parser = ArgumentParser(prog="train_speed.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=DEMO_CONFIG, help="YAML settings (default: the demo's)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations after the warm-up (default 3)")
    parser.add_argument("--phases", action="store_true",
                        help="also print the median seconds per phase of an iteration (generator passes, "
                             "critics, backward, Adam)")
    parser.add_argument("--kernels", action="store_true",
                        help="also print the seconds in oneDNN's kernels (with their multiply-adds and GMAC/s), in "
                             "the layout reorders around them and in everything else")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override settings, as for train.py (repeatable)")
    parser.add_argument("--compare", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="also time a second trainer with these settings on top, alternating iterations "
                             "with the first in this process, so that a busy machine slows both alike")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        overrides = [*args.set, "data=demo"]
        config = load_config(args.config, [*overrides, f"run_dir={folder}/a"])
        device = pick_device(config.device, config.cpu_threads, training=True)
        clock = PhaseClock()
        if args.phases:
            instrument_algorithm(clock)
        variants = [Variant("as set: " if args.compare else "", config, clock, args.phases, args.kernels)]
        if args.compare:
            variants.append(Variant(f"with {' '.join(args.compare)}: ", load_config(
                args.config, [*overrides, *args.compare, f"run_dir={folder}/b"]), clock, args.phases,
                args.kernels))
        for variant in variants:
            variant.iteration(timed=False)
        for _ in range(args.iterations):
            for variant in variants:
                variant.iteration()
        for variant in variants:
            variant.trainer.close()
    config, adversarial = variants[0].config, variants[0].trainer.adversarial
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"device {device}, paddle {paddle.__version__}: {config.image_size}x{config.image_size}, "
          f"batch {config.batch_size}, "
          f"{f'{config.critic_steps} critic steps' if adversarial else 'reconstruction phase, no critics'}, load average "
          f"{os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} CPUs, peak RSS {peak:.0f} MiB"
          + (f", peak GPU memory {peak_device_memory() / 2 ** 20:.0f} MiB" if peak_device_memory() else ""))
    for variant in variants:
        variant.report(args.phases)


if __name__ == "__main__":
    run(main)
