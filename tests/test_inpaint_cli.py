"""inpaint.py as a user runs it: official parity, odd-but-valid inputs, and every refused mistake."""
from __future__ import annotations

import os

import cv2
import numpy as np
import paddle
import pytest

from deepfill.inpainting.strategy import crop_windows
from deepfill.models.checkpoint import load_checkpoint
from tests.conftest import assert_refused, run_command


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, golden):
    """The golden input as an 8-bit picture (BGR, as the official test.py reads it) and its mask."""
    folder = tmp_path_factory.mktemp("pictures")
    image = np.round((golden["x"][0] + 1) * 127.5).astype(np.uint8)
    hole = golden["mask"][0, :, :, 0] > 0.5
    cv2.imwrite(str(folder / "image.png"), image)
    cv2.imwrite(str(folder / "mask.png"), hole.astype(np.uint8) * 255)
    return folder, image, hole


def inpaint(checkpoint: str, image: str, mask: str, output: str, *extra: str):
    return run_command("inpaint.py", "--checkpoint", checkpoint, "--image", image, "--mask", mask,
                       "--output", output, *extra)


def test_output_matches_official_test_py_within_one_grey_level(golden_checkpoint, golden, pictures, tmp_path):
    folder, image, hole = pictures
    out, flow = str(tmp_path / "out.png"), str(tmp_path / "flow.png")
    result = inpaint(golden_checkpoint, str(folder / "image.png"), str(folder / "mask.png"), out,
                     "--flow", flow)
    assert result.returncode == 0, result.stderr
    written = cv2.imread(out)
    mask = golden["mask"][0]
    official = (golden["x_stage2"][0] * mask + golden["x_incomplete"][0] * (1 - mask) + 1) * 127.5
    assert np.abs(written.astype(np.float64) - np.floor(official)).max() <= 1
    assert (written[~hole] == image[~hole]).all()
    picture = cv2.imread(flow)
    assert picture.shape == image.shape and picture[hole].std() > 0


@pytest.mark.parametrize("kind", ["grey", "rgba", "odd_size", "sixteen_bit", "jpeg"])
def test_odd_inputs_keep_size_layout_and_known_pixels(golden_checkpoint, tmp_path, kind):
    rng = np.random.default_rng(1)
    height, width = (37, 53) if kind == "odd_size" else (64, 72)
    shape = {"grey": (height, width), "rgba": (height, width, 4)}.get(kind, (height, width, 3))
    image = rng.integers(0, 256, shape).astype(np.uint8)
    if kind == "sixteen_bit":
        image = image.astype(np.uint16) * 257
    hole = np.zeros((height, width), bool)
    hole[5:20, 8:30] = True
    hole[25:33, 40:50] = True          # several holes
    extension = ".jpg" if kind == "jpeg" else ".png"
    cv2.imwrite(str(tmp_path / f"in{extension}"), image)
    image = cv2.imread(str(tmp_path / f"in{extension}"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(tmp_path / "mask.png"), hole.astype(np.uint8) * 255)
    out = str(tmp_path / "out.png")
    result = inpaint(golden_checkpoint, str(tmp_path / f"in{extension}"), str(tmp_path / "mask.png"), out)
    assert result.returncode == 0, result.stderr
    written = cv2.imread(out, cv2.IMREAD_UNCHANGED)
    assert written.shape == image.shape and written.dtype == image.dtype
    assert (written[~hole] == image[~hole]).all()
    assert (written[hole] != image[hole]).any()
    if kind == "rgba":
        assert (written[:, :, 3] == image[:, :, 3]).all()


def test_empty_mask_returns_the_input_and_full_mask_still_works(golden_checkpoint, pictures, tmp_path):
    folder, image, _ = pictures
    cv2.imwrite(str(tmp_path / "empty.png"), np.zeros(image.shape[:2], np.uint8))
    cv2.imwrite(str(tmp_path / "full.png"), np.full(image.shape[:2], 255, np.uint8))
    for name in ("empty", "full"):
        out = str(tmp_path / f"{name}_out.png")
        result = inpaint(golden_checkpoint, str(folder / "image.png"), str(tmp_path / f"{name}.png"), out)
        assert result.returncode == 0, result.stderr
        written = cv2.imread(out)
        assert written.shape == image.shape
        if name == "empty":
            assert (written == image).all()


def test_folder_mode_does_every_image_with_one_mask_or_a_mask_folder(golden_checkpoint, pictures, tmp_path):
    folder, image, hole = pictures
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(tmp_path / "images" / name), image)
    for name in ("a.png", "b.png"):          # b.jpg's mask is found by its stem
        cv2.imwrite(str(tmp_path / "masks" / name), hole.astype(np.uint8) * 255)
    for mask in (str(folder / "mask.png"), str(tmp_path / "masks")):
        out = tmp_path / f"out_{os.path.basename(mask)}"
        result = inpaint(golden_checkpoint, str(tmp_path / "images"), mask, str(out),
                         "--flow", str(out / "flow"))
        assert result.returncode == 0, result.stderr
        assert sorted(os.listdir(out)) == ["a.png", "b.png", "flow"]
        assert sorted(os.listdir(out / "flow")) == ["a.png", "b.png"]
    os.remove(tmp_path / "masks" / "b.png")
    result = inpaint(golden_checkpoint, str(tmp_path / "images"), str(tmp_path / "masks"), str(tmp_path / "o"))
    assert result.returncode == 2 and "no mask for b.jpg" in result.stderr and not os.path.exists(tmp_path / "o")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, pictures):
    folder, image, _ = pictures
    bad = tmp_path_factory.mktemp("bad")
    (bad / "text.png").write_text("this is not an image\n")
    encoded = cv2.imencode(".png", image)[1].tobytes()
    (bad / "truncated.png").write_bytes(encoded[: len(encoded) // 2])
    encoded = cv2.imencode(".jpg", image)[1].tobytes()
    (bad / "truncated.jpg").write_bytes(encoded[: len(encoded) // 2])
    cv2.imwrite(str(bad / "small_mask.png"), np.zeros((32, 32), np.uint8))
    (bad / "junk.pdparams").write_bytes(os.urandom(4096))
    paddle.save({"generator": {"conv.weight": np.zeros((3, 3), np.float32)}}, str(bad / "wrong.pdparams"))
    paddle.save({"weights": np.zeros(3, np.float32)}, str(bad / "alien.pdparams"))
    return bad


@pytest.mark.parametrize("checkpoint,image,mask,words", [
    ("GOOD", "missing.png", "MASK", ("image not found",)),
    ("GOOD", "IMAGE", "missing.png", ("mask not found",)),
    ("missing.pdparams", "IMAGE", "MASK", ("checkpoint not found",)),
    ("GOOD", "text.png", "MASK", ("cannot read", "text.png")),
    ("GOOD", "truncated.png", "MASK", ("cannot read", "truncated.png")),
    ("GOOD", "truncated.jpg", "MASK", ("cannot read", "truncated.jpg")),
    ("GOOD", "IMAGE", "text.png", ("cannot read",)),
    ("GOOD", "IMAGE", "small_mask.png", ("32x32", "128x128")),
    ("junk.pdparams", "IMAGE", "MASK", ("not a readable checkpoint",)),
    ("wrong.pdparams", "IMAGE", "MASK", ("not a DeepFill v1 checkpoint",)),
    ("alien.pdparams", "IMAGE", "MASK", ("no generator weights",)),
])
def test_user_mistakes_get_one_line_and_exit_2(golden_checkpoint, pictures, bad_files, tmp_path,
                                               checkpoint, image, mask, words):
    folder = pictures[0]
    named = {"GOOD": golden_checkpoint, "IMAGE": str(folder / "image.png"), "MASK": str(folder / "mask.png")}
    resolve = lambda name: named.get(name, str(bad_files / name))  # noqa: E731
    out = str(tmp_path / "out.png")
    assert_refused(inpaint(resolve(checkpoint), resolve(image), resolve(mask), out), out, *words)


def test_bad_output_paths_and_arguments_are_refused_before_work(golden_checkpoint, pictures, tmp_path):
    folder = pictures[0]
    image, mask = str(folder / "image.png"), str(folder / "mask.png")
    assert_refused(inpaint(golden_checkpoint, image, mask, str(tmp_path / "out.txt")),
                   str(tmp_path / "out.txt"), "extension")
    out = str(tmp_path / "no_such_folder" / "out.png")
    result = inpaint(golden_checkpoint, image, mask, out)
    assert result.returncode == 2 and "does not exist" in result.stderr and not os.path.exists(out)
    result = run_command("inpaint.py", "--image", image)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert_refused(inpaint(golden_checkpoint, image, mask, str(tmp_path / "out.png"), "--device", "banana"),
                   str(tmp_path / "out.png"), "cannot use device 'banana'")



def test_a_picture_too_large_for_memory_is_refused_before_running(monkeypatch):
    from deepfill.inpainting import filler as module
    from deepfill.models.generator import InpaintGenerator
    from deepfill.utils.cli import UserError
    monkeypatch.setattr(module, "available_bytes", lambda: 2 ** 30)
    image, hole = np.zeros((1024, 1024, 3), np.uint8), np.ones((1024, 1024), bool)
    with pytest.raises(UserError, match="needs about 2 GiB but 1 GiB are available"):
        module.Filler(InpaintGenerator(cnum=8))(image, hole)


def test_png_metadata_warnings_do_not_make_a_picture_unreadable():
    """scikit-image's page.png carries an ICC profile libpng warns about; its pixels are fine."""
    import skimage
    from deepfill.utils.image_io import read_image
    page = read_image(os.path.join(os.path.dirname(skimage.__file__), "data", "page.png"))
    assert page.shape == (191, 384) and page.dtype == np.uint8


def test_crop_strategy_fills_only_around_the_hole(golden_checkpoint, tmp_path):
    """``--hd-strategy crop`` on a picture much wider than its window: the hole is filled, every other pixel
    is the input's, and the result is the one ``full`` gives on the window cut around the hole, sized from
    the model's training side."""
    rng = np.random.default_rng(5)
    image = cv2.GaussianBlur(rng.integers(0, 256, (96, 700, 3)).astype(np.uint8), (0, 0), 3)
    hole = np.zeros((96, 700), bool)
    hole[30:60, 500:540] = True
    cv2.imwrite(str(tmp_path / "wide.png"), image)
    cv2.imwrite(str(tmp_path / "mask.png"), hole.astype(np.uint8) * 255)
    side = load_checkpoint(golden_checkpoint).spec.image_size      # the window: the hole's box + side/2 around
    ((top, left, bottom, right),) = crop_windows(hole, side // 2, side)
    assert right - left < 700 and (left, right) == (500 - side // 2, 540 + side // 2)
    window = (slice(top, bottom), slice(left, right))
    cv2.imwrite(str(tmp_path / "window.png"), image[window])
    cv2.imwrite(str(tmp_path / "window_mask.png"), hole[window].astype(np.uint8) * 255)
    out, reference = str(tmp_path / "out.png"), str(tmp_path / "window_out.png")
    result = inpaint(golden_checkpoint, str(tmp_path / "wide.png"), str(tmp_path / "mask.png"), out,
                     "--hd-strategy", "crop")
    assert result.returncode == 0, result.stderr
    result = inpaint(golden_checkpoint, str(tmp_path / "window.png"), str(tmp_path / "window_mask.png"), reference,
                     "--hd-strategy", "full")
    assert result.returncode == 0, result.stderr
    written = cv2.imread(out)
    assert (written[~hole] == image[~hole]).all() and (written[hole] != image[hole]).any()
    assert (written[window] == cv2.imread(reference)).all()
