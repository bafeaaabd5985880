"""The attention flow picture: still pixels are white, directions get distinct hues, and its key says which
hue is which direction."""
from __future__ import annotations

import numpy as np
import pytest

from deepfill.utils.flow import add_key, color_key, color_wheel, flow_to_color


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


@pytest.mark.parametrize("direction", [(0, 6), (0, -6), (6, 0), (-6, 0), (4, 4)])
def test_key_shows_each_direction_where_it_points(direction):
    """A hole pixel that copied from 6 pixels to its right is coloured like the right rim of the key, etc."""
    offsets = np.zeros((2, 4, 4), np.int64)
    offsets[:, 1, 1] = direction
    colour = flow_to_color(offsets)[1, 1].astype(int)
    side = 65
    key = color_key(side).astype(int)
    centre, reach = side // 2, side // 2 - 3
    unit = np.array(direction) / np.hypot(*direction)
    row, col = np.round(centre + unit * reach).astype(int)
    assert np.abs(key[row, col] - colour).max() <= 24, (key[row, col], colour)
    opposite = np.round(centre - unit * reach).astype(int)
    assert np.abs(key[opposite[0], opposite[1]] - colour).max() > 100
    assert (key[centre, centre] >= 250).all() and (key[0, 0] == 255).all()


def test_key_goes_in_the_corner_that_hides_the_least_hole():
    picture = np.full((100, 160, 3), 255, np.uint8)
    keyed = add_key(picture)
    assert (keyed[-26:, -42:] != 255).any() and (keyed[:70, :] == 255).all()   # default: bottom right
    hole = np.zeros((100, 160), bool)
    hole[60:, 100:] = True
    keyed = add_key(picture, hole)
    assert (keyed[60:, 100:] == 255).all() and (keyed[-26:, :26] != 255).any()  # bottom left instead
    assert (add_key(picture[:20, :20]) == 255).all()                             # too small for a key
