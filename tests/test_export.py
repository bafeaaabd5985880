"""Deployment: the exported generator (Paddle Inference and ONNX) computes the official graph.

The golden checkpoint is exported once per session with the real command line; each runtime then runs the
official graph's golden input, held-out shapes and batches, and ``inpaint.py`` runs the exported folder.
The traceable attention (``deepfill/models/attention_graph.py``) is checked against the golden tensors and the
chunked layer. The ONNX half needs the optional extras (CI installs them) and is skipped without them.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

from deepfill.inpainting.export import MODEL_JSON
from deepfill.inpainting.filler import Filler
from deepfill.inpainting.open_model import open_model
from deepfill.models.attention import contextual_attention
from deepfill.models.attention_graph import contextual_attention_graph
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models.layers import nearest_index, traced_nearest_index
from tests.conftest import ROOT, assert_refused, nchw, nhwc, run_command
from deepfill.utils.cli import UserError
from deepfill.utils.device import pick_device

TOLERANCE = 1e-4
HAVE_ONNX = all(importlib.util.find_spec(name) for name in ("paddle2onnx", "onnx", "onnxruntime"))
BACKENDS = ["paddle-inference",
            pytest.param("onnxruntime", marks=pytest.mark.skipif(not HAVE_ONNX, reason="pip install .[onnx]"))]


@pytest.fixture(scope="session")
def exported(golden_checkpoint, tmp_path_factory) -> tuple[str, str]:
    """The golden checkpoint exported with the command line (both formats when ONNX is installed);
    returns (folder, the command's stdout)."""
    folder = str(tmp_path_factory.mktemp("export") / "golden_export")
    result = run_command("tools/export_model.py", "--checkpoint", golden_checkpoint, "--output", folder,
                         "--format", "both" if HAVE_ONNX else "paddle")
    assert result.returncode == 0, result.stderr
    return folder, result.stdout


@pytest.fixture(scope="module")
def generator(golden_checkpoint):
    """The golden generator, eager, honouring a mask per image (as the exported graph does)."""
    model = load_checkpoint(golden_checkpoint).build_generator(per_sample_mask=True)
    model.eval()
    return model


def _pyproject_version() -> str:
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as handle:
        return re.search(r'^version\s*=\s*"([^"]+)"', handle.read(), re.M).group(1)


def test_model_json_says_how_to_feed_the_model(exported, golden_checkpoint):
    folder, stdout = exported
    with open(os.path.join(folder, MODEL_JSON), encoding="utf-8") as handle:
        info = json.load(handle)
    assert info["channel_order"] == "BGR" and info["value_range"] == [-1.0, 1.0]
    assert info["training_size"] == {"image": 128, "hole": 64} and info["side_multiple"] == 8
    assert info["project_version"] == _pyproject_version()
    with open(golden_checkpoint, "rb") as handle:
        assert info["source_checkpoint"]["sha256"] == hashlib.sha256(handle.read()).hexdigest()
    for entry in info["files"].values():
        for name in entry.values() if isinstance(entry, dict) else [entry]:
            assert os.path.getsize(os.path.join(folder, name)) > 1000
    assert "generator.pdiparams" in stdout and "max abs difference" in stdout
    assert not [name for name in os.listdir(os.path.dirname(folder)) if name.startswith(".tmp-")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_exported_model_reproduces_the_official_graph(exported, golden, backend):
    """The golden input: a batch of 2 sharing one 1×1×H×W mask, as the official graph was run."""
    runner = open_model(exported[0], backend).runner
    assert runner.name == backend
    x_stage2, offsets = runner(nchw(golden["x_incomplete"]).numpy(), nchw(golden["mask"]).numpy())
    error = np.abs(x_stage2.transpose(0, 2, 3, 1) - golden["x_stage2"]).max()
    assert error < TOLERANCE, f"{backend}: x_stage2 max abs error {error}"
    rows, cols = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    absolute = (offsets + np.stack([rows, cols])[None]).transpose(0, 2, 3, 1)
    assert offsets.dtype == np.int64
    assert (absolute == golden["ca_offsets"]).all(axis=-1).mean() > 0.99


@pytest.fixture(scope="session")
def exported_v2(golden_v2_checkpoint, tmp_path_factory) -> str:
    """The converted official v2 golden checkpoint exported with the command line (both formats when ONNX
    is installed)."""
    folder = str(tmp_path_factory.mktemp("export_v2") / "golden_v2_export")
    result = run_command("tools/export_model.py", "--checkpoint", golden_v2_checkpoint, "--output", folder,
                         "--format", "both" if HAVE_ONNX else "paddle")
    assert result.returncode == 0, result.stderr
    assert "DeepFill v2, cnum 48" in result.stdout
    return folder


@pytest.mark.parametrize("backend", BACKENDS)
def test_exported_v2_model_reproduces_the_official_v2_graph(exported_v2, backend):
    """DeepFill v2 exported: the official v2 graph's golden input (2 pictures, one 128×192 mask with a box
    and strokes) gives its x_stage2 and attention offsets."""
    from tests import golden_v2_data
    golden_v2 = golden_v2_data.load_tensors()
    with open(os.path.join(exported_v2, MODEL_JSON), encoding="utf-8") as handle:
        info = json.load(handle)
    assert info["spec"]["version"] == 2 and info["model"].startswith("DeepFill v2 generator")
    runner = open_model(exported_v2, backend).runner
    x_stage2, offsets = runner(nchw(golden_v2["x_incomplete"]).numpy(), nchw(golden_v2["mask"]).numpy())
    error = np.abs(x_stage2.transpose(0, 2, 3, 1) - golden_v2["x_stage2"]).max()
    assert error < TOLERANCE, f"{backend}: x_stage2 max abs error {error}"
    height, width = golden_v2["ca_offsets"].shape[1:3]
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    absolute = (offsets + np.stack([rows, cols])[None]).transpose(0, 2, 3, 1)
    assert (absolute == golden_v2["ca_offsets"]).all(axis=-1).mean() > 0.99


@pytest.mark.parametrize("backend", BACKENDS)
def test_inpainting_with_the_exported_v2_model_gives_the_official_output(exported_v2, backend, tmp_path):
    """The exported v2 model filling the golden v2 picture (``inpaint.py --checkpoint DIR`` for Paddle
    Inference, its ``Filler`` for each runtime): within one grey level of the official graph inside the
    holes (its ``(x + 1) * 127.5`` truncated to uint8), the input outside."""
    from tests import golden_v2_data
    golden_v2 = golden_v2_data.load_tensors()
    image = golden_v2["x"][0].astype(np.uint8)           # channel order as the model was fed (BGR record)
    hole = golden_v2["mask"][0, :, :, 0] > 0.5
    mask = golden_v2["mask"][0]
    official = np.floor((golden_v2["x_stage2"][0] * mask + golden_v2["x_incomplete"][0] * (1 - mask) + 1) * 127.5)
    completed, _ = open_model(exported_v2, backend)(image[:, :, ::-1], hole)
    results = {backend: completed[:, :, ::-1].astype(np.float64)}
    if backend == "paddle-inference":
        cv2.imwrite(str(tmp_path / "image.png"), image)
        cv2.imwrite(str(tmp_path / "mask.png"), hole.astype(np.uint8) * 255)
        output = str(tmp_path / "out.png")
        result = run_command("inpaint.py", "--checkpoint", exported_v2, "--image", str(tmp_path / "image.png"),
                             "--mask", str(tmp_path / "mask.png"), "--output", output, "--hd-strategy", "full")
        assert result.returncode == 0, result.stderr
        results["inpaint.py"] = cv2.imread(output).astype(np.float64)
    for how, written in results.items():
        assert np.abs(written[hole] - official[hole]).max() <= 1, how
        assert (written[~hole] == image[~hole]).all(), how


def _held_out(batch: int, height: int, width: int, per_image: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images with several holes each; a different set per image when ``per_image``."""
    rng = np.random.default_rng(height * width + batch)
    mask = np.zeros((batch if per_image else 1, 1, height, width), np.float32)
    for plane in mask:
        for _ in range(3):
            top, left = rng.integers(0, height - 16), rng.integers(0, width - 16)
            plane[0, top:top + rng.integers(8, 17), left:left + rng.integers(8, 17)] = 1
    image = rng.uniform(-1, 1, (batch, 3, height, width)).astype(np.float32) * (1 - mask)
    return image, mask


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch,height,width,per_image", [(1, 64, 160, False), (2, 96, 72, True)])
def test_held_out_shapes_match_the_eager_generator(exported, generator, backend, batch, height, width,
                                                   per_image):
    image, mask = _held_out(batch, height, width, per_image)
    with paddle.no_grad():
        _, expected, expected_offsets = generator(paddle.to_tensor(image), paddle.to_tensor(mask))
    x_stage2, offsets = open_model(exported[0], backend).runner(image, mask)
    assert x_stage2.shape == (batch, 3, height, width) and offsets.shape == (batch, 2, height // 8, width // 8)
    assert np.abs(x_stage2 - expected.numpy()).max() < TOLERANCE
    assert (offsets == expected_offsets.numpy()).mean() > 0.99
    if per_image:    # each image used its own holes: the shared-mask answer differs
        shared, _ = open_model(exported[0], backend).runner(image, mask[:1])
        assert np.abs(shared - x_stage2).max() > 1e-2


@pytest.mark.parametrize("backend", BACKENDS)
def test_exported_model_refuses_what_it_cannot_take(exported, backend):
    runner = open_model(exported[0], backend).runner
    image, mask = _held_out(2, 64, 64, True)
    with pytest.raises(UserError, match="multiples of 8"):
        runner(image[..., :60], mask[..., :60])
    with pytest.raises(UserError, match="does not fit"):
        runner(image, np.concatenate([mask, mask[:1]]))


def test_inpaint_runs_an_exported_folder_like_the_checkpoint(exported, generator, tmp_path):
    """``inpaint.py --checkpoint DIR`` and the eager generator behind the same ``Filler`` complete a
    picture alike (within 1 grey level where float rounding meets the uint8 rounding); outside the hole
    the picture is untouched."""
    image = os.path.join(ROOT, "examples", "images", "astronaut.png")
    mask = os.path.join(ROOT, "examples", "masks", "astronaut.png")
    output = str(tmp_path / "exported.png")
    result = run_command("inpaint.py", "--checkpoint", exported[0], "--image", image, "--mask", mask,
                         "--output", output)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    picture = cv2.imread(image)
    hole = cv2.imread(mask, cv2.IMREAD_GRAYSCALE) > 127
    eager, _ = Filler(generator, "BGR")(picture[:, :, ::-1], hole)
    got = cv2.imread(output)
    assert np.abs(got.astype(int) - eager[:, :, ::-1]).max() <= 1
    assert (got[~hole] == picture[~hole]).all()


def test_thread_count_survives_the_paddle_inference_backend(exported):
    """A Paddle Inference predictor leaves OpenMP at one thread; the runner sets it back
    (``restore_cpu_threads``), so that eager work after it keeps every thread."""
    iomp = ctypes.CDLL(os.path.join(os.path.dirname(paddle.__file__), "libs", "libiomp5.so"))
    pick_device("cpu", 2)
    try:
        runner = open_model(exported[0], "paddle-inference").runner
        runner(*_held_out(1, 64, 64, False))
        assert iomp.omp_get_max_threads() == 2
    finally:
        pick_device("cpu", 1)


def test_the_removed_compiled_backend_says_what_to_use(exported, golden_checkpoint):
    for path in (golden_checkpoint, exported[0]):
        with pytest.raises(UserError, match="the compiled backend was removed: the eager backend"):
            open_model(path, "compiled")
    result = run_command("benchmarks/inference.py", "--size", "64", "--backend", "compiled")
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert result.stderr.strip().splitlines() == [
        "error: the compiled backend was removed: the eager backend (the default) is faster and leaner on the "
        "CPU; choose one of eager, paddle-inference, onnxruntime"]


def test_export_refuses_what_is_not_a_deepfill_checkpoint(exported, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.log").write_text("step 10\n")
    output = str(tmp_path / "out")
    assert_refused(run_command("tools/export_model.py", "--checkpoint", str(run), "--output", output),
                   output, "no checkpoint in")
    (run / "step_00000010.pdparams").write_bytes(b"not a checkpoint")
    assert_refused(run_command("tools/export_model.py", "--checkpoint", str(run), "--output", output),
                   output, "not a readable checkpoint")
    assert_refused(run_command("tools/export_model.py", "--checkpoint", exported[0], "--output", output),
                   output, "already an exported model")


def test_export_does_not_overwrite_other_files(golden_checkpoint, tmp_path):
    output = tmp_path / "busy"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    result = run_command("tools/export_model.py", "--checkpoint", golden_checkpoint, "--output", str(output))
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "other files" in result.stderr
    assert os.listdir(output) == ["notes.txt"]


def _with_stand_in(tmp_path, source: str) -> dict:
    """An environment where ``import paddle2onnx`` finds a stand-in module with ``source``."""
    (tmp_path / "stand_in").mkdir()
    (tmp_path / "stand_in" / "paddle2onnx.py").write_text(source)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "stand_in"), ROOT])}


def _export(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/export_model.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_onnx_without_paddle2onnx_says_what_to_install(golden_checkpoint, tmp_path):
    env = _with_stand_in(tmp_path, "raise ImportError('No module named paddle2onnx')\n")
    output = str(tmp_path / "out")
    result = _export(env, "--checkpoint", golden_checkpoint, "--output", output, "--format", "onnx")
    assert_refused(result, output, "needs paddle2onnx", "pip install")


def test_onnx_with_a_paddle2onnx_that_refuses_to_load_says_why(golden_checkpoint, tmp_path):
    """paddle2onnx 2 is installed but raises on import (it does so under Paddle 2.6): one line, its reason."""
    env = _with_stand_in(tmp_path, "raise ValueError('The paddlepaddle version should not be less than 3.0.0.\\n"
                                   "Please install the latest paddle')\n")
    output = str(tmp_path / "out")
    result = _export(env, "--checkpoint", golden_checkpoint, "--output", output, "--format", "onnx")
    assert_refused(result, output, "cannot use paddle2onnx", "should not be less than 3.0.0")
    assert "latest paddle" not in result.stderr


@pytest.mark.skipif(not HAVE_ONNX, reason="pip install .[onnx]")
def test_a_failing_conversion_leaves_no_output_folder(golden_checkpoint, tmp_path):
    """The converter dies after the Paddle files and half an ONNX file are written: nothing is published."""
    env = _with_stand_in(tmp_path, "__version__ = 'stand-in'\n\n"
                                   "def export(program, params, target, **options):\n"
                                   "    with open(target, 'wb') as handle:\n"
                                   "        handle.write(b'half')\n"
                                   "    raise RuntimeError('converter crashed')\n")
    output = str(tmp_path / "out")
    result = _export(env, "--checkpoint", golden_checkpoint, "--output", output, "--format", "both")
    assert_refused(result, output, "could not convert", "converter crashed")


def test_traced_resize_index_equals_tf_nearest():
    for size_in in (2, 3, 7, 16, 33, 64, 100, 256, 1000):
        for size_out in {1, size_in // 4 or 1, size_in // 2 or 1, size_in, 2 * size_in, 3 * size_in + 1}:
            traced = traced_nearest_index(paddle.to_tensor(size_in), paddle.to_tensor(size_out)).numpy()
            assert (traced == nearest_index(size_in, size_out)).all(), (size_in, size_out)


def test_attention_graph_matches_the_official_layer(golden):
    output, _ = contextual_attention_graph(nchw(golden["ca_input"]), nchw(golden["ca_input"]),
                                           nchw(golden["ca_mask"]), rate=2)
    assert np.abs(nhwc(output) - golden["ca_output"]).max() < TOLERANCE
    for fuse, mask, name in ((False, None, "ca_layer_out_nofuse"), (True, golden["mask"], "ca_layer_out_fuse_masked")):
        output, _ = contextual_attention_graph(nchw(golden["ca_layer_f"]), nchw(golden["ca_layer_b"]),
                                               None if mask is None else nchw(mask), rate=2, fuse=fuse)
        assert np.abs(nhwc(output) - golden[name]).max() < TOLERANCE, name


@pytest.mark.parametrize("shape", [(2, 16, 24), (1, 40, 8)])
def test_attention_graph_equals_the_chunked_layer(shape):
    rng = np.random.default_rng(shape[1])
    batch, height, width = shape
    f = paddle.to_tensor(rng.standard_normal((batch, 8, height, width)).astype(np.float32))
    mask = np.zeros((batch, 1, height, width), np.float32)
    for i in range(batch):
        mask[i, :, 2 + 2 * i:10 + 2 * i, 3:7 + 2 * i] = 1
    mask = paddle.to_tensor(mask)
    expected, expected_offsets = contextual_attention(f, f, mask, per_sample_mask=True, chunk_elements=200)
    got, offsets = contextual_attention_graph(f, f, mask)
    assert np.abs(got.numpy() - expected.numpy()).max() < 1e-5
    assert (offsets.numpy() == expected_offsets.numpy()).all()


def test_a_picture_too_large_for_the_full_graph_is_refused_before_running(exported, monkeypatch):
    """The exported graph's score matrices grow with the square of the area: 1024² needs ~6 GiB."""
    from deepfill.inpainting import filler as module
    monkeypatch.setattr(module, "available_bytes", lambda: 4 * 2 ** 30)
    image, hole = np.zeros((1024, 1024, 3), np.uint8), np.zeros((1024, 1024), bool)
    hole[100:140, 100:140] = True
    with pytest.raises(UserError, match="needs about 6 GiB but 4 GiB are available"):
        open_model(exported[0], "paddle-inference")(image, hole)
