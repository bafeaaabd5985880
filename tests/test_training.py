"""Algorithm 1, the losses, the holes, the data stream, and exact resume of train.py."""
from __future__ import annotations

import os

import cv2
import numpy as np
import paddle
import pytest

from data.dataset import ImageDataset, ResumableBatches, fit_square, list_sources
from data.masks import random_masks, spatial_discount
from models.losses import gradient_penalty, reconstruction_losses
from tests.conftest import run_command
from train import Trainer, train
from utils.checkpoint import load_checkpoint
from utils.cli import UserError
from utils.config import load_config

TINY = ["image_size=32", "hole_size=16", "max_delta=4", "cnum=8", "batch_size=2", "critic_steps=2",
        "num_workers=0", "log_every=1", "sample_every=2", "save_every=1", "keep_checkpoints=0"]


def tiny_config(run_dir, *extra: str):
    return load_config(None, TINY + [f"run_dir={run_dir}", *extra])


def test_masks_follow_the_official_recipe():
    rng = np.random.default_rng(0)
    for _ in range(50):
        masks, boxes = random_masks(rng, 3, 256, 128, 32, per_image=False)
        box = boxes[0]
        assert masks.shape == (3, 1, 256, 256) and (masks == masks[:1]).all() and boxes == [box] * 3
        assert 0 <= box.top < 128 and 0 <= box.left < 128
        rows, cols = np.nonzero(masks[0, 0])
        assert box.top <= rows.min() <= box.top + 16 and box.top + 112 <= rows.max() + 1 <= box.top + 128
        assert box.left <= cols.min() <= box.left + 16 and box.left + 112 <= cols.max() + 1 <= box.left + 128
    masks, boxes = random_masks(rng, 4, 256, 128, 32, per_image=True)
    assert len(set(boxes)) == 4 and not (masks == masks[:1]).all()


def test_spatial_discount_weights_the_border_most():
    discount = spatial_discount(128, 128, 0.9)
    assert discount[0, 0] == 1.0 and discount[0, 64] == 1.0
    assert discount[64, 64] == pytest.approx(0.9 ** 64)
    assert discount[10, 20] == pytest.approx(0.9 ** 10)


def test_ae_loss_is_normalised_by_the_known_area_and_l1_by_the_box():
    gt = paddle.zeros([1, 3, 8, 8])
    mask = paddle.zeros([1, 1, 8, 8])
    mask[:, :, 2:6, 2:6] = 1
    x = paddle.full([1, 3, 8, 8], 0.5)
    from data.masks import Box
    l1, ae = reconstruction_losses(gt, x, x, mask, [Box(0, 0, 8, 8)], paddle.ones([1, 1, 8, 8]), 1.2)
    assert float(ae) == pytest.approx((1.2 + 1) * 0.5)
    assert float(l1) == pytest.approx((1.2 + 1) * 0.5)


def test_gradient_penalty_only_sees_the_hole():
    class OutsideHole(paddle.nn.Layer):      # a critic whose gradient lies entirely outside the hole
        def forward(self, x):
            return x[:, :, :2, :].sum(axis=[1, 2, 3])

    real, fake = paddle.zeros([2, 3, 8, 8]), paddle.ones([2, 3, 8, 8])
    alpha = paddle.full([2, 1, 1, 1], 0.5)
    hole = paddle.zeros([2, 1, 8, 8])
    hole[:, :, 4:, :] = 1
    assert float(gradient_penalty(OutsideHole(), real, fake, alpha, hole)) == pytest.approx(1.0)
    everywhere = paddle.ones([2, 1, 8, 8])
    slope = np.sqrt(3 * 2 * 8)
    assert float(gradient_penalty(OutsideHole(), real, fake, alpha, everywhere)) == pytest.approx((slope - 1) ** 2)


def test_batches_resume_exactly_and_cover_each_epoch():
    full = ResumableBatches(10, 3, seed=7)
    stream = iter(full)
    first = [next(stream) for _ in range(7)]
    resumed = iter(ResumableBatches(10, 3, seed=7, consumed=4))
    assert [next(resumed) for _ in range(3)] == first[4:]
    epoch = [index for batch in first[:3] for index, _ in batch]
    assert len(set(epoch)) == 9
    with pytest.raises(UserError, match="fewer than batch_size"):
        ResumableBatches(2, 3, seed=0)


def test_data_sources_and_bad_images(tmp_path, capfd):
    image = np.full((40, 60, 3), 200, np.uint8)
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "a.png"), image)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    paths = list_sources(str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["broken.png", "a.png"]
    (tmp_path / "list.txt").write_text("sub/a.png\n\n")
    assert list_sources(str(tmp_path / "list.txt")) == [str(tmp_path / "sub" / "a.png")]
    dataset = ImageDataset(paths, 32)
    item = dataset[(0, 5)]                  # the broken file is replaced by the next one
    assert item.shape == (3, 32, 32) and np.allclose(item, 200 / 127.5 - 1)
    assert "skipping" in capfd.readouterr().err
    with pytest.raises(UserError, match="data not found"):
        list_sources(str(tmp_path / "missing"))
    assert fit_square(image, 32, None).shape == (32, 32, 3)


def test_one_iteration_is_algorithm_1(tmp_path):
    trainer = Trainer(tiny_config(tmp_path / "run"))
    generator_before = [p.numpy().copy() for p in trainer.generator.parameters()]
    critic_before = [p.numpy().copy() for p in trainer.local_critic.parameters()]
    trainer.critic_step()
    assert all((p.numpy() == b).all() for p, b in zip(trainer.generator.parameters(), generator_before))
    assert any((p.numpy() != b).any() for p, b in zip(trainer.local_critic.parameters(), critic_before))
    critic_after = [p.numpy().copy() for p in trainer.local_critic.parameters()]
    trainer.generator_step()
    assert all((p.numpy() == b).all() for p, b in zip(trainer.local_critic.parameters(), critic_after))
    assert any((p.numpy() != b).any() for p, b in zip(trainer.generator.parameters(), generator_before))
    losses, _ = trainer.iteration()
    assert trainer.consumed == 1 + 1 + 3 and trainer.step == 1
    assert set(losses) == {"g_loss", "l1_loss", "ae_loss", "total_g_loss", "d_loss", "gp_loss"}


def test_resume_continues_exactly(tmp_path):
    straight = train(tiny_config(tmp_path / "straight", "max_iters=3"))
    train(tiny_config(tmp_path / "interrupted", "max_iters=2"))
    resumed = train(tiny_config(tmp_path / "interrupted", "max_iters=3"), resume=True)
    assert resumed.step == straight.step == 3 and resumed.consumed == straight.consumed
    for a, b in [(straight.generator, resumed.generator), (straight.global_critic, resumed.global_critic)]:
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert (x.numpy() == y.numpy()).all(), name
    assert sorted(os.listdir(tmp_path / "interrupted" / "samples")) == ["step_00000002.png", "step_00000003.png"]
    payload = load_checkpoint(str(tmp_path / "interrupted"))
    assert payload["step"] == 3 and payload["channel_order"] == "RGB"
    with pytest.raises(UserError, match="already holds a run"):
        Trainer(tiny_config(tmp_path / "interrupted"))
    with pytest.raises(UserError, match="critic_local .* has shape"):
        Trainer(tiny_config(tmp_path / "interrupted", "hole_size=24"), resume=True)


def test_train_cli_reports_mistakes_in_one_line(tmp_path):
    for args, words in [(["--config", str(tmp_path / "none.yaml")], "config not found"),
                        (["--set", "batch_size=two"], "batch_size must be int"),
                        (["--set", "lr_rate=1"], "unknown setting 'lr_rate'"),
                        (["--set", "cnum=x", "--set", "max_iters=-1"], "cnum must be int"),
                        (["--resume", "--set", f"run_dir={tmp_path}"], "no checkpoint")]:
        result = run_command("train.py", *args)
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_two_data_parallel_processes_train_like_one(tmp_path):
    """`paddle.distributed.launch` with 2 processes (CPU here, GPUs in production) splits each batch and
    averages gradients, so it reaches what one process reaches with the whole batch. A large learning
    rate makes a run without averaging differ by ~1e-2 on average; with it the runs differ by ~1e-7."""
    settings = [*TINY, "batch_size=4", "max_iters=2", "device=cpu", "lr=0.01"]
    single = run_command("train.py", "--set", *settings, f"run_dir={tmp_path / 'one'}")
    assert single.returncode == 0, single.stderr
    dual = run_command("-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                       str(tmp_path / "logs"), "train.py", "--set", *settings, f"run_dir={tmp_path / 'two'}")
    assert dual.returncode == 0, dual.stderr + "".join(
        open(tmp_path / "logs" / name).read() for name in os.listdir(tmp_path / "logs"))
    one = load_checkpoint(str(tmp_path / "one"))
    two = load_checkpoint(str(tmp_path / "two"))
    assert one["step"] == two["step"] == 2 and one["consumed"] == two["consumed"]
    for part in ("generator", "critic_local", "critic_global"):
        difference = np.concatenate([np.abs(two[part][k] - v).ravel() for k, v in one[part].items()])
        assert difference.mean() < 1e-5 and np.percentile(difference, 99) < 1e-4, part


def test_per_image_holes_train(tmp_path):
    trainer = Trainer(tiny_config(tmp_path / "run", "per_image_masks=true"))
    images, mask, boxes = trainer.next_batch()
    assert len(set(boxes)) == 2 and not (mask.numpy()[0] == mask.numpy()[1]).all()
    assert trainer.generator.refine.per_sample_mask
    losses, _ = trainer.iteration()
    assert all(np.isfinite(list(losses.values())))


def test_places2_config_is_the_official_recipe():
    """configs/places2.yaml spells out the defaults, which are inpaint.yml's values (SPEC §4)."""
    from utils.config import Config
    loaded = load_config(os.path.join(os.path.dirname(__file__), "..", "configs", "places2.yaml"))
    defaults = Config()
    differing = {k for k, v in loaded.to_dict().items() if v != getattr(defaults, k)}
    assert differing <= {"data", "val_data", "num_workers"}
    assert (defaults.image_size, defaults.hole_size, defaults.max_delta, defaults.batch_size) == (256, 128, 32, 16)
    assert (defaults.lr, defaults.beta1, defaults.beta2, defaults.critic_steps) == (1e-4, 0.5, 0.9, 5)
    assert (defaults.gan_loss_alpha, defaults.l1_loss_alpha, defaults.ae_loss_alpha) == (0.001, 1.2, 1.2)
    assert (defaults.wgan_gp_lambda, defaults.discount_gamma, defaults.per_image_masks) == (10.0, 0.9, False)
