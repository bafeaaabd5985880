"""tester.py's metrics and baselines on hand-computed cases; the evaluation library's report, holes, views,
pictures and refusals, in memory and over files; test.py's command line and the demo commands of the
README end to end."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

from deepfill import tester
from deepfill.tester import METRICS, average, image_metrics, total_variation
from deepfill.data.dataset import list_sources
from deepfill.data.masks import random_masks
from deepfill.evaluation import (View, box_hole, center_hole, check_readable, check_stems, evaluate, evaluate_pictures,
                                 evaluation_geometry, hole_source, load_views, read_views)
from deepfill.inpainting.filler import Filler
from tests.conftest import ROOT, assert_refused, run_command
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models.checkpoint_file import save_checkpoint
from deepfill.models.generator import InpaintGenerator
from deepfill.models.spec import ModelSpec
from deepfill.utils.cli import UserError
from deepfill.utils.config import Config, load_config

SMALL = ("--set", "image_size=64", "hole_size=32", "max_delta=8", "val_windows=1")
NAMES = ("a_astronaut", "b_coffee", "c_camera")      # readable, in list order; d_broken.png is not
DEMO = os.path.join(ROOT, "configs", "demo.yaml")


def small_config(*settings: str) -> Config:
    """The demo's settings at the workspace's geometry (as ``SMALL`` sets them on the command line)."""
    return load_config(None, [*SMALL[1:], *settings], DEMO)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, str]:
    """A tiny random-init checkpoint, three pictures of different sizes and layouts plus a broken one, and
    four masks (one quadrant each, at half the evaluation size)."""
    from skimage import data
    root = tmp_path_factory.mktemp("evaluation")
    paddle.seed(0)
    checkpoint = str(root / "tiny.pdparams")
    save_checkpoint(checkpoint, ModelSpec(cnum=8, image_size=64, hole_size=32, source="test"),
                    {"generator": {k: v.numpy() for k, v in InpaintGenerator(8).state_dict().items()}})
    images = root / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a_astronaut.png"), cv2.resize(data.astronaut()[:, :, ::-1], (96, 80)))
    cv2.imwrite(str(images / "b_coffee.jpg"), cv2.resize(data.coffee()[:, :, ::-1], (70, 100)))
    cv2.imwrite(str(images / "c_camera.png"), cv2.resize(data.camera(), (64, 64)))
    (images / "d_broken.png").write_bytes(b"not a picture")
    masks = root / "masks"
    masks.mkdir()
    for index, (top, left) in enumerate([(0, 0), (0, 16), (16, 0), (16, 16)]):
        mask = np.zeros((32, 32), np.uint8)
        mask[top:top + 16, left:left + 16] = 255
        cv2.imwrite(str(masks / f"mask_{index}.png"), mask)
    return {"root": str(root), "checkpoint": checkpoint, "images": str(images), "masks": str(masks)}


def evaluate_folder(workspace: dict[str, str], config: Config, baselines: list[str],
                    save_dir: str | None = None):
    """The library's evaluation of the workspace's pictures, as test.py runs it (without its checks)."""
    checkpoint = load_checkpoint(workspace["checkpoint"])
    config = evaluation_geometry(config, checkpoint.spec)
    paths = list_sources(workspace["images"])
    holes, _ = hole_source(config, len(paths) * config.val_windows)
    return evaluate_pictures(Filler.from_checkpoint(checkpoint), paths, config, holes, baselines, save_dir,
                             progress=False)


def evaluate_command(workspace: dict[str, str], *args: str, env: dict[str, str] | None = None):
    command = [sys.executable, "test.py", "--checkpoint", workspace["checkpoint"], "--data", workspace["images"],
               *args, *SMALL]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def strict_json(path: str) -> dict:
    """Parse a report, refusing NaN/Infinity (not JSON)."""
    with open(path, encoding="utf-8") as handle:
        return json.loads(handle.read(), parse_constant=lambda name: pytest.fail(f"{name} in {path}"))


def rgb(path: str) -> np.ndarray:
    return cv2.imread(path)[:, :, ::-1]


def strip(path: str, size: int = 64) -> np.ndarray:
    """An evaluation strip without its header row of titles."""
    return rgb(path)[-size:]


# --- metrics -------------------------------------------------------------------------------------------

def hole_8x8() -> np.ndarray:
    hole = np.zeros((8, 8), bool)
    hole[2:6, 2:6] = True
    return hole


def test_metrics_of_an_error_inside_the_hole_only():
    truth = np.zeros((8, 8, 3))
    output = truth.copy()
    hole = hole_8x8()
    output[hole] = 0.5
    metrics = image_metrics(output, truth, hole)
    assert metrics["l1"] == pytest.approx(0.5 * 16 / 64 * 100)
    assert metrics["l2"] == pytest.approx(0.25 * 16 / 64 * 100)
    assert metrics["psnr"] == pytest.approx(10 * math.log10(1 / (0.25 * 16 / 64)))
    assert metrics["l1_hole"] == pytest.approx(50) and metrics["l2_hole"] == pytest.approx(25)
    assert metrics["psnr_hole"] == pytest.approx(10 * math.log10(1 / 0.25))
    assert set(metrics) == set(METRICS)


def test_metrics_of_identical_images():
    truth = np.random.default_rng(0).random((16, 12, 3))
    hole = np.zeros((16, 12), bool)
    hole[4:10, 3:9] = True
    metrics = image_metrics(truth.copy(), truth, hole)
    assert metrics["l1"] == metrics["l2"] == metrics["l1_hole"] == metrics["l2_hole"] == 0.0
    assert metrics["psnr"] == metrics["psnr_hole"] == math.inf
    assert metrics["ssim"] == pytest.approx(1.0) and metrics["ssim_hole"] == pytest.approx(1.0)
    assert metrics["tv"] == total_variation(truth) and metrics["tv_hole"] == total_variation(truth, hole)


def test_metrics_of_a_constant_shift():
    truth = 0.2 + 0.6 * np.random.default_rng(1).random((20, 20, 3))
    hole = np.zeros((20, 20), bool)
    hole[5:15, 5:15] = True
    metrics = image_metrics(truth + 0.1, truth, hole)
    for suffix in ("", "_hole"):
        assert metrics["l1" + suffix] == pytest.approx(10.0)
        assert metrics["l2" + suffix] == pytest.approx(1.0)
        assert metrics["psnr" + suffix] == pytest.approx(20.0)
    assert metrics["tv"] == pytest.approx(total_variation(truth))
    assert metrics["tv_hole"] == pytest.approx(total_variation(truth, hole))
    assert 0.9 < metrics["ssim"] < 1.0


def test_total_variation_counts_both_directions():
    stripes = np.zeros((4, 4, 1))
    stripes[:, 1::2] = 1.0                   # every horizontal step changes by 1, vertical by 0
    assert total_variation(stripes) == pytest.approx(100.0)
    assert total_variation(np.ones((4, 4, 3))) == 0.0
    ramp = np.arange(5.0)[:, None, None] * np.ones((5, 5, 1)) / 10     # down steps of 0.1, no right steps
    assert total_variation(ramp) == pytest.approx(10.0)
    region = np.zeros((4, 4), bool)
    region[0, 0] = True
    assert total_variation(stripes, region) == pytest.approx(100.0)
    region[0, :2] = True
    assert total_variation(stripes, region) == pytest.approx(100.0)


def test_metrics_work_for_any_size():
    rng = np.random.default_rng(2)
    for height, width in [(5, 9), (300, 7), (2, 2), (1, 40)]:
        truth = rng.random((height, width, 3))
        hole = np.zeros((height, width), bool)
        hole[0, 0] = True
        metrics = image_metrics(truth * 0.5, truth, hole)
        assert math.isfinite(metrics["l1"]) and math.isfinite(metrics["psnr_hole"])
        assert math.isfinite(metrics["ssim"]) == (min(height, width) >= 3)
    empty = image_metrics(truth, truth, np.zeros(truth.shape[:2], bool))
    assert all(math.isnan(empty[key]) for key in METRICS if key.endswith("_hole"))


def test_average_leaves_out_perfect_psnr_and_undefined_values():
    assert average([{"psnr": math.inf}, {"psnr": 20.0}, {"psnr": 30.0}])["psnr"] == 25.0
    assert average([{"psnr": math.inf}, {"psnr": math.nan}])["psnr"] == math.inf
    assert math.isnan(average([{"ssim": math.nan}])["ssim"])
    assert average([{"l1": 1.0}, {"l1": math.nan}, {"l1": 3.0}])["l1"] == 2.0


# --- baselines -----------------------------------------------------------------------------------------

def test_baselines_fill_only_the_hole_from_its_surroundings():
    """With the hole painted white (as test.py does) in a one-colour picture, every baseline must bring the
    colour back and keep the rest: this fails if a baseline read the mask inverted or used the hole."""
    image = np.zeros((48, 40, 3), np.uint8)
    image[:] = (200, 30, 60)
    hole = np.zeros((48, 40), bool)
    hole[16:32, 8:30] = True
    given = image.copy()
    given[hole] = 255
    for name in tester.BASELINES:
        result = tester.run_baseline(name, given, hole)
        assert result.dtype == np.uint8 and result.shape == image.shape, name
        assert np.array_equal(result[~hole], given[~hole]), name
        assert np.abs(result[hole].astype(int) - image[hole]).max() <= 4, name
    two_colours = image.copy()
    two_colours[:, 20:] = (20, 90, 220)
    assert np.all(tester.mean_fill(two_colours, hole)[hole] == np.round(two_colours[~hole].mean(axis=0)))


def test_patchmatch_is_blind_to_channel_order():
    image = cv2.resize(np.random.default_rng(3).integers(0, 255, (8, 8, 3), dtype=np.uint8), (40, 40))
    hole = np.zeros((40, 40), bool)
    hole[10:25, 12:30] = True
    swapped = tester.patchmatch(np.ascontiguousarray(image[:, :, ::-1]), hole)[:, :, ::-1]
    assert np.array_equal(tester.patchmatch(image, hole), swapped)


def test_unavailable_baselines_say_why(monkeypatch):
    assert tester.baseline_unavailable("biharmonic", tester.BIHARMONIC_MAX_HOLE) is None
    assert "exceed its limit" in tester.baseline_unavailable("biharmonic", tester.BIHARMONIC_MAX_HOLE + 1)
    monkeypatch.setitem(sys.modules, "patchmatch_cython", None)
    assert "pip install patchmatch-cython" in tester.baseline_unavailable("patchmatch", 100)


# --- test.py -------------------------------------------------------------------------------------------

def test_two_runs_give_the_same_report_and_pictures_are_saved(workspace):
    first, second = (os.path.join(workspace["root"], name) for name in ("first.json", "second.json"))
    pictures = os.path.join(workspace["root"], "pictures")
    result = evaluate_command(workspace, "--report", first, "--save-dir", pictures)
    assert result.returncode == 0, result.stderr
    assert evaluate_command(workspace, "--report", second).returncode == 0
    with open(first, "rb") as one, open(second, "rb") as two:
        assert one.read() == two.read()
    report = strict_json(first)
    assert report["count"] == 3 and report["skipped"]["count"] == 1
    assert report["skipped"]["paths"][0].endswith("d_broken.png") and "d_broken.png" in result.stderr
    assert set(report["model"]) == set(METRICS) and isinstance(report["gt_tv"], float)
    assert list(report["baselines"]) == list(tester.BASELINES) and report["baselines_skipped"] == {}
    assert all(set(values) == set(METRICS) for values in report["baselines"].values())
    assert report["baselines"]["mean_fill"]["l1"] < report["baselines"]["mean_fill"]["l1_hole"]
    for row in ("deepfill v1", *tester.BASELINES, "ground truth"):
        assert row in result.stdout
    methods = ["model", *tester.BASELINES]
    assert sorted(os.listdir(pictures)) == sorted(["grid", "grids.png", *methods])
    for folder in ["grid", *methods]:
        assert sorted(os.listdir(os.path.join(pictures, folder))) == [f"{name}.png" for name in NAMES]
    titled = rgb(os.path.join(pictures, "grid", "a_astronaut.png"))
    assert titled.shape[0] > 64 and titled.shape[1:] == (64 * (len(methods) + 2), 3)
    header = titled[:titled.shape[0] - 64]
    assert header.max() == 255 and header.min() < 128               # titles: dark text on white
    grid = titled[-64:]
    sheet = rgb(os.path.join(pictures, "grids.png"))
    assert np.array_equal(sheet[-3 * 64:], np.concatenate(
        [strip(os.path.join(pictures, "grid", f"{name}.png")) for name in NAMES]))
    given, truth = grid[:, :64], grid[:, -64:]
    hole = box_hole(load_config(DEMO, SMALL[1:]), 0)
    model = rgb(os.path.join(pictures, "model", "a_astronaut.png"))
    assert np.all(given[hole] == 255) and np.array_equal(given[~hole], truth[~hole])
    assert np.array_equal(model[~hole], truth[~hole]) and not np.array_equal(model, truth)
    assert np.array_equal(grid[:, 64:128], model)


def window_positions(picture: np.ndarray, views: list[np.ndarray]) -> list[tuple[int, int]]:
    """Where each view sits in ``picture`` (top, left), by exhaustive search; fails if one is not a window."""
    size, found = views[0].shape[0], []
    for view in views:
        places = [(top, left) for top in range(picture.shape[0] - size + 1)
                  for left in range(picture.shape[1] - size + 1)
                  if np.array_equal(picture[top:top + size, left:left + size], view)]
        assert places, "a view is not a window of the picture"
        found.append(places[0])
    return found


def test_several_windows_per_picture_at_seeded_positions(workspace, tmp_path):
    """val_windows=N evaluates N windows of each picture, cut at its own resolution at positions drawn from
    the seed (not only the centre), each with its own hole; the same settings give the same report."""
    config = small_config("val_windows=3")
    pictures = str(tmp_path / "pictures")
    first = evaluate_folder(workspace, config, ["mean_fill"], pictures)
    assert "9 windows of 3 pictures" in first.summary()
    second = evaluate_folder(workspace, config, ["mean_fill"])
    assert json.dumps(first.to_dict()) == json.dumps(second.to_dict())
    report = first.to_dict()
    assert (report["count"], report["pictures"], report["windows"]) == (9, 3, 3)
    stems = [f"{name}_window{k}" for name in NAMES for k in range(3)]
    assert sorted(os.listdir(os.path.join(pictures, "grid"))) == sorted(f"{stem}.png" for stem in stems)
    strips = [strip(os.path.join(pictures, "grid", f"a_astronaut_window{k}.png")) for k in range(3)]
    picture = rgb(os.path.join(workspace["images"], "a_astronaut.png"))          # 80 x 96
    positions = window_positions(picture, [s[:, -64:] for s in strips])
    assert len(set(positions)) == 3 and (8, 16) not in positions                   # (8, 16): the centre
    holes = [np.all(s[:, :64] == 255, axis=2) & ~np.all(s[:, -64:] == 255, axis=2) for s in strips]
    assert not np.array_equal(holes[0], holes[1])


def test_evaluate_views_in_memory_gives_the_metrics_and_the_sheet_without_writing(tmp_path, monkeypatch):
    """What validation during training calls: an Filler over a generator in memory, views already
    loaded, a hole each. The report's numbers are tester's metrics of the completions (recomputed here),
    its dictionary has the JSON report's keys, its sheet holds [input | model | baselines | truth] per view
    under one header, and nothing is written."""
    from skimage import data
    paddle.seed(1)
    inpainter = Filler(InpaintGenerator(8), training_size=64)
    pictures = [cv2.resize(data.astronaut(), (64, 64)), cv2.resize(data.coffee(), (64, 64))]
    views = [View(f"view{index}", picture, index) for index, picture in enumerate(pictures)]
    holes = [center_hole(64, 32), box_hole(small_config(), 1)]
    monkeypatch.chdir(tmp_path)
    report = evaluate(inpainter, views, holes, baselines=["mean_fill", "opencv_telea"], progress=False)
    assert os.listdir(tmp_path) == []
    content = report.to_dict()
    assert list(content) == ["model", "baselines", "gt_tv", "gt_tv_hole", "count", "pictures", "windows", "skipped"]
    assert (content["count"], content["pictures"], content["windows"]) == (2, 2, 1)
    assert content["skipped"] == {"count": 0, "paths": []} and list(content["baselines"]) == ["mean_fill",
                                                                                               "opencv_telea"]
    givens = [np.where(hole[:, :, None], np.uint8(255), picture) for picture, hole in zip(pictures, holes)]
    completions = {"model": [inpainter(given, hole)[0] for given, hole in zip(givens, holes)],
                   "opencv_telea": [tester.run_baseline("opencv_telea", given, hole)
                                    for given, hole in zip(givens, holes)]}
    for method, values in [("model", report.model), ("opencv_telea", report.baselines["opencv_telea"])]:
        expected = average([image_metrics(output / 255, picture / 255, hole)
                            for output, picture, hole in zip(completions[method], pictures, holes)])
        assert set(values) == set(METRICS)
        for key in METRICS:
            assert values[key] == pytest.approx(expected[key]), (method, key)
    assert report.gt_tv == pytest.approx(np.mean([total_variation(picture / 255) for picture in pictures]))
    assert report.gt_tv_hole == pytest.approx(np.mean([total_variation(picture / 255, hole)
                                                       for picture, hole in zip(pictures, holes)]))
    sheet = report.sheet()
    assert sheet.dtype == np.uint8 and sheet.shape[1:] == (64 * 5, 3) and sheet.shape[0] > 2 * 64
    header, rows = sheet[:-2 * 64], sheet[-2 * 64:]
    assert header.max() == 255 and header.min() < 128
    for index in range(2):
        row = rows[64 * index:64 * (index + 1)]
        assert np.array_equal(row[:, :64], givens[index]) and np.array_equal(row[:, -64:], pictures[index])
        assert np.array_equal(row[:, 64:128], completions["model"][index])
        assert np.array_equal(row[:, 192:256], completions["opencv_telea"][index])
    one_row = evaluate(inpainter, views, holes, progress=False, sheet_rows=1).sheet()
    assert one_row.shape[1:] == (64 * 3, 3) and one_row.shape[0] == sheet.shape[0] - 64
    with pytest.raises(ValueError, match="2 views but 1 holes"):
        evaluate(inpainter, views, holes[:1], progress=False)


def test_read_views_keeps_each_readable_pictures_views_at_their_places(workspace):
    """Views read once for repeated validation: every window of the readable pictures, named as test.py
    names their files, placed as test.py places them (so each gets test.py's hole); the unreadable listed."""
    paths = list_sources(workspace["images"])
    config = small_config("val_windows=2")
    views, skipped = read_views(paths, config)
    assert [view.name for view in views] == [f"{name}_window{k}" for name in NAMES for k in range(2)]
    assert [view.index for view in views] == list(range(6)) and len(skipped) == 1
    assert skipped[0].endswith("d_broken.png")
    assert all(view.image.shape == (64, 64, 3) and view.image.dtype == np.uint8 for view in views)
    assert np.array_equal(views[3].image, load_views(paths[1], 1, config)[1])


def test_center_holes_limit_and_a_missing_patchmatch(workspace, tmp_path):
    """--mask center puts the hole in the middle, --limit takes the first images, and without
    patchmatch-cython that baseline is left out with a note instead of failing the run."""
    shim = tmp_path / "shim" / "patchmatch_cython"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('simulated absence')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "shim")}
    report, pictures = str(tmp_path / "report.json"), str(tmp_path / "pictures")
    result = evaluate_command(workspace, "--mask", "center", "--limit", "2", "--baselines",
                              "patchmatch,mean_fill", "--report", report, "--save-dir", pictures, env=env)
    assert result.returncode == 0, result.stderr
    assert "baseline patchmatch skipped" in result.stderr and "simulated absence" in result.stderr
    data = strict_json(report)
    assert data["count"] == 2 and data["mask"] == "center" and list(data["baselines"]) == ["mean_fill"]
    assert "patchmatch" in data["baselines_skipped"]
    assert sorted(os.listdir(pictures)) == ["grid", "grids.png", "mean_fill", "model"]
    for name in NAMES[:2]:
        filled = rgb(os.path.join(pictures, "mean_fill", f"{name}.png"))
        truth = strip(os.path.join(pictures, "grid", f"{name}.png"))[:, -64:]
        assert len(np.unique(filled[16:48, 16:48].reshape(-1, 3), axis=0)) == 1
        outside = np.ones((64, 64), bool)
        outside[16:48, 16:48] = False
        assert np.array_equal(filled[outside], truth[outside])


def test_mask_files_go_to_images_in_order_resized(workspace, tmp_path):
    pictures = str(tmp_path / "pictures")
    result = evaluate_command(workspace, "--mask", workspace["masks"], "--baselines", "mean_fill",
                              "--save-dir", pictures)
    assert result.returncode == 0, result.stderr
    for index, name in enumerate(NAMES):                # mask i is quadrant i, 16 px at 32 → 32 px at 64
        top, left = [(0, 0), (0, 32), (32, 0)][index]
        given = strip(os.path.join(pictures, "grid", f"{name}.png"))[:, :64]
        truth = strip(os.path.join(pictures, "grid", f"{name}.png"))[:, -64:]
        filled = rgb(os.path.join(pictures, "mean_fill", f"{name}.png"))
        hole = np.zeros((64, 64), bool)
        hole[top:top + 32, left:left + 32] = True
        assert np.all(given[hole] == 255) and np.array_equal(filled[~hole], truth[~hole]), name
        assert len(np.unique(filled[hole], axis=0)) == 1, name


def test_converted_official_checkpoint_is_evaluated(golden_checkpoint, tmp_path):
    """A converted official (BGR) checkpoint runs through test.py on the demo pictures."""
    report = str(tmp_path / "report.json")
    result = run_command("test.py", "--checkpoint", golden_checkpoint, "--data", "demo", "--report", report,
                         "--limit", "2", "--baselines", "opencv_telea", *SMALL)
    assert result.returncode == 0, result.stderr
    data = strict_json(report)
    assert data["count"] == 2 and data["channel_order"] == "BGR" and list(data["baselines"]) == ["opencv_telea"]


def test_free_form_holes_are_v2s_training_holes_drawn_from_the_seed():
    """``--mask free_form``: view i's hole is v2's training hole (strokes united with the box) drawn from
    (seed, i), the same at every call; the views get different holes and the strokes reach past the box."""
    config = load_config(None, ["image_size=256", "hole_size=128", "max_delta=32"], DEMO)
    config.val_mask = "free_form"
    hole_of, largest = hole_source(config, 6)
    assert largest == 256 * 256
    holes = [hole_of(index) for index in range(6)]
    for index, hole in enumerate(holes):
        assert hole.dtype == bool and hole.shape == (256, 256)
        np.testing.assert_array_equal(hole, hole_of(index))
        masks, _ = random_masks(np.random.default_rng([config.seed, index]), 1, 256, 128, 32, per_image=True,
                                kind="box_and_strokes")
        np.testing.assert_array_equal(hole, masks[0, 0] > 0.5)
        box = box_hole(config, index)                  # the same draws start with the same box
        assert hole[box].all() and hole.sum() > box.sum() and not hole.all()
    assert len({hole.tobytes() for hole in holes}) == 6
    reseeded, _ = hole_source(dataclasses.replace(config, seed=config.seed + 1), 6)
    assert not np.array_equal(reseeded(0), holes[0])


def test_v2_checkpoint_is_evaluated_with_free_form_holes_the_same_twice(golden_v2_checkpoint, tmp_path):
    """The converted official v2 checkpoint through test.py --mask free_form at its training geometry:
    two runs give the same report."""
    reports = [str(tmp_path / f"report{run}.json") for run in (1, 2)]
    for report in reports:
        result = run_command("test.py", "--checkpoint", golden_v2_checkpoint, "--data", "demo", "--mask",
                             "free_form", "--limit", "2", "--baselines", "mean_fill", "--report", report,
                             "--set", "val_windows=1")
        assert result.returncode == 0, result.stderr
        assert "256x256 with 128x128 free_form holes; model: DeepFill v2" in result.stdout
    first = strict_json(reports[0])
    assert first["count"] == 2 and first["mask"] == "free_form" and first["model_spec"]["version"] == 2
    assert set(first["model"]) == set(METRICS) and list(first["baselines"]) == ["mean_fill"]
    assert 0 < first["model"]["l1"] < first["model"]["l1_hole"]       # the truth is kept outside the holes
    assert first == strict_json(reports[1])


def test_test_py_refuses_mistakes_in_one_line(workspace, tmp_path):
    report = str(tmp_path / "report.json")
    text = tmp_path / "notes.pdparams"
    text.write_text("not weights")
    assert_refused(evaluate_command(workspace, "--checkpoint", str(text), "--report", report),
                   report, "not a readable checkpoint")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"garbage")
    assert_refused(evaluate_command(workspace, "--data", str(broken), "--report", report),
                   report, "none of the 1 images can be read", "x.png")
    result = run_command("test.py", "--set", f"run_dir={tmp_path / 'nothing'}", "--report", report)
    assert_refused(result, report, "checkpoint not found", "python train.py")
    assert_refused(evaluate_command(workspace, "--limit", "0", "--report", report), report,
                   "--limit must be at least 1")
    assert_refused(evaluate_command(workspace, "--baselines", "patchmatch,photoshop", "--report", report), report,
                   "unknown baseline 'photoshop'")
    assert_refused(evaluate_command(workspace, "--report", str(tmp_path / "no" / "r.json")), report,
                   "does not exist")
    twins = tmp_path / "twins"
    twins.mkdir()
    for name in ("x.png", "x.jpg"):
        cv2.imwrite(str(twins / name), np.zeros((8, 8, 3), np.uint8))
    assert_refused(evaluate_command(workspace, "--data", str(twins), "--save-dir", str(tmp_path / "out"),
                                    "--report", report), report, "both be saved as x.png")
    assert not os.path.exists(tmp_path / "out")


def refusal(call, *args) -> str:
    """The message ``call(*args)`` stops with (test.py makes each of these checks before any evaluation)."""
    with pytest.raises(UserError) as caught:
        call(*args)
    return str(caught.value)


def test_bad_checkpoints_images_and_masks_are_refused(workspace, tmp_path):
    config = small_config()
    (tmp_path / "empty").mkdir()
    assert "no checkpoint" in refusal(load_checkpoint, str(tmp_path / "empty"))
    other = str(tmp_path / "other.pdparams")
    paddle.save({"weights": np.zeros(3, np.float32)}, other)
    assert "not a DeepFill v1 checkpoint" in refusal(load_checkpoint, other)
    assert "no images in" in refusal(list_sources, str(tmp_path / "empty"))
    listing = tmp_path / "val.flist"
    listing.write_text("# nothing\n")
    assert "no images in" in refusal(list_sources, str(listing))
    few = tmp_path / "few"
    few.mkdir()
    cv2.imwrite(str(few / "m.png"), np.full((8, 8), 255, np.uint8))
    with_masks = dataclasses.replace(config, val_mask=str(few))
    assert "holds 1 masks for 4 views" in refusal(hole_source, with_masks, 4)
    assert "covers the whole picture" in refusal(hole_source, with_masks, 1)
    cv2.imwrite(str(few / "m.png"), np.zeros((8, 8), np.uint8))
    assert "has no hole" in refusal(hole_source, with_masks, 1)
    assert "--mask must be box, center, free_form" in refusal(hole_source, dataclasses.replace(config, val_mask="circle"), 4)
    assert "hole_size < image_size" in refusal(hole_source, dataclasses.replace(config, val_mask="center",
                                                                                 hole_size=64), 4)
    twins = tmp_path / "twins"
    twins.mkdir()
    for name in ("x.png", "x.jpg"):
        cv2.imwrite(str(twins / name), np.zeros((8, 8, 3), np.uint8))
    assert "both be saved as x.png" in refusal(check_stems, list_sources(str(twins)))
    assert "none of the 1 images can be read" in refusal(
        check_readable, [os.path.join(workspace["images"], "d_broken.png")], config)


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


def test_an_official_checkpoint_is_evaluated_at_its_training_geometry(tmp_path):
    """A release checkpoint (no critics in the bundle → the release's 256/128) is evaluated at 256×256 with
    128×128 holes without any --config; an explicit contrary setting wins, with a warning naming both."""
    from skimage import data as pictures
    from tests.golden_data import golden_bundle_tensors
    from tests.tf_bundle_writer import write_bundle
    write_bundle(str(tmp_path / "snap-0"), {k: v for k, v in golden_bundle_tensors().items()
                                            if not k.startswith("discriminator/")})
    converted = str(tmp_path / "official.pdparams")
    assert run_command("tools/convert_tf_checkpoint.py", str(tmp_path / "snap-0"), converted).returncode == 0
    folder = tmp_path / "val"
    folder.mkdir()
    for name in ("astronaut", "coffee"):
        cv2.imwrite(str(folder / f"{name}.png"), cv2.resize(getattr(pictures, name)()[:, :, ::-1], (256, 256)))
    report = str(tmp_path / "report.json")
    result = run_command("test.py", "--checkpoint", converted, "--data", str(folder), "--report", report,
                         "--baselines", "mean_fill")
    assert result.returncode == 0, result.stderr
    assert "evaluating at 256x256 with 128x128 box holes" in result.stdout and "warning" not in result.stderr
    data = strict_json(report)
    assert (data["image_size"], data["hole_size"], data["count"]) == (256, 128, 2 * data["windows"])
    assert data["model_spec"]["channel_order"] == "BGR" and data["model_spec"]["image_size"] == 256
    result = run_command("test.py", "--checkpoint", converted, "--data", str(folder), "--report", report,
                         "--baselines", "", "--set", "image_size=64", "hole_size=32")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "image_size=64" in warnings[0] and "image_size=256" in warnings[0]
    assert strict_json(report)["image_size"] == 64
