"""The TF-compatibility primitives and the batched attention's behaviour beyond the golden case."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from deepfill.models.attention import contextual_attention
from deepfill.models.layers import nearest_index, resize_nearest, same_padding


@pytest.mark.parametrize("size,kernel,stride,dilation,expected", [
    (256, 3, 2, 1, (0, 1)),     # stride 2, even size: TF pads after only
    (255, 3, 2, 1, (1, 1)),
    (64, 5, 2, 1, (1, 2)),
    (64, 3, 1, 4, (4, 4)),      # dilation widens the padding
    (64, 3, 1, 16, (16, 16)),
    (32, 4, 2, 1, (1, 1)),      # attention's raw 4x4 patches
])
def test_same_padding_follows_tf(size, kernel, stride, dilation, expected):
    assert same_padding(size, kernel, stride, dilation) == expected


def test_nearest_index_is_align_corners():
    # align_corners maps the first and last pixels onto each other; TF rounds half away from zero
    assert nearest_index(4, 2).tolist() == [0, 3]
    assert nearest_index(64, 128)[[0, 1, 2, 3, 127]].tolist() == [0, 0, 1, 1, 63]
    assert nearest_index(256, 64)[:4].tolist() == [0, 4, 8, 12]
    assert nearest_index(5, 1).tolist() == [0]


def test_resize_nearest_gathers_rows_and_columns():
    x = paddle.arange(24, dtype="float32").reshape([1, 1, 4, 6])
    y = resize_nearest(x, 2, 3).numpy()[0, 0]
    assert y.tolist() == [[0, 3, 5], [18, 21, 23]]


def _features(seed: int, batch: int = 3, size: int = 16) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).random((batch, 8, size, size), dtype=np.float32))


def _box_masks(batch: int, size: int = 16) -> paddle.Tensor:
    masks = np.zeros((batch, 1, size, size), np.float32)
    for i in range(batch):
        masks[i, :, 2 + 3 * i:8 + 3 * i, 4:10] = 1
    return paddle.to_tensor(masks)


def test_batched_attention_equals_one_sample_at_a_time():
    features, masks = _features(0), _box_masks(3)
    batched, offsets = contextual_attention(features, features, masks, per_sample_mask=True)
    for i in range(3):
        alone, alone_offsets = contextual_attention(features[i:i + 1], features[i:i + 1], masks[i:i + 1])
        np.testing.assert_allclose(batched.numpy()[i], alone.numpy()[0], atol=1e-5)
        assert (offsets.numpy()[i] == alone_offsets.numpy()[0]).all()


def test_official_mode_uses_the_first_mask_for_the_whole_batch():
    features, masks = _features(1), _box_masks(3)
    official, _ = contextual_attention(features, features, masks)
    first_everywhere, _ = contextual_attention(features, features, paddle.tile(masks[:1], [3, 1, 1, 1]))
    per_sample, _ = contextual_attention(features, features, masks, per_sample_mask=True)
    np.testing.assert_allclose(official.numpy(), first_everywhere.numpy(), atol=1e-6)
    assert np.abs(official.numpy()[1:] - per_sample.numpy()[1:]).max() > 1e-3


def test_attention_never_copies_from_the_hole():
    """Every attended patch lies in known background (offsets point outside the downscaled hole)."""
    features, masks = _features(2, batch=2), _box_masks(2)
    _, offsets = contextual_attention(features, features, masks, per_sample_mask=True)
    offsets = offsets.numpy()
    small = masks.numpy()[:, 0, ::2, ::2]
    rows, cols = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    for i in range(2):
        source_rows, source_cols = rows + offsets[i, 0], cols + offsets[i, 1]
        assert small[i][source_rows, source_cols].max() == 0


def test_attention_rejects_sides_not_divisible_by_rate():
    with pytest.raises(ValueError, match="divisible"):
        contextual_attention(_features(3, 1, 15), _features(3, 1, 15))


def test_weights_start_as_tf_initialises_them():
    """Glorot-uniform kernels and zero biases, TF1's defaults that the official graph relies on: every
    kernel's spread matches 2 / (fan_in + fan_out) (the variance of that uniform distribution)."""
    from deepfill.models.critics import global_critic
    from deepfill.models.generator import InpaintGenerator
    paddle.seed(3)
    layers = [(name, layer) for net in (InpaintGenerator(16), global_critic(64))
              for name, layer in net.named_sublayers() if isinstance(layer, (paddle.nn.Conv2D, paddle.nn.Linear))]
    assert len(layers) > 30
    for name, layer in layers:
        weight = layer.weight.numpy()
        receptive = int(np.prod(weight.shape[2:])) if weight.ndim == 4 else 1
        fan_in, fan_out = (weight.shape[1] * receptive, weight.shape[0] * receptive) if weight.ndim == 4 \
            else weight.shape
        limit = np.sqrt(6 / (fan_in + fan_out))
        assert np.abs(weight).max() <= limit + 1e-6, name
        if weight.size >= 500:
            assert abs(weight.var() / (limit ** 2 / 3) - 1) < 0.25, name
        assert not layer.bias.numpy().any(), name


def test_an_untrained_generator_is_not_clipped():
    """With TF's initialisation an untrained generator's outputs sit inside (-1, 1), where the clip passes
    gradients; Paddle's default (He normal) clipped 28 % of stage 1 and 47 % of stage 2 here, and a short
    run learnt little more than grey blocks."""
    from deepfill.models.generator import InpaintGenerator
    paddle.seed(0)
    generator = InpaintGenerator(16)
    x = paddle.rand([4, 3, 64, 64]) * 2 - 1
    mask = paddle.zeros([1, 1, 64, 64])
    mask[:, :, 16:48, 16:48] = 1
    with paddle.no_grad():
        stage1, stage2, _ = generator(x * (1 - mask), mask)
    for stage in (stage1, stage2):
        assert float((stage.abs() >= 1).astype("float32").mean()) < 0.01


def test_attention_gradient_is_finite_when_background_patches_are_zero():
    """Whole background patches of zeros (the attention's features come out of a ReLU) must not turn the
    gradient into NaN (the norm's square root at 0); it is zero for them, as where TF's is finite."""
    paddle.seed(1)
    f = paddle.rand([2, 8, 16, 16])
    f[:, :, :, :8] = 0.0
    f.stop_gradient = False
    mask = paddle.zeros([1, 1, 8, 8])
    mask[:, :, 2:6, 5:7] = 1
    out, _ = contextual_attention(f, f, mask, rate=2)
    out.sum().backward()
    assert np.isfinite(f.grad.numpy()).all() and np.abs(f.grad.numpy()).sum() > 0
