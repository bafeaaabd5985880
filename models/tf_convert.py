"""Official DeepFill v1 and v2 TensorFlow checkpoints → our model record and weights.

Shared by ``tools/convert_tf_checkpoint.py`` (a folder the user names) and ``models.pretrained`` (the release
models fetched by name), so that both produce the same file. TensorFlow is not needed: ``utils.tf_bundle``
reads the bundle. Generator and critics are kept, optimiser slots (``…/Adam``, ``beta1_power``, ``lr``,
``global_step``) are dropped. The record says BGR — the official models were trained on OpenCV's BGR arrays
— and takes the training geometry from the critics' input sizes.

A v2 checkpoint (``master`` of the official repository) has the same generator variable names as v1 but is
told apart by them: its stage 2 reads 3 channels (``inpaint_net/xconv1/kernel`` has 3 inputs, v1's 5), and
its critic is ``discriminator/sn_patch_gan/conv1..6`` (kernel, bias and the power iteration's
``kernel_sn/u``), kept whole when complete. Its record says version 2, 256² pictures with 128² boxes (the
official ``inpaint.yml``).
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np

from models.critics import global_critic, local_critic
from models.gated import GatedGenerator
from models.generator import InpaintGenerator
from models.sn_patch_gan import SNPatchGAN
from models.official import conv_kernel, critic_tf_name, dense_kernel, generator_tf_name
from models.spec import ModelSpec
from utils.errors import UserError
from utils.tf_bundle import BundleEntry, read_index, read_tensors, resolve_prefix

OFFICIAL_IMAGE_SIZE, OFFICIAL_HOLE_SIZE = 256, 128
CRITICS = {"critic_local": ("local", 512, local_critic), "critic_global": ("global", 256, global_critic)}

Weights = dict[str, dict[str, np.ndarray]]


def _generator_weights(prefix: str, entries: dict[str, BundleEntry], generator: InpaintGenerator, version: int
                       ) -> dict[str, np.ndarray]:
    names = {ours: generator_tf_name(ours) for ours in generator.state_dict()}
    missing = [tf for tf in names.values() if tf not in entries]
    if missing:
        raise UserError(f"{prefix} is not a complete DeepFill v{version} generator: {missing[0]} and "
                        f"{len(missing) - 1} more tensors are missing")
    tensors = read_tensors(prefix, list(names.values()))
    weights = {}
    for ours, param in generator.state_dict().items():
        value = tensors[names[ours]]
        value = conv_kernel(value) if value.ndim == 4 else value
        if tuple(value.shape) != tuple(param.shape):
            raise UserError(f"{names[ours]} has shape {value.shape}, expected {tuple(param.shape)}")
        weights[ours] = value.astype(np.float32)
    return weights


def _critic_weights(prefix: str, entries: dict[str, BundleEntry], key: str
                    ) -> tuple[dict[str, np.ndarray], int] | None:
    """One critic's weights and input side, or None when the bundle lacks it (or part of it)."""
    which, channels, build = CRITICS[key]
    fc = entries.get(f"discriminator/dout_{which}_fc/kernel")
    if fc is None:
        return None
    side = math.isqrt(fc.shape[0] // channels)
    critic = build(side * 16)
    names = {ours: critic_tf_name(ours, which) for ours in critic.state_dict()}
    if any(tf not in entries for tf in names.values()):
        print(f"note: the {which} critic is incomplete in {prefix}; it is left out", file=sys.stderr)
        return None
    tensors = read_tensors(prefix, list(names.values()))
    state = {}
    for ours, param in critic.state_dict().items():
        value = tensors[names[ours]]
        if ours == "fc.weight":
            value = dense_kernel(value, channels)
        elif value.ndim == 4:
            value = conv_kernel(value)
        if tuple(value.shape) != tuple(param.shape):
            raise UserError(f"{names[ours]} has shape {value.shape}, expected {tuple(param.shape)}")
        state[ours] = value.astype(np.float32)
    return state, side * 16


def is_v2(entries: dict[str, BundleEntry]) -> bool:
    """Whether a bundle holds DeepFill v2: its stage 2 starts from the 3-channel picture, or it has the
    SN-PatchGAN critic."""
    xconv1 = entries.get("inpaint_net/xconv1/kernel")
    return (xconv1 is not None and len(xconv1.shape) == 4 and xconv1.shape[2] == 3) or \
        "discriminator/sn_patch_gan/conv1/kernel" in entries


def patch_critic_tf_name(name: str) -> str:
    """``convs.conv2.weight`` → ``discriminator/sn_patch_gan/conv2/kernel``; ``u`` → ``…/kernel_sn/u``."""
    _, layer, kind = name.split(".")
    return f"discriminator/sn_patch_gan/{layer}/" + {"weight": "kernel", "bias": "bias", "u": "kernel_sn/u"}[kind]


def _patch_critic_weights(prefix: str, entries: dict[str, BundleEntry]) -> dict[str, np.ndarray] | None:
    """The SN-PatchGAN critic's weights, or None (with a note naming what is missing) when incomplete."""
    first = entries.get("discriminator/sn_patch_gan/conv1/kernel")
    if first is None:
        return None
    critic = SNPatchGAN(int(first.shape[2]))
    names = {ours: patch_critic_tf_name(ours) for ours in critic.state_dict()}
    missing = [tf for tf in names.values() if tf not in entries]
    if missing:
        print(f"note: the SN-PatchGAN critic in {prefix} lacks {missing[0]} and {len(missing) - 1} more "
              "tensors; it is left out", file=sys.stderr)
        return None
    tensors = read_tensors(prefix, list(names.values()))
    state = {}
    for ours, param in critic.state_dict().items():
        value = tensors[names[ours]]
        value = conv_kernel(value) if value.ndim == 4 else value
        if tuple(value.shape) != tuple(param.shape):
            raise UserError(f"{names[ours]} has shape {value.shape}, expected {tuple(param.shape)}")
        state[ours] = value.astype(np.float32)
    return state


def _convert_v2(prefix: str, entries: dict[str, BundleEntry], cnum: int, source: str | None
                ) -> tuple[ModelSpec, Weights]:
    weights: Weights = {"generator": _generator_weights(prefix, entries, GatedGenerator(cnum), 2)}
    critic = _patch_critic_weights(prefix, entries)
    if critic is not None:
        weights["critic"] = critic
    spec = ModelSpec(cnum=cnum, channel_order="BGR", image_size=OFFICIAL_IMAGE_SIZE, hole_size=OFFICIAL_HOLE_SIZE,
                     source=source or os.path.abspath(prefix), version=2)
    return spec, weights


def convert(tf_checkpoint: str, source: str | None = None) -> tuple[ModelSpec, Weights]:
    """Read a TF checkpoint (a folder with a ``checkpoint`` file, or a prefix such as ``…/snap-0``) and
    return the model record and weights (``generator`` and the critics found); raises ``UserError`` if it
    is not DeepFill v1 or v2. ``source`` is what the record names as the origin (default: the bundle's path).
    A bundle with only one complete critic keeps neither: fine-tuning needs the pair, and starts both
    afresh either way."""
    prefix = resolve_prefix(tf_checkpoint)
    _, entries = read_index(prefix)
    cnum_entry = entries.get("inpaint_net/conv1/bias")
    if cnum_entry is None:
        raise UserError(f"{prefix} holds no DeepFill generator (no inpaint_net/conv1 tensors; "
                        f"{len(entries)} tensors found)")
    cnum = int(cnum_entry.shape[0])
    if is_v2(entries):
        return _convert_v2(prefix, entries, cnum, source)
    weights: Weights = {"generator": _generator_weights(prefix, entries, InpaintGenerator(cnum), 1)}
    sizes = {"critic_local": OFFICIAL_HOLE_SIZE, "critic_global": OFFICIAL_IMAGE_SIZE}
    critics = {key: _critic_weights(prefix, entries, key) for key in CRITICS}
    found = {key: critic for key, critic in critics.items() if critic is not None}
    if len(found) == 1:
        print("note: only one critic is complete; it is left out too (fine-tuning starts both afresh)",
              file=sys.stderr)
    elif found:
        weights.update({key: state for key, (state, _) in found.items()})
        sizes.update({key: side for key, (_, side) in found.items()})
    spec = ModelSpec(cnum=cnum, channel_order="BGR", image_size=sizes["critic_global"],
                     hole_size=sizes["critic_local"], source=source or os.path.abspath(prefix))
    return spec, weights
