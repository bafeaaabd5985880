"""Our checkpoint file: one ``paddle.save``d dict, written atomically, recognised and checked on load.

Keys: ``format`` (``FORMAT``), ``generator`` (state dict), optionally ``critic_local`` / ``critic_global``
with their input sizes, ``cnum``, ``channel_order`` ("BGR" for converted official weights — they were
trained on cv2's BGR arrays — "RGB" otherwise), ``source`` (where the weights came from) and whatever a
training run adds (optimiser states, step, config).

A training run's folder holds ``step_XXXXXXXX.pdparams`` files; giving the folder loads the latest.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Any

import numpy as np
import paddle

from models.critics import Critic, global_critic, local_critic
from models.generator import InpaintGenerator
from utils.cli import UserError
from utils.files import atomic_path

FORMAT = "deepfill-v1-paddle"
CHECKPOINT_PATTERN = "step_*.pdparams"


def checkpoint_name(step: int) -> str:
    """File name of a training run's checkpoint after ``step`` generator updates."""
    return f"step_{step:08d}.pdparams"


def save_checkpoint(path: str, payload: dict[str, Any]) -> None:
    """Save ``payload`` (plus the format tag) so that ``path`` is either the old file or the whole new one."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as temporary:
        paddle.save({"format": FORMAT, **payload}, temporary)


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


def load_checkpoint(path: str) -> dict[str, Any]:
    """Load and validate a checkpoint file, a training run's folder (→ latest), or a bare generator
    state dict. Returns the payload with ``generator`` checked against the architecture."""
    if os.path.isdir(path):
        path = latest_checkpoint(path)
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
    payload = dict(payload)
    payload.setdefault("channel_order", "RGB")
    payload.setdefault("source", path)
    payload["path"] = path
    if payload["channel_order"] not in ("RGB", "BGR"):
        raise UserError(f"{path}: unknown channel_order {payload['channel_order']!r}")
    payload["cnum"] = int(payload.get("cnum", 32))
    payload["generator"] = check_state(payload["generator"], InpaintGenerator(payload["cnum"]),
                                        "generator", path)
    return payload


def build_generator(payload: dict[str, Any], per_sample_mask: bool = False) -> InpaintGenerator:
    """The generator of a checkpoint ``load_checkpoint`` has checked, with its weights."""
    generator = InpaintGenerator(payload["cnum"], per_sample_mask)
    generator.set_state_dict(payload["generator"])
    return generator


def build_critics(payload: dict[str, Any]) -> tuple[Critic, Critic]:
    """Local and global critics sized as recorded, with the checkpoint's weights; raises if absent."""
    path = payload.get("path", "checkpoint")
    if "critic_local" not in payload or "critic_global" not in payload:
        raise UserError(f"{path} holds no critic weights")
    local = local_critic(int(payload["critic_local_size"]))
    glob_ = global_critic(int(payload["critic_global_size"]))
    local.set_state_dict(check_state(payload["critic_local"], local, "critic_local", path))
    glob_.set_state_dict(check_state(payload["critic_global"], glob_, "critic_global", path))
    return local, glob_
