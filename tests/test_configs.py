"""Every shipped config loads and starts a run: the paper's datasets (Places2, CelebA, CelebA-HQ, ImageNet)
with the official settings, and DeepFill v2's (Places2, CelebA-HQ), each pointed at a folder of pictures of
the shapes that dataset has."""
from __future__ import annotations

import glob
import os

import cv2
import numpy as np
import pytest

from deepfill.models.checkpoint import load_checkpoint
from deepfill.training.loop import train
from deepfill.utils.config import load_config

from tests.conftest import ROOT

SHAPES = {"places2": (256, 256), "places2_hr": (512, 683), "celeba": (218, 178), "celebahq": (1024, 1024),
          "imagenet": (375, 500), "places2_v2": (512, 683), "celebahq_v2": (1024, 1024)}
"""(height, width) of a typical picture of each dataset: the official loaders crop or resize from these."""
SHORT_RUN = ["max_iters=1", "batch_size=1", "critic_steps=1", "num_workers=0", "save_every=1", "sample_every=1"]


def shipped_configs() -> list[str]:
    return sorted(os.path.splitext(os.path.basename(path))[0]
                  for path in glob.glob(os.path.join(ROOT, "configs", "*.yaml")))


def test_every_dataset_of_the_paper_has_a_config():
    assert set(SHAPES) | {"demo"} == set(shipped_configs())


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_config_starts_a_run(name, tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.jpg"), rng.integers(0, 256, (*SHAPES[name], 3), dtype=np.uint8))
    path = os.path.join(ROOT, "configs", f"{name}.yaml")
    config = load_config(path, [f"data={folder}", f"val_data={folder}", f"run_dir={tmp_path / 'run'}",
                                *SHORT_RUN])
    assert config.image_size == 256 and config.hole_size == 128 and config.critic_steps == 1
    assert config.version == (2 if name.endswith("_v2") else 1)
    trainer = train(config)
    assert trainer.step == 1
    assert load_checkpoint(str(tmp_path / "run")).spec.image_size == 256
