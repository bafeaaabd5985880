"""How the official TF graph names and lays out our parameters: the bridge used to convert its checkpoints
and to compare with what it computed.

Our layer names follow the official variable scopes (``conv1`` … ``allconv17``, ``discriminator_local/conv1``
…); kernels are HWIO there and OIHW here, and the critics' dense layers read features flattened in NHWC
order there and NCHW order here.
"""
from __future__ import annotations

import math

import numpy as np

from deepfill.utils.errors import UserError


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


def tf_conv_kernel(kernel: np.ndarray) -> np.ndarray:
    """Paddle OIHW → TF HWIO (the inverse of ``conv_kernel``)."""
    return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))


def _square_side(rows: int, channels: int) -> int:
    side = math.isqrt(rows // channels)
    if side * side * channels != rows:
        raise UserError(f"critic dense kernel with {rows} rows does not fit a square feature map of "
                        f"{channels} channels")
    return side


def dense_kernel(kernel: np.ndarray, channels: int) -> np.ndarray:
    """TF's dense kernel over NHWC-flattened features → Paddle Linear weight over NCHW-flattened ones."""
    side = _square_side(kernel.shape[0], channels)
    return np.ascontiguousarray(
        kernel.reshape(side, side, channels, -1).transpose(2, 0, 1, 3).reshape(kernel.shape[0], -1))


def tf_dense_kernel(weight: np.ndarray, channels: int) -> np.ndarray:
    """Paddle Linear weight over NCHW-flattened features → TF's dense kernel (inverse of ``dense_kernel``)."""
    side = _square_side(weight.shape[0], channels)
    return np.ascontiguousarray(
        weight.reshape(channels, side, side, -1).transpose(1, 2, 0, 3).reshape(weight.shape[0], -1))


def to_tf_layout(name: str, value: np.ndarray, channels: int) -> np.ndarray:
    """One of our tensors (parameter or gradient) in the official layout; ``channels`` are the features the
    dense layer reads (for ``fc.weight``)."""
    if name.endswith("fc.weight"):
        return tf_dense_kernel(value, channels)
    return tf_conv_kernel(value) if value.ndim == 4 else value
