"""Checkpoints are written atomically and found again: files, run folders, bare state dicts."""
from __future__ import annotations

import os

import numpy as np
import paddle
import pytest

from deepfill.models import checkpoint_file as ckpt
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models.generator import InpaintGenerator
from deepfill.models.spec import ModelSpec
from deepfill.utils.cli import UserError
from deepfill.utils.files import WriteError


@pytest.fixture(scope="module")
def generator_state() -> dict[str, np.ndarray]:
    paddle.seed(0)
    return {k: v.numpy() for k, v in InpaintGenerator().state_dict().items()}


def test_save_then_load_round_trips(tmp_path, generator_state):
    path = str(tmp_path / "model.pdparams")
    spec = ModelSpec(channel_order="RGB", image_size=64, hole_size=32, source="test")
    ckpt.save_checkpoint(path, spec, {"generator": generator_state})
    loaded = load_checkpoint(path)
    assert paddle.load(path)["format"] == ckpt.FORMAT and loaded.spec == spec
    restored = loaded.build_generator().state_dict()
    assert all((restored[k].numpy() == v).all() for k, v in generator_state.items())
    assert os.listdir(tmp_path) == ["model.pdparams"]


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, generator_state, monkeypatch):
    path = str(tmp_path / "model.pdparams")
    ckpt.save_checkpoint(path, ModelSpec(), {"generator": generator_state})
    before = open(path, "rb").read()

    def crash(obj, target):
        with open(target, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(paddle, "save", crash)
    with pytest.raises(WriteError, match="cannot write .*model.pdparams: disk full"):
        ckpt.save_checkpoint(path, ModelSpec(), {"generator": generator_state})
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["model.pdparams"]


def test_a_run_folder_loads_its_latest_step(tmp_path, generator_state):
    for step in (900, 10000, 5000):
        ckpt.save_checkpoint(str(tmp_path / ckpt.checkpoint_name(step)), ModelSpec(),
                             {"generator": generator_state}, {"step": step})
    assert load_checkpoint(str(tmp_path)).state["step"] == 10000
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(UserError, match="no checkpoint"):
        load_checkpoint(str(tmp_path / "empty_run"))


def test_a_bare_generator_state_dict_is_accepted(tmp_path, generator_state):
    path = str(tmp_path / "bare.pdparams")
    paddle.save(generator_state, path)
    assert load_checkpoint(path).spec.channel_order == "RGB"


def test_a_wrongly_shaped_generator_is_refused(tmp_path, generator_state):
    state = dict(generator_state)
    state["coarse.body.conv1.conv.weight"] = np.zeros((16, 5, 5, 5), np.float32)
    path = str(tmp_path / "bad.pdparams")
    ckpt.save_checkpoint(path, ModelSpec(), {"generator": state})
    with pytest.raises(UserError, match="conv1.conv.weight has shape"):
        load_checkpoint(path)
