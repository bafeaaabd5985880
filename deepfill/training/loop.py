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

from deepfill.data.stream import DataLoadingFailed, StoppedWaitingForData
from deepfill.models.checkpoint_file import CHECKPOINT_PATTERN, latest_checkpoint
from deepfill.training.run_log import RunLog
from deepfill.training.state import keep_best
from deepfill.training.trainer import STOP_PATIENCE_SECONDS, Trainer, TrainingDiverged
from deepfill.utils.config import Config
from deepfill.utils.files import WriteError, describe

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_stop_handlers(trainer: Trainer) -> dict[int, Any]:
    """Ctrl-C and SIGTERM (a scheduler's, or Paddle's launcher passing Ctrl-C on) ask the trainer to
    save after the current iteration; a Ctrl-C after either stops at once, leaving the last checkpoint.
    The handler writes with ``os.write``, which is safe inside a signal handler. Returns the old handlers."""
    def request_stop(signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and trainer.stop_signal:
            trainer.interrupted = True
            raise KeyboardInterrupt
        if not trainer.stop_signal:
            trainer.request_stop(signum)
            if trainer.rank == 0:
                again = "again " if signum == signal.SIGINT else ""
                os.write(2, f"\n{signal.Signals(signum).name}: saving after this iteration "
                            f"(Ctrl-C {again}to stop at once without saving)\n".encode())

    return {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}


def left_on_disk(run_dir: str, hint: str = "") -> str:
    """What a run that ended early leaves: its last checkpoint, or none. ``hint`` follows the advice."""
    if glob.glob(os.path.join(run_dir, CHECKPOINT_PATTERN)):
        latest = os.path.basename(latest_checkpoint(run_dir))
        return f"the last checkpoint in {run_dir} ({latest}) is intact; continue with --resume{hint}"
    return f"no checkpoint was written; start again{hint}"


def train(config: Config, resume: bool = False) -> Trainer:
    """Run until ``max_iters`` generator updates or a stop signal; checkpoint on schedule, at the end and
    when stopped. Returns the trainer (its ``stop_signal`` says whether a signal ended the run)."""
    trainer = Trainer(config, resume)
    try:
        return _train(trainer, resume)
    except Exception as error:
        # A second Ctrl-C raises KeyboardInterrupt wherever the main thread is; inside Paddle's C++ (e.g.
        # in a oneDNN call) it can surface as another exception. It is still the user's.
        if trainer.interrupted:
            raise KeyboardInterrupt from error
        raise
    finally:
        trainer.close()


def validate(trainer: Trainer, log: RunLog) -> bool:
    """Validate the generator as it is now (first process only), log the result, and say whether it is
    the best so far. Runs before the step's checkpoint is written, so that the checkpoint records it."""
    start = time.perf_counter()
    report = trainer.validation.run(trainer.generator)
    if report is None:
        return False
    log.validation(trainer.step, report, time.perf_counter() - start)
    return trainer.validation.improved(trainer.step, report)


def _train(trainer: Trainer, resume: bool) -> Trainer:
    config = trainer.config
    if trainer.step >= config.max_iters:
        if trainer.rank == 0:
            print(f"{config.run_dir} is already at step {trainer.step} (max_iters={config.max_iters})")
        return trainer
    log = RunLog(config, trainer.step, active=trainer.rank == 0)
    log.note(f"{'resumed' if resume else 'started'} at step {trainer.step} on "
             f"{paddle.device.get_device()}, {trainer.world} process(es); "
             f"settings {json.dumps(config.to_dict(), sort_keys=True)}")
    previous = install_stop_handlers(trainer)
    abandoned = False
    try:
        while trainer.step < config.max_iters and not trainer.stopping:
            start = time.perf_counter()
            try:
                scalars, tensors, unreadable = trainer.iteration()
            except TrainingDiverged as error:
                log.note(f"diverged: {error}; no checkpoint written for this step")
                raise
            except StoppedWaitingForData:
                abandoned = True
                break
            log.record(trainer.step, scalars, tensors, time.perf_counter() - start, trainer.nets.opt_g.get_lr())
            if trainer.step == config.reconstruction_iters < config.max_iters and not config.pretrain_coarse:
                log.note(f"step {trainer.step}: reconstruction_iters done; Algorithm 1 (critics and the "
                         "adversarial term) from here", echo=True)
            log.unreadable(trainer.step, [trainer.dataset.paths[i] for i in unreadable], len(trainer.unreadable))
            best = validate(trainer, log) if trainer.validation.due(trainer.step) else False
            saved = None
            if trainer.step % config.save_every == 0 or trainer.step == config.max_iters or trainer.stopping:
                saved = trainer.save()
                log.note(f"saved {saved}")
            if best:
                log.note(f"best: step {trainer.step} (hole l1 {trainer.validation.best_l1_hole:.4f} %) in "
                         f"{keep_best(trainer, saved)}", echo=True)
        name = signal.Signals(trainer.stop_signal).name if trainer.stop_signal else ""
        log.note(f"stopped by {name} while waiting for data in step {trainer.step + 1}, not saved" if abandoned
                 else f"stopped by {name} at step {trainer.step}" if trainer.stopping
                 else f"done at step {trainer.step}")
    except (DataLoadingFailed, WriteError, OSError) as error:
        log.note(f"stopped: {error}")
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.close()
    if abandoned:
        trainer.say(f"stopped by {name}: no data arrived for {STOP_PATIENCE_SECONDS:.0f} s after it, so step "
                    f"{trainer.step + 1} was not finished or saved; {left_on_disk(config.run_dir)}")
    elif trainer.stopping:
        trainer.say(f"stopped by {name} at step {trainer.step}; continue with --resume")
    elif trainer.rank == 0:
        print(f"done: step {trainer.step}, checkpoint {latest_checkpoint(config.run_dir)}")
    return trainer


def train_and_report(config: Config, resume: bool = False) -> tuple[Trainer | None, int]:
    """``train``, with the outcome as a command reports it: the trainer and the exit code (0 done; 1 when
    training diverged, the data stream broke or the disk refused a write — said on stderr in one line with
    what is left on disk —; 128 + signal number when a signal stopped the run)."""
    try:
        trainer = train(config, resume)
    except TrainingDiverged as error:
        advice = left_on_disk(config.run_dir, ", perhaps with a lower --set lr=...")
        print(f"error: training diverged: {error}; {advice}", file=sys.stderr)
        return None, 1
    except DataLoadingFailed as error:
        print(f"error: data loading failed: {error}; {left_on_disk(config.run_dir)}", file=sys.stderr)
        return None, 1
    except WriteError as error:
        print(f"error: {error}; {left_on_disk(config.run_dir)}", file=sys.stderr)
        return None, 1
    except OSError as error:
        print(f"error: {error.filename or config.run_dir}: {describe(error)}; {left_on_disk(config.run_dir)}",
              file=sys.stderr)
        return None, 1
    except KeyboardInterrupt:
        print(f"\nstopped at once by Ctrl-C, without saving; {left_on_disk(config.run_dir)}", file=sys.stderr)
        return None, 128 + signal.SIGINT
    return trainer, 128 + trainer.stop_signal if trainer.stop_signal else 0
