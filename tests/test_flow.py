"""The attention flow picture: still pixels are white, directions get distinct hues."""
from __future__ import annotations

import numpy as np

from utils.flow import color_wheel, flow_to_color


def test_wheel_has_55_hues_starting_at_red():
    wheel = color_wheel()
    assert wheel.shape == (55, 3) and wheel[0].tolist() == [255, 0, 0]


def test_zero_offsets_are_white_and_directions_differ():
    offsets = np.zeros((2, 3, 3), np.int64)
    offsets[:, 0, 0] = (0, 4)      # right
    offsets[:, 0, 1] = (0, -4)     # left
    offsets[:, 0, 2] = (4, 0)      # down
    picture = flow_to_color(offsets)
    assert picture.shape == (3, 3, 3) and picture.dtype == np.uint8
    assert (picture[1:] == 255).all()
    assert len({tuple(picture[0, i]) for i in range(3)}) == 3
    assert (picture[0] < 255).any(axis=-1).all()
