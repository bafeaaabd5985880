"""The documented fine-tuning command starts from a converted official release exactly as written: the run
takes the channel order and width from the checkpoint's record because the shipped configs do not set them,
keeps the critics when they fit and starts them fresh when the release holds none."""
from __future__ import annotations

import glob
import os
import re
import shlex
import shutil

import cv2
import numpy as np
import pytest
import yaml

from deepfill.models.checkpoint import load_checkpoint
from deepfill.models.checkpoint_file import save_checkpoint
from deepfill.models.pretrained import sha256_of
from tests.conftest import ROOT, run_command
from deepfill.training.state import RECORDED_SETTINGS

SHORT_RUN = ["max_iters=1", "batch_size=1", "critic_steps=1", "num_workers=0", "log_every=1", "save_every=1",
             "sample_every=1"]
"""Appended to the documented command so that it finishes in seconds on a CPU."""


def documented_fine_tune_command() -> list[str]:
    """The fine-tuning command of README.md / docs/*.md (the one that starts from ``places2`` by name)."""
    pages = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
    found = set()
    for page in pages:
        with open(page, encoding="utf-8") as handle:
            for block in re.findall(r"```bash\n(.*?)```", handle.read(), re.DOTALL):
                found |= {line for line in block.splitlines()
                          if line.startswith("python train.py") and "init_checkpoint=places2" in line}
    assert len(found) == 1, found
    return shlex.split(found.pop())


def put_in_cache(home: str, name: str, weights: dict, spec) -> None:
    """A cache entry as ``tools/download_pretrained.py`` leaves it: the file and its checksum."""
    os.makedirs(home, exist_ok=True)
    path = os.path.join(home, f"{name}.pdparams")
    save_checkpoint(path, spec, weights)
    with open(os.path.join(home, f"{name}.sha256"), "w", encoding="ascii") as handle:
        handle.write(f"{sha256_of(path)}  {name}.pdparams\n")


@pytest.fixture()
def pictures(tmp_path) -> str:
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    return str(folder)


def run_documented(tmp_path, pictures: str, home: str, *extra: str):
    command = documented_fine_tune_command()
    assert command[:4] == ["python", "train.py", "--config", "configs/places2.yaml"]
    settings = [f"data={pictures}" if s.startswith("data=") else f"run_dir={tmp_path / 'run'}"
                if s.startswith("run_dir=") else s for s in command[command.index("--set") + 1:]]
    env = {"DEEPFILL_HOME": home}
    return run_command(*command[1:command.index("--set")], "--set", *settings, *SHORT_RUN, *extra, env=env)


def test_shipped_configs_leave_the_recorded_settings_to_the_checkpoint():
    for path in glob.glob(os.path.join(ROOT, "configs", "*.yaml")):
        if os.path.basename(path) == "demo.yaml":      # the demo defines its own small model
            continue
        with open(path, encoding="utf-8") as handle:
            # ``version`` stays: a config is the recipe of one model generation (v1 or v2)
            assert not set(yaml.safe_load(handle)) & (set(RECORDED_SETTINGS) - {"version"}), path


def test_documented_command_fine_tunes_a_release_with_its_critics(tmp_path, pictures, golden_checkpoint):
    official = load_checkpoint(golden_checkpoint)
    home = str(tmp_path / "cache")
    put_in_cache(home, "places2", {"generator": official.generator, **official.critics}, official.spec)
    size = official.spec        # the golden graph's critics take 128-pixel images and 64-pixel holes
    result = run_documented(tmp_path, pictures, home, f"image_size={size.image_size}",
                            f"hole_size={size.hole_size}", "max_delta=16")
    assert result.returncode == 0, result.stderr
    assert "from the checkpoint's record: channel_order=BGR" in result.stderr
    assert "generator and critics start from" in result.stderr
    trained = load_checkpoint(str(tmp_path / "run"))
    assert trained.spec.channel_order == "BGR" and trained.state["step"] == 1


def test_documented_command_fine_tunes_a_generator_only_release(tmp_path, pictures, golden_checkpoint):
    official = load_checkpoint(golden_checkpoint)
    home = str(tmp_path / "cache")
    put_in_cache(home, "places2", {"generator": official.generator}, official.spec)
    result = run_documented(tmp_path, pictures, home)
    assert result.returncode == 0, result.stderr
    assert "holds no critics, they start fresh" in result.stderr
    assert load_checkpoint(str(tmp_path / "run")).spec.channel_order == "BGR"
    shutil.rmtree(tmp_path / "run")
    refused = run_documented(tmp_path, pictures, home, "channel_order=RGB")
    assert refused.returncode == 2 and "set channel_order=BGR" in refused.stderr
