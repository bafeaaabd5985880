"""DeepFill v2's training against the official v2 graph (``tests/golden/v2/train_step.npz``): the library's own
step code (``deepfill.training.algorithm_v2``) on the official weights, pictures and holes gives the official losses
(1e-4 relative) and gradients (generator 1e-3, critic 1e-2 of each tensor's largest entry), on both
convolution paths; the official ``brush_stroke_mask`` is reproduced; ``train.py`` with
``configs/places2_v2.yaml`` runs, saves and resumes exactly."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from deepfill.data.masks import official_brush_strokes, random_masks
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models import kernels
from deepfill.models.official import generator_tf_name, to_tf_layout
from deepfill.models.tf_convert import patch_critic_tf_name
from tests import golden_v2_data
from tests.conftest import nchw, run_command
from tests.golden_data import gradient_projection
from tests.test_training import logged_steps
from deepfill.training import algorithm_v2
from deepfill.training.algorithm import Batch
from deepfill.utils.config import load_config

LOSS_TOLERANCE = 1e-4
GENERATOR_TOLERANCE, CRITIC_TOLERANCE = 1e-3, 1e-2


@pytest.fixture(scope="module")
def train_step_v2() -> dict[str, np.ndarray]:
    return golden_v2_data.load_train_step()


@pytest.mark.parametrize("seed", [0, 1, 2018])
def test_official_brush_strokes_are_reproduced_pixel_for_pixel(seed):
    golden = golden_v2_data.load_tensors()[f"brush/{seed}"]
    assert np.array_equal(official_brush_strokes(np.random.RandomState(seed), 256, 256), golden)


def test_v2_holes_unite_the_box_and_strokes_over_the_whole_image():
    rng = np.random.default_rng(3)
    masks, boxes = random_masks(rng, 2, 256, 128, 32, False, "box_and_strokes")
    box = boxes[0]
    inside = np.zeros((256, 256), bool)
    inside[box.top:box.top + box.height, box.left:box.left + box.width] = True
    assert masks.shape == (2, 1, 256, 256) and (masks[0] == masks[1]).all()
    assert masks[0, 0][inside].mean() > 0.5 and masks[0, 0][~inside].any()


@pytest.fixture(scope="module", params=["onednn", "paddle"])
def step(request, golden_v2_checkpoint, train_step_v2):
    """One official v2 step with the library's loss code, on oneDNN's kernels or Paddle's: the critic's
    gradients of d_loss and the generator's of g_loss, each from a pass that starts from the same
    power-iteration vectors, as the official graph computes both from one pass."""
    with kernels.using(request.param):
        return library_step(golden_v2_checkpoint)


def library_step(golden_v2_checkpoint: str) -> dict:
    golden = golden_v2_data.load_tensors()
    images = nchw(golden["x"] / 127.5 - 1.0)
    count = images.shape[0]
    config = load_config(None, ["version=2"])
    nets = algorithm_v2.NetworksV2(config)
    checkpoint = load_checkpoint(golden_v2_checkpoint)
    nets.generator.set_state_dict(checkpoint.generator)
    batch = Batch(images, nchw(np.repeat(golden["mask"], count, axis=0)), [])
    gradients, losses = {}, {}
    for loss, model, name_of in (("d_loss", nets.critic, patch_critic_tf_name),
                                 ("g_loss", nets.generator, generator_tf_name)):
        nets.critic.set_state_dict(checkpoint.critics["critic"])
        terms = algorithm_v2.losses(nets, batch, config)
        terms[loss].backward()
        losses.update({k: float(v) for k, v in terms.items()})
        for name, parameter in model.named_parameters():
            gradients[name_of(name)] = to_tf_layout(name, parameter.grad.numpy(), 0)
        nets.opt_g.clear_grad()
        nets.opt_d.clear_grad()
    return {"losses": losses, "gradients": gradients}


def tolerance(name: str) -> float:
    return CRITIC_TOLERANCE if name.startswith("discriminator/") else GENERATOR_TOLERANCE


@pytest.mark.parametrize("name", ["ae_loss", "gan_g_loss", "g_loss", "d_loss"])
def test_every_v2_loss_matches(step, train_step_v2, name):
    expected = float(train_step_v2[f"loss/{name}"])
    assert abs(step["losses"][name] - expected) <= LOSS_TOLERANCE * abs(expected), (step["losses"][name], expected)


def test_every_official_v2_variable_gets_a_gradient(step, train_step_v2):
    official = {k.split("/", 1)[1] for k in train_step_v2 if k.startswith("gradnorm/")}
    assert official == set(step["gradients"]) and len(official) == 96


def test_v2_gradient_summaries_match(step, train_step_v2):
    """As tests/test_train_step.py: bounds that an error of at most tolerance × (largest entry) in every
    element satisfies."""
    for name, gradient in step["gradients"].items():
        largest = float(train_step_v2[f"gradmaxabs/{name}"])
        allowed = tolerance(name) * max(largest, 1e-12)
        bound = allowed * np.sqrt(gradient.size)
        assert abs(np.abs(gradient).max() - largest) <= allowed, name
        assert abs(np.linalg.norm(gradient.astype(np.float64)) - train_step_v2[f"gradnorm/{name}"]) <= bound, name
        assert abs(gradient.astype(np.float64).sum() - train_step_v2[f"gradsum/{name}"]) <= bound * np.sqrt(
            gradient.size), name
        assert abs(gradient_projection(gradient) - train_step_v2[f"gradproj/{name}"]) <= 5 * bound, name


def test_v2_whole_gradients_match(step, train_step_v2):
    kept = [k.split("/", 1)[1] for k in train_step_v2 if k.startswith("grad/")]
    assert len(kept) >= 5
    for name in kept:
        expected = train_step_v2[f"grad/{name}"]
        error = np.abs(step["gradients"][name] - expected).max()
        assert error <= tolerance(name) * max(np.abs(expected).max(), 1e-12), f"{name}: {error}"


def test_train_cli_with_the_v2_config_runs_saves_and_resumes_exactly(tmp_path):
    """``train.py --config configs/places2_v2.yaml`` for 4 steps in one go, and for 2 then ``--resume`` to
    4, log the same losses and end with the same weights and power-iteration vectors."""
    rng = np.random.default_rng(0)
    os.makedirs(tmp_path / "data")
    for i in range(6):
        cv2.imwrite(str(tmp_path / "data" / f"p{i}.png"), rng.integers(0, 256, (80, 96, 3), dtype=np.uint8))
    tiny = ["image_size=64", "hole_size=32", "max_delta=8", "cnum=8", "batch_size=2", "num_workers=0",
            "image_fit=scale_crop", "log_every=1", "sample_every=2", "save_every=1", "keep_checkpoints=0",
            "device=cpu", f"data={tmp_path / 'data'}"]

    def train(run: str, iters: int, *extra: str):
        result = run_command("train.py", "--config", "configs/places2_v2.yaml", *extra, "--set", *tiny,
                             f"max_iters={iters}", f"run_dir={tmp_path / run}")
        assert result.returncode == 0, result.stderr

    train("straight", 4)
    train("interrupted", 2)
    train("interrupted", 4, "--resume")
    assert sorted(logged_steps(tmp_path / "straight")) == [1, 2, 3, 4]
    assert logged_steps(tmp_path / "interrupted") == logged_steps(tmp_path / "straight")
    straight, resumed = (load_checkpoint(str(tmp_path / run)) for run in ("straight", "interrupted"))
    assert straight.spec.version == resumed.spec.version == 2
    for part in ("generator", "critic"):
        ours = straight.generator if part == "generator" else straight.critics["critic"]
        theirs = resumed.generator if part == "generator" else resumed.critics["critic"]
        assert sorted(ours) == sorted(theirs)
        for name in ours:
            assert np.array_equal(ours[name], theirs[name]), f"{part} {name}"
    assert "convs.conv1.u" in straight.critics["critic"]
