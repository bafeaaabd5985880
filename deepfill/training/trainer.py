"""The trainer: one run's networks, data stream, holes and random state, stepping through Algorithm 1
(``deepfill.training.algorithm``) with gradients averaged over data-parallel processes
(``deepfill.training.parallel``)."""
from __future__ import annotations

import math
import signal
import sys
import time

import numpy as np
import paddle

from deepfill.data.dataset import skipped_indices, training_dataset, training_loader
from deepfill.data.masks import random_masks
from deepfill.data.stream import DataLoadingFailed
from deepfill.models import kernels
from deepfill.models.checkpoint import load_checkpoint
from deepfill.training import algorithm, algorithm_v2, state
from deepfill.training.algorithm import Batch, Networks
from deepfill.training.algorithm_v2 import NetworksV2
from deepfill.training.parallel import DataParallel
from deepfill.training.validation import Validation
from deepfill.utils.config import Config
from deepfill.utils.pixels import to_model_on_device


STOP_PATIENCE_SECONDS = 10.0
"""After a stop signal, how long to go on waiting for a batch before giving the iteration up unsaved: data
normally arrives in milliseconds, and schedulers send SIGKILL some 30 s after SIGTERM."""


class TrainingDiverged(Exception):
    """A loss became NaN or infinite; nothing of that step was saved."""


class Trainer:
    """Owns the networks, optimisers, data stream and random state of one run."""

    def __init__(self, config: Config, resume: bool = False) -> None:
        self.parallel = DataParallel()
        self.rank, self.world = self.parallel.rank, self.parallel.world
        start = None
        if resume:
            start = state.resume_checkpoint(config)
            config = state.adopt_record(config, start, state.MODEL_SWITCHES)
        else:
            state.check_fresh(config)
            if config.init_checkpoint:
                start = load_checkpoint(config.init_checkpoint)
                config = state.adopt_record(config, start)
        if self.rank == 0:
            state.prepare_run_dir(config)
        self.config = config
        self.share = self.parallel.share(config.batch_size)
        self.dataset = training_dataset(config)
        self.rng = np.random.default_rng(config.seed)
        self.step = self.consumed = 0
        self.unreadable: set[int] = set()
        self.delivered: list[np.ndarray] = []
        self.stop_signal = 0           # set by a signal handler: finish the iteration, save, stop
        self.interrupted = False       # set by a second Ctrl-C: stop at once, without saving
        self.stop_requested_at = 0.0   # time.monotonic() of that signal
        self.stopping = False          # agreed by every process at the end of an iteration
        self.finite: paddle.Tensor | None = None   # on the device: every scalar since the last read finite
        self.last_read = 0             # the step whose scalars were last read
        paddle.seed(config.seed)
        # the run's kernels, for the whole process: once, before any network runs
        kernels.choose(config.onednn, config.cpu_precision)
        self.nets = NetworksV2(config) if config.version == 2 else Networks(config)
        self.validation = Validation(config, self.say, enabled=self.rank == 0)
        if resume:
            state.restore(self, start)
        elif start is not None:
            state.initialise_from(self, start)
        self.last_read = self.step
        self.parallel.broadcast([*self.generator.parameters(), *self.nets.critic_parameters])
        self.batches = training_loader(self.dataset, config, self.consumed, self.rank, self.world)

    @property
    def generator(self):
        return self.nets.generator

    @property
    def local_critic(self):
        return self.nets.local_critic

    @property
    def global_critic(self):
        return self.nets.global_critic

    def say(self, message: str) -> None:
        """A note on stderr, from the first process only."""
        if self.rank == 0:
            print(message, file=sys.stderr)

    def save(self, path: str | None = None) -> str:
        return state.save(self, path)

    def update(self, optimizer: paddle.optimizer.Optimizer, parameters: list) -> None:
        """Average gradients over data-parallel processes, step and clear.

        Adam names its moment tensors when it first steps, from a process-wide counter; a fresh name
        scope makes those names the same in every process, so that a saved optimiser state finds its
        tensors again on resume."""
        self.parallel.average_gradients(parameters)
        with paddle.utils.unique_name.guard():
            optimizer.step()
        optimizer.clear_grad()

    def close(self) -> None:
        """Stop the data stream (and its loader processes)."""
        self.batches.close()

    def request_stop(self, signum: int) -> None:
        """Finish the current iteration, save and stop (called from a signal handler)."""
        self.stop_signal = signum
        self.stop_requested_at = time.monotonic()

    def waited_too_long(self) -> bool:
        """Whether a stop was requested more than ``STOP_PATIENCE_SECONDS`` ago (asked while waiting for
        data, which then stops waiting)."""
        return bool(self.stop_signal) and time.monotonic() - self.stop_requested_at > STOP_PATIENCE_SECONDS

    def next_batch(self) -> Batch:
        """A fresh batch with fresh holes (masks [B, 1, H, W], boxes for the local views)."""
        images, delivered = self.batches.next(self.waited_too_long)
        if (delivered[:, 1] < 0).any():
            raise DataLoadingFailed(f"none of the {len(self.dataset)} training images can be read any more "
                                    f"({self.config.data}; the warnings above name them)")
        self.delivered.append(delivered)
        self.consumed += 1
        c = self.config
        masks, boxes = random_masks(self.rng, c.batch_size, c.image_size, c.hole_size, c.max_delta,
                                    c.per_image_masks, c.mask_type)
        holes = masks[self.share]
        known = float(1.0 - masks.mean(dtype=np.float64)) if self.world > 1 else None
        return Batch(to_model_on_device(images), paddle.to_tensor(holes), boxes[self.share], holes, known)

    def critic_step(self) -> dict[str, float]:
        """One critic update on a fresh batch, with fresh interpolation factors for the penalty (v1)."""
        batch = self.next_batch()
        if self.config.version == 2:
            return algorithm_v2.critic_step(self.nets, batch, self.config, self.update)
        alphas = paddle.to_tensor(self.rng.random((2, self.config.batch_size, 1, 1, 1), dtype=np.float32)
                                  [:, self.share])
        return algorithm.critic_step(self.nets, batch, alphas, self.config, self.update)

    @property
    def adversarial(self) -> bool:
        """Whether the next generator update is one of Algorithm 1 (not reconstruction alone)."""
        return algorithm.adversarial(self.config, self.step)

    def generator_step(self) -> tuple[dict[str, float], list[paddle.Tensor]]:
        """One generator update on a fresh batch."""
        step = algorithm_v2.generator_step if self.config.version == 2 else algorithm.generator_step
        return step(self.nets, self.next_batch(), self.config, self.update, self.adversarial)

    def synchronise(self) -> list[int]:
        """Agree across processes on whether to stop and on the unreadable files met; returns the newly
        found unreadable files' indices."""
        pairs = np.concatenate(self.delivered).reshape(-1, 2)
        self.delivered = []
        stop, pairs, skipped = self.parallel.agree(self.stop_signal > 0, pairs)
        new = sorted(set(skipped_indices(pairs, len(self.dataset))) - self.unreadable) if skipped else []
        self.unreadable.update(new)
        if stop and not self.stop_signal:
            self.stop_signal = signal.SIGTERM
        self.stopping = stop
        return new

    def scalars_due(self, step: int) -> bool:
        """Whether the scalars of the iteration that completes ``step`` are read: when they are logged
        (the first step and every ``log_every``) and before a checkpoint is written, which therefore never
        holds a diverged run. Reading waits for the GPU to finish; in between, the values stay on the
        device and only whether they are all finite is kept, there."""
        c = self.config
        return (step == 1 or step % c.log_every == 0 or step % c.save_every == 0 or step >= c.max_iters
                or self.stopping)

    def read_scalars(self, scalars: dict[str, paddle.Tensor], step: int) -> dict[str, float]:
        """The scalars (averaged over the processes) as numbers, in one read; raises ``TrainingDiverged``
        when they, or any since the last read, were not finite."""
        values = paddle.stack(list(scalars.values()))
        finite = self._finite_since_read(values)
        packed = self.parallel.average(paddle.concat([values, finite.astype("float32").reshape([1])]))
        *numbers, all_finite = packed.numpy().tolist()
        read, since, self.finite, self.last_read = dict(zip(scalars, numbers)), self.last_read + 1, None, step
        bad = [k for k, v in read.items() if not math.isfinite(v)]
        if bad:
            raise TrainingDiverged(f"{bad[0]} became {read[bad[0]]} at step {step}")
        if all_finite < 1:
            raise TrainingDiverged(f"a logged scalar was not finite between steps {since} and {step}")
        return read

    def _finite_since_read(self, values: paddle.Tensor) -> paddle.Tensor:
        """Whether ``values`` and every value since the last read are finite, as a device flag."""
        finite = paddle.isfinite(values).all()
        return finite if self.finite is None else paddle.logical_and(self.finite, finite)

    def iteration(self) -> tuple[dict[str, float], list[paddle.Tensor], list[int]]:
        """Algorithm 1, one pass. Returns the scalars to log (empty when ``scalars_due`` says they are not
        read at this step), the generator step's tensors and the indices of files newly found unreadable."""
        scalars, tensors = algorithm.iteration(self.critic_step, self.generator_step, self.config,
                                               self.adversarial)
        unreadable = self.synchronise()
        if self.scalars_due(self.step + 1):
            read = self.read_scalars(scalars, self.step + 1)
        else:
            self.finite, read = self._finite_since_read(paddle.stack(list(scalars.values()))), {}
        self.step += 1
        return read, tensors, unreadable
