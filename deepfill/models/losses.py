"""The training objectives (paper §3; the official ``build_graph_with_losses``): the spatially discounted l1 on the
local box, the ``ae`` reconstruction over the known region, the WGAN critic/generator terms, and the gradient
penalty measured only over the hole (the paper's modified WGAN-GP: the completion should only be judged where it was
generated).
"""
from __future__ import annotations

import numpy as np
import paddle

from deepfill.models.critics import Critic


def spatial_discount(height: int, width: int, gamma: float) -> np.ndarray:
    """Weight ``max(γ^min(i, H-i), γ^min(j, W-j))``: pixels near the known border count more, because
    far inside a hole many completions are plausible (official ``spatial_discounting_mask``)."""
    i = np.arange(height)[:, None]
    j = np.arange(width)[None, :]
    return np.maximum(gamma ** np.minimum(i, height - i), gamma ** np.minimum(j, width - j)).astype(np.float32)


def local_patches(images: paddle.Tensor, boxes: list) -> paddle.Tensor:
    """Crop each image's local box (``deepfill.data.masks.Box``); one shared box is a single slice."""
    if all(box == boxes[0] for box in boxes):
        box = boxes[0]
        return images[:, :, box.top:box.top + box.height, box.left:box.left + box.width]
    return paddle.stack([image[:, box.top:box.top + box.height, box.left:box.left + box.width]
                         for image, box in zip(images, boxes)])


def reconstruction_losses(gt: paddle.Tensor, x1: paddle.Tensor, x2: paddle.Tensor, mask: paddle.Tensor,
                          boxes: list, discount: paddle.Tensor, coarse_alpha: float,
                          coarse_only: bool = False, known_fraction: float | None = None
                          ) -> tuple[paddle.Tensor, paddle.Tensor]:
    """``l1``: discounted |gt − x| on the local box; ``ae``: |gt − x| on the known region, normalised by
    its area. Stage-1 terms are weighted by ``coarse_alpha`` in both; ``coarse_only`` (the official
    PRETRAIN_COARSE_NETWORK) leaves the stage-2 terms out. ``known_fraction``: the known area's share
    of the whole batch when this is one process's part of it (data parallel, holes per image): the
    normaliser must be the whole batch's, or N processes would not compute what one does."""
    local_gt = local_patches(gt, boxes)
    known = 1.0 - mask
    l1 = coarse_alpha * paddle.mean(paddle.abs(local_gt - local_patches(x1, boxes)) * discount)
    ae = coarse_alpha * paddle.mean(paddle.abs(gt - x1) * known)
    if not coarse_only:
        l1 = l1 + paddle.mean(paddle.abs(local_gt - local_patches(x2, boxes)) * discount)
        ae = ae + paddle.mean(paddle.abs(gt - x2) * known)
    return l1, ae / (paddle.mean(known) if known_fraction is None else known_fraction)


def wgan_critic_loss(real: paddle.Tensor, fake: paddle.Tensor) -> paddle.Tensor:
    """Critic minimises mean(fake − real) (official ``gan_wgan_loss``: d_loss)."""
    return paddle.mean(fake - real)


def wgan_generator_loss(fake_local: paddle.Tensor, fake_global: paddle.Tensor,
                        global_alpha: float) -> paddle.Tensor:
    """Generator maximises the critics' scores of its completions: −mean(local) − α·mean(global)."""
    return -paddle.mean(fake_local) - global_alpha * paddle.mean(fake_global)


def gradient_penalty(critic: Critic, real: paddle.Tensor, fake: paddle.Tensor,
                     alpha: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
    """mean((‖∇D(x̂) ⊙ mask‖ − 1)²) at x̂ = real + α (fake − real), one α per sample, norm over the hole
    (a critic that also sees the hole, ``Critic.mask_channel``, is given ``mask``; its gradient is the
    image channels')."""
    interpolates = (real + alpha * (fake - real)).detach()
    gradient = critic.input_gradient(interpolates, mask)
    slopes = paddle.sqrt(paddle.sum(gradient * gradient * mask, axis=[1, 2, 3]))
    return paddle.mean((slopes - 1.0) ** 2)
