"""tester.py's metrics and test.py's report; the demo commands of the README end to end."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from tester import METRICS, average, image_metrics, total_variation
from tests.conftest import assert_refused, run_command


def test_metrics_have_the_spec_definitions():
    truth = np.zeros((8, 8, 3))
    output = truth.copy()
    hole = np.zeros((8, 8), bool)
    hole[2:6, 2:6] = True
    output[hole] = 0.5
    metrics = image_metrics(output, truth, hole)
    assert metrics["l1"] == pytest.approx(0.5 * 16 / 64 * 100)
    assert metrics["l2"] == pytest.approx(0.25 * 16 / 64 * 100)
    assert metrics["psnr"] == pytest.approx(10 * math.log10(1 / (0.25 * 16 / 64)))
    assert metrics["l1_hole"] == pytest.approx(50) and metrics["l2_hole"] == pytest.approx(25)
    assert metrics["psnr_hole"] == pytest.approx(10 * math.log10(1 / 0.25))
    assert set(metrics) == set(METRICS)


def test_total_variation_counts_both_directions():
    stripes = np.zeros((4, 4, 1))
    stripes[:, 1::2] = 1.0                   # every horizontal step changes by 1, vertical by 0
    assert total_variation(stripes) == pytest.approx(100.0)
    assert total_variation(np.ones((4, 4, 3))) == 0.0
    region = np.zeros((4, 4), bool)
    region[0, 0] = True
    assert total_variation(stripes, region) == pytest.approx(100.0)


def test_average_leaves_out_infinite_psnr():
    assert average([{"psnr": math.inf}, {"psnr": 20.0}, {"psnr": 30.0}])["psnr"] == 25.0


def test_test_py_report_has_the_contracted_keys(golden_checkpoint, tmp_path):
    report, pictures = str(tmp_path / "report.json"), str(tmp_path / "pictures")
    result = run_command("test.py", "--checkpoint", golden_checkpoint, "--data", "demo", "--report", report,
                         "--save-dir", pictures, "--set", "val_count=3")
    assert result.returncode == 0, result.stderr
    data = json.loads(open(report).read())
    assert data["count"] == 3 and isinstance(data["gt_tv"], float)
    assert set(data["model"]) == set(METRICS)
    assert set(data["baselines"]) == {"patchmatch", "opencv_telea"}
    assert all(set(values) == set(METRICS) for values in data["baselines"].values())
    assert data["baselines"]["patchmatch"]["l1"] < data["baselines"]["patchmatch"]["l1_hole"]
    assert len(os.listdir(pictures)) == 3
    assert "deepfill (ours)" in result.stdout
    result = run_command("test.py", "--checkpoint", golden_checkpoint, "--report", report,
                         "--set", "val_count=1", "baselines=opencv_telea")
    assert result.returncode == 0, result.stderr
    assert list(json.loads(open(report).read())["baselines"]) == ["opencv_telea"]


def test_test_py_refuses_mistakes(tmp_path):
    report = str(tmp_path / "report.json")
    result = run_command("test.py", "--set", f"run_dir={tmp_path / 'nothing'}", "--report", report)
    assert_refused(result, report, "checkpoint not found", "python train.py")
    (tmp_path / "empty").mkdir()
    result = run_command("test.py", "--checkpoint", str(tmp_path / "empty"), "--report", report)
    assert_refused(result, report, "no checkpoint")
    result = run_command("test.py", "--set", "baselines=patchmatch,photoshop", "--report", report)
    assert_refused(result, report, "unknown baseline 'photoshop'")


def test_demo_train_then_demo_test(tmp_path):
    """The README's first commands, shortened: `python train.py`, then `python test.py` on its run."""
    run_dir = str(tmp_path / "demo")
    result = run_command("train.py", "--set", f"run_dir={run_dir}", "max_iters=2", "save_every=1")
    assert result.returncode == 0, result.stderr
    assert sorted(n for n in os.listdir(run_dir) if n.endswith(".pdparams")) == [
        "step_00000001.pdparams", "step_00000002.pdparams"]
    result = run_command("test.py", "--set", f"run_dir={run_dir}", "val_count=2")
    assert result.returncode == 0, result.stderr
    assert "step_00000002.pdparams" in result.stdout
