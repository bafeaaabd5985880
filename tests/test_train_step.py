"""The official training step: the training library's own loss code (``deepfill.training.algorithm``), run on the
official graph's weights, images, hole, local box and interpolation factors, gives the official losses and
gradients (the golden data, ``tests/golden/make_golden.py``): every loss within 1e-4 relative, every generator gradient within 1e-3 of that tensor's
largest entry, every critic gradient within 1e-2 (second-order terms of the penalty in float32).

The project keeps a reduced form of the official gradients (tests/golden/train_step.npz: per-tensor norm,
largest entry, a projection on a fixed random vector, and a few whole tensors); when ../shared is beside
the project every whole gradient is compared as well.
"""
from __future__ import annotations

import os

import numpy as np
import paddle
import pytest

from deepfill.data.masks import Box
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models import kernels
from deepfill.models.official import critic_tf_name, generator_tf_name, to_tf_layout
from tests.conftest import nchw
from tests.golden_data import gradient_projection
from deepfill.training.algorithm import Batch, Networks, critic_losses, generator_losses
from deepfill.utils.config import load_config

LOSS_TOLERANCE = 1e-4
GENERATOR_TOLERANCE, CRITIC_TOLERANCE = 1e-3, 1e-2
# official name → ours, where they differ: the official g_loss/d_loss are the totals that are minimised
LOSS_NAMES = {"l1_loss": "l1_loss", "ae_loss": "ae_loss", "g_loss_local": "g_loss_local",
              "g_loss_global": "g_loss_global", "d_loss_local": "d_loss_local", "d_loss_global": "d_loss_global",
              "penalty_local": "penalty_local", "penalty_global": "penalty_global", "gp_loss": "gp_loss",
              "g_loss": "total_g_loss", "d_loss": "total_d_loss"}


@pytest.fixture(scope="module", params=["onednn", "paddle"])
def step(request, golden_checkpoint, train_step_golden):
    """One step of the library's objective on the official inputs: losses and gradients in the official
    names and layout; the model's kernels (``deepfill.models.kernels``) oneDNN's (the CPU's default) or Paddle's."""
    with kernels.using(request.param):
        return library_step(golden_checkpoint, train_step_golden)


def library_step(golden_checkpoint: str, golden: dict) -> dict:
    """One step on the installed kernels."""
    images = nchw(golden["x"])
    count, size = images.shape[0], images.shape[2]
    top, left, height, width = (int(v) for v in golden["local_box"])
    config = load_config(None, [f"image_size={size}", f"hole_size={height}", "cnum=32"])
    paddle.seed(0)
    nets = Networks(config)
    checkpoint = load_checkpoint(golden_checkpoint)
    nets.generator.set_state_dict(checkpoint.generator)
    nets.local_critic.set_state_dict(checkpoint.critics["critic_local"])
    nets.global_critic.set_state_dict(checkpoint.critics["critic_global"])
    mask = nchw(np.repeat(golden["mask"], count, axis=0))
    batch = Batch(images, mask, [Box(top, left, height, width)] * count)
    alphas = paddle.to_tensor(np.stack([golden["alpha_local"], golden["alpha_global"]])
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
    for name, parameter in nets.generator.named_parameters():
        gradients[generator_tf_name(name)] = to_tf_layout(name, parameter.grad.numpy(), 0)
    losses = {**{k: float(v) for k, v in d_losses.items() if v.size == 1},
              **{k: float(v) for k, v in g_losses.items()}}
    return {"losses": losses, "gradients": gradients, "discount": nets.discount.numpy()[0, 0]}


def tolerance(name: str) -> float:
    return CRITIC_TOLERANCE if name.startswith("discriminator/") else GENERATOR_TOLERANCE


def test_spatial_discount_is_the_official_one(step, train_step_golden):
    np.testing.assert_allclose(step["discount"], train_step_golden["spatial_discount"], rtol=1e-6)


@pytest.mark.parametrize("official", sorted(LOSS_NAMES))
def test_every_loss_term_matches(step, train_step_golden, official):
    expected = float(train_step_golden[f"loss/{official}"])
    ours = step["losses"][LOSS_NAMES[official]]
    assert abs(ours - expected) <= LOSS_TOLERANCE * abs(expected), f"{official}: {ours} vs {expected}"


def test_every_official_variable_gets_a_gradient(step, train_step_golden):
    official = {k.split("/", 1)[1] for k in train_step_golden if k.startswith("gradnorm/")}
    assert official == set(step["gradients"]) and len(official) == 104


def test_gradient_summaries_match(step, train_step_golden):
    """Norm, largest entry and a random projection of each gradient, with bounds that an error of at most
    tolerance × (largest entry) in every element satisfies: |Δnorm| ≤ ‖Δ‖ ≤ t·M·√n, and the projection of
    the error on a standard normal vector is within 5 standard deviations (‖Δ‖)."""
    for name, gradient in step["gradients"].items():
        largest = float(train_step_golden[f"gradmaxabs/{name}"])
        bound = tolerance(name) * max(largest, 1e-12) * np.sqrt(gradient.size)
        assert abs(np.abs(gradient).max() - largest) <= tolerance(name) * max(largest, 1e-12), name
        assert abs(np.linalg.norm(gradient.astype(np.float64)) - train_step_golden[f"gradnorm/{name}"]) <= bound, name
        assert abs(gradient_projection(gradient) - train_step_golden[f"gradproj/{name}"]) <= 5 * bound, name


def test_whole_gradients_kept_in_the_project_match(step, train_step_golden):
    kept = [k.split("/", 1)[1] for k in train_step_golden if k.startswith("grad/")]
    assert len(kept) >= 5
    for name in kept:
        expected = train_step_golden[f"grad/{name}"]
        error = np.abs(step["gradients"][name] - expected).max()
        assert error <= tolerance(name) * max(np.abs(expected).max(), 1e-12), f"{name}: {error}"


def test_every_whole_gradient_matches_the_full_golden_data(step, shared_golden):
    with np.load(os.path.join(shared_golden, "train_step.npz")) as data:
        names = [k.split("/", 1)[1] for k in data.files if k.startswith("grad/")]
        assert set(names) == set(step["gradients"])
        for name in names:
            expected = data[f"grad/{name}"]
            error = np.abs(step["gradients"][name] - expected).max()
            assert error <= tolerance(name) * max(np.abs(expected).max(), 1e-12), f"{name}: {error}"
