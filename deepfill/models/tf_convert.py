"""Official DeepFill v1 and v2 TensorFlow checkpoints → our model record and weights.

Shared by ``tools/convert_tf_checkpoint.py`` (a folder the user names) and ``deepfill.models.pretrained`` (the release
models fetched by name), so that both produce the same file. TensorFlow is not needed: ``deepfill.utils.tf_bundle``
reads the bundle. Generator and critics are kept, optimiser slots (``…/Adam``, ``beta1_power``, ``lr``,
``global_step``) are dropped. The record says BGR — the official models were trained on OpenCV's BGR arrays
— and takes the training geometry from the critics' input sizes.

The generator decides: when it is complete it converts, whatever the critics hold, because inpainting needs
it alone. A critic that is incomplete, has shapes of neither official layout, or holds tensors the official
one does not, is left out with a one-line note (fine-tuning then starts the critics afresh); so is anything
else under ``discriminator/`` or ``inpaint_net/`` that no layout names, in one summarised line. A v1 global
critic with 4 input channels is the official GAN_WITH_MASK layout (the mask after the image's channels), which
``deepfill.models.critics`` builds too: it is kept, and the record says ``gan_with_mask``.

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
import paddle.nn as nn

from deepfill.models.critics import global_critic, local_critic
from deepfill.models.gated import GatedGenerator
from deepfill.models.generator import InpaintGenerator
from deepfill.models.sn_patch_gan import SNPatchGAN
from deepfill.models.official import conv_kernel, critic_tf_name, dense_kernel, generator_tf_name
from deepfill.models.spec import ModelSpec
from deepfill.utils.errors import UserError
from deepfill.utils.tf_bundle import BundleEntry, read_index, read_tensors, resolve_prefix

OFFICIAL_IMAGE_SIZE, OFFICIAL_HOLE_SIZE = 256, 128
CRITICS = {"critic_local": ("local", 512), "critic_global": ("global", 256)}
"""Checkpoint key → the official scope's name and the width of the last conv (what the dense layer reads)."""
PATCH_CRITIC_SCOPE = "discriminator/sn_patch_gan/"
MODEL_SCOPES = ("inpaint_net/", "discriminator/")
"""Where the official graph keeps model weights; what lies there beyond the layouts converted is named."""

Weights = dict[str, dict[str, np.ndarray]]


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def _tf_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The TF shape of one of our parameters: conv kernels are OIHW here, HWIO there; the rest agree."""
    shape = tuple(int(d) for d in shape)
    return (shape[2], shape[3], shape[1], shape[0]) if len(shape) == 4 else shape


def _mismatch(entries: dict[str, BundleEntry], layer: nn.Layer, names: dict[str, str]) -> str | None:
    """The first tensor whose TF shape is not what ``layer`` needs, said in TF's layout, or None."""
    for ours, param in layer.state_dict().items():
        have, want = tuple(entries[names[ours]].shape), _tf_shape(param.shape)
        if have != want:
            return f"{names[ours]} has TF shape {have}, expected {want}"
    return None


def _is_slot(name: str, layout: set[str]) -> bool:
    """Whether ``name`` is optimiser bookkeeping of a layout tensor (``…/kernel/Adam``, ``…/Adam_1``)."""
    parent = name
    while "/" in parent:
        parent = parent.rsplit("/", 1)[0]
        if parent in layout:
            return True
    return False


def _beyond(held: list[str], layout: set[str]) -> list[str]:
    """The tensors of ``held`` that are neither in ``layout`` nor its optimiser slots."""
    return [name for name in held if name not in layout and not _is_slot(name, layout)]


def _some(names: list[str]) -> str:
    return names[0] + (f" and {len(names) - 1} more" if len(names) > 1 else "")


def _read(prefix: str, layer: nn.Layer, names: dict[str, str], channels: int = 0) -> dict[str, np.ndarray]:
    """``layer``'s weights from the bundle, in our layout (shapes checked beforehand, ``_mismatch``);
    ``channels``: the features a dense layer ``fc`` reads."""
    tensors = read_tensors(prefix, list(names.values()))
    state = {}
    for ours in layer.state_dict():
        value = tensors[names[ours]]
        if ours == "fc.weight":
            value = dense_kernel(value, channels)
        elif value.ndim == 4:
            value = conv_kernel(value)
        state[ours] = value.astype(np.float32)
    return state


def _generator_weights(prefix: str, entries: dict[str, BundleEntry], generator: InpaintGenerator, version: int
                       ) -> dict[str, np.ndarray]:
    names = {ours: generator_tf_name(ours) for ours in generator.state_dict()}
    missing = [tf for tf in names.values() if tf not in entries]
    if missing:
        raise UserError(f"{prefix} is not a complete DeepFill v{version} generator: {missing[0]} and "
                        f"{len(missing) - 1} more tensors are missing")
    mismatch = _mismatch(entries, generator, names)
    if mismatch:
        raise UserError(f"{prefix} is not a DeepFill v{version} generator: {mismatch}")
    return _read(prefix, generator, names)


def _critic_scopes(which: str) -> tuple[str, str]:
    """Where the official graph keeps the ``local`` or ``global`` critic: its convs, and its dense layer."""
    return f"discriminator/discriminator_{which}/", f"discriminator/dout_{which}_fc/"


def _critic_names(which: str) -> dict[str, str]:
    """Our parameter name → the official one, for the ``local`` or ``global`` critic (both have four convs
    and a dense layer, so their parameter names agree whatever their sizes)."""
    return {ours: critic_tf_name(ours, which) for ours in local_critic(16).state_dict()}


def _critic_weights(prefix: str, entries: dict[str, BundleEntry], key: str
                    ) -> tuple[dict[str, np.ndarray], int, bool] | None:
    """One v1 critic's weights, input side and whether it sees the mask (a 4-channel global critic,
    GAN_WITH_MASK); None, with a note saying why, when the bundle's critic is not one we can build (and
    silently when the bundle has none)."""
    which, channels = CRITICS[key]
    held = sorted(name for name in entries if name.startswith(_critic_scopes(which)))
    if not held:
        return None
    names = _critic_names(which)
    missing = [tf for tf in names.values() if tf not in entries]
    if missing:
        _note(f"the {which} critic in {prefix} lacks {_some(missing)}; it is left out")
        return None
    extra = _beyond(held, set(names.values()))
    if extra:
        _note(f"the {which} critic in {prefix} also holds {_some(extra)}, which DeepFill v1's critic does not; "
              "it is left out")
        return None
    first = entries[names["convs.conv1.weight"]].shape
    mask_channel = which == "global" and len(first) == 4 and first[2] == 4
    rows = entries[names["fc.weight"]].shape
    side = max(1, math.isqrt((rows[0] if rows else 0) // channels))
    critic = global_critic(side * 16, mask_channel) if which == "global" else local_critic(side * 16)
    mismatch = _mismatch(entries, critic, names)
    if mismatch:
        layouts = "3 input channels, or 4 with the mask (GAN_WITH_MASK)" if which == "global" else "3 input channels"
        _note(f"the {which} critic in {prefix} fits no DeepFill v1 layout ({layouts}): {mismatch}; "
              "it is left out")
        return None
    return _read(prefix, critic, names, channels), side * 16, mask_channel


def is_v2(entries: dict[str, BundleEntry]) -> bool:
    """Whether a bundle holds DeepFill v2: its stage 2 starts from the 3-channel picture, or it has the
    SN-PatchGAN critic."""
    xconv1 = entries.get("inpaint_net/xconv1/kernel")
    return (xconv1 is not None and len(xconv1.shape) == 4 and xconv1.shape[2] == 3) or \
        "discriminator/sn_patch_gan/conv1/kernel" in entries


def patch_critic_tf_name(name: str) -> str:
    """``convs.conv2.weight`` → ``discriminator/sn_patch_gan/conv2/kernel``; ``u`` → ``…/kernel_sn/u``."""
    _, layer, kind = name.split(".")
    return f"{PATCH_CRITIC_SCOPE}{layer}/" + {"weight": "kernel", "bias": "bias", "u": "kernel_sn/u"}[kind]


def _patch_critic_weights(prefix: str, entries: dict[str, BundleEntry]) -> dict[str, np.ndarray] | None:
    """The SN-PatchGAN critic's weights, or None (with a note naming what is missing or does not fit) when
    the bundle's is not one we can build."""
    held = sorted(name for name in entries if name.startswith(PATCH_CRITIC_SCOPE))
    if not held:
        return None
    names = {ours: patch_critic_tf_name(ours) for ours in SNPatchGAN(3).state_dict()}
    missing = [tf for tf in names.values() if tf not in entries]
    if missing:
        _note(f"the SN-PatchGAN critic in {prefix} lacks {_some(missing)}; it is left out")
        return None
    extra = _beyond(held, set(names.values()))
    if extra:
        _note(f"the SN-PatchGAN critic in {prefix} also holds {_some(extra)}, which DeepFill v2's does not; "
              "it is left out")
        return None
    first = entries[names["convs.conv1.weight"]].shape
    critic = SNPatchGAN(int(first[2]) if len(first) == 4 else 4)
    mismatch = _mismatch(entries, critic, names)
    if mismatch:
        _note(f"the SN-PatchGAN critic in {prefix} fits no DeepFill v2 layout: {mismatch}; it is left out")
        return None
    return _read(prefix, critic, names)


def _note_unknown(prefix: str, entries: dict[str, BundleEntry], generator: InpaintGenerator, version: int
                  ) -> None:
    """One line naming the model tensors that no layout of this generation holds (optimiser slots and the
    critics' own scopes aside: a critic names what it holds beyond its layout itself), which are dropped."""
    known = {generator_tf_name(n) for n in generator.state_dict()} | (
        {patch_critic_tf_name(n) for n in SNPatchGAN(3).state_dict()} if version == 2 else
        {tf for which, _ in CRITICS.values() for tf in _critic_names(which).values()})
    critic_scopes = (PATCH_CRITIC_SCOPE,) if version == 2 else \
        tuple(scope for which, _ in CRITICS.values() for scope in _critic_scopes(which))
    unknown = _beyond(sorted(name for name in entries
                             if name.startswith(MODEL_SCOPES) and not name.startswith(critic_scopes)), known)
    if unknown:
        _note(f"{len(unknown)} tensor(s) in {prefix} belong to no DeepFill v{version} generator or critic and "
              f"are left out: {_some(unknown)}")


def _convert_v2(prefix: str, entries: dict[str, BundleEntry], cnum: int, source: str | None
                ) -> tuple[ModelSpec, Weights]:
    generator = GatedGenerator(cnum)
    weights: Weights = {"generator": _generator_weights(prefix, entries, generator, 2)}
    critic = _patch_critic_weights(prefix, entries)
    if critic is not None:
        weights["critic"] = critic
    _note_unknown(prefix, entries, generator, 2)
    spec = ModelSpec(cnum=cnum, channel_order="BGR", image_size=OFFICIAL_IMAGE_SIZE, hole_size=OFFICIAL_HOLE_SIZE,
                     source=source or os.path.abspath(prefix), version=2)
    return spec, weights


def convert(tf_checkpoint: str, source: str | None = None) -> tuple[ModelSpec, Weights]:
    """Read a TF checkpoint (a folder with a ``checkpoint`` file, or a prefix such as ``…/snap-0``) and
    return the model record and weights (``generator`` and the critics found); raises ``UserError`` if it
    is not DeepFill v1 or v2. ``source`` is what the record names as the origin (default: the bundle's path).
    A bundle with only one usable critic keeps neither: fine-tuning needs the pair, and starts both
    afresh either way; the record then says no ``gan_with_mask`` either, which would bind a fine-tuning run
    to a choice no kept weight depends on."""
    prefix = resolve_prefix(tf_checkpoint)
    _, entries = read_index(prefix)
    cnum_entry = entries.get("inpaint_net/conv1/bias")
    if cnum_entry is None:
        raise UserError(f"{prefix} holds no DeepFill generator (no inpaint_net/conv1 tensors; "
                        f"{len(entries)} tensors found)")
    if len(cnum_entry.shape) != 1 or cnum_entry.shape[0] < 1:
        raise UserError(f"{prefix} holds no DeepFill generator (inpaint_net/conv1/bias has TF shape "
                        f"{cnum_entry.shape}, expected (cnum,))")
    cnum = int(cnum_entry.shape[0])
    if is_v2(entries):
        return _convert_v2(prefix, entries, cnum, source)
    generator = InpaintGenerator(cnum)
    weights: Weights = {"generator": _generator_weights(prefix, entries, generator, 1)}
    sizes = {"critic_local": OFFICIAL_HOLE_SIZE, "critic_global": OFFICIAL_IMAGE_SIZE}
    critics = {key: _critic_weights(prefix, entries, key) for key in CRITICS}
    found = {key: critic for key, critic in critics.items() if critic is not None}
    gan_with_mask = False
    if len(found) == 2 and found["critic_local"][1] > found["critic_global"][1]:
        _note(f"the local critic in {prefix} takes {found['critic_local'][1]}² inputs, more than the global "
              f"critic's {found['critic_global'][1]}²; both are left out")
    elif len(found) == 1:
        _note("only one critic is usable; it is left out too (fine-tuning starts both afresh)")
    elif found:
        weights.update({key: state for key, (state, _, _) in found.items()})
        sizes.update({key: side for key, (_, side, _) in found.items()})
        gan_with_mask = found["critic_global"][2]
    _note_unknown(prefix, entries, generator, 1)
    spec = ModelSpec(cnum=cnum, channel_order="BGR", image_size=sizes["critic_global"],
                     hole_size=sizes["critic_local"], source=source or os.path.abspath(prefix),
                     gan_with_mask=gan_with_mask)
    return spec, weights
