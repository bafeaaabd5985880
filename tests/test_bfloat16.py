"""``cpu_precision=bfloat16``: oneDNN's convolutions multiply bfloat16 factors (float32 sums and results).
Not the official arithmetic, so not held to the golden tests' 1e-4: these tests bound how far it strays —
within about a grey level of the official fill, and close to the official training step — and check that it
is refused where the processor would only emulate it, and that a training run takes the setting."""
from __future__ import annotations

import cv2
import numpy as np
import paddle
import pytest

from deepfill.models import kernels
from deepfill.models.checkpoint import load_checkpoint
from deepfill.training.loop import train
from deepfill.utils import onednn
from deepfill.utils.errors import UserError
from tests.conftest import nchw, nhwc, run_command
from tests.test_convolution import GEOMETRIES, _run
from tests.test_train_step import LOSS_NAMES, library_step
from tests.test_training import logged_steps, tiny_config

FILL_TOLERANCE = 1e-2          # on the [-1, 1] scale: 1.3 grey levels of 255 (measured: 0.006)
LOSS_TOLERANCE = 1e-2          # relative (measured: 0.35 % at most)
GENERATOR_TOLERANCE = 5e-2     # of each gradient's largest entry (measured: 1.3 %)
CRITIC_TOLERANCE = 0.5         # the penalty's second-order terms cancel, as in float32 (measured: 30 %)


@pytest.fixture
def bfloat16():
    """oneDNN's kernels installed, multiplying in bfloat16, for the test; what was installed before, after it."""
    library = onednn.instance()
    if library is None or not library.multiplies_bfloat16_natively():
        pytest.skip("this processor has no bfloat16 instructions (or oneDNN cannot be used)")
    with kernels.kept():
        kernels.choose(True, "bfloat16")
        yield


@pytest.mark.parametrize("shape,kernel,stride,dilation,padding", GEOMETRIES)
def test_bfloat16_convolutions_and_their_second_derivatives_stay_close(bfloat16, shape, kernel, stride, dilation,
                                                                        padding):
    generator = np.random.default_rng(kernel + stride + dilation)
    x0 = generator.standard_normal(shape).astype(np.float32)
    w0 = (0.2 * generator.standard_normal((6, shape[1], kernel, kernel))).astype(np.float32)
    b0 = generator.standard_normal(6).astype(np.float32)
    ours = _run("onednn", x0, w0, b0, (stride, dilation, padding), "leaky_relu")
    exact = _run("paddle", x0, w0, b0, (stride, dilation, padding), "leaky_relu")
    for name, a, b in zip(("output", "input gradient", "x grad", "w grad", "b grad"), ours, exact):
        error = np.abs(a - b).max() / max(1.0, np.abs(b).max())
        assert 0 < error < 2e-2, f"{name}: {error}"     # not float32 (0), nor far from it


def test_a_bfloat16_fill_is_within_a_grey_level_of_the_official(bfloat16, golden_checkpoint, golden):
    generator = load_checkpoint(golden_checkpoint).build_generator()
    generator.eval()
    with paddle.no_grad():
        x_stage1, x_stage2, _ = generator(nchw(golden["x_incomplete"]), nchw(golden["mask"]))
    for name, ours in (("x_stage1", x_stage1), ("x_stage2", x_stage2)):
        error = np.abs(nhwc(ours) - golden[name]).max()
        assert error < FILL_TOLERANCE, f"{name}: {error}"


def test_a_bfloat16_training_step_stays_close_to_the_official(bfloat16, golden_checkpoint, train_step_golden):
    step = library_step(golden_checkpoint, train_step_golden)
    for official, ours in LOSS_NAMES.items():
        expected = float(train_step_golden[f"loss/{official}"])
        assert abs(step["losses"][ours] - expected) <= LOSS_TOLERANCE * abs(expected), official
    kept = [k.split("/", 1)[1] for k in train_step_golden if k.startswith("grad/")]
    for name in kept:
        expected = train_step_golden[f"grad/{name}"]
        tolerance = CRITIC_TOLERANCE if name.startswith("discriminator/") else GENERATOR_TOLERANCE
        assert np.abs(step["gradients"][name] - expected).max() <= tolerance * np.abs(expected).max(), name


def test_bfloat16_is_refused_where_it_would_be_emulated(monkeypatch):
    if onednn.instance() is None:
        pytest.skip("oneDNN cannot be used here")
    monkeypatch.setattr(onednn.OneDNN, "multiplies_bfloat16_natively", lambda self: False)
    with kernels.kept(), pytest.raises(UserError, match="bfloat16 instructions"):
        kernels.choose(True, "bfloat16")
    assert onednn.instance().precision == "float32"
    with kernels.kept(), pytest.raises(UserError, match="cpu_precision must be one of"):
        kernels.choose(True, "float16")


def test_paddle_kernels_say_they_stay_in_float32(capsys):
    with kernels.kept():
        assert kernels.choose(False, "bfloat16") == "paddle"
    assert "Paddle's kernels run this process in float32" in capsys.readouterr().err


def test_bfloat16_training_resumes_exactly(bfloat16, tmp_path):
    straight = train(tiny_config(tmp_path / "straight", "max_iters=2", "cpu_precision=bfloat16"))
    train(tiny_config(tmp_path / "interrupted", "max_iters=1", "cpu_precision=bfloat16"))
    resumed = train(tiny_config(tmp_path / "interrupted", "max_iters=2", "cpu_precision=bfloat16"), resume=True)
    assert logged_steps(tmp_path / "interrupted") == logged_steps(tmp_path / "straight")
    for a, b in [(straight.generator, resumed.generator), (straight.global_critic, resumed.global_critic)]:
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert (x.numpy() == y.numpy()).all(), name
    assert onednn.instance().precision == "bfloat16"        # the run's own setting, until the test ends


def test_training_takes_the_setting(tmp_path):
    tiny = ["image_size=32", "hole_size=16", "max_delta=4", "cnum=8", "batch_size=2", "critic_steps=1",
            "num_workers=0", "max_iters=2", "reconstruction_iters=0", f"run_dir={tmp_path}"]
    result = run_command("train.py", "--set", *tiny, "cpu_precision=half")
    assert result.returncode == 2 and "cpu_precision must be one of float32, bfloat16" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    library = onednn.instance()
    if library is None or not library.multiplies_bfloat16_natively():
        pytest.skip("this processor has no bfloat16 instructions")
    result = run_command("train.py", "--set", *tiny, "cpu_precision=bfloat16")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "step_00000002.pdparams").exists()


def test_inpaint_takes_the_option_and_fills_within_two_grey_levels(golden_checkpoint, golden, tmp_path):
    image = np.round((golden["x"][0] + 1) * 127.5).astype(np.uint8)
    hole = golden["mask"][0, :, :, 0] > 0.5
    cv2.imwrite(str(tmp_path / "image.png"), image)
    cv2.imwrite(str(tmp_path / "mask.png"), hole.astype(np.uint8) * 255)
    common = ["inpaint.py", "--checkpoint", golden_checkpoint, "--image", str(tmp_path / "image.png"),
              "--mask", str(tmp_path / "mask.png"), "--output"]
    result = run_command(*common, str(tmp_path / "half.png"), "--cpu-precision", "half")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "half.png").exists()
    library = onednn.instance()
    if library is None or not library.multiplies_bfloat16_natively():
        pytest.skip("this processor has no bfloat16 instructions")
    result = run_command(*common, str(tmp_path / "out.png"), "--cpu-precision", "bfloat16")
    assert result.returncode == 0, result.stderr
    written = cv2.imread(str(tmp_path / "out.png"))
    mask = golden["mask"][0]
    official = (golden["x_stage2"][0] * mask + golden["x_incomplete"][0] * (1 - mask) + 1) * 127.5
    assert np.abs(written.astype(np.float64) - np.floor(official)).max() <= 2
    assert (written[~hole] == image[~hole]).all()
