"""Each training loss on small tensors whose values are worked out by hand (``deepfill/models/losses.py``)."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from deepfill.data.masks import Box
from deepfill.models.losses import (gradient_penalty, local_patches, reconstruction_losses, spatial_discount,
                                    wgan_critic_loss, wgan_generator_loss)

# spatial_discount(4, 4, 0.5): γ^min(i, 4-i) = 1, .5, .25, .5 along each axis, and the larger of the two.
DISCOUNT_4 = np.array([[1, 1, 1, 1],
                       [1, .5, .5, .5],
                       [1, .5, .25, .5],
                       [1, .5, .5, .5]], np.float32)


def test_spatial_discount_matches_the_hand_computed_table():
    assert (spatial_discount(4, 4, 0.5) == DISCOUNT_4).all()
    official = spatial_discount(128, 128, 0.9)
    assert official[0, 0] == official[0, 64] == 1.0
    assert official[64, 64] == pytest.approx(0.9 ** 64) and official[10, 20] == pytest.approx(0.9 ** 10)


def reconstruction_case() -> tuple[paddle.Tensor, ...]:
    """6×6 one-channel picture, 4×4 local box at (1, 2), a 2×2 hole inside it. Truth is 0 in the box and
    1 outside; stage 1 predicts 1 everywhere, stage 2 predicts 0.5 everywhere."""
    gt = np.ones((1, 1, 6, 6), np.float32)
    gt[:, :, 1:5, 2:6] = 0
    mask = np.zeros((1, 1, 6, 6), np.float32)
    mask[:, :, 2:4, 3:5] = 1
    return (paddle.to_tensor(gt), paddle.full([1, 1, 6, 6], 1.0), paddle.full([1, 1, 6, 6], 0.5),
            paddle.to_tensor(mask))


def test_l1_is_discounted_and_taken_on_the_local_box():
    gt, x1, x2, mask = reconstruction_case()
    discount = paddle.to_tensor(DISCOUNT_4[None, None])
    l1, _ = reconstruction_losses(gt, x1, x2, mask, [Box(1, 2, 4, 4)], discount, 1.2)
    # mean(D) = (4 + 2.5 + 2.25 + 2.5) / 16 = 0.703125; |error| in the box is 1 (stage 1) and 0.5 (stage 2)
    assert float(l1) == pytest.approx(1.2 * 1 * 0.703125 + 0.5 * 0.703125)
    l1_coarse, _ = reconstruction_losses(gt, x1, x2, mask, [Box(1, 2, 4, 4)], discount, 1.2, coarse_only=True)
    assert float(l1_coarse) == pytest.approx(1.2 * 0.703125)


def test_ae_is_the_known_region_error_normalised_by_its_area():
    gt, x1, x2, mask = reconstruction_case()
    _, ae = reconstruction_losses(gt, x1, x2, mask, [Box(1, 2, 4, 4)], paddle.ones([1, 1, 4, 4]), 1.2)
    # 32 of 36 pixels are known. Stage 1 is wrong by 1 on the 12 known box pixels, right elsewhere;
    # stage 2 is wrong by 0.5 on all 32: (1.2·12/36 + 16/36) / (32/36)
    assert float(ae) == pytest.approx((1.2 * 12 + 16) / 32)
    _, ae_coarse = reconstruction_losses(gt, x1, x2, mask, [Box(1, 2, 4, 4)], paddle.ones([1, 1, 4, 4]), 1.2,
                                         coarse_only=True)
    assert float(ae_coarse) == pytest.approx(1.2 * 12 / 32)


def test_local_patches_crop_a_shared_box_or_one_box_per_image():
    images = paddle.arange(2 * 36, dtype="float32").reshape([2, 1, 6, 6])
    shared = local_patches(images, [Box(1, 2, 3, 3)] * 2)
    assert (shared.numpy() == images.numpy()[:, :, 1:4, 2:5]).all()
    each = local_patches(images, [Box(0, 0, 3, 3), Box(3, 3, 3, 3)])
    assert (each.numpy()[0] == images.numpy()[0, :, :3, :3]).all()
    assert (each.numpy()[1] == images.numpy()[1, :, 3:, 3:]).all()


def test_wgan_losses():
    real, fake = paddle.to_tensor([[1.0], [3.0]]), paddle.to_tensor([[2.0], [-2.0]])
    assert float(wgan_critic_loss(real, fake)) == pytest.approx(((2 - 1) + (-2 - 3)) / 2)
    fake_local, fake_global = paddle.to_tensor([[2.0], [4.0]]), paddle.to_tensor([[1.0], [3.0]])
    assert float(wgan_generator_loss(fake_local, fake_global, 0.5)) == pytest.approx(-3 - 0.5 * 2)


class StandIn(paddle.nn.Layer):
    """A critic with a known gradient; ``input_gradient`` as ``Critic``'s off oneDNN."""

    def input_gradient(self, x: paddle.Tensor, mask: paddle.Tensor | None = None) -> paddle.Tensor:
        x = x.detach()
        x.stop_gradient = False
        return paddle.grad(self(x), x, create_graph=True)[0]


class Linear(StandIn):
    """D(x) = c·Σx: its gradient is c at every pixel."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.c * x.sum(axis=[1, 2, 3])


class Quadratic(StandIn):
    """D(x) = w·Σx²/2: its gradient is w·x, so the penalty depends on where x̂ lies and on w."""

    def __init__(self) -> None:
        super().__init__()
        self.w = self.create_parameter([1], default_initializer=paddle.nn.initializer.Constant(1.0))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.w * (x * x).sum(axis=[1, 2, 3]) / 2


def test_gradient_penalty_counts_only_the_hole():
    real, fake = paddle.zeros([2, 1, 4, 4]), paddle.ones([2, 1, 4, 4])
    alpha = paddle.full([2, 1, 1, 1], 0.3)
    everywhere, hole = paddle.ones([2, 1, 4, 4]), paddle.zeros([2, 1, 4, 4])
    hole[:, :, 1:3, 1:3] = 1
    # gradient 0.25 at all 16 pixels: norm 1 over the image, sqrt(4 · 0.0625) = 0.5 over the hole
    assert float(gradient_penalty(Linear(0.25), real, fake, alpha, everywhere)) == pytest.approx(0.0)
    assert float(gradient_penalty(Linear(0.25), real, fake, alpha, hole)) == pytest.approx((0.5 - 1) ** 2)
    one_each = paddle.concat([hole[:1], everywhere[1:]])
    assert float(gradient_penalty(Linear(0.25), real, fake, alpha, one_each)) == pytest.approx(0.25 / 2)


def test_gradient_penalty_interpolates_per_sample_and_trains_the_critic():
    real, fake = paddle.zeros([2, 1, 4, 4]), paddle.full([2, 1, 4, 4], 2.0)
    alpha = paddle.to_tensor([0.25, 0.5]).reshape([2, 1, 1, 1])
    hole = paddle.zeros([2, 1, 4, 4])
    hole[:, :, 1:3, 1:3] = 1
    critic = Quadratic()
    penalty = gradient_penalty(critic, real, fake, alpha, hole)
    # x̂ = 2α everywhere, gradient 2wα on 4 hole pixels: slopes 4wα = 1 and 2, penalties 0 and 1
    # (interpolating from the other end, x̂ = 2 − 2α, would give slopes 3 and 2: 2.5)
    assert float(penalty) == pytest.approx(0.5)
    penalty.backward()
    # d/dw mean((4wα − 1)²) at w = 1: (2·(1 − 1)·1 + 2·(2 − 1)·2) / 2 = 2
    assert critic.w.grad.numpy().item() == pytest.approx(2.0)
