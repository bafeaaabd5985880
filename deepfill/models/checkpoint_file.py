"""Our checkpoint file format, and its one owner: a ``paddle.save``d dict, written atomically, recognised and
checked when read.

Keys: ``format`` (``FORMAT``), ``spec`` (the ``ModelSpec`` record: width, channel order, training geometry,
source), ``generator`` (state dict), optionally ``critic_local`` / ``critic_global``, and whatever a training
run adds (optimiser states, step, data position, random state, settings) — returned as ``Checkpoint.state``.
Files written before the record existed (loose ``cnum`` / ``channel_order`` / ``critic_*_size`` keys, or a
bare generator state dict) still load: their record is rebuilt from those keys.

A training run's folder holds ``step_XXXXXXXX.pdparams`` files (``latest_checkpoint`` finds the newest).
Opening a checkpoint by any reference a user may give (a file, a run folder, a pretrained name) is
``deepfill.models.checkpoint.load_checkpoint``, one layer up, because a name may first need a download and a
conversion that writes a file in this format (``deepfill.models.pretrained``).
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import paddle

from deepfill.models.critics import Critic, global_critic, local_critic
from deepfill.models.gated import GatedGenerator
from deepfill.models.generator import InpaintGenerator
from deepfill.models.sn_patch_gan import SNPatchGAN
from deepfill.models.spec import ModelSpec, SpecError
from deepfill.utils.errors import UserError
from deepfill.utils.files import WriteError, atomic_path, describe

FORMAT = "deepfill-v1-paddle"
CHECKPOINT_PATTERN = "step_*.pdparams"
CRITICS = ("critic_local", "critic_global")
PATCH_CRITIC = "critic"   # DeepFill v2's single SN-PatchGAN critic
MODEL_KEYS = ("format", "spec", "generator", *CRITICS, PATCH_CRITIC)
_LEGACY_KEYS = ("cnum", "channel_order", "critic_local_size", "critic_global_size", "source")


@dataclass
class Checkpoint:
    """A loaded, checked checkpoint: what the model is, its weights, and any training state."""

    path: str
    spec: ModelSpec
    generator: dict[str, np.ndarray]
    critics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def build_generator(self, per_sample_mask: bool = False) -> InpaintGenerator:
        """The generator (v1 or v2, as the record says) with these weights."""
        generator = generator_for(self.spec, per_sample_mask)
        generator.set_state_dict(self.generator)
        return generator

    def build_patch_critic(self) -> SNPatchGAN:
        """DeepFill v2's SN-PatchGAN critic with these weights (and power-iteration vectors); refused if
        absent."""
        if PATCH_CRITIC not in self.critics:
            raise UserError(f"{self.path} holds no SN-PatchGAN critic weights")
        critic = patch_critic_for(self.critics[PATCH_CRITIC])
        critic.set_state_dict(self.critics[PATCH_CRITIC])
        return critic

    def build_critics(self) -> tuple[Critic, Critic]:
        """Local and global critics sized by the record, with these weights; refused if absent."""
        if set(CRITICS) - set(self.critics):
            raise UserError(f"{self.path} holds no critic weights")
        local = local_critic(self.spec.critic_local_size)
        global_ = global_critic(self.spec.critic_global_size, self.spec.gan_with_mask)
        local.set_state_dict(self.critics["critic_local"])
        global_.set_state_dict(self.critics["critic_global"])
        return local, global_


def generator_for(spec: ModelSpec, per_sample_mask: bool = False) -> InpaintGenerator:
    """An untrained generator of the record's architecture and width — the one place a generator is built
    from a record: loading a checkpoint, and a training run from the record it will write."""
    if spec.architecture == "deepfill_v2":
        return GatedGenerator(spec.cnum, per_sample_mask)
    return InpaintGenerator(spec.cnum, per_sample_mask, spec.padding)


def patch_critic_for(state: dict[str, Any]) -> SNPatchGAN:
    """An SN-PatchGAN critic shaped like ``state`` (3 input channels, or 4 with the mask)."""
    weight = state.get("convs.conv1.weight") if isinstance(state, dict) else None
    return SNPatchGAN(int(weight.shape[1]) if weight is not None and len(weight.shape) == 4 else 4)


def checkpoint_name(step: int) -> str:
    """File name of a training run's checkpoint after ``step`` generator updates."""
    return f"step_{step:08d}.pdparams"


def save_checkpoint(path: str, spec: ModelSpec, weights: dict[str, Any], state: dict[str, Any] | None = None
                    ) -> None:
    """Save ``weights`` (``generator`` and optionally the critics' state dicts), the model record and a
    training ``state`` so that ``path`` is either the old file or the whole new one."""
    unknown = set(weights) - {"generator", *CRITICS, PATCH_CRITIC}
    if unknown or "generator" not in weights:
        raise ValueError(f"weights must hold generator and optionally {(*CRITICS, PATCH_CRITIC)}, got "
                         f"{sorted(weights)}")
    clash = set(state or {}) & {*MODEL_KEYS, *_LEGACY_KEYS, "path"}
    if clash:
        raise ValueError(f"training state may not use the model keys {sorted(clash)}")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError as error:
        raise WriteError(f"cannot write {path}: {describe(error)}") from None
    with atomic_path(path) as temporary:
        paddle.save({"format": FORMAT, "spec": spec.to_dict(), **weights, **(state or {})}, temporary)


def latest_checkpoint(folder: str) -> str:
    """The checkpoint with the highest step in a training run's folder."""
    found = glob.glob(os.path.join(folder, CHECKPOINT_PATTERN))
    found += glob.glob(os.path.join(folder, "checkpoints", CHECKPOINT_PATTERN))
    if not found:
        raise UserError(f"no checkpoint in {folder} (expected {CHECKPOINT_PATTERN} files)")
    return max(found, key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)) or 0))


def _as_numpy(state: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: v.numpy() if isinstance(v, paddle.Tensor) else np.asarray(v) for k, v in state.items()}


def check_state(state: Any, model: paddle.nn.Layer, what: str, path: str) -> dict[str, np.ndarray]:
    """Refuse a state dict that does not fit ``model`` exactly, naming the first difference."""
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a DeepFill v1 checkpoint ({what} is not a state dict)")
    state = _as_numpy(state)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    if missing:
        raise UserError(f"{path} is not a DeepFill v1 checkpoint ({what} lacks {missing[0]} and "
                        f"{len(missing) - 1} more tensors)")
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            raise UserError(f"{path} does not fit this model: {what} {name} has shape "
                            f"{tuple(state[name].shape)}, expected {shape}")
    return {name: state[name] for name in expected}


def _legacy_spec(payload: dict[str, Any], path: str) -> ModelSpec:
    """The record of a file written before checkpoints carried one, from its loose keys."""
    config = payload.get("config") if isinstance(payload.get("config"), dict) else {}
    defaults = ModelSpec()
    return ModelSpec(cnum=int(payload.get("cnum", defaults.cnum)),
                     channel_order=str(payload.get("channel_order", "RGB")),
                     image_size=int(payload.get("critic_global_size", config.get("image_size", defaults.image_size))),
                     hole_size=int(payload.get("critic_local_size", config.get("hole_size", defaults.hole_size))),
                     source=str(payload.get("source", path)))


def read_spec(payload: dict[str, Any], path: str) -> ModelSpec:
    """The model record of a loaded payload (rebuilt for older files); a damaged one is a user error."""
    try:
        return ModelSpec.from_dict(payload["spec"]) if "spec" in payload else _legacy_spec(payload, path)
    except (SpecError, TypeError, ValueError) as error:
        raise UserError(f"{path} has a damaged model record ({error})") from None


def read_checkpoint(path: str) -> Checkpoint:
    """Read and check one checkpoint file (ours, or a bare generator state dict): the generator (and the
    critics, if present) are checked against the architecture its record describes."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {path}")
    try:
        payload = paddle.load(path, return_numpy=True)
    except Exception as error:
        raise UserError(f"{path} is not a readable checkpoint ({type(error).__name__})") from None
    if isinstance(payload, dict) and "generator" not in payload and "coarse.body.conv1.conv.weight" in payload:
        payload = {"generator": payload, "source": path}
    if not isinstance(payload, dict) or "generator" not in payload:
        raise UserError(f"{path} is not a DeepFill v1 checkpoint (no generator weights; convert official "
                        "TF checkpoints with tools/convert_tf_checkpoint.py first)")
    spec = read_spec(payload, path)
    generator = check_state(payload["generator"], generator_for(spec), "generator", path)
    critics = {}
    if spec.version == 2 and PATCH_CRITIC in payload:
        critics[PATCH_CRITIC] = check_state(payload[PATCH_CRITIC], patch_critic_for(payload[PATCH_CRITIC]),
                                            PATCH_CRITIC, path)
    elif all(key in payload for key in CRITICS):
        builders = {"critic_local": local_critic(spec.critic_local_size),
                    "critic_global": global_critic(spec.critic_global_size, spec.gan_with_mask)}
        critics = {key: check_state(payload[key], builders[key], key, path) for key in CRITICS}
    state = {k: v for k, v in payload.items() if k not in (*MODEL_KEYS, *_LEGACY_KEYS)}
    return Checkpoint(path=path, spec=spec, generator=generator, critics=critics, state=state)
