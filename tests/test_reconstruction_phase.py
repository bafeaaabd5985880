"""The reconstruction phase (``reconstruction_iters``): the first N generator updates train both stages on
l1 + ae alone without touching the critics, then Algorithm 1 runs unchanged; the run's log says when."""
from __future__ import annotations

import os

import numpy as np
import paddle
import pytest

from deepfill.training.loop import train
from deepfill.training.run_log import LOG_NAME
from deepfill.training.trainer import Trainer
from deepfill.utils.cli import UserError
from deepfill.utils.config import load_config

TINY = ["image_size=32", "hole_size=16", "max_delta=4", "cnum=8", "batch_size=2", "critic_steps=2",
        "num_workers=0", "log_every=1", "sample_every=100", "save_every=100", "keep_checkpoints=0"]


def snapshot(model: paddle.nn.Layer) -> list[np.ndarray]:
    return [p.numpy().copy() for p in model.parameters()]


def unchanged(model: paddle.nn.Layer, before: list[np.ndarray]) -> bool:
    return all((p.numpy() == b).all() for p, b in zip(model.parameters(), before))


def test_reconstruction_updates_train_both_stages_then_algorithm_1_follows(tmp_path):
    trainer = Trainer(load_config(None, [*TINY, "reconstruction_iters=2", f"run_dir={tmp_path / 'run'}"]))
    critics = snapshot(trainer.local_critic) + snapshot(trainer.global_critic)
    for step in (1, 2):
        coarse, refine = snapshot(trainer.generator.coarse), snapshot(trainer.generator.refine)
        scalars, _, _ = trainer.iteration()
        assert set(scalars) == {"l1_loss", "ae_loss", "total_g_loss"} and trainer.consumed == step
        assert scalars["total_g_loss"] == pytest.approx(1.2 * scalars["l1_loss"] + 1.2 * scalars["ae_loss"])
        assert not unchanged(trainer.generator.coarse, coarse) and not unchanged(trainer.generator.refine, refine)
        assert unchanged(trainer.local_critic, critics[:10]) and unchanged(trainer.global_critic, critics[10:])
    scalars, _, _ = trainer.iteration()                   # update 3: Algorithm 1, two critic updates first
    assert trainer.consumed == 2 + 2 + 1 and {"g_loss", "d_loss", "gp_loss"} <= set(scalars)
    assert not unchanged(trainer.local_critic, critics[:10])


def test_the_log_marks_the_end_of_the_reconstruction_phase(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(load_config(None, [*TINY, "reconstruction_iters=1", "max_iters=2", f"run_dir={run_dir}"]))
    with open(os.path.join(run_dir, LOG_NAME), encoding="utf-8") as handle:
        log = handle.read()
    assert "step 1: reconstruction_iters done; Algorithm 1" in log
    assert "reconstruction_iters done" in capsys.readouterr().err
    assert " g_loss=" not in log.split("step 1:")[1].split("\n")[0] and " g_loss=" in log.split("step 2:")[1]


def test_a_negative_reconstruction_phase_is_refused():
    with pytest.raises(UserError, match="reconstruction_iters must be 0 or more"):
        load_config(None, ["reconstruction_iters=-1"])
