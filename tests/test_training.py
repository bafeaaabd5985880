"""train.py: Algorithm 1, its options, logging, checkpoints on signals and divergence, exact resume, and
data-parallel training in two processes."""
from __future__ import annotations

import os
import re
import shlex
import signal

import cv2
import numpy as np
import paddle
import pytest

from deepfill.models.checkpoint import load_checkpoint
from tests.conftest import ROOT, run_command
from tests.test_readme import documented_commands
from deepfill.training import algorithm, algorithm_v2
from deepfill.training.loop import train, train_and_report
from deepfill.training.run_log import LOG_NAME, sample_picture
from deepfill.training.trainer import Trainer, TrainingDiverged
from deepfill.utils.cli import UserError
from deepfill.utils.config import Config, load_config

TINY = ["image_size=32", "hole_size=16", "max_delta=4", "cnum=8", "batch_size=2", "critic_steps=2",
        "num_workers=0", "log_every=1", "sample_every=2", "save_every=1", "keep_checkpoints=0"]


def tiny_config(run_dir, *extra: str) -> Config:
    return load_config(None, TINY + [f"run_dir={run_dir}", *extra])


def snapshot(model: paddle.nn.Layer) -> list[np.ndarray]:
    return [p.numpy().copy() for p in model.parameters()]


def unchanged(model: paddle.nn.Layer, before: list[np.ndarray]) -> bool:
    return all((p.numpy() == b).all() for p, b in zip(model.parameters(), before))


def logged_lines(run_dir, pattern: str) -> dict[int, dict[str, str]]:
    """The ``key=value`` pairs of the train.log lines matching ``pattern`` (its groups: the step, then the
    pairs), by step."""
    found = {}
    with open(os.path.join(run_dir, LOG_NAME), encoding="utf-8") as handle:
        for line in handle:
            match = re.search(pattern, line)
            if match:
                found[int(match.group(1))] = dict(pair.split("=", 1) for pair in match.group(2).split())
    return found


def logged_steps(run_dir) -> dict[int, dict[str, str]]:
    """The scalars train.log recorded for each step (all but the timing)."""
    steps = logged_lines(run_dir, r" step (\d+): (.*)")
    for pairs in steps.values():
        pairs.pop("seconds")
    return steps


def noise_pictures(folder, count: int, broken: int = 0) -> None:
    """``count`` random 40×48 pictures and ``broken`` files that are not pictures."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(os.path.join(folder, f"picture_{i}.png"), rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    for i in range(broken):
        with open(os.path.join(folder, f"broken_{i}.png"), "wb") as handle:
            handle.write(b"not a picture")


def test_one_iteration_is_algorithm_1(tmp_path):
    trainer = Trainer(tiny_config(tmp_path / "run"))
    generator_before, critic_before = snapshot(trainer.generator), snapshot(trainer.local_critic)
    trainer.critic_step()
    assert unchanged(trainer.generator, generator_before) and not unchanged(trainer.local_critic, critic_before)
    critic_after = snapshot(trainer.local_critic)
    trainer.generator_step()
    assert unchanged(trainer.local_critic, critic_after) and not unchanged(trainer.generator, generator_before)
    scalars, tensors, unreadable = trainer.iteration()
    assert trainer.consumed == 1 + 1 + 3 and trainer.step == 1 and unreadable == []
    assert set(scalars) == {"g_loss", "l1_loss", "ae_loss", "total_g_loss", "d_loss", "gp_loss", "total_d_loss",
                            "real_local", "fake_local", "real_global", "fake_global"}
    picture = sample_picture(tensors, "RGB")
    assert picture.shape == (2 * 32, 5 * 32, 3) and picture.dtype == np.uint8
    truth = ((tensors[0][0].numpy().transpose(1, 2, 0) + 1) * 127.5).round()
    assert np.abs(picture[:32, 96:128].astype(float) - truth).max() <= 1      # the fourth column is the truth


@pytest.mark.parametrize("version", [1, 2])
def test_the_generator_update_takes_no_critic_gradient_and_the_same_generator_gradient(tmp_path, version):
    trainer = Trainer(tiny_config(tmp_path / "run", f"version={version}", "reconstruction_iters=0"))
    nets, batch = trainer.nets, trainer.next_batch()
    if version == 1:
        losses, _ = algorithm.generator_losses(nets, batch, trainer.config)
        losses["total_g_loss"].backward()
        expected = [p.grad.numpy().copy() for p in nets.generator.parameters()]
        nets.opt_g.clear_grad()
        nets.opt_d.clear_grad(set_to_zero=False)
    seen = {}

    def update(optimizer, parameters):
        seen["generator"] = [p.grad.numpy().copy() for p in parameters]
        seen["critics"] = [p.grad for p in nets.critic_parameters]
        optimizer.clear_grad()

    step = algorithm_v2.generator_step if version == 2 else algorithm.generator_step
    scalars, _ = step(nets, batch, trainer.config, update)
    assert "g_loss" in scalars and all(grad is None for grad in seen["critics"])
    assert all(not p.stop_gradient for p in nets.critic_parameters)      # still trained by the critic steps
    if version == 1:
        for got, want in zip(seen["generator"], expected):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7 * np.abs(want).max())
    trainer.close()


def test_pretraining_trains_the_coarse_network_alone(tmp_path):
    trainer = Trainer(tiny_config(tmp_path / "run", "pretrain_coarse=true"))
    refine, coarse = snapshot(trainer.generator.refine), snapshot(trainer.generator.coarse)
    critics = snapshot(trainer.local_critic) + snapshot(trainer.global_critic)
    scalars, _, _ = trainer.iteration()
    assert set(scalars) == {"l1_loss", "ae_loss", "total_g_loss"} and trainer.consumed == 1
    assert not unchanged(trainer.generator.coarse, coarse) and unchanged(trainer.generator.refine, refine)
    assert unchanged(trainer.local_critic, critics[:10]) and unchanged(trainer.global_critic, critics[10:])
    assert scalars["total_g_loss"] == pytest.approx(1.2 * scalars["l1_loss"] + 1.2 * scalars["ae_loss"])


def test_free_form_holes_per_image_train(tmp_path):
    trainer = Trainer(tiny_config(tmp_path / "run", "per_image_masks=true", "mask_type=free_form", "flip=true",
                                  "image_fit=random_crop"))
    batch = trainer.next_batch()
    mask, boxes = batch.mask, batch.boxes
    assert len(set(boxes)) == 2 and not (mask.numpy()[0] == mask.numpy()[1]).all()
    for hole, box in zip(mask.numpy()[:, 0], boxes):
        assert hole.sum() == hole[box.top:box.top + box.height, box.left:box.left + box.width].sum() > 0
    assert trainer.generator.refine.per_sample_mask
    scalars, _, _ = trainer.iteration()
    assert all(np.isfinite(list(scalars.values())))


def test_resume_continues_exactly(tmp_path):
    """2N steps in one go and N steps + resume + N steps give the same losses and weights (N = 2)."""
    straight = train(tiny_config(tmp_path / "straight", "max_iters=4"))
    train(tiny_config(tmp_path / "interrupted", "max_iters=2"))
    resumed = train(tiny_config(tmp_path / "interrupted", "max_iters=4"), resume=True)
    assert resumed.step == straight.step == 4 and resumed.consumed == straight.consumed
    assert logged_steps(tmp_path / "interrupted") == logged_steps(tmp_path / "straight")
    assert sorted(logged_steps(tmp_path / "straight")) == [1, 2, 3, 4]
    for a, b in [(straight.generator, resumed.generator), (straight.global_critic, resumed.global_critic)]:
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert (x.numpy() == y.numpy()).all(), name
    assert sorted(os.listdir(tmp_path / "interrupted" / "samples")) == ["step_00000002.png", "step_00000004.png"]
    payload = load_checkpoint(str(tmp_path / "interrupted"))
    assert payload.state["step"] == 4 and payload.spec.channel_order == "RGB"
    assert payload.state["config"]["max_iters"] == 4 and (payload.spec.image_size, payload.spec.hole_size) == (32, 16)
    assert {"opt_g", "opt_d", "rng", "random_state"} <= set(payload.state)
    assert set(payload.critics) == {"critic_local", "critic_global"}
    with pytest.raises(UserError, match="already holds a run"):
        Trainer(tiny_config(tmp_path / "interrupted"))
    with pytest.raises(UserError, match="critic_local .* has shape"):
        Trainer(tiny_config(tmp_path / "interrupted", "hole_size=24"), resume=True)


def test_checkpoints_keep_the_last_k_and_the_log_has_every_scalar(tmp_path):
    trainer = train(tiny_config(tmp_path / "run", "max_iters=3", "keep_checkpoints=2", "critic_steps=1"))
    assert sorted(n for n in os.listdir(tmp_path / "run") if n.endswith(".pdparams")) == [
        "step_00000002.pdparams", "step_00000003.pdparams"]
    assert set(logged_steps(tmp_path / "run")[3]) == {
        "g_loss", "l1_loss", "ae_loss", "total_g_loss", "d_loss", "gp_loss", "total_d_loss",
        "real_local", "fake_local", "real_global", "fake_global", "lr"}
    assert trainer.stop_signal == 0 and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert os.listdir(tmp_path / "run" / "visualdl")


def signal_during_generator_step(monkeypatch, at_call: int, *signals: int) -> None:
    """Make the process signal itself in the middle of the ``at_call``-th generator step."""
    original, calls = Trainer.generator_step, []

    def generator_step(self):
        calls.append(1)
        if len(calls) == at_call:
            for signum in signals:
                os.kill(os.getpid(), signum)
        return original(self)

    monkeypatch.setattr(Trainer, "generator_step", generator_step)


def test_sigterm_saves_after_the_current_iteration(tmp_path, monkeypatch, capsys):
    signal_during_generator_step(monkeypatch, 2, signal.SIGTERM)
    _, code = train_and_report(tiny_config(tmp_path / "run", "max_iters=50", "save_every=100"))
    assert code == 128 + signal.SIGTERM
    assert [n for n in os.listdir(tmp_path / "run") if n.endswith(".pdparams")] == ["step_00000002.pdparams"]
    assert "stopped by SIGTERM at step 2; continue with --resume" in capsys.readouterr().err
    assert "stopped by SIGTERM at step 2" in (tmp_path / "run" / LOG_NAME).read_text()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) == signal.default_int_handler


def test_a_second_ctrl_c_stops_at_once_without_saving(tmp_path, monkeypatch):
    signal_during_generator_step(monkeypatch, 2, signal.SIGINT, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path / "run", "max_iters=50", "save_every=100"))
    assert not [n for n in os.listdir(tmp_path / "run") if n.endswith(".pdparams")]
    assert signal.getsignal(signal.SIGINT) == signal.default_int_handler


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    original, calls = Trainer.generator_step, []

    def poisoned(self):
        calls.append(1)
        if len(calls) == 2:
            weight = self.generator.coarse.body[0].conv.weight
            weight.set_value(paddle.full(weight.shape, float("nan")))
        return original(self)

    monkeypatch.setattr(Trainer, "generator_step", poisoned)
    _, code = train_and_report(tiny_config(tmp_path / "run", "max_iters=5"))
    assert code == 1
    error = capsys.readouterr().err
    assert "error: training diverged:" in error and "at step 2" in error and "last checkpoint" in error
    assert [n for n in os.listdir(tmp_path / "run") if n.endswith(".pdparams")] == ["step_00000001.pdparams"]
    assert "diverged" in (tmp_path / "run" / LOG_NAME).read_text()
    assert np.isfinite(load_checkpoint(str(tmp_path / "run")).generator["coarse.body.conv1.conv.weight"]).all()
    with pytest.raises(TrainingDiverged):
        calls.clear()
        train(tiny_config(tmp_path / "again", "max_iters=5"))
    calls.clear()
    assert train_and_report(tiny_config(tmp_path / "early", "max_iters=5", "save_every=10"))[1] == 1
    assert "no checkpoint was written" in capsys.readouterr().err


def test_unreadable_images_are_counted_across_loader_processes(tmp_path):
    noise_pictures(tmp_path / "data", 4, broken=2)
    config = tiny_config(tmp_path / "run", f"data={tmp_path / 'data'}", "num_workers=1", "max_iters=1")
    trainer = train(config)
    assert sorted(os.path.basename(trainer.dataset.paths[i]) for i in trainer.unreadable) == [
        "broken_0.png", "broken_1.png"]
    log = (tmp_path / "run" / LOG_NAME).read_text()
    assert log.count("unreadable image skipped") == 2 and "2 unreadable images skipped so far" in log
    assert len(load_checkpoint(str(tmp_path / "run")).state["unreadable"]) == 2
    noise_pictures(tmp_path / "bad", 0, broken=3)
    with pytest.raises(UserError, match="none of the 3 images .* can be read"):
        Trainer(tiny_config(tmp_path / "bad_run", f"data={tmp_path / 'bad'}"))


def test_fine_tuning_starts_from_converted_official_weights(tmp_path, golden_checkpoint, capsys):
    official = load_checkpoint(golden_checkpoint)
    weights = {"generator": official.generator, **official.critics}
    size = [f"image_size={official.spec.critic_global_size}", f"hole_size={official.spec.critic_local_size}",
            "max_delta=8", f"init_checkpoint={golden_checkpoint}"]
    trainer = Trainer(tiny_config(tmp_path / "run", *size, "channel_order=BGR", "cnum=32"))
    for model, key in ((trainer.generator, "generator"), (trainer.local_critic, "critic_local"),
                       (trainer.global_critic, "critic_global")):
        assert all((v.numpy() == weights[key][k]).all() for k, v in model.state_dict().items()), key
    assert "generator and critics start from" in capsys.readouterr().err
    with pytest.raises(UserError, match="set channel_order=BGR"):
        Trainer(tiny_config(tmp_path / "run", *size, "channel_order=RGB"))
    with pytest.raises(UserError, match="set cnum=32"):
        Trainer(tiny_config(tmp_path / "run", *size))      # TINY sets cnum=8
    trainer = Trainer(load_config(None, [*TINY[4:], f"run_dir={tmp_path / 'run'}", *size[2:],
                                         "image_size=64", "hole_size=32"]))
    notes = capsys.readouterr().err
    assert "record: channel_order=BGR" in notes and "critics start fresh" in notes   # from the record
    assert trainer.config.channel_order == "BGR" and trainer.dataset.channel_order == "BGR"
    assert (trainer.generator.state_dict()["coarse.body.conv1.conv.weight"].numpy()
            == official.generator["coarse.body.conv1.conv.weight"]).all()


def test_train_cli_reports_mistakes_in_one_line(tmp_path):
    for args, words in [(["--config", str(tmp_path / "none.yaml")], "config not found"),
                        (["--set", "batch_size=two"], "batch_size must be int"),
                        (["--set", "lr_rate=1"], "unknown setting 'lr_rate'"),
                        (["--set", "mask_type=strokes"], "mask_type must be one of box, free_form"),
                        (["--set", "cnum=x", "--set", "max_iters=-1"], "cnum must be int"),
                        (["--resume", "--set", f"run_dir={tmp_path}"], "no checkpoint")]:
        result = run_command("train.py", *args)
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_two_data_parallel_processes_train_like_one(tmp_path):
    """`paddle.distributed.launch` with 2 processes (CPU here, GPUs in production) splits each batch and
    averages gradients, so both processes end with identical weights, and these are what one process
    reaches with the whole batch. A large learning rate makes a run without averaging differ by ~1e-2 on
    average; with it the runs differ by ~1e-7. Holes differ per image, so each process's share has its own
    known area, and the ae loss is still normalised by the whole batch's. Only the first process writes
    anything, and unreadable files met by either process are counted once."""
    noise_pictures(tmp_path / "data", 7, broken=1)
    settings = [*TINY, "batch_size=4", "max_iters=2", "device=cpu", "lr=0.01", f"data={tmp_path / 'data'}",
                "per_image_masks=true", "mask_type=free_form"]
    single = run_command("train.py", "--set", *settings, f"run_dir={tmp_path / 'one'}")
    assert single.returncode == 0, single.stderr
    dual = run_command("-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                       str(tmp_path / "logs"), "tests/ddp_train.py", str(tmp_path / "two"), "--set", *settings)
    assert dual.returncode == 0, dual.stderr + "".join(
        open(tmp_path / "logs" / name).read() for name in os.listdir(tmp_path / "logs"))
    ranks = [np.load(tmp_path / "two" / f"weights{rank}.npz") for rank in (0, 1)]
    assert sorted(ranks[0].files) == sorted(ranks[1].files)
    assert all((ranks[0][name] == ranks[1][name]).all() for name in ranks[0].files)
    assert not (tmp_path / "two" / "rank1").exists()
    assert {"step_00000002.pdparams", LOG_NAME, "samples", "visualdl"} <= set(os.listdir(tmp_path / "two" / "rank0"))
    one, two = load_checkpoint(str(tmp_path / "one")), load_checkpoint(str(tmp_path / "two" / "rank0"))
    assert one.state["step"] == two.state["step"] == 2 and one.state["consumed"] == two.state["consumed"]
    assert list(one.state["unreadable"]) == list(two.state["unreadable"]) and len(one.state["unreadable"]) == 1
    weights_one, weights_two = ({"generator": c.generator, **c.critics} for c in (one, two))
    for part in ("generator", "critic_local", "critic_global"):
        assert all((ranks[0][f"{part}.{k}"] == v).all() for k, v in weights_two[part].items())
        difference = np.concatenate([np.abs(weights_two[part][k] - v).ravel()
                                     for k, v in weights_one[part].items()])
        assert difference.mean() < 1e-5 and np.percentile(difference, 99) < 1e-4, part


def test_places2_config_is_the_official_recipe():
    """configs/places2.yaml spells out the defaults, which are the official inpaint.yml's values."""
    loaded = load_config(os.path.join(ROOT, "configs", "places2.yaml"))
    defaults = Config()
    differing = {k for k, v in loaded.to_dict().items() if v != getattr(defaults, k)}
    assert differing <= {"data", "val_data", "num_workers", "image_fit", "val_every"}
    assert loaded.image_fit == "resize"
    assert (defaults.image_size, defaults.hole_size, defaults.max_delta, defaults.batch_size) == (256, 128, 32, 16)
    assert (defaults.lr, defaults.beta1, defaults.beta2, defaults.critic_steps) == (1e-4, 0.5, 0.9, 5)
    assert (defaults.gan_loss_alpha, defaults.l1_loss_alpha, defaults.ae_loss_alpha) == (0.001, 1.2, 1.2)
    assert (defaults.wgan_gp_lambda, defaults.discount_gamma, defaults.per_image_masks) == (10.0, 0.9, False)
    assert (defaults.mask_type, defaults.flip, defaults.pretrain_coarse) == ("box", False, False)


def test_documented_training_commands_are_valid_settings():
    """Every train.py command in the README and docs/ names a config that exists and settings that are valid."""
    commands = [c for c in documented_commands(ROOT, "python") if " train.py" in c]
    assert len(commands) >= 5
    for command in commands:
        words = shlex.split(command)
        words = words[words.index("train.py") + 1:]
        config, overrides, i = None, [], 0
        while i < len(words):
            if words[i] == "--config":
                config, i = words[i + 1], i + 2
            elif words[i] == "--set":
                i += 1
                while i < len(words) and not words[i].startswith("--"):
                    overrides.append(words[i])
                    i += 1
            else:
                assert words[i] == "--resume", command
                i += 1
        load_config(os.path.join(ROOT, config) if config else os.path.join(ROOT, "configs", "demo.yaml"), overrides)


def test_a_second_ctrl_c_inside_paddle_still_stops_at_once(tmp_path, monkeypatch, capsys):
    """A KeyboardInterrupt raised by the second Ctrl-C while Paddle's C++ runs can come out as another
    exception; it is still reported as the user's Ctrl-C."""
    def interrupted_inside_paddle(self):
        self.stop_signal, self.interrupted = signal.SIGINT, True
        raise SystemError("<class 'UnicodeDecodeError'> returned a result with an exception set")

    monkeypatch.setattr(Trainer, "iteration", interrupted_inside_paddle)
    _, code = train_and_report(tiny_config(tmp_path / "run", "max_iters=5"))
    assert code == 128 + signal.SIGINT
    assert "stopped at once by Ctrl-C, without saving" in capsys.readouterr().err
    monkeypatch.setattr(Trainer, "iteration", lambda self: (_ for _ in ()).throw(SystemError("a real bug")))
    with pytest.raises(SystemError, match="a real bug"):
        train_and_report(tiny_config(tmp_path / "other", "max_iters=5"))
