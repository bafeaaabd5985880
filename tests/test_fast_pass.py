"""The critic steps' compiled generator pass (``training.fast_pass``) gives the eager generator's stage 2
inside every image's hole, also after the generator's weights change and with a different hole per image."""
from __future__ import annotations

import numpy as np
import paddle

from models.generator import InpaintGenerator
from training.fast_pass import CompiledCriticPass


def holes(count: int, size: int) -> np.ndarray:
    mask = np.zeros((count, 1, size, size), np.float32)
    for i in range(count):
        top, left = 4 + 8 * i, 24 - 8 * i
        mask[i, :, top:top + 24, left:left + 20] = 1.0
    return mask


def eager_stage2(generator: InpaintGenerator, x: paddle.Tensor, mask: paddle.Tensor) -> np.ndarray:
    with paddle.no_grad():
        return generator(x, mask)[1].numpy()


def test_compiled_pass_follows_the_generator_inside_each_hole():
    paddle.seed(3)
    generator = InpaintGenerator(cnum=8, per_sample_mask=True)
    fast = CompiledCriticPass(generator)
    mask = paddle.to_tensor(holes(3, 64))
    x = paddle.uniform([3, 3, 64, 64], min=-1.0, max=1.0) * (1.0 - mask)
    inside = mask.numpy() > 0.5
    first = fast(x, mask).numpy()
    assert np.abs(first - eager_stage2(generator, x, mask))[np.broadcast_to(inside, first.shape)].max() < 1e-4

    with paddle.no_grad():
        for parameter in generator.parameters():
            parameter.set_value(parameter * 1.1)
    stale = fast(x, mask).numpy()
    assert np.array_equal(stale, first)            # the programs keep their copy until told
    fast.generator_changed()
    second = fast(x, mask).numpy()
    expected = eager_stage2(generator, x, mask)
    assert np.abs(second - expected)[np.broadcast_to(inside, second.shape)].max() < 1e-4
    assert np.abs(second - first)[np.broadcast_to(inside, first.shape)].max() > 1e-3
