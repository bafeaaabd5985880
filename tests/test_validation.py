"""Validation during training: the same views and holes every ``val_every`` updates, measured with the
paper's metrics into train.log and VisualDL, shown as a titled grid, the best step kept as best.pdparams —
without changing what training computes (resume stays exact) and without ever ending a run."""
from __future__ import annotations

import os

import numpy as np
import pytest

from deepfill.models.checkpoint import load_checkpoint
from deepfill.tester import METRICS
from tests.test_training import logged_lines, logged_steps, noise_pictures, tiny_config
from deepfill.training.loop import train
from deepfill.training.run_log import LOG_NAME
from deepfill.training.state import BEST_NAME
from deepfill.utils.image_io import read_image


def validations(run_dir) -> dict[int, dict[str, float]]:
    """The ``val`` lines of train.log: step → metrics."""
    return {step: {key: float(value) for key, value in pairs.items()}
            for step, pairs in logged_lines(run_dir, r" val step=(\d+) (.*)").items()}


def visualdl_scalars(run_dir, tag: str) -> list[tuple[int, float]]:
    from visualdl import LogReader
    folder = os.path.join(run_dir, "visualdl")
    reader = LogReader(file_path=os.path.join(folder, os.listdir(folder)[0]))
    return [(record.id, record.value) for record in reader.get_data("scalar", tag)]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("pictures")
    noise_pictures(folder, 4)
    return str(folder)


def test_validation_logs_metrics_pictures_and_the_best_checkpoint(tmp_path, pictures):
    run = tmp_path / "run"
    trainer = train(tiny_config(run, f"data={pictures}", f"val_data={pictures}", "val_every=1", "val_count=3",
                                "max_iters=3", "save_every=2", "critic_steps=1"))
    found = validations(run)
    assert sorted(found) == [1, 2, 3]
    for values in found.values():
        assert set(METRICS) | {"views", "seconds"} == set(values) and values["views"] == 3
        assert np.isfinite(values["psnr"]) and 0 < values["l1_hole"] < 100
    assert [step for step, _ in visualdl_scalars(run, "val/psnr_hole")] == [1, 2, 3]
    for step in (1, 2, 3):
        grid = read_image(str(run / "samples" / f"val_{step:08d}.png"))
        assert grid.shape[0] > 3 * 32 and grid.shape[1] == 3 * 32      # 3 views of input | model | truth
    best_step = min(found, key=lambda step: found[step]["l1_hole"])
    best = load_checkpoint(str(run / BEST_NAME))
    assert best.state["step"] == best_step == trainer.validation.best_step
    assert best.state["validation_best"][1] == pytest.approx(found[best_step]["l1_hole"], rel=1e-12)
    saved = run / f"step_{best_step:08d}.pdparams"
    if saved.exists():                                       # validated at a saved step: a hard link to it
        assert os.path.samefile(saved, run / BEST_NAME)
    with open(run / LOG_NAME, encoding="utf-8") as handle:
        assert f"best: step {best_step} " in handle.read()


def test_validation_changes_nothing_training_computes_and_resumes_exactly(tmp_path, pictures):
    common = [f"data={pictures}", f"val_data={pictures}", "val_count=2", "critic_steps=1"]
    train(tiny_config(tmp_path / "plain", *common, "max_iters=4", "val_every=0"))
    train(tiny_config(tmp_path / "straight", *common, "max_iters=4", "val_every=1"))
    train(tiny_config(tmp_path / "resumed", *common, "max_iters=2", "val_every=1"))
    resumed = train(tiny_config(tmp_path / "resumed", *common, "max_iters=4", "val_every=1"), resume=True)
    assert logged_steps(tmp_path / "plain") == logged_steps(tmp_path / "straight") == logged_steps(tmp_path / "resumed")
    without_time = [{step: {k: v for k, v in values.items() if k != "seconds"} for step, values in
                     validations(tmp_path / run).items()} for run in ("straight", "resumed")]
    assert without_time[0] == without_time[1] and sorted(without_time[0]) == [1, 2, 3, 4]
    straight_best = load_checkpoint(str(tmp_path / "straight" / BEST_NAME)).state["step"]
    assert resumed.validation.best_step == straight_best


def test_a_validation_that_cannot_run_is_a_warning_not_the_end(tmp_path, pictures, capsys):
    broken = tmp_path / "broken"
    noise_pictures(broken, 0, broken=2)
    for val_data, words in [(str(tmp_path / "missing"), "validation off: data not found"),
                            (str(broken), "validation off: none of the 2 pictures")]:
        run = tmp_path / f"run_{os.path.basename(val_data)}"
        trainer = train(tiny_config(run, f"data={pictures}", f"val_data={val_data}", "val_every=1",
                                    "max_iters=1", "critic_steps=1"))
        assert trainer.step == 1 and words in capsys.readouterr().err
        assert not validations(run) and not (run / BEST_NAME).exists()
