"""Faithfulness: with the official graph's weights, our model reproduces the official tensors (< 1e-4) —
by every path that computes a fill (``InpaintGenerator.forward``, ``fill_holes``, the export's graph), on
each backend of ``deepfill.models.kernels``."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from deepfill.models import kernels
from deepfill.models.attention import contextual_attention
from tests.conftest import FILL_PATHS, fill_by, nchw, nhwc
from deepfill.models.checkpoint import load_checkpoint

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def converted(golden_checkpoint):
    return load_checkpoint(golden_checkpoint)


@pytest.fixture(scope="module")
def generator_run(converted, golden, backend):
    """Run the converted generator on the golden input, capturing the attention layer's input."""
    generator = converted.build_generator()
    generator.eval()
    captured = {}
    hook = generator.refine.attention_encoder.register_forward_post_hook(
        lambda layer, inputs, output: captured.setdefault("ca_input", output))
    with paddle.no_grad():
        x_stage1, x_stage2, offsets = generator(nchw(golden["x_incomplete"]), nchw(golden["mask"]))
    hook.remove()
    return {"x_stage1": nhwc(x_stage1), "x_stage2": nhwc(x_stage2), "ca_input": nhwc(captured["ca_input"]),
            "offsets": offsets.numpy()}


def test_generator_has_the_official_parameter_count(converted):
    assert sum(p.size for p in converted.build_generator().parameters()) == 3_601_542


@pytest.mark.parametrize("name", ["x_stage1", "x_stage2", "ca_input"])
def test_generator_matches_official_graph(generator_run, golden, name):
    error = np.abs(generator_run[name] - golden[name]).max()
    assert error < TOLERANCE, f"{name}: max abs error {error}"


def absolute_offsets(offsets: np.ndarray) -> np.ndarray:
    """(row, col) displacements N×2×h×w → absolute argmax positions N×h×w×2, as the golden data holds them."""
    rows, cols = np.meshgrid(np.arange(offsets.shape[2]), np.arange(offsets.shape[3]), indexing="ij")
    return (offsets + np.stack([rows, cols])[None]).transpose(0, 2, 3, 1)


@pytest.mark.parametrize("path,kernels_of", [(path, backend) for path in FILL_PATHS for backend in ("onednn", "paddle")
                                             if path != "export graph" or backend == "onednn"])   # a traced graph has one path
def test_every_fill_path_reproduces_the_official_stage2(converted, golden, path, kernels_of):
    """The official ``x_stage2`` and attention offsets, wherever each path is meant to be exact."""
    generator = converted.build_generator(per_sample_mask=True)
    generator.eval()
    with kernels.using(kernels_of):
        x_stage2, offsets, (pixels, positions) = fill_by(path, generator, nchw(golden["x_incomplete"]),
                                                         nchw(golden["mask"]))
    error = np.abs(x_stage2.transpose(0, 2, 3, 1) - golden["x_stage2"]).max(axis=-1)[pixels].max()
    assert error < TOLERANCE, f"{path}: x_stage2 max abs error {error}"
    agree = (absolute_offsets(offsets) == golden["ca_offsets"]).all(axis=-1)[:, positions]
    assert agree.size > 0 and agree.mean() > 0.99, f"{path}: only {agree.mean():.3f} of offsets agree"


def test_attention_inside_the_net_matches(golden, backend):
    output, _ = contextual_attention(nchw(golden["ca_input"]), nchw(golden["ca_input"]),
                                     nchw(golden["ca_mask"]), rate=2)
    assert np.abs(nhwc(output) - golden["ca_output"]).max() < TOLERANCE


def test_attention_offsets_match(generator_run, golden):
    """Offsets are (row, col) displacements; golden holds absolute argmax positions (ties may differ)."""
    agree = (absolute_offsets(generator_run["offsets"]) == golden["ca_offsets"]).all(axis=-1)
    assert agree.mean() > 0.99, f"only {agree.mean():.3f} of offsets agree"


@pytest.mark.parametrize("fuse,use_mask,name", [(False, False, "ca_layer_out_nofuse"),
                                                 (True, True, "ca_layer_out_fuse_masked")])
def test_attention_layer_alone_matches(golden, backend, fuse, use_mask, name):
    mask = nchw(golden["mask"]) if use_mask else None
    output, _ = contextual_attention(nchw(golden["ca_layer_f"]), nchw(golden["ca_layer_b"]), mask,
                                     rate=2, fuse=fuse)
    error = np.abs(nhwc(output) - golden[name]).max()
    assert error < TOLERANCE, f"{name}: max abs error {error}"


@pytest.mark.parametrize("which", ["local", "global"])
def test_critics_match_official_graph(converted, golden, backend, which):
    local, global_ = converted.build_critics()
    critic = local if which == "local" else global_
    with paddle.no_grad():
        score = critic(nchw(golden[f"critic_{which}_input"])).numpy()
    assert np.abs(score - golden[f"critic_{which}_output"]).max() < TOLERANCE
