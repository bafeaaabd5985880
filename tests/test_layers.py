"""The TF-compatibility primitives and the batched attention's behaviour beyond the golden case."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from models.attention import contextual_attention
from models.layers import nearest_index, resize_nearest, same_padding


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
