"""DeepFill v2 against the official v2 graph (``tests/golden/v2``): the converted TF checkpoint, the gated
generator's forward pass and attention (by every path that computes a fill: ``forward``, ``fill_holes``,
the export's graph), the SN-PatchGAN critic's scores and power iteration, on both convolution paths; and
``inpaint.py`` with the converted checkpoint reproducing the official output."""
from __future__ import annotations

import os

import cv2
import numpy as np
import paddle
import pytest

from deepfill.models import kernels
from deepfill.models.activations import activate
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models.gated import GatedConv
from tests import golden_v2_data
from tests.conftest import FILL_PATHS, assert_refused, fill_by, nchw, nhwc, run_command
from tests.tf_bundle_writer import write_bundle, write_checkpoint_state

TOLERANCE = 1e-4
V2_PARAMETERS = 4_052_478       # the official v2 generator (cnum 48)


@pytest.fixture(scope="module")
def golden_v2() -> dict[str, np.ndarray]:
    return golden_v2_data.load_tensors()


@pytest.fixture(scope="module")
def converted(golden_v2_checkpoint):
    return load_checkpoint(golden_v2_checkpoint)


@pytest.fixture(params=["onednn", "paddle"])
def conv_path(request):
    with kernels.using(request.param):
        yield request.param


def run_generator(converted, golden_v2) -> dict[str, np.ndarray]:
    generator = converted.build_generator()
    generator.eval()
    captured = {}
    hook = generator.refine.attention_encoder.register_forward_post_hook(
        lambda layer, inputs, output: captured.setdefault("ca_input", output))
    with paddle.no_grad():
        x_stage1, x_stage2, offsets = generator(nchw(golden_v2["x_incomplete"]), nchw(golden_v2["mask"]))
    hook.remove()
    return {"x_stage1": nhwc(x_stage1), "x_stage2": nhwc(x_stage2), "ca_input": nhwc(captured["ca_input"]),
            "offsets": offsets.numpy()}


def forward_error(converted, golden_v2, name: str) -> float:
    return float(np.abs(run_generator(converted, golden_v2)[name] - golden_v2[name]).max())


def test_converter_recognises_v2_and_keeps_its_critic(converted):
    spec = converted.spec
    assert (spec.version, spec.cnum, spec.channel_order) == (2, 48, "BGR")
    assert sum(p.size for p in converted.build_generator().parameters()) == V2_PARAMETERS
    assert sorted(converted.critics) == ["critic"] and len(converted.critics["critic"]) == 18
    assert not any("Adam" in name for name in converted.generator)


@pytest.mark.parametrize("name", ["x_stage1", "x_stage2", "ca_input"])
def test_v2_generator_matches_official_graph(converted, golden_v2, conv_path, name):
    error = forward_error(converted, golden_v2, name)
    assert error < TOLERANCE, f"{name}: max abs error {error}"


def test_v2_attention_offsets_match(converted, golden_v2):
    offsets = run_generator(converted, golden_v2)["offsets"]
    height, width = golden_v2["ca_offsets"].shape[1:3]
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    absolute = (offsets + np.stack([rows, cols])[None]).transpose(0, 2, 3, 1)
    agree = (absolute == golden_v2["ca_offsets"]).all(axis=-1)
    assert agree.mean() > 0.99, f"only {agree.mean():.3f} of offsets agree"


@pytest.mark.parametrize("path", FILL_PATHS[1:])
def test_every_fill_path_reproduces_the_official_v2_stage2(converted, golden_v2, conv_path, path):
    """v2 through the paths v1 takes (``forward`` above): the gated layers and tanh are bounded and traced
    as v1's are, with no code of their own."""
    generator = converted.build_generator(per_sample_mask=True)
    generator.eval()
    x_stage2, offsets, (pixels, positions) = fill_by(path, generator, nchw(golden_v2["x_incomplete"]),
                                                     nchw(golden_v2["mask"]))
    error = np.abs(x_stage2.transpose(0, 2, 3, 1) - golden_v2["x_stage2"]).max(axis=-1)[pixels].max()
    assert error < TOLERANCE, f"{path}: x_stage2 max abs error {error}"
    rows, cols = np.meshgrid(np.arange(offsets.shape[2]), np.arange(offsets.shape[3]), indexing="ij")
    absolute = (offsets + np.stack([rows, cols])[None]).transpose(0, 2, 3, 1)
    agree = (absolute == golden_v2["ca_offsets"]).all(axis=-1)[:, positions]
    assert agree.size > 0 and agree.mean() > 0.99, f"{path}: only {agree.mean():.3f} of offsets agree"


def test_sn_patch_gan_scores_and_power_iteration_match(converted, golden_v2, conv_path):
    critic = converted.build_patch_critic()
    for i, conv in enumerate(critic.convs, start=1):
        assert np.array_equal(conv.u.numpy(), golden_v2[f"sn_u_before/conv{i}"])
    with paddle.no_grad():
        scores = critic(nchw(golden_v2["critic_input"])).numpy()
    assert scores.shape == golden_v2["critic_output"].shape
    assert np.abs(scores - golden_v2["critic_output"]).max() < TOLERANCE
    for i, conv in enumerate(critic.convs, start=1):
        assert np.abs(conv.u.numpy() - golden_v2[f"sn_u_after/conv{i}"]).max() < 1e-5


@pytest.mark.parametrize("mutation", ["other_half", "ungated"])
def test_a_mutated_gate_fails_the_comparison(converted, golden_v2, monkeypatch, mutation):
    """The comparison can fail: the gate on the other half, or no gate, is far outside the tolerance."""
    def other_half(self, y):
        if self.activation is None:
            return y
        gate, features = paddle.split(y, 2, axis=1)
        return activate(features, self.activation) * paddle.nn.functional.sigmoid(gate)

    def ungated(self, y):
        return y if self.activation is None else activate(paddle.split(y, 2, axis=1)[0], self.activation)

    monkeypatch.setattr(GatedConv, "gate", other_half if mutation == "other_half" else ungated)
    assert forward_error(converted, golden_v2, "x_stage2") > 100 * TOLERANCE


def test_incomplete_v2_generator_is_refused_naming_the_missing_tensor(tmp_path):
    tensors = {**golden_v2_data.rebuild_weights(), **golden_v2_data.distractors()}
    del tensors["inpaint_net/allconv16/kernel"]
    folder = tmp_path / "broken"
    folder.mkdir()
    write_bundle(str(folder / "snap-0"), tensors)
    write_checkpoint_state(str(folder), "snap-0")
    out = str(tmp_path / "out.pdparams")
    result = run_command("tools/convert_tf_checkpoint.py", str(folder), out)
    assert_refused(result, out, "inpaint_net/allconv16/kernel", "DeepFill v2")


def test_inpaint_cli_reproduces_the_official_v2_output(golden_v2_checkpoint, golden_v2, tmp_path):
    """The converted golden checkpoint through ``inpaint.py``: within one grey level of the official graph
    inside the holes (the official test.py's ``(x + 1) * 127.5`` truncated to uint8), the input outside."""
    image = golden_v2["x"][0].astype(np.uint8)          # channel order as the model was fed (BGR record)
    hole = golden_v2["mask"][0, :, :, 0] > 0.5
    cv2.imwrite(str(tmp_path / "image.png"), image)
    cv2.imwrite(str(tmp_path / "mask.png"), hole.astype(np.uint8) * 255)
    out = str(tmp_path / "out.png")
    result = run_command("inpaint.py", "--checkpoint", golden_v2_checkpoint, "--image", str(tmp_path / "image.png"),
                         "--mask", str(tmp_path / "mask.png"), "--output", out, "--hd-strategy", "full")
    assert result.returncode == 0, result.stderr
    written = cv2.imread(out).astype(np.float64)
    mask = golden_v2["mask"][0]
    official = (golden_v2["x_stage2"][0] * mask + golden_v2["x_incomplete"][0] * (1 - mask) + 1) * 127.5
    assert np.abs(written[hole] - np.floor(official[hole])).max() <= 1
    assert (written[~hole] == image[~hole]).all()
    assert os.path.getsize(out) > 0
