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

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import utils  # noqa: E402,F401  (quiets Paddle before it is imported)
from models.critics import global_critic, local_critic  # noqa: E402
from models.generator import InpaintGenerator  # noqa: E402
from utils.checkpoint import save_checkpoint  # noqa: E402
from utils.cli import ArgumentParser, UserError, run  # noqa: E402
from utils.tf_bundle import read_index, read_tensors, resolve_prefix  # noqa: E402

CRITICS = {"critic_local": ("local", 512, local_critic), "critic_global": ("global", 256, global_critic)}


def generator_tf_name(name: str) -> str:
    """Our parameter name → the official variable name, e.g. ``coarse.body.conv13_upsample.conv.conv.weight``
    → ``inpaint_net/conv13_upsample/conv13_upsample_conv/kernel`` (``gen_deconv`` adds a ``_conv`` scope)."""
    parts = name.split(".")
    layer, kind = parts[2], {"weight": "kernel", "bias": "bias"}[parts[-1]]
    scope = f"{layer}/{layer}_conv" if layer.endswith("_upsample") else layer
    return f"inpaint_net/{scope}/{kind}"


def critic_tf_name(name: str, which: str) -> str:
    """``convs.conv2.weight`` → ``discriminator/discriminator_local/conv2/kernel``; ``fc`` → ``dout_local_fc``."""
    parts = name.split(".")
    kind = {"weight": "kernel", "bias": "bias"}[parts[-1]]
    if parts[0] == "fc":
        return f"discriminator/dout_{which}_fc/{kind}"
    return f"discriminator/discriminator_{which}/{parts[1]}/{kind}"


def conv_kernel(kernel: np.ndarray) -> np.ndarray:
    """TF HWIO → Paddle OIHW."""
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def dense_kernel(kernel: np.ndarray, channels: int) -> np.ndarray:
    """TF's dense kernel over NHWC-flattened features → Paddle Linear weight over NCHW-flattened ones."""
    side = math.isqrt(kernel.shape[0] // channels)
    if side * side * channels != kernel.shape[0]:
        raise UserError(f"critic dense kernel {kernel.shape} does not fit a square feature map of "
                        f"{channels} channels")
    return np.ascontiguousarray(
        kernel.reshape(side, side, channels, -1).transpose(2, 0, 1, 3).reshape(kernel.shape[0], -1))


def convert(tf_checkpoint: str) -> dict:
    """Read a TF checkpoint and return our checkpoint payload (raises ``UserError`` if it is not DeepFill v1)."""
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
    payload = {"generator": {}, "cnum": cnum, "channel_order": "BGR",
               "source": os.path.abspath(prefix)}
    for ours, param in generator.state_dict().items():
        value = tensors[names[ours]]
        value = conv_kernel(value) if value.ndim == 4 else value
        if tuple(value.shape) != tuple(param.shape):
            raise UserError(f"{names[ours]} has shape {value.shape}, expected {tuple(param.shape)}")
        payload["generator"][ours] = value.astype(np.float32)

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
        payload[key], payload[f"{key}_size"] = state, side * 16
    return payload


def main() -> None:
    parser = ArgumentParser(prog="convert_tf_checkpoint.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("tf_checkpoint", help="folder with a 'checkpoint' file, or a prefix like …/snap-0")
    parser.add_argument("output", help="where to write the Paddle checkpoint (.pdparams)")
    args = parser.parse_args()
    if not os.path.exists(args.tf_checkpoint) and not os.path.exists(args.tf_checkpoint + ".index"):
        raise UserError(f"TF checkpoint not found: {args.tf_checkpoint}")
    payload = convert(args.tf_checkpoint)
    save_checkpoint(args.output, payload)
    kept = ["generator"] + [k for k in CRITICS if k in payload]
    count = sum(v.size for k in kept for v in payload[k].values())
    print(f"wrote {args.output}: {', '.join(kept)} ({count:,} parameters, channel order BGR) "
          f"from {payload['source']}")


if __name__ == "__main__":
    run(main)
