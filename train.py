"""Train DeepFill v1 (paper Algorithm 1): five WGAN-GP critic updates, each on a fresh batch and hole,
per generator update.

    python train.py                                   # the demo: a few minutes on a CPU, bundled pictures
    python train.py --config configs/places2.yaml --set data=/data/places2/train.flist
    python train.py --config configs/places2.yaml --resume      # continue exactly where it stopped

Everything lands in ``run_dir``: ``step_XXXXXXXX.pdparams`` checkpoints (atomic; generator, critics,
optimisers, data position and random state, so a resumed run computes what the uninterrupted one would
have), ``train.log``, ``samples/`` pictures, and VisualDL logs (``visualdl --logdir RUN_DIR``).
Ctrl-C or SIGTERM finishes the current iteration, saves and stops; a second Ctrl-C stops at once.
"""
from __future__ import annotations

import glob
import json
import math
import os
import pickle
import random
import signal
import sys
import time
from typing import Any

import utils  # noqa: F401  (quiets Paddle before it is imported)
import cv2
import numpy as np
import paddle
import paddle.distributed as dist
from tqdm import tqdm

from data.dataset import skipped_indices, training_dataset, training_loader
from data.masks import random_masks
from models.critics import global_critic, local_critic
from models.generator import InpaintGenerator
from models.inpainter import pick_device
from models.losses import (gradient_penalty, local_patches, reconstruction_losses, spatial_discount,
                           wgan_critic_loss, wgan_generator_loss)
from utils.checkpoint import (CHECKPOINT_PATTERN, check_state, checkpoint_name, latest_checkpoint,
                              load_checkpoint, save_checkpoint)
from utils.cli import ArgumentParser, UserError, run
from utils.config import Config, load_config
from utils.flow import flow_to_color
from utils.image_io import to_uint8

DEMO_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "demo.yaml")
LOG_NAME = "train.log"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingDiverged(Exception):
    """A loss became NaN or infinite; the last checkpoint on disk is still good."""


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


class Trainer:
    """Owns the models, optimisers, data stream and random state of one run."""

    def __init__(self, config: Config, resume: bool = False) -> None:
        self.config = config
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        share = config.batch_size // self.world
        self.share = slice(self.rank * share, (self.rank + 1) * share)
        self.dataset = training_dataset(config)
        self.rng = np.random.default_rng(config.seed)
        self.step = self.consumed = 0
        self.unreadable: set[int] = set()
        self.delivered: list[np.ndarray] = []
        self.stop_signal = 0           # set by a signal handler: finish the iteration, save, stop
        self.stopping = False          # agreed by every process at the end of an iteration
        paddle.seed(config.seed)
        with paddle.utils.unique_name.guard():
            self.generator = InpaintGenerator(config.cnum, config.per_image_masks)
            self.local_critic = local_critic(config.hole_size)
            self.global_critic = global_critic(config.image_size)
            self.opt_g = paddle.optimizer.Adam(config.lr, config.beta1, config.beta2,
                                               parameters=self.generator.parameters())
            self.critic_parameters = self.local_critic.parameters() + self.global_critic.parameters()
            self.opt_d = paddle.optimizer.Adam(config.lr, config.beta1, config.beta2,
                                               parameters=self.critic_parameters)
        self.discount = paddle.to_tensor(
            spatial_discount(config.hole_size, config.hole_size, config.discount_gamma)[None, None])
        existing = glob.glob(os.path.join(config.run_dir, CHECKPOINT_PATTERN))
        if resume:
            self.restore(load_checkpoint(latest_checkpoint(config.run_dir)))
        elif existing:
            latest = os.path.basename(latest_checkpoint(config.run_dir))
            raise UserError(f"{config.run_dir} already holds a run ({latest}); continue it with --resume "
                            f"or start another with --set run_dir=OTHER_FOLDER")
        elif config.init_checkpoint:
            self.initialise_from(load_checkpoint(config.init_checkpoint))
        self.batches = iter(training_loader(self.dataset, config, self.consumed, self.rank, self.world))

    def say(self, message: str) -> None:
        """A note on stderr, from the first process only."""
        if self.rank == 0:
            print(message, file=sys.stderr)

    def initialise_from(self, payload: dict[str, Any]) -> None:
        """Start from existing weights (e.g. converted official ones): generator, and critics if they fit."""
        if payload["channel_order"] != self.config.channel_order:
            raise UserError(f"{payload['path']} was trained on {payload['channel_order']} images; "
                            f"set channel_order={payload['channel_order']}")
        if payload["cnum"] != self.config.cnum:
            raise UserError(f"{payload['path']} has cnum={payload['cnum']}; set cnum={payload['cnum']}")
        self.generator.set_state_dict(payload["generator"])
        sizes = (payload.get("critic_local_size"), payload.get("critic_global_size"))
        wanted = (self.config.hole_size, self.config.image_size)
        if "critic_local" in payload and "critic_global" in payload and sizes == wanted:
            for key, model in (("critic_local", self.local_critic), ("critic_global", self.global_critic)):
                model.set_state_dict(check_state(payload[key], model, key, payload["path"]))
            self.say(f"note: generator and critics start from {payload['path']}")
        elif "critic_local" in payload:
            self.say(f"note: generator starts from {payload['path']}; its critics were built for "
                     f"{sizes[0]}/{sizes[1]}-pixel inputs, not hole_size/image_size {wanted[0]}/{wanted[1]}, "
                     f"so the critics start fresh")
        else:
            self.say(f"note: generator starts from {payload['path']}; it holds no critics, they start fresh")

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue a run: weights, optimiser moments, step, data position and random state."""
        for key in ("opt_g", "opt_d", "rng", "step", "consumed", "critic_local", "critic_global"):
            if key not in payload:
                raise UserError(f"{payload['path']} is not a training checkpoint (no {key}); "
                                f"use --set init_checkpoint=... to start from its weights instead")
        changed = {k: (v, getattr(self.config, k)) for k, v in payload.get("config", {}).items()
                   if hasattr(self.config, k) and getattr(self.config, k) != v}
        if changed:
            self.say("note: settings differ from the run's: "
                     + ", ".join(f"{k} {old!r} → {new!r}" for k, (old, new) in sorted(changed.items())))
        for key, model in (("generator", self.generator), ("critic_local", self.local_critic),
                           ("critic_global", self.global_critic)):
            model.set_state_dict(check_state(payload[key], model, key, payload["path"]))
        self.opt_g.set_state_dict(payload["opt_g"])
        self.opt_d.set_state_dict(payload["opt_d"])
        self.rng.bit_generator.state = payload["rng"]
        if "random_state" in payload:
            set_random_state(payload["random_state"])
        self.unreadable = {int(i) for i in np.asarray(payload.get("unreadable", []), np.int64).ravel()}
        self.step, self.consumed = int(payload["step"]), int(payload["consumed"])

    def save(self) -> str:
        """Write a checkpoint (the first process only; all hold the same state) and prune old ones."""
        path = os.path.join(self.config.run_dir, checkpoint_name(self.step))
        if self.rank != 0:
            return path
        save_checkpoint(path, {
            "generator": self.generator.state_dict(), "critic_local": self.local_critic.state_dict(),
            "critic_global": self.global_critic.state_dict(), "critic_local_size": self.config.hole_size,
            "critic_global_size": self.config.image_size, "cnum": self.config.cnum,
            "channel_order": self.config.channel_order, "source": f"trained in {self.config.run_dir}",
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": self.rng.bit_generator.state, "random_state": random_state(),
            "unreadable": np.array(sorted(self.unreadable), np.int64),
            "step": self.step, "consumed": self.consumed, "config": self.config.to_dict()})
        if self.config.keep_checkpoints > 0:
            runs = sorted(glob.glob(os.path.join(self.config.run_dir, CHECKPOINT_PATTERN)))
            for old in runs[:-self.config.keep_checkpoints]:
                os.remove(old)
        return path

    def update(self, optimizer: paddle.optimizer.Optimizer, parameters: list) -> None:
        """Average gradients over data-parallel processes, step and clear.

        Adam names its moment tensors when it first steps, from a process-wide counter; a fresh name
        scope makes those names the same in every process, so that a saved optimiser state finds its
        tensors again on resume."""
        if self.world > 1:
            grads = [p.grad for p in parameters if p.grad is not None]
            flat = paddle.concat([g.reshape([-1]) for g in grads])
            dist.all_reduce(flat)
            flat = flat / self.world
            offset = 0
            for grad in grads:
                grad.set_value(flat[offset:offset + grad.size].reshape(grad.shape))
                offset += grad.size
        with paddle.utils.unique_name.guard():
            optimizer.step()
        optimizer.clear_grad()

    def next_batch(self) -> tuple[paddle.Tensor, paddle.Tensor, list]:
        """A fresh batch with fresh holes (masks [B, 1, H, W], boxes for the local views)."""
        images, delivered = next(self.batches)
        self.delivered.append(delivered.numpy())
        self.consumed += 1
        c = self.config
        masks, boxes = random_masks(self.rng, c.batch_size, c.image_size, c.hole_size, c.max_delta,
                                    c.per_image_masks, c.mask_type)
        return images, paddle.to_tensor(masks[self.share]), boxes[self.share]

    def critic_step(self) -> dict[str, float]:
        """One critic update: WGAN loss on real vs. completed images, plus the hole-masked gradient penalty."""
        images, mask, boxes = self.next_batch()
        with paddle.no_grad():
            _, x_stage2, _ = self.generator(images * (1.0 - mask), mask)
        completed = x_stage2 * mask + images * (1.0 - mask)
        local_real, local_fake = local_patches(images, boxes), local_patches(completed, boxes)
        scores = {"real_local": self.local_critic(local_real), "fake_local": self.local_critic(local_fake),
                  "real_global": self.global_critic(images), "fake_global": self.global_critic(completed)}
        d_loss = (wgan_critic_loss(scores["real_local"], scores["fake_local"])
                  + wgan_critic_loss(scores["real_global"], scores["fake_global"]))
        alphas = paddle.to_tensor(self.rng.random((2, self.config.batch_size, 1, 1, 1), dtype=np.float32)
                                  [:, self.share])
        gp_loss = self.config.wgan_gp_lambda * (
            gradient_penalty(self.local_critic, local_real, local_fake, alphas[0], local_patches(mask, boxes))
            + gradient_penalty(self.global_critic, images, completed, alphas[1], mask))
        loss = d_loss + gp_loss
        loss.backward()
        self.update(self.opt_d, self.critic_parameters)
        return {"d_loss": float(d_loss), "gp_loss": float(gp_loss), "total_d_loss": float(loss),
                **{name: float(paddle.mean(score)) for name, score in scores.items()}}

    def generator_step(self) -> tuple[dict[str, float], list[paddle.Tensor]]:
        """One generator update: 0.001·WGAN + 1.2·l1 (discounted, local) + 1.2·ae (known region); when
        pretraining the coarse network, l1 and ae of stage 1 alone (official PRETRAIN_COARSE_NETWORK)."""
        c = self.config
        images, mask, boxes = self.next_batch()
        x_stage1, x_stage2, offsets = self.generator(images * (1.0 - mask), mask)
        l1_loss, ae_loss = reconstruction_losses(images, x_stage1, x_stage2, mask, boxes, self.discount,
                                                 c.coarse_l1_alpha, coarse_only=c.pretrain_coarse)
        loss = c.l1_loss_alpha * l1_loss + c.ae_loss_alpha * ae_loss
        losses = {"l1_loss": float(l1_loss), "ae_loss": float(ae_loss)}
        if not c.pretrain_coarse:
            completed = x_stage2 * mask + images * (1.0 - mask)
            g_loss = wgan_generator_loss(self.local_critic(local_patches(completed, boxes)),
                                         self.global_critic(completed), c.global_wgan_loss_alpha)
            loss = loss + c.gan_loss_alpha * g_loss
            losses["g_loss"] = float(g_loss)
        loss.backward()
        self.update(self.opt_g, self.generator.parameters())
        self.opt_d.clear_grad()
        losses["total_g_loss"] = float(loss)
        return losses, [images, mask, x_stage1.detach(), x_stage2.detach(), offsets]

    def synchronise(self, scalars: dict[str, float]) -> tuple[dict[str, float], list[int]]:
        """Agree across processes on the iteration's scalars (averaged), on whether to stop, and on the
        unreadable files met; returns the scalars and the newly found unreadable files' indices."""
        pairs = np.concatenate(self.delivered).reshape(-1, 2)
        self.delivered = []
        skipped = int((pairs[:, 0] != pairs[:, 1]).sum())
        stop = self.stop_signal > 0
        if self.world > 1:
            values = paddle.to_tensor([*scalars.values(), float(stop), float(skipped)], dtype="float64")
            dist.all_reduce(values)
            *averaged, stops, skipped = values.tolist()
            scalars = dict(zip(scalars, (v / self.world for v in averaged)))
            stop = stops > 0
            if skipped:
                gathered: list[paddle.Tensor] = []
                dist.all_gather(gathered, paddle.to_tensor(pairs))
                pairs = np.concatenate([g.numpy() for g in gathered])
        new = sorted(set(skipped_indices(pairs, len(self.dataset))) - self.unreadable) if skipped else []
        self.unreadable.update(new)
        if stop and not self.stop_signal:
            self.stop_signal = signal.SIGTERM
        self.stopping = stop
        return scalars, new

    def iteration(self) -> tuple[dict[str, float], list[paddle.Tensor], list[int]]:
        """Algorithm 1, one pass: ``critic_steps`` critic updates (none when pretraining the coarse
        network), then one generator update. Returns the scalars to log, the generator step's tensors
        and the indices of files newly found unreadable."""
        c = self.config
        critic = [self.critic_step() for _ in range(0 if c.pretrain_coarse else c.critic_steps)]
        scalars, tensors = self.generator_step()
        if critic:
            scalars.update({k: float(np.mean([s[k] for s in critic])) for k in critic[0]})
        scalars, unreadable = self.synchronise(scalars)
        bad = [k for k, v in scalars.items() if not math.isfinite(v)]
        if bad:
            raise TrainingDiverged(f"{bad[0]} became {scalars[bad[0]]} at step {self.step + 1}")
        self.step += 1
        return scalars, tensors, unreadable


def sample_picture(tensors: list[paddle.Tensor], channel_order: str, rows: int = 4) -> np.ndarray:
    """Rows of [input with hole | coarse | refined | ground truth | attention flow], uint8 RGB."""
    images, mask, x_stage1, x_stage2, offsets = tensors
    to_rgb = (lambda a: a[..., ::-1]) if channel_order == "BGR" else (lambda a: a)
    picture = []
    for i in range(min(rows, images.shape[0])):
        m = mask[i].numpy().transpose(1, 2, 0)
        gt = images[i].numpy().transpose(1, 2, 0)
        panels = [gt * (1 - m) + m, x_stage1[i].numpy().transpose(1, 2, 0) * m + gt * (1 - m),
                  x_stage2[i].numpy().transpose(1, 2, 0) * m + gt * (1 - m), gt]
        panels = [to_rgb(to_uint8(p)) for p in panels]
        flow = flow_to_color(offsets[i].numpy())
        scale = gt.shape[0] // flow.shape[0]
        panels.append(flow.repeat(scale, axis=0).repeat(scale, axis=1))
        picture.append(np.concatenate(panels, axis=1))
    return np.concatenate(picture, axis=0)


def scalar_tag(name: str) -> str:
    """VisualDL tag of a scalar: critic scores apart from the losses."""
    return f"critic/{name}" if name.startswith(("real_", "fake_")) else f"loss/{name}"


class RunLog:
    """Progress bar, ``train.log``, VisualDL scalars and sample pictures of a run; silent in all but the
    first process."""

    def __init__(self, config: Config, step: int, active: bool) -> None:
        self.config, self.active = config, active
        if active:
            from visualdl import LogWriter
            os.makedirs(os.path.join(config.run_dir, "samples"), exist_ok=True)
            self.file = open(os.path.join(config.run_dir, LOG_NAME), "a", encoding="utf-8", buffering=1)
            self.writer = LogWriter(logdir=os.path.join(config.run_dir, "visualdl"))
            self.bar = tqdm(total=config.max_iters, initial=step, desc="training", unit="it",
                            dynamic_ncols=True)

    def note(self, message: str, echo: bool = False) -> None:
        """A time-stamped line in ``train.log``, and on the terminal if ``echo``."""
        if not self.active:
            return
        self.file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        if echo:
            self.bar.write(message, file=sys.stderr)

    def record(self, step: int, scalars: dict[str, float], tensors: list[paddle.Tensor], seconds: float,
               lr: float) -> None:
        """Progress bar every step; scalars every ``log_every`` steps; a picture every ``sample_every``."""
        if not self.active:
            return
        c = self.config
        self.bar.update(1)
        shown = {"G": "total_g_loss", "l1": "l1_loss", "ae": "ae_loss", "D": "d_loss", "gp": "gp_loss"}
        self.bar.set_postfix({short: f"{scalars[name]:.3f}" for short, name in shown.items() if name in scalars})
        if step % c.log_every == 0 or step == 1:
            for name, value in scalars.items():
                self.writer.add_scalar(scalar_tag(name), value, step)
            self.writer.add_scalar("train/lr", lr, step)
            self.writer.add_scalar("time/seconds_per_iteration", seconds, step)
            self.note(f"step {step}: " + " ".join(f"{k}={v!r}" for k, v in scalars.items())
                      + f" lr={lr!r} seconds={seconds:.3f}")
        if step % c.sample_every == 0 or step == c.max_iters:
            picture = sample_picture(tensors, c.channel_order)
            cv2.imwrite(os.path.join(c.run_dir, "samples", f"step_{step:08d}.png"), picture[:, :, ::-1])
            self.writer.add_image("samples", picture, step)

    def unreadable(self, step: int, paths: list[str], total: int) -> None:
        """Name newly found unreadable files in the log and keep their running count in VisualDL."""
        if not self.active or not paths:
            return
        for path in paths:
            self.note(f"unreadable image skipped: {path}")
        self.note(f"{total} unreadable images skipped so far", echo=True)
        self.writer.add_scalar("data/unreadable_images", total, step)

    def close(self) -> None:
        if self.active:
            self.bar.close()
            self.writer.close()
            self.file.close()
            self.active = False


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
    when stopped."""
    trainer = Trainer(config, resume)
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
            log.record(trainer.step, scalars, tensors, time.perf_counter() - start, trainer.opt_g.get_lr())
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


def main() -> Trainer:
    parser = ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help=f"YAML settings (default: the demo, {os.path.relpath(DEMO_CONFIG)})")
    parser.add_argument("--resume", action="store_true", help="continue the latest checkpoint in run_dir")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override settings (repeatable)")
    args = parser.parse_args()
    config = load_config(args.config or DEMO_CONFIG, args.set)
    pick_device(config.device)
    if dist.get_world_size() > 1:
        dist.init_parallel_env()
    try:
        trainer = train(config, args.resume)
    except TrainingDiverged as error:
        print(f"error: training diverged: {error}; the last checkpoint in {config.run_dir} is intact "
              f"(continue with --resume, perhaps with a lower --set lr=...)", file=sys.stderr)
        sys.exit(1)
    if trainer.stop_signal:
        sys.exit(128 + trainer.stop_signal)
    return trainer


if __name__ == "__main__":
    run(main)
