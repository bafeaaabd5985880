"""The hd-strategy: every mode keeps known pixels byte-identical, crop's windows hold each hole with its
context, and where a mode has nothing to shrink it computes exactly what ``full`` computes."""
from __future__ import annotations

import numpy as np
import pytest

from deepfill.inpainting import strategy
from deepfill.inpainting.filler import Filler
from deepfill.inpainting.strategy import crop_windows, fill, fill_picture, resolve
from deepfill.models.checkpoint import load_checkpoint
from deepfill.utils.cli import UserError


@pytest.fixture(scope="module")
def inpainter(golden_checkpoint) -> Filler:
    checkpoint = load_checkpoint(golden_checkpoint)
    return Filler(checkpoint.build_generator(), checkpoint.spec.channel_order)


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3)).astype(np.uint8)


def test_windows_hold_each_hole_with_its_margin_and_merge_when_they_overlap():
    hole = np.zeros((1000, 1200), bool)
    hole[100:150, 100:130] = True              # near the top-left corner: the window slides inside
    hole[700:760, 900:1000] = True
    windows = crop_windows(hole, margin=64, min_side=256)
    assert len(windows) == 2
    (t0, l0, b0, r0), (t1, l1, b1, r1) = windows
    assert (t0, l0) == (0, 0) and b0 - t0 == 256 and r0 - l0 == 256
    assert (t1, l1, b1, r1) == (602, 822, 858, 1078)    # hole + 64 on each side, grown evenly to 256
    covered = np.zeros_like(hole)
    for top, left, bottom, right in windows:
        covered[top:bottom, left:right] = True
    assert covered[hole].all()
    hole[200:220, 300:320] = True              # its window overlaps the first one: one window for both
    merged = crop_windows(hole, margin=64, min_side=256)
    assert len(merged) == 2 and merged[0][:2] == (0, 0) and merged[0][2:] == (338, 438)


def test_auto_is_crop_over_four_training_sides_and_unknown_names_are_refused():
    assert resolve("auto", 1024, 1024) == "full" and resolve("auto", 600, 1025) == "crop"     # official: 256
    assert resolve("auto", 256, 256, 64) == "full" and resolve("auto", 257, 100, 64) == "crop"  # the demo: 64
    assert resolve("resize", 10, 10) == "resize"
    with pytest.raises(UserError, match="unknown hd-strategy 'sideways'"):
        resolve("sideways", 10, 10)


@pytest.mark.parametrize("mode", ["full", "crop", "resize"])
def test_every_mode_keeps_known_pixels(inpainter, monkeypatch, mode):
    monkeypatch.setattr(strategy, "RESIZE_SIDE", 160)      # so that resize really shrinks this picture
    monkeypatch.setattr(inpainter, "training_size", 64)     # windows of 64 + 32 margins: two of them here
    image = picture(200, 328)
    hole = np.zeros((200, 328), bool)
    hole[20:50, 30:70] = True
    hole[140:170, 250:300] = True
    if mode == "crop":
        assert len(crop_windows(hole, 32, 64)) == 2
    original = np.dstack([image[:, :, ::-1], np.full((200, 328), 7, np.uint8)])     # BGRA, as read from file
    filled = fill_picture(inpainter, original, hole, mode)
    assert filled.mode == mode and filled.picture.shape == original.shape and filled.flow.shape == image.shape
    assert (filled.picture[~hole] == original[~hole]).all()
    assert (filled.picture[hole][:, :3] != original[hole][:, :3]).mean() > 0.5


def test_crop_and_resize_equal_full_where_they_have_nothing_to_shrink(inpainter):
    image = picture(120, 144, seed=1)          # under crop's 256×256 window and resize's 512 side
    hole = np.zeros((120, 144), bool)
    hole[40:70, 50:100] = True
    full, full_flow, _ = fill(inpainter, image, hole, "full")
    for mode in ("crop", "resize"):
        completed, flow, _ = fill(inpainter, image, hole, mode)
        assert (completed == full).all() and (flow == full_flow).all()
