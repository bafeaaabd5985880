"""The training loop: iterate Algorithm 1 until ``max_iters`` generator updates or a stop signal, with
checkpoints on schedule, at the end and when stopped."""
from __future__ import annotations

import glob
import json
import os
import signal
import sys
import time
from typing import Any

import paddle

from models.checkpoint import CHECKPOINT_PATTERN, latest_checkpoint
from training.run_log import RunLog
from training.trainer import Trainer, TrainingDiverged
from utils.config import Config

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_stop_handlers(trainer: Trainer) -> dict[int, Any]:
    """Ctrl-C and SIGTERM (a scheduler's, or Paddle's launcher passing Ctrl-C on) ask the trainer to
    save after the current iteration; a second Ctrl-C stops at once, leaving the last checkpoint. The
    handler writes with ``os.write``, which is safe inside a signal handler. Returns the old handlers."""
    def request_stop(signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and trainer.stop_signal == signal.SIGINT:
            raise KeyboardInterrupt
        if not trainer.stop_signal:
            trainer.stop_signal = signum
            if trainer.rank == 0:
                os.write(2, f"\n{signal.Signals(signum).name}: saving after this iteration "
                            "(Ctrl-C again to stop at once without saving)\n".encode())

    return {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}


def train(config: Config, resume: bool = False) -> Trainer:
    """Run until ``max_iters`` generator updates or a stop signal; checkpoint on schedule, at the end and
    when stopped. Returns the trainer (its ``stop_signal`` says whether a signal ended the run)."""
    trainer = Trainer(config, resume)
    config = trainer.config
    if trainer.step >= config.max_iters:
        if trainer.rank == 0:
            print(f"{config.run_dir} is already at step {trainer.step} (max_iters={config.max_iters})")
        return trainer
    log = RunLog(config, trainer.step, active=trainer.rank == 0)
    log.note(f"{'resumed' if resume else 'started'} at step {trainer.step} on {paddle.device.get_device()}, "
             f"{trainer.world} process(es); settings {json.dumps(config.to_dict(), sort_keys=True)}")
    previous = install_stop_handlers(trainer)
    try:
        while trainer.step < config.max_iters and not trainer.stopping:
            start = time.perf_counter()
            try:
                scalars, tensors, unreadable = trainer.iteration()
            except TrainingDiverged as error:
                log.note(f"diverged: {error}; no checkpoint written for this step")
                raise
            log.record(trainer.step, scalars, tensors, time.perf_counter() - start, trainer.nets.opt_g.get_lr())
            if trainer.step == config.reconstruction_iters < config.max_iters and not config.pretrain_coarse:
                log.note(f"step {trainer.step}: reconstruction_iters done; Algorithm 1 (critics and the "
                         "adversarial term) from here", echo=True)
            log.unreadable(trainer.step, [trainer.dataset.paths[i] for i in unreadable], len(trainer.unreadable))
            if trainer.step % config.save_every == 0 or trainer.step == config.max_iters or trainer.stopping:
                log.note(f"saved {trainer.save()}")
        log.note(f"stopped by {signal.Signals(trainer.stop_signal).name} at step {trainer.step}"
                 if trainer.stopping else f"done at step {trainer.step}")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.close()
    if trainer.stopping:
        trainer.say(f"stopped by {signal.Signals(trainer.stop_signal).name} at step {trainer.step}; "
                    f"continue with --resume")
    elif trainer.rank == 0:
        print(f"done: step {trainer.step}, checkpoint {latest_checkpoint(config.run_dir)}")
    return trainer


def train_and_report(config: Config, resume: bool = False) -> tuple[Trainer | None, int]:
    """``train``, with the outcome as a command reports it: the trainer and the exit code (0 done,
    1 diverged — said on stderr with what is left on disk —, 128 + signal number when a signal stopped
    the run)."""
    try:
        trainer = train(config, resume)
    except TrainingDiverged as error:
        kept = glob.glob(os.path.join(config.run_dir, CHECKPOINT_PATTERN))
        advice = (f"the last checkpoint in {config.run_dir} is intact (continue with --resume, perhaps with "
                  "a lower --set lr=...)" if kept else "no checkpoint was written before it (start again, "
                  "perhaps with a lower --set lr=...)")
        print(f"error: training diverged: {error}; {advice}", file=sys.stderr)
        return None, 1
    return trainer, 128 + trainer.stop_signal if trainer.stop_signal else 0
