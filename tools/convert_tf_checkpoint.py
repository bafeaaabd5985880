"""Convert an official DeepFill v1 TensorFlow checkpoint to our Paddle checkpoint.

    python tools/convert_tf_checkpoint.py TF_CKPT OUT.pdparams

TF_CKPT is a folder holding a ``checkpoint`` file (as in the official release zips) or a prefix such as
``…/snap-0``. TensorFlow is not needed. Generator and critics are kept, optimiser slots (``…/Adam``,
``beta1_power``, ``lr``, ``global_step``) are dropped. The result records channel order BGR — the official
models were trained on OpenCV's BGR arrays — and the source path, so ``inpaint.py`` feeds them correctly.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np

from utils.environment import prepare_paddle

prepare_paddle()

from models.checkpoint import save_checkpoint  # noqa: E402
from models.critics import global_critic, local_critic  # noqa: E402
from models.generator import InpaintGenerator  # noqa: E402
from models.official import conv_kernel, critic_tf_name, dense_kernel, generator_tf_name  # noqa: E402
from models.spec import ModelSpec  # noqa: E402
from utils.cli import ArgumentParser, UserError, run  # noqa: E402
from utils.tf_bundle import read_index, read_tensors, resolve_prefix  # noqa: E402

CRITICS = {"critic_local": ("local", 512, local_critic), "critic_global": ("global", 256, global_critic)}


OFFICIAL_IMAGE_SIZE, OFFICIAL_HOLE_SIZE = 256, 128


def convert(tf_checkpoint: str) -> tuple[ModelSpec, dict[str, dict[str, np.ndarray]]]:
    """Read a TF checkpoint and return the model record and weights (``generator`` and the critics found);
    raises ``UserError`` if it is not DeepFill v1. The record says BGR (the official models were trained
    on OpenCV's arrays) and takes the training geometry from the critics' sizes (the release's 256/128
    when a bundle holds no critics)."""
    prefix = resolve_prefix(tf_checkpoint)
    _, entries = read_index(prefix)
    cnum_entry = entries.get("inpaint_net/conv1/bias")
    if cnum_entry is None:
        raise UserError(f"{prefix} holds no DeepFill v1 generator (no inpaint_net/conv1 tensors; "
                        f"{len(entries)} tensors found)")
    cnum = int(cnum_entry.shape[0])
    generator = InpaintGenerator(cnum)
    names = {ours: generator_tf_name(ours) for ours in generator.state_dict()}
    missing = [tf for tf in names.values() if tf not in entries]
    if missing:
        raise UserError(f"{prefix} is not a complete DeepFill v1 generator: {missing[0]} and "
                        f"{len(missing) - 1} more tensors are missing")
    tensors = read_tensors(prefix, list(names.values()))
    weights: dict[str, dict[str, np.ndarray]] = {"generator": {}}
    sizes = {"critic_local": OFFICIAL_HOLE_SIZE, "critic_global": OFFICIAL_IMAGE_SIZE}
    for ours, param in generator.state_dict().items():
        value = tensors[names[ours]]
        value = conv_kernel(value) if value.ndim == 4 else value
        if tuple(value.shape) != tuple(param.shape):
            raise UserError(f"{names[ours]} has shape {value.shape}, expected {tuple(param.shape)}")
        weights["generator"][ours] = value.astype(np.float32)

    for key, (which, channels, build) in CRITICS.items():
        fc = entries.get(f"discriminator/dout_{which}_fc/kernel")
        if fc is None:
            continue
        side = math.isqrt(fc.shape[0] // channels)
        critic = build(side * 16)
        critic_names = {ours: critic_tf_name(ours, which) for ours in critic.state_dict()}
        if any(tf not in entries for tf in critic_names.values()):
            print(f"note: the {which} critic is incomplete in {prefix}; it is left out", file=sys.stderr)
            continue
        critic_tensors = read_tensors(prefix, list(critic_names.values()))
        state = {}
        for ours, param in critic.state_dict().items():
            value = critic_tensors[critic_names[ours]]
            if ours == "fc.weight":
                value = dense_kernel(value, channels)
            elif value.ndim == 4:
                value = conv_kernel(value)
            if tuple(value.shape) != tuple(param.shape):
                raise UserError(f"{critic_names[ours]} has shape {value.shape}, expected {tuple(param.shape)}")
            state[ours] = value.astype(np.float32)
        weights[key], sizes[key] = state, side * 16
    if len(weights) == 2:
        print("note: only one critic is complete; it is left out too (fine-tuning starts both afresh)",
              file=sys.stderr)
        weights = {"generator": weights["generator"]}
        sizes = {"critic_local": OFFICIAL_HOLE_SIZE, "critic_global": OFFICIAL_IMAGE_SIZE}
    spec = ModelSpec(cnum=cnum, channel_order="BGR", image_size=sizes["critic_global"],
                     hole_size=sizes["critic_local"], source=os.path.abspath(prefix))
    return spec, weights


def main() -> None:
    parser = ArgumentParser(prog="convert_tf_checkpoint.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("tf_checkpoint", help="folder with a 'checkpoint' file, or a prefix like …/snap-0")
    parser.add_argument("output", help="where to write the Paddle checkpoint (.pdparams)")
    args = parser.parse_args()
    if not os.path.exists(args.tf_checkpoint) and not os.path.exists(args.tf_checkpoint + ".index"):
        raise UserError(f"TF checkpoint not found: {args.tf_checkpoint}")
    spec, weights = convert(args.tf_checkpoint)
    save_checkpoint(args.output, spec, weights)
    count = sum(v.size for part in weights.values() for v in part.values())
    print(f"wrote {args.output}: {', '.join(weights)} ({count:,} parameters; {spec.describe()}) "
          f"from {spec.source}")


if __name__ == "__main__":
    run(main)
