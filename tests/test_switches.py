"""The official ``inpaint.yml`` switches that change training (GAN_WITH_MASK, PADDING, GRADIENT_CLIP /
GRADIENT_CLIP_VALUE, AE_LOSS, DISCOUNTED_MASK) compute what the official graph computes with them.

For each non-default value, one training step of the library (``deepfill.training.algorithm``'s losses, and the
generator's gradient as its Adam optimiser receives it, after ``grad_clip``) on the official weights, images,
hole, box and interpolation factors matches the official step recorded by ``tests/golden/
make_switch_golden.py`` (``tests/golden/switches.npz``), with the tolerances of ``tests/test_train_step.py``,
on both convolution paths. The switches the official code declares but does not implement are refused,
and a run with the model-changing switches (padding, gan_with_mask) resumes and loads for inference as
the same model.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import paddle
import pytest

from deepfill.data.masks import Box
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models.checkpoint_file import read_spec
from deepfill.models import kernels
from deepfill.models.generator import InpaintGenerator
from deepfill.models.hole_reach import fill_holes
from deepfill.models.official import critic_tf_name, generator_tf_name, to_tf_layout
from tests.conftest import assert_refused, nchw, run_command
from tests.golden_data import gradient_projection, load_switches, mask_channel_kernel
from tests.test_train_step import LOSS_NAMES, LOSS_TOLERANCE, tolerance
from deepfill.training.algorithm import Batch, Networks, critic_losses, generator_losses
from deepfill.training.loop import train
from deepfill.utils.config import load_config

SWITCHES = load_switches()
_steps: dict[tuple[str, bool], dict] = {}


def with_mask_channel(weight: np.ndarray) -> np.ndarray:
    """The golden global critic's ``conv1`` weight (OIHW) with the recipe's mask-channel slice appended."""
    return np.concatenate([weight, mask_channel_kernel().transpose(3, 2, 0, 1)], axis=1)


def library_step(settings: str, onednn: bool, golden_checkpoint: str, base: dict) -> dict:
    """One step with ``settings`` on the official inputs, on oneDNN's kernels or Paddle's: every loss, the
    critics' gradients and the generator's gradient as Adam receives it (read back from its first moment,
    (1 − β1)·g after one step). The critics are not stepped, so the generator's gradient is taken at the
    official weights."""
    with kernels.using("onednn" if onednn else "paddle"):
        return _library_step(settings, golden_checkpoint, base)


def _library_step(settings: str, golden_checkpoint: str, base: dict) -> dict:
    images = nchw(base["x"])
    count, size = images.shape[0], images.shape[2]
    top, left, height, width = (int(v) for v in base["local_box"])
    config = load_config(None, [f"image_size={size}", f"hole_size={height}", "cnum=32", *settings.split(",")])
    paddle.seed(0)
    nets = Networks(config)
    checkpoint = load_checkpoint(golden_checkpoint)
    nets.generator.set_state_dict(checkpoint.generator)
    nets.local_critic.set_state_dict(checkpoint.critics["critic_local"])
    critic_global = dict(checkpoint.critics["critic_global"])
    if config.gan_with_mask:
        critic_global["convs.conv1.weight"] = with_mask_channel(critic_global["convs.conv1.weight"])
    nets.global_critic.set_state_dict(critic_global)
    mask = nchw(np.repeat(base["mask"], count, axis=0))
    batch = Batch(images, mask, [Box(top, left, height, width)] * count)
    alphas = paddle.to_tensor(np.stack([base["alpha_local"], base["alpha_global"]])
                              .reshape(2, count, 1, 1, 1).astype(np.float32))

    d_losses = critic_losses(nets, batch, alphas, config)
    d_losses["total_d_loss"].backward()
    gradients = {}
    for which, critic in (("local", nets.local_critic), ("global", nets.global_critic)):
        channels = critic.convs[-1].weight.shape[0]
        for name, parameter in critic.named_parameters():
            gradients[critic_tf_name(name, which)] = to_tf_layout(name, parameter.grad.numpy(), channels)
    nets.opt_d.clear_grad()
    g_losses, _ = generator_losses(nets, batch, config)
    g_losses["total_g_loss"].backward()
    nets.opt_d.clear_grad()
    with paddle.utils.unique_name.guard():
        nets.opt_g.step()
    moments = nets.opt_g.state_dict()
    for name, parameter in nets.generator.named_parameters():
        received = np.asarray(moments[f"{parameter.name}_moment1_0"]) / (1.0 - config.beta1)
        gradients[generator_tf_name(name)] = to_tf_layout(name, received, 0)
    return {"losses": {**{k: float(v) for k, v in d_losses.items() if v.size == 1},
                       **{k: float(v) for k, v in g_losses.items()}},
            "gradients": gradients}


@pytest.fixture(scope="module", params=[True, False], ids=["onednn", "paddle-kernels"])
def path(request) -> bool:
    return request.param


def step_for(settings: str, onednn: bool, golden_checkpoint: str, base: dict) -> dict:
    if (settings, onednn) not in _steps:
        _steps[settings, onednn] = library_step(settings, onednn, golden_checkpoint, base)
    return _steps[settings, onednn]


@pytest.mark.parametrize("settings", sorted(SWITCHES))
def test_losses_match_the_official_step(settings, path, golden_checkpoint, train_step_golden):
    ours = step_for(settings, path, golden_checkpoint, train_step_golden)["losses"]
    for official, name in LOSS_NAMES.items():
        expected = float(SWITCHES[settings][f"loss/{official}"])
        assert abs(ours[name] - expected) <= LOSS_TOLERANCE * abs(expected), f"{official}: {ours[name]} vs {expected}"


@pytest.mark.parametrize("settings", sorted(SWITCHES))
def test_gradients_match_the_official_step(settings, path, golden_checkpoint, train_step_golden):
    """Largest entry, norm and projection of every gradient (bounds as in test_train_step), and the whole
    gradients kept in the file."""
    golden = SWITCHES[settings]
    gradients = step_for(settings, path, golden_checkpoint, train_step_golden)["gradients"]
    assert set(gradients) == {k.split("/", 1)[1] for k in golden if k.startswith("gradnorm/")}
    for name, gradient in gradients.items():
        largest = float(golden[f"gradmaxabs/{name}"])
        allowed = tolerance(name) * max(largest, 1e-12)
        assert abs(np.abs(gradient).max() - largest) <= allowed, name
        bound = allowed * np.sqrt(gradient.size)
        assert abs(np.linalg.norm(gradient.astype(np.float64)) - golden[f"gradnorm/{name}"]) <= bound, name
        assert abs(gradient_projection(gradient) - golden[f"gradproj/{name}"]) <= 5 * bound, name
    for key in [k for k in golden if k.startswith("grad/")]:
        name = key.split("/", 1)[1]
        error = np.abs(gradients[name] - golden[key]).max()
        assert error <= tolerance(name) * max(np.abs(golden[key]).max(), 1e-12), f"{name}: {error}"


@pytest.mark.parametrize("settings", sorted(SWITCHES))
def test_each_switch_changes_the_official_step(settings, train_step_golden):
    """The golden data can tell a switch from the default: some loss or gradient of the official step with
    it differs from the default step's by well over the tolerance (the tests above could fail)."""
    golden = SWITCHES[settings]
    losses = [abs(float(golden[f"loss/{n}"]) / float(train_step_golden[f"loss/{n}"]) - 1) / LOSS_TOLERANCE
              for n in LOSS_NAMES]
    gradients = [abs(golden[k] - train_step_golden[k]) / (tolerance(k.split("/", 1)[1]) * train_step_golden[k])
                 for k in golden if k.startswith("gradnorm/") and train_step_golden.get(k, 0) > 0]
    assert max(losses + gradients) > 10


@pytest.mark.parametrize("settings, words", [("gan=dcgan", ["gan=dcgan", "not implemented"]),
                                             ("l1_loss=false", ["L1_LOSS", "not implemented"])])
def test_switches_the_official_code_does_not_implement_are_refused(tmp_path, settings, words):
    run_dir = tmp_path / "run"
    result = run_command("train.py", "--set", settings, f"run_dir={run_dir}")
    assert_refused(result, str(run_dir), *words)


def test_a_run_with_model_switches_resumes_and_loads_as_the_same_model(tmp_path):
    """Two steps with padding=symmetric and gan_with_mask in one go, and one step + a resume that does not
    repeat the switches, give the same weights: the resume rebuilt the recorded model. Inference builds it
    too, and a record written before the switches existed still reads as SAME padding, no mask channel."""
    common = ["image_size=64", "hole_size=32", "max_delta=4", "cnum=8", "batch_size=2", "critic_steps=1",
              "num_workers=0", "log_every=1", "sample_every=100", "save_every=1", "keep_checkpoints=0"]
    switches = ["padding=symmetric", "gan_with_mask=true"]
    straight = train(load_config(None, [*common, *switches, "max_iters=2", f"run_dir={tmp_path / 'straight'}"]))
    train(load_config(None, [*common, *switches, "max_iters=1", f"run_dir={tmp_path / 'resumed'}"]))
    resumed = train(load_config(None, [*common, "max_iters=2", f"run_dir={tmp_path / 'resumed'}"]), resume=True)
    assert (resumed.config.padding, resumed.config.gan_with_mask) == ("SYMMETRIC", True)
    for a, b in [(straight.generator, resumed.generator), (straight.global_critic, resumed.global_critic)]:
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert (x.numpy() == y.numpy()).all(), name

    checkpoint = load_checkpoint(str(tmp_path / "resumed"))
    assert (checkpoint.spec.padding, checkpoint.spec.gan_with_mask) == ("SYMMETRIC", True)
    generator = checkpoint.build_generator()
    _, global_critic = checkpoint.build_critics()
    assert global_critic.convs[0].weight.shape[1] == 4
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32))
    hole = np.zeros((1, 1, 64, 64), np.float32)
    hole[..., 20:44, 16:40] = 1
    hole = paddle.to_tensor(hole)
    with paddle.no_grad():
        ours = generator(x * (1 - hole), hole)[1].numpy()
        trained = resumed.generator(x * (1 - hole), hole)[1].numpy()
        as_same = dataclasses.replace(checkpoint, spec=dataclasses.replace(checkpoint.spec, padding="SAME"))
        other = as_same.build_generator()(x * (1 - hole), hole)[1].numpy()
    np.testing.assert_allclose(ours, trained, atol=1e-6)
    assert np.abs(ours - other).max() > 1e-3          # the padding is part of what was loaded

    old = {k: v for k, v in checkpoint.spec.to_dict().items() if k not in ("padding", "gan_with_mask")}
    spec = read_spec({"spec": old}, "old.pdparams")
    assert (spec.padding, spec.gan_with_mask) == ("SAME", False)


@pytest.mark.parametrize("padding", ["SYMMETRIC", "REFLECT"])
def test_hole_shortcut_is_exact_with_mirror_padding(padding):
    """``fill_holes`` (the critic steps' and inference's stage 2 over the hole's window alone) gives every
    hole pixel as the whole generator computes it with mirror padding too, for holes in the middle and at
    the map's edges, where the window's own mirror must be the full map's."""
    paddle.seed(1)
    generator = InpaintGenerator(8, padding=padding)
    x = paddle.to_tensor(np.random.default_rng(0).uniform(-1, 1, (1, 3, 128, 96)).astype(np.float32))
    for top, left, height, width in [(20, 50, 16, 30), (0, 0, 40, 24), (100, 70, 28, 26)]:
        hole = np.zeros((1, 1, 128, 96), np.float32)
        hole[..., top:top + height, left:left + width] = 1
        mask = paddle.to_tensor(hole)
        with paddle.no_grad():
            whole = generator(x * (1 - mask), mask)[1].numpy()
            shortcut = fill_holes(generator, x * (1 - mask), mask)[0].numpy()
        np.testing.assert_allclose(shortcut * hole, whole * hole, atol=1e-5)
