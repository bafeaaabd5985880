"""The demo recipe learns to inpaint: a small version of it (the same pictures, windows at their own
resolution, the reconstruction phase before Algorithm 1, settings from configs/demo.yaml) trained here for
a bounded number of updates beats filling the hole with the mean colour, clearly, on windows of the
held-out pictures — where the same network untrained does not."""
from __future__ import annotations

import dataclasses
import importlib.util
import os

from models.checkpoint import load_checkpoint
from tests.conftest import ROOT
from training.loop import train
from utils.config import load_config

DEMO = os.path.join(ROOT, "configs", "demo.yaml")
# Half the demo's geometry and width so that it trains in about a minute on one core; the rest (pictures,
# lr, batch, holes, the reconstruction phase followed by Algorithm 1) is the demo's own.
SMALL = ["image_size=32", "hole_size=16", "max_delta=4", "cnum=8", "max_iters=400", "reconstruction_iters=390",
         "log_every=50", "sample_every=400", "save_every=400", "keep_checkpoints=0"]
MARGIN = 0.85       # the model's hole L1 must be below 85% of mean fill's


def evaluation_module():
    spec = importlib.util.spec_from_file_location("evaluation_cli", os.path.join(ROOT, "test.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hole_l1(cli, config, checkpoint) -> tuple[float, float]:
    """Hole L1 (%) of the model and of mean fill on windows of the held-out pictures."""
    config = dataclasses.replace(config, val_windows=4)
    paths = cli.list_sources(config.val_data)
    holes, _ = cli.hole_source(config, len(paths) * config.val_windows)
    report = cli.evaluate(config, checkpoint, paths, holes, ["mean_fill"])
    return report["model"]["l1_hole"], report["baselines"]["mean_fill"]["l1_hole"]


def test_a_short_demo_run_beats_mean_fill_clearly(tmp_path):
    config = load_config(None, [*SMALL, f"run_dir={tmp_path / 'run'}"], DEMO)
    trainer = train(config)
    assert trainer.step == config.max_iters
    cli = evaluation_module()
    model, mean_fill = hole_l1(cli, config, load_checkpoint(str(tmp_path / "run")))
    assert model < MARGIN * mean_fill, f"model {model:.2f}% vs mean fill {mean_fill:.2f}%"

    untrained = load_config(None, [*SMALL, "max_iters=1", f"run_dir={tmp_path / 'untrained'}"], DEMO)
    train(untrained)
    model, mean_fill = hole_l1(cli, untrained, load_checkpoint(str(tmp_path / "untrained")))
    assert model > MARGIN * mean_fill, "the check cannot tell an untrained network from a trained one"
