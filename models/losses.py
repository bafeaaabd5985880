"""The training objectives (paper §3, SPEC §4): discounted l1 on the local box, the ``ae`` reconstruction
over the known region, the WGAN critic/generator terms, and the gradient penalty measured only over the
hole (the paper's modified WGAN-GP: the completion should only be judged where it was generated).
"""
from __future__ import annotations

import paddle


def local_patches(images: paddle.Tensor, boxes: list) -> paddle.Tensor:
    """Crop each image's local box (``data.masks.Box``); one shared box is a single slice."""
    if all(box == boxes[0] for box in boxes):
        box = boxes[0]
        return images[:, :, box.top:box.top + box.height, box.left:box.left + box.width]
    return paddle.stack([image[:, box.top:box.top + box.height, box.left:box.left + box.width]
                         for image, box in zip(images, boxes)])


def reconstruction_losses(gt: paddle.Tensor, x1: paddle.Tensor, x2: paddle.Tensor, mask: paddle.Tensor,
                          boxes: list, discount: paddle.Tensor, coarse_alpha: float
                          ) -> tuple[paddle.Tensor, paddle.Tensor]:
    """``l1``: discounted |gt − x| on the local box; ``ae``: |gt − x| on the known region, normalised by
    its area. Stage-1 terms are weighted by ``coarse_alpha`` in both."""
    local_gt = local_patches(gt, boxes)
    l1 = (coarse_alpha * paddle.mean(paddle.abs(local_gt - local_patches(x1, boxes)) * discount)
          + paddle.mean(paddle.abs(local_gt - local_patches(x2, boxes)) * discount))
    known = 1.0 - mask
    ae = (coarse_alpha * paddle.mean(paddle.abs(gt - x1) * known)
          + paddle.mean(paddle.abs(gt - x2) * known)) / paddle.mean(known)
    return l1, ae


def wgan_critic_loss(real: paddle.Tensor, fake: paddle.Tensor) -> paddle.Tensor:
    """Critic minimises mean(fake − real)."""
    return paddle.mean(fake - real)


def gradient_penalty(critic: paddle.nn.Layer, real: paddle.Tensor, fake: paddle.Tensor,
                     alpha: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
    """mean((‖∇D(x̂) ⊙ mask‖ − 1)²) at x̂ = real + α (fake − real), one α per sample, norm over the hole."""
    interpolates = (real + alpha * (fake - real)).detach()
    interpolates.stop_gradient = False
    gradient = paddle.grad(critic(interpolates), interpolates, create_graph=True)[0]
    slopes = paddle.sqrt(paddle.sum(gradient * gradient * mask, axis=[1, 2, 3]))
    return paddle.mean((slopes - 1.0) ** 2)
