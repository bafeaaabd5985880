"""A training run's state on disk: what a checkpoint of a run holds beyond the model, how a run resumes
exactly, and how it starts from existing weights.

A run's checkpoint holds the model record and weights (``deepfill.models.checkpoint``) plus both optimisers, the
step, the data position, the hole generator's state, Python/NumPy/Paddle random states, the unreadable
files met so far and the settings — everything an uninterrupted run would still have in memory.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import pickle
import random
import shutil
import sys
from typing import Any, Protocol

import numpy as np
import paddle

from deepfill.models.checkpoint_file import (CHECKPOINT_PATTERN, Checkpoint, check_state, checkpoint_name,
                                             latest_checkpoint, read_checkpoint, save_checkpoint)
from deepfill.models.spec import ModelSpec, spec_of_settings
from deepfill.training.algorithm import Networks
from deepfill.training.algorithm_v2 import NetworksV2
from deepfill.training.validation import Validation
from deepfill.utils.errors import UserError
from deepfill.utils.config import Config
from deepfill.utils.files import atomic_path, check_writable_folder, remove_stale_temporaries

TRAINING_KEYS = ("opt_g", "opt_d", "rng", "step", "consumed")
BEST_NAME = "best.pdparams"
"""The checkpoint with the lowest validation hole l1 of a run (``keep_best``), beside its step_*.pdparams."""
MODEL_SWITCHES = ("padding", "gan_with_mask")
"""Official switches that change the model itself (the generator's padding, the global critic's inputs): a
resumed run takes them from its checkpoint's record too (``adopt_record``), so it rebuilds the same model."""
RECORDED_SETTINGS = ("channel_order", "cnum", "version", *MODEL_SWITCHES)
"""Settings a checkpoint's record fixes for a run that starts from it (``adopt_record``); the shipped configs
leave them unset so that the record, not a config file, decides."""


class Run(Protocol):
    """What this module reads and sets of a run (``deepfill.training.trainer.Trainer`` is one): its settings and
    networks, its position (step, pictures consumed, the hole generator, unreadable files) and where notes go."""

    config: Config
    nets: Networks | NetworksV2
    rng: np.random.Generator
    step: int
    consumed: int
    unreadable: set[int]
    rank: int
    validation: Validation

    def say(self, message: str) -> None:
        """A note for the user."""


def random_state() -> np.ndarray:
    """Python's, NumPy's global and Paddle's random state, pickled into a uint8 array (``paddle.save``
    keeps arrays, not bytes). Training draws from none of them after building the models — holes,
    interpolation weights and crops come from seeded NumPy generators — but code added later might.
    Paddle releases that cannot pickle their generator state store ``None`` for it."""
    try:
        paddle_state = pickle.dumps(paddle.get_rng_state())
    except (TypeError, pickle.PicklingError):
        paddle_state = None
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "paddle_device": paddle.device.get_device(), "paddle": paddle_state}
    return np.frombuffer(pickle.dumps(state), np.uint8)


def set_random_state(stored: np.ndarray) -> None:
    """Restore what ``random_state`` saved; Paddle's state only on the device kind it came from."""
    state = pickle.loads(np.asarray(stored, np.uint8).tobytes())
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if state["paddle"] is not None and state["paddle_device"] == paddle.device.get_device():
        paddle.set_rng_state(pickle.loads(state["paddle"]))


def model_spec(config: Config) -> ModelSpec:
    """The record of the model a run with these settings trains."""
    return spec_of_settings(config, source=f"trained in {config.run_dir}")


def critic_layers(nets: Networks | NetworksV2) -> dict[str, paddle.nn.Layer]:
    """The run's critics by checkpoint key: v1's local and global ones, or v2's SN-PatchGAN (whose
    power-iteration vectors are buffers, saved with it)."""
    if hasattr(nets, "critics"):
        return nets.critics()
    return {"critic_local": nets.local_critic, "critic_global": nets.global_critic}


def adopt_record(config: Config, checkpoint: Checkpoint, names: tuple[str, ...] = RECORDED_SETTINGS) -> Config:
    """Settings for starting from ``checkpoint``: its channel order, width, padding and critic inputs
    (``names``) unless the user chose others, which is refused because the weights would be fed the wrong
    pictures, not fit, or compute another function."""
    spec, changes = checkpoint.spec, {}
    for name in names:
        ours, theirs = getattr(config, name), getattr(spec, name)
        if ours == theirs:
            continue
        if name in config.explicit:
            raise UserError(f"{checkpoint.path} was trained with {name}={theirs} but {name}={ours} is set; "
                            f"set {name}={theirs}")
        changes[name] = theirs
    if changes:
        print("note: from the checkpoint's record: " + ", ".join(f"{k}={v}" for k, v in changes.items()),
              file=sys.stderr)
    return dataclasses.replace(config, **changes)


def check_fresh(config: Config) -> None:
    """Refuse to start a new run in a folder that holds one."""
    if glob.glob(os.path.join(config.run_dir, CHECKPOINT_PATTERN)):
        latest = os.path.basename(latest_checkpoint(config.run_dir))
        raise UserError(f"{config.run_dir} already holds a run ({latest}); continue it with --resume "
                        f"or start another with --set run_dir=OTHER_FOLDER")


def prepare_run_dir(config: Config) -> None:
    """Before any work: refuse a ``run_dir`` that could not take checkpoints, and remove the temporary
    files saves killed mid-write left there (a checkpoint's size each; never taken for checkpoints)."""
    check_writable_folder(config.run_dir, "run_dir")
    removed = [path for folder in (config.run_dir, os.path.join(config.run_dir, "samples"))
               for path in remove_stale_temporaries(folder)]
    if removed:
        print(f"note: removed {len(removed)} temporary file(s) left in {config.run_dir} by an interrupted save",
              file=sys.stderr)


def initialise_from(trainer: Run, checkpoint: Checkpoint) -> None:
    """Start from existing weights (e.g. converted official ones): the generator, and the critics when
    they were built for this run's image and hole sizes."""
    nets, config, path = trainer.nets, trainer.config, checkpoint.path
    nets.generator.set_state_dict(checkpoint.generator)
    if checkpoint.spec.version == 2:
        if "critic" in checkpoint.critics:
            nets.critic.set_state_dict(checkpoint.critics["critic"])
        trainer.say(f"note: generator {'and critic ' if checkpoint.critics else ''}start from {path}"
                    f"{'' if checkpoint.critics else '; it holds no critic, it starts fresh'}")
        return
    sizes = (checkpoint.spec.critic_local_size, checkpoint.spec.critic_global_size)
    wanted = (config.hole_size, config.image_size)
    if checkpoint.critics and sizes == wanted:
        nets.local_critic.set_state_dict(checkpoint.critics["critic_local"])
        nets.global_critic.set_state_dict(checkpoint.critics["critic_global"])
        trainer.say(f"note: generator and critics start from {path}")
    elif checkpoint.critics:
        trainer.say(f"note: generator starts from {path}; its critics were built for {sizes[0]}/{sizes[1]}-pixel "
                    f"inputs, not hole_size/image_size {wanted[0]}/{wanted[1]}, so the critics start fresh")
    else:
        trainer.say(f"note: generator starts from {path}; it holds no critics, they start fresh")


def restore(trainer: Run, checkpoint: Checkpoint) -> None:
    """Continue a run: weights, optimiser moments, step, data position and random state."""
    state, path, config = checkpoint.state, checkpoint.path, trainer.config
    for key in TRAINING_KEYS:
        if key not in state or not checkpoint.critics:
            raise UserError(f"{path} is not a training checkpoint (no {key if key not in state else 'critics'}); "
                            f"use --set init_checkpoint=... to start from its weights instead")
    if checkpoint.spec.channel_order != config.channel_order:
        raise UserError(f"{path} was trained on {checkpoint.spec.channel_order} images but channel_order="
                        f"{config.channel_order} is set; set channel_order={checkpoint.spec.channel_order}")
    changed = {k: (v, getattr(config, k)) for k, v in state.get("config", {}).items()
               if hasattr(config, k) and getattr(config, k) != v}
    if changed:
        trainer.say("note: settings differ from the run's: "
                    + ", ".join(f"{k} {old!r} → {new!r}" for k, (old, new) in sorted(changed.items())))
    nets = trainer.nets
    weights = {"generator": checkpoint.generator, **checkpoint.critics}
    for key, model in (*critic_layers(nets).items(), ("generator", nets.generator)):
        model.set_state_dict(check_state(weights[key], model, key, path))
    nets.opt_g.set_state_dict(state["opt_g"])
    nets.opt_d.set_state_dict(state["opt_d"])
    trainer.rng.bit_generator.state = state["rng"]
    if "random_state" in state:
        set_random_state(state["random_state"])
    trainer.unreadable = {int(i) for i in np.asarray(state.get("unreadable", []), np.int64).ravel()}
    trainer.validation.restore(state.get("validation_best"))
    trainer.step, trainer.consumed = int(state["step"]), int(state["consumed"])


def save(trainer: Run, path: str | None = None) -> str:
    """Write the run's checkpoint (the first process only; all hold the same state) and prune old ones;
    or, given ``path``, the same checkpoint there (e.g. ``best.pdparams``), pruning nothing."""
    config, nets = trainer.config, trainer.nets
    scheduled = path is None
    path = path or os.path.join(config.run_dir, checkpoint_name(trainer.step))
    if trainer.rank != 0:
        return path
    weights = {"generator": nets.generator.state_dict(),
               **{key: critic.state_dict() for key, critic in critic_layers(nets).items()}}
    state: dict[str, Any] = {
        "opt_g": nets.opt_g.state_dict(), "opt_d": nets.opt_d.state_dict(), "rng": trainer.rng.bit_generator.state,
        "random_state": random_state(), "unreadable": np.array(sorted(trainer.unreadable), np.int64),
        "step": trainer.step, "consumed": trainer.consumed, "config": config.to_dict(),
        "validation_best": trainer.validation.state()}
    save_checkpoint(path, model_spec(config), weights, state)
    if scheduled and config.keep_checkpoints > 0:
        runs = sorted(glob.glob(os.path.join(config.run_dir, CHECKPOINT_PATTERN)))
        for old in runs[:-config.keep_checkpoints]:
            os.remove(old)
    return path


def keep_best(trainer: Run, saved: str | None) -> str:
    """Make ``run_dir/best.pdparams`` the checkpoint of the run as it is now (the step whose validation is
    the best so far): a hard link to ``saved``, the checkpoint just written at this step, when there is one
    (no second copy on disk, and it outlives the pruning of old checkpoints), else a checkpoint written
    there. Either way atomically: a reader sees the old best or the new one, never a part."""
    best = os.path.join(trainer.config.run_dir, BEST_NAME)
    if not saved:
        return trainer.save(best)
    with atomic_path(best) as temporary:
        os.remove(temporary)
        try:
            os.link(saved, temporary)
        except OSError:                  # a file system without hard links
            shutil.copyfile(saved, temporary)
    return best


def resume_checkpoint(config: Config) -> Checkpoint:
    """The latest checkpoint of the run in ``run_dir``."""
    return read_checkpoint(latest_checkpoint(config.run_dir))
