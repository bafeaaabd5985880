"""tests/golden holds what the tests need of ../shared/golden, small: when ../shared is present, check that it
still agrees with it (the bundle rebuilt from the recipe, the copies, the reduced training step)."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from tests import golden_data
from tests.golden.make_golden import FULL_GRADIENTS
from deepfill.utils.tf_bundle import read_index, read_tensors, resolve_prefix


SUMMATION_TOLERANCE = 1e-12
"""A float64 sum of n terms computed in another order (another BLAS kernel, thread count or processor) differs
by far less than n·ε·Σ|terms| (ε = 2.2e-16, n ≤ 1.5e5 here) and in practice by a few ε·Σ|terms|: the stored
summaries are compared with that much slack relative to the sum of the terms' magnitudes, never with ``==``."""


def assert_summary_close(stored: np.ndarray, recomputed: float, magnitude: float, name: str) -> None:
    """``stored`` (a summary written on another machine) equals ``recomputed`` up to summation order:
    within ``SUMMATION_TOLERANCE`` of ``magnitude``, the sum of the absolute values of the summed terms."""
    assert abs(float(stored) - float(recomputed)) <= SUMMATION_TOLERANCE * float(magnitude), \
        f"{name}: stored {float(stored)!r}, recomputed {float(recomputed)!r}"


def _sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_rebuilt_weights_follow_the_recipe_order_and_shapes():
    with open(os.path.join(golden_data.GOLDEN_DIR, "weights.json"), encoding="utf-8") as handle:
        order = json.load(handle)["order"]
    weights = golden_data.rebuild_weights()
    assert list(weights) == [name for name, _ in order] and len(weights) == 104
    assert all(weights[name].shape == tuple(shape) and weights[name].dtype == np.float32 for name, shape in order)


def test_written_bundle_reads_back_exactly(golden_tf_checkpoint):
    expected = golden_data.golden_bundle_tensors()
    read = read_tensors(resolve_prefix(golden_tf_checkpoint))
    assert set(read) == set(expected) and len(read) == 111
    for name, value in expected.items():
        assert read[name].dtype == value.dtype and read[name].shape == value.shape, name
        assert read[name].tobytes() == value.tobytes(), name


def test_rebuilt_weights_equal_the_real_bundle_bit_for_bit(shared_golden, golden_tf_checkpoint):
    real_prefix = resolve_prefix(os.path.join(shared_golden, "tf_checkpoint"))
    real = read_tensors(real_prefix)
    weights = golden_data.rebuild_weights()
    for name, value in weights.items():
        assert real[name].dtype == value.dtype and real[name].shape == value.shape, name
        assert real[name].tobytes() == value.tobytes(), name
    distractors = golden_data.distractors()
    assert set(real) == set(weights) | set(distractors)
    for name, value in distractors.items():
        assert real[name].dtype == value.dtype and real[name].shape == value.shape, name
        assert real[name].tobytes() == value.tobytes(), name
    # The written bundle is the real one entry for entry (same offsets), and its data file byte for byte.
    written_prefix = resolve_prefix(golden_tf_checkpoint)
    assert read_index(written_prefix) == read_index(real_prefix)
    assert _sha256(written_prefix + ".data-00000-of-00001") == _sha256(real_prefix + ".data-00000-of-00001")


@pytest.mark.parametrize("name", ["tensors.npz", "meta.json", "weights.json", "tf_reader/checkpoint",
                                  "tf_reader/expected.npz", "tf_reader/snap-0.index",
                                  "tf_reader/snap-0.data-00000-of-00001"])
def test_copies_match_the_shared_golden_data(shared_golden, name):
    source = os.path.join(os.path.dirname(shared_golden), name) if name.startswith("tf_reader/") \
        else os.path.join(shared_golden, name)
    assert _sha256(os.path.join(golden_data.GOLDEN_DIR, name)) == _sha256(source)


def test_reduced_train_step_matches_the_full_one(shared_golden, train_step_golden):
    with np.load(os.path.join(shared_golden, "train_step.npz")) as data:
        full = {key: data[key] for key in data.files}
    gradients = [key[len("grad/"):] for key in full if key.startswith("grad/")]
    assert len(gradients) == 104
    for key, value in full.items():
        if key.startswith("loss/") or key in ("x", "mask", "local_box", "spatial_discount", "alpha_local",
                                              "alpha_global"):
            assert train_step_golden[key].dtype == value.dtype and np.array_equal(train_step_golden[key], value)
    for name in gradients:
        flat = full[f"grad/{name}"].astype(np.float64).ravel()
        scale = np.abs(flat).sum()
        norm = np.sqrt(np.dot(flat, flat))      # a sum of non-negative terms: its own magnitude
        assert_summary_close(train_step_golden[f"gradnorm/{name}"], norm, norm, name)
        assert_summary_close(train_step_golden[f"gradsum/{name}"], flat.sum(), scale, name)
        assert_summary_close(train_step_golden[f"gradabssum/{name}"], scale, scale, name)
        assert_summary_close(train_step_golden[f"gradmaxabs/{name}"], np.abs(flat).max(), np.abs(flat).max(), name)
        assert_summary_close(train_step_golden[f"gradproj/{name}"], golden_data.gradient_projection(flat),
                             np.abs(flat) @ np.abs(golden_data.projection_vector(flat.size)), name)
    for name in FULL_GRADIENTS:
        assert np.array_equal(train_step_golden[f"grad/{name}"], full[f"grad/{name}"])


def test_reduced_train_step_holds_every_summary(train_step_golden):
    names = [key[len("gradnorm/"):] for key in train_step_golden if key.startswith("gradnorm/")]
    assert len(names) == 104 and len([k for k in train_step_golden if k.startswith("loss/")]) == 11
    for name in names:
        assert all(f"{kind}/{name}" in train_step_golden for kind in ("gradsum", "gradabssum", "gradmaxabs",
                                                                         "gradproj"))
    for name in FULL_GRADIENTS:
        gradient = train_step_golden[f"grad/{name}"]
        flat = gradient.astype(np.float64).ravel()
        assert_summary_close(train_step_golden[f"gradproj/{name}"], golden_data.gradient_projection(flat),
                             np.abs(flat) @ np.abs(golden_data.projection_vector(flat.size)), name)
        assert_summary_close(train_step_golden[f"gradnorm/{name}"], np.linalg.norm(flat), np.linalg.norm(flat), name)
