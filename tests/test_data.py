"""The data pipeline: image sources, training views, holes, unreadable files, resumable order."""
from __future__ import annotations

import os

import cv2
import numpy as np
import paddle
import pytest

from deepfill.data.dataset import (ImageDataset, ResumableBatches, fit_square, list_sources, skipped_indices,
                                   training_view)
from deepfill.data.masks import random_masks
from deepfill.utils.cli import UserError
from deepfill.utils.pixels import to_model, to_model_layout, to_model_on_device


def pattern(height: int, width: int) -> np.ndarray:
    """A uint8 RGB picture in which every pixel differs from its neighbours (crops can be located)."""
    rows, cols = np.mgrid[:height, :width]
    return np.stack([rows % 256, cols % 256, (rows * 7 + cols * 3) % 256], axis=2).astype(np.uint8)


def test_box_masks_follow_the_official_recipe():
    rng = np.random.default_rng(0)
    for _ in range(50):
        masks, boxes = random_masks(rng, 3, 256, 128, 32, per_image=False)
        box = boxes[0]
        assert masks.shape == (3, 1, 256, 256) and (masks == masks[:1]).all() and boxes == [box] * 3
        assert 0 <= box.top < 128 and 0 <= box.left < 128
        rows, cols = np.nonzero(masks[0, 0])
        assert box.top <= rows.min() <= box.top + 16 and box.top + 112 <= rows.max() + 1 <= box.top + 128
        assert box.left <= cols.min() <= box.left + 16 and box.left + 112 <= cols.max() + 1 <= box.left + 128
    masks, boxes = random_masks(rng, 4, 256, 128, 32, per_image=True)
    assert len(set(boxes)) == 4 and not (masks == masks[:1]).all()


def test_free_form_strokes_are_seeded_and_stay_in_the_local_box():
    first, boxes = random_masks(np.random.default_rng(5), 4, 64, 32, 8, True, kind="free_form")
    again, same_boxes = random_masks(np.random.default_rng(5), 4, 64, 32, 8, True, kind="free_form")
    assert (first == again).all() and boxes == same_boxes
    other, _ = random_masks(np.random.default_rng(6), 4, 64, 32, 8, True, kind="free_form")
    assert not (first == other).all()
    fractions = []
    for mask, box in zip(first[:, 0], boxes):
        inside = mask[box.top:box.top + box.height, box.left:box.left + box.width]
        assert mask.sum() == inside.sum() > 0 and set(np.unique(mask)) <= {0.0, 1.0}
        fractions.append(inside.mean())
    boxy, _ = random_masks(np.random.default_rng(5), 4, 64, 32, 8, True)
    assert not (boxy == first).all() and len(set(fractions)) == 4
    shared, shared_boxes = random_masks(np.random.default_rng(5), 3, 64, 32, 8, False, kind="free_form")
    assert (shared == shared[:1]).all() and len(set(shared_boxes)) == 1
    with pytest.raises(ValueError, match="mask kind"):
        random_masks(np.random.default_rng(5), 1, 64, 32, 8, False, kind="stroke")


def test_training_views_crop_resize_and_flip():
    image = pattern(100, 80)
    window = training_view(image, 32, "random_crop", False, np.random.default_rng(1))
    found = [(r, c) for r in range(69) for c in range(49) if (image[r:r + 32, c:c + 32] == window).all()]
    assert len(found) == 1                                   # a window of the picture at its own resolution
    squeezed = training_view(image, 32, "resize", False, np.random.default_rng(1))
    assert (squeezed == cv2.resize(image, (32, 32))).all()  # the whole picture, proportions ignored
    scaled = training_view(image, 32, "scale_crop", False, np.random.default_rng(1))
    assert scaled.shape == (32, 32, 3) and (scaled == fit_square(image, 32, np.random.default_rng(1))).all()
    small = training_view(pattern(20, 30), 32, "random_crop", False, np.random.default_rng(1))
    assert small.shape == (32, 32, 3)                        # smaller than the crop: scaled up first
    flips = set()
    for seed in range(12):
        plain = training_view(image, 32, "random_crop", False, np.random.default_rng(seed))
        maybe = training_view(image, 32, "random_crop", True, np.random.default_rng(seed))
        assert (maybe == plain).all() or (maybe == plain[:, ::-1]).all()
        flips.add(bool((maybe == plain[:, ::-1]).all()))
    assert flips == {True, False}
    with pytest.raises(ValueError, match="image_fit"):
        ImageDataset([], 32, image_fit="stretch")


def test_folders_and_file_lists(tmp_path):
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "a.png"), pattern(40, 60))
    cv2.imwrite(str(tmp_path / "b.JPG"), pattern(40, 60))
    (tmp_path / "notes.txt").write_text("not a picture")
    assert [os.path.basename(p) for p in list_sources(str(tmp_path))] == ["b.JPG", "a.png"]
    (tmp_path / "train.flist").write_text(f"sub/a.png\n\n{tmp_path / 'b.JPG'}\n")
    assert list_sources(str(tmp_path / "train.flist")) == [str(tmp_path / "sub" / "a.png"), str(tmp_path / "b.JPG")]
    with pytest.raises(UserError, match="data not found"):
        list_sources(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        list_sources(str(tmp_path / "empty"))


def test_unreadable_images_are_skipped_and_reported(tmp_path, capfd):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((40, 60, 3), 200, np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    paths = [str(tmp_path / "a.png"), str(tmp_path / "broken.png"), str(tmp_path / "gone.png"),
             str(tmp_path / "a.png")]
    dataset = ImageDataset(paths, 32)
    image, delivered = dataset[(1, 5)]                       # broken and gone are replaced by the next one
    assert image.shape == (3, 32, 32) and image.dtype == np.uint8 and (image == 200).all()
    assert delivered.tolist() == [1, 3] and skipped_indices(np.array([delivered]), 4) == [1, 2]
    assert skipped_indices(np.array([[3, 1], [0, 0]]), 4) == [3, 0]
    err = capfd.readouterr().err
    assert "skipping cannot read" in err and "broken.png" in err and "gone.png" in err
    dataset.check_readable("the list")
    with pytest.raises(UserError, match="none of the 2 images in the list can be read"):
        ImageDataset(paths[1:3], 32).check_readable("the list")


def test_uint8_batches_reach_the_model_as_the_float_normalisation_made_them():
    """The loader sends uint8 in the model's layout; on the device they become bit for bit what
    ``to_model`` (x / 127.5 - 1 in NumPy) makes of the pictures, for every value and both channel orders."""
    rng = np.random.default_rng(5)
    pictures = np.concatenate([np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3),
                               rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)])
    for order in ("RGB", "BGR"):
        sent = to_model_layout(pictures, order)
        assert sent.dtype == np.uint8 and sent.nbytes * 4 == to_model(pictures, order).nbytes
        on_device = to_model_on_device(sent)
        assert on_device.dtype == paddle.float32
        assert np.array_equal(on_device.numpy(), to_model(pictures, order))
    assert np.array_equal(to_model_layout(pictures, "BGR")[:, 0], pictures[..., 2])


def test_batches_resume_exactly_and_cover_each_epoch():
    full = ResumableBatches(10, 3, seed=7)
    stream = iter(full)
    first = [next(stream) for _ in range(7)]
    resumed = iter(ResumableBatches(10, 3, seed=7, consumed=4))
    assert [next(resumed) for _ in range(3)] == first[4:]
    epoch = [index for batch in first[:3] for index, _ in batch]
    assert len(set(epoch)) == 9
    halves = [next(iter(ResumableBatches(10, 4, seed=7, rank=r, world=2))) for r in (0, 1)]
    assert halves[0] + halves[1] == next(iter(ResumableBatches(10, 4, seed=7)))
    with pytest.raises(UserError, match="fewer than batch_size"):
        ResumableBatches(2, 3, seed=0)
