"""Hostile files and failing disks (issue 15): nothing hangs, nothing ends in a traceback, nothing is left
half-written. A disk that fills is simulated by making the flush of a temporary file (or the checkpoint
write) fail with ENOSPC, as the kernel reports it; a read-only folder, which root may write anyway, by
``os.access`` answering no for it."""
from __future__ import annotations

import errno
import os
import signal
import struct
import threading
import time
import zlib

import cv2
import numpy as np
import paddle
import pytest

from deepfill import evaluation
from deepfill.data.dataset import ImageDataset, list_sources
from deepfill.evaluation import views as evaluation_views
from deepfill.inpainting.filler import Filler
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models.checkpoint_file import save_checkpoint
from deepfill.models.spec import ModelSpec
from tests.conftest import ROOT, assert_refused, run_command
from tests.test_training import noise_pictures, tiny_config
from deepfill.training import loop, trainer as trainer_module
from deepfill.training.loop import train_and_report
from deepfill.training.run_log import LOG_NAME
from deepfill.training.trainer import Trainer
from deepfill.utils import image_io
from deepfill.utils.cli import UserError, run
from deepfill.utils.config import load_config
from deepfill.utils.files import WriteError, atomic_path, is_temporary
from deepfill.utils.image_io import ImageTooLarge, decode_image, image_size_from_header

TIMEOUT = 120
TINY_RUN = ["image_size=32", "hole_size=16", "max_delta=4", "cnum=8", "batch_size=2", "critic_steps=1",
            "max_iters=3", "save_every=100", "device=cpu"]


def declared_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width×height RGB pixels, with almost no pixel data (the issue's bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 31)) + chunk(b"IEND", b""))


def temporaries(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".tmp-")]


def one_error_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.fixture
def disk_fills_after(monkeypatch):
    """``disk_fills_after(n)``: the n+1-th flush of a file written atomically fails with ENOSPC."""
    real = os.fsync

    def arm(successes: int) -> None:
        calls = []

        def fsync(descriptor: int) -> None:
            calls.append(descriptor)
            if len(calls) > successes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(descriptor)
        monkeypatch.setattr(os, "fsync", fsync)
    return arm


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: ``os.access`` says the folder cannot be written."""
    real = os.access

    def arm(folder) -> None:
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if os.path.abspath(path) == str(folder)
                            and mode & os.W_OK else real(path, mode, **kw))
    return arm


# --- reading: one path, every failure "unreadable", sizes checked before decoding ----------------------

def test_a_small_file_declaring_a_huge_picture_is_refused_before_decoding(monkeypatch):
    calls = []
    real = image_io.cv2.imdecode
    monkeypatch.setattr(image_io.cv2, "imdecode", lambda *args: calls.append(1) or real(*args))
    bomb = declared_png(40000, 40000)
    assert len(bomb) < 100 and image_size_from_header(bomb) == (40000, 40000)
    with pytest.raises(ImageTooLarge, match="declares 40000x40000 pixels, more than the limit of 200,000,000"):
        decode_image(bomb, "bomb.png")
    with pytest.raises(ImageTooLarge, match="30000x30000"):
        decode_image(declared_png(30000, 30000), "big.png")
    assert not calls
    # above our limit OpenCV's own guard raises: still one "cannot read", never cv2.error
    with pytest.raises(UserError, match="cannot read bomb.png: not an image or a damaged file"):
        decode_image(bomb, "bomb.png", max_pixels=2 ** 40)
    monkeypatch.setattr(image_io.cv2, "imdecode", lambda *args: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(UserError, match=r"cannot read any.png: .*\(MemoryError\)"):
        decode_image(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes(), "any.png")


def test_what_other_threads_write_during_a_decode_reaches_the_terminal(monkeypatch, capfd):
    """Decoding captures file descriptor 2 to judge the decoder's complaints; a progress bar drawn by the
    training thread meanwhile must still be shown."""
    real = image_io.cv2.imdecode
    monkeypatch.setattr(image_io.cv2, "imdecode", lambda *args: os.write(2, b"\rtraining: 50%") and real(*args))
    decode_image(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes(), "fine.png")
    assert capfd.readouterr().err == "\rtraining: 50%"


def test_headers_of_every_supported_format_give_the_size():
    picture = np.zeros((30, 40, 3), np.uint8)
    for extension in image_io.IMAGE_EXTENSIONS:
        data = cv2.imencode(extension, picture)[1].tobytes()
        assert image_size_from_header(data) == (40, 30), extension
        assert decode_image(data, "x", max_pixels=1200).shape[:2] == (30, 40)
        with pytest.raises(ImageTooLarge):
            decode_image(data, "x", max_pixels=1199)
    assert image_size_from_header(b"not a picture") is None
    assert image_size_from_header(declared_png(5, 5)[:20]) is None


def test_any_exception_while_loading_a_training_file_skips_it(tmp_path, monkeypatch, capfd):
    noise_pictures(tmp_path, 3)
    paths = sorted(str(p) for p in tmp_path.iterdir())
    dataset = ImageDataset(paths, 32)
    real = ImageDataset.load
    monkeypatch.setattr(ImageDataset, "load", lambda self, index, seed: (_ for _ in ()).throw(
        RuntimeError("decoder bug\nsecond line")) if index == 1 else real(self, index, seed))
    image, pairs = dataset[(1, 5)]
    assert image.shape == (3, 32, 32) and pairs.tolist() == [1, 2]
    assert "warning: skipping" in capfd.readouterr().err
    monkeypatch.setattr(ImageDataset, "load", lambda *args: (_ for _ in ()).throw(OSError("gone")))
    image, pairs = dataset[(0, 5)]
    assert pairs.tolist() == [0, -1] and not image.any()      # the training process stops on this


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_bytes(b"image_size: 64\n\xff\xfe\x00 cnum: \x81\n")
    with pytest.raises(UserError, match="not a text file in UTF-8"):
        load_config(str(path))


# --- training: the bomb, a broken data stream, signals while waiting, a full disk ------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_the_bomb_in_a_training_folder_is_skipped_and_counted(tmp_path, workers):
    noise_pictures(tmp_path / "data", 5)
    (tmp_path / "data" / "zz_bomb.png").write_bytes(declared_png(40000, 40000))
    run_dir = tmp_path / "run"
    result = run_command("train.py", "--set", *TINY_RUN, f"num_workers={workers}", f"data={tmp_path / 'data'}",
                         f"run_dir={run_dir}", timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "zz_bomb.png: it declares 40000x40000" in result.stderr
    log = (run_dir / LOG_NAME).read_text()
    assert "unreadable image skipped" in log and "zz_bomb.png" in log and "done at step 3" in log
    checkpoint = load_checkpoint(str(run_dir))
    assert checkpoint.state["step"] == 3 and len(checkpoint.state["unreadable"]) == 1


def test_files_vanishing_mid_run_stop_training_with_one_line(tmp_path, monkeypatch, capsys):
    noise_pictures(tmp_path / "data", 4)
    original, steps = Trainer.generator_step, []

    def generator_step(self):
        steps.append(1)
        if len(steps) == 2:                     # the data disk goes away after the first iteration
            for path in self.dataset.paths:
                os.remove(path)
        return original(self)

    monkeypatch.setattr(Trainer, "generator_step", generator_step)
    _, code = train_and_report(tiny_config(tmp_path / "run", f"data={tmp_path / 'data'}", "max_iters=5"))
    assert code == 1
    line = one_error_line(capsys.readouterr().err)
    assert "data loading failed: none of the 4 training images can be read any more" in line
    assert "pdparams) is intact; continue with --resume" in line       # the batches loaded ahead were used


def test_a_dead_loader_process_stops_training_instead_of_hanging(tmp_path, monkeypatch, capsys):
    noise_pictures(tmp_path / "data", 4)
    parent, real = os.getpid(), ImageDataset.load

    def load(self, index, crop_seed):
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)    # the kernel's OOM killer, say
        return real(self, index, crop_seed)

    monkeypatch.setattr(ImageDataset, "load", load)
    start = time.monotonic()
    _, code = train_and_report(tiny_config(tmp_path / "run", f"data={tmp_path / 'data'}", "num_workers=1",
                                           "max_iters=2"))
    assert code == 1 and time.monotonic() - start < TIMEOUT
    line = one_error_line(capsys.readouterr().err)
    assert "data loading failed" in line and "no checkpoint was written" in line


def signal_soon(*signals: signal.Signals, every: float = 0.5) -> None:
    """Send this process ``signals``, one every ``every`` seconds, from another thread."""
    def send():
        for signum in signals:
            time.sleep(every)
            os.kill(os.getpid(), signum)
    threading.Thread(target=send, daemon=True).start()


def test_sigterm_while_loader_processes_are_stuck_stops_the_run(tmp_path, monkeypatch, capfd):
    """Paddle's reader waits in C++, where signal handlers cannot run; the run still stops."""
    noise_pictures(tmp_path / "data", 4)
    parent, real = os.getpid(), ImageDataset.load
    monkeypatch.setattr(ImageDataset, "load", lambda self, index, seed: (
        time.sleep(20) if os.getpid() != parent else None) or real(self, index, seed))
    for module in (loop, trainer_module):
        monkeypatch.setattr(module, "STOP_PATIENCE_SECONDS", 1.0)
    next_batch = Trainer.next_batch
    monkeypatch.setattr(Trainer, "next_batch", lambda self: signal_soon(signal.SIGTERM) or next_batch(self))
    start = time.monotonic()
    _, code = train_and_report(tiny_config(tmp_path / "run", f"data={tmp_path / 'data'}", "num_workers=1"))
    assert code == 128 + signal.SIGTERM and time.monotonic() - start < 15
    err = capfd.readouterr().err
    assert "SIGTERM: saving after this iteration (Ctrl-C to stop at once without saving)" in err
    assert "stopped by SIGTERM: no data arrived for 1 s after it, so step 1 was not finished or saved; " \
           "no checkpoint was written" in err
    assert "not saved" in (tmp_path / "run" / LOG_NAME).read_text()


def test_ctrl_c_after_sigterm_stops_at_once_while_waiting_for_data(tmp_path, monkeypatch, capfd):
    noise_pictures(tmp_path / "data", 4)
    real, calls = ImageDataset.load, []

    def slow_after_first_batches(self, index, seed):
        calls.append(index)
        if len(calls) == 5:                     # the data disk stalls in the second iteration
            signal_soon(signal.SIGTERM, signal.SIGINT)
            time.sleep(60)
        return real(self, index, seed)

    monkeypatch.setattr(ImageDataset, "load", slow_after_first_batches)
    start = time.monotonic()
    _, code = train_and_report(tiny_config(tmp_path / "run", f"data={tmp_path / 'data'}", "max_iters=50"))
    assert code == 128 + signal.SIGINT and time.monotonic() - start < 30
    err = capfd.readouterr().err
    assert "stopped at once by Ctrl-C, without saving" in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGINT) == signal.default_int_handler


def test_a_full_disk_during_a_checkpoint_then_resume_after_killed_saves(tmp_path, monkeypatch, capsys):
    real_save, saves = paddle.save, []

    def save(payload, path):
        saves.append(path)
        if len(saves) == 2:
            with open(path, "wb") as handle:
                handle.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(payload, path)

    monkeypatch.setattr(paddle, "save", save)
    run_dir = tmp_path / "run"
    previous = os.umask(0o022)
    try:
        _, code = train_and_report(tiny_config(run_dir, "max_iters=3"))
    finally:
        os.umask(previous)
    assert code == 1
    line = one_error_line(capsys.readouterr().err)
    assert "step_00000002.pdparams: No space left on device" in line and "(step_00000001.pdparams) is intact" in line
    assert sorted(n for n in os.listdir(run_dir) if n.endswith(".pdparams")) == ["step_00000001.pdparams"]
    assert not temporaries(run_dir) and load_checkpoint(str(run_dir)).state["step"] == 1
    assert os.stat(run_dir / "step_00000001.pdparams").st_mode & 0o777 == 0o644     # the umask's, not 0600
    assert "stopped: cannot write" in (run_dir / LOG_NAME).read_text()

    (run_dir / ".tmp-0123456789ab.pdparams").write_bytes(b"x" * 1000)   # saves killed mid-write
    (run_dir / "samples" / ".tmp-ba9876543210.png").write_bytes(b"x")
    (run_dir / ".tmp-notours").write_bytes(b"someone else's")
    monkeypatch.setattr(paddle, "save", real_save)
    trainer, code = train_and_report(tiny_config(run_dir, "max_iters=2"), resume=True)
    assert code == 0 and trainer.step == 2
    assert "removed 2 temporary file(s)" in capsys.readouterr().err
    assert temporaries(run_dir) == [".tmp-notours"] and not temporaries(run_dir / "samples")


def test_a_run_dir_that_cannot_be_written_is_refused_before_any_work(tmp_path, read_only):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="run_dir .*file is a file, not a folder"):
        Trainer(tiny_config(tmp_path / "file"))
    read_only(tmp_path)
    with pytest.raises(UserError, match=f"cannot write run_dir .*{tmp_path} is not writable"):
        Trainer(tiny_config(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_atomic_files_get_the_umask_and_leave_nothing_on_failure(tmp_path, disk_fills_after):
    previous = os.umask(0o027)
    try:
        save_checkpoint(str(tmp_path / "a.pdparams"), ModelSpec(cnum=8), {"generator": {}})
        assert os.stat(tmp_path / "a.pdparams").st_mode & 0o777 == 0o640
    finally:
        os.umask(previous)
    disk_fills_after(0)
    with pytest.raises(WriteError, match="cannot write .*b.txt: No space left on device"):
        with atomic_path(str(tmp_path / "b.txt")) as temporary, open(temporary, "w") as handle:
            handle.write("result")
    assert sorted(os.listdir(tmp_path)) == ["a.pdparams"]
    assert is_temporary(".tmp-0123456789ab.png") and not is_temporary(".tmp-notours")


# --- inpaint.py ------------------------------------------------------------------------------------------

def pictures_folder(folder, names=("a", "b", "c"), size=(48, 64)) -> str:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(3)
    for name in names:
        cv2.imwrite(os.path.join(folder, f"{name}.png"), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return str(folder)


def hole_mask(path, size=(48, 64)) -> str:
    mask = np.zeros(size, np.uint8)
    mask[10:30, 20:40] = 255
    cv2.imwrite(str(path), mask)
    return str(path)


def test_inpaint_refuses_a_flow_folder_before_writing_anything(golden_checkpoint, tmp_path):
    image = os.path.join(pictures_folder(tmp_path / "in", ["a"]), "a.png")
    out = str(tmp_path / "out.png")
    (tmp_path / "flow.png").mkdir()                 # a folder that looks like a file name
    result = run_command("inpaint.py", "--checkpoint", golden_checkpoint, "--image", image, "--mask",
                         hole_mask(tmp_path / "mask.png"), "--output", out, "--flow", str(tmp_path / "flow.png"),
                         timeout=TIMEOUT)
    assert_refused(result, out, "flow.png: it is a folder")


def test_inpaint_folder_mode_skips_the_bomb_and_names_it(golden_checkpoint, tmp_path):
    images = pictures_folder(tmp_path / "in", ["a", "b"])
    (tmp_path / "in" / "bomb.png").write_bytes(declared_png(40000, 40000))
    result = run_command("inpaint.py", "--checkpoint", golden_checkpoint, "--image", images, "--mask",
                         hole_mask(tmp_path / "mask.png"), "--output", str(tmp_path / "out"), timeout=TIMEOUT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "skipped: cannot read" in result.stderr and "declares 40000x40000" in result.stderr
    assert one_error_line(result.stderr) == (f"error: 1 of 3 images failed (bomb.png); the other 2 are in "
                                            f"{tmp_path / 'out'}")
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png"]


@pytest.fixture(scope="module")
def inpaint_cli():
    from deepfill.inpainting import jobs
    return jobs


class Unchanged:
    """Stands in for the model where only the files around it are tested: returns the picture as given,
    and estimates memory as the checkpoint's eager path does."""

    training_size = 256

    def check_fits(self, height, width):
        from deepfill.inpainting.filler import check_memory
        from deepfill.inpainting.runners import BYTES_PER_PIXEL
        check_memory(height, width, BYTES_PER_PIXEL * height * width)

    def __call__(self, image_rgb, hole):
        return image_rgb.copy(), np.zeros_like(image_rgb)


def test_inpaint_sizes_come_from_headers_before_decoding(inpaint_cli, tmp_path, monkeypatch):
    image = os.path.join(pictures_folder(tmp_path, ["a"]), "a.png")
    (tmp_path / "huge_mask.png").write_bytes(declared_png(12000, 12000))
    job = inpaint_cli.Job(image, str(tmp_path / "huge_mask.png"), str(tmp_path / "out.png"), None)
    with pytest.raises(UserError, match="huge_mask.png is 12000x12000 but .*a.png is 64x48"):
        inpaint_cli.inpaint_file(Unchanged(), job)
    (tmp_path / "huge.png").write_bytes(declared_png(12000, 12000))
    monkeypatch.setattr("deepfill.inpainting.filler.available_bytes", lambda: 2 ** 34)
    job = inpaint_cli.Job(str(tmp_path / "huge.png"), str(tmp_path / "huge_mask.png"), str(tmp_path / "o.png"), None)
    with pytest.raises(UserError, match="a 12000x12000 picture needs about 241 GiB but 16 GiB are available"):
        inpaint_cli.inpaint_file(Unchanged(), job)
    assert sorted(os.listdir(tmp_path)) == ["a.png", "huge.png", "huge_mask.png"]


def test_inpaint_refuses_read_only_outputs_before_work(inpaint_cli, tmp_path, read_only):
    images = pictures_folder(tmp_path / "in", ["a"])
    mask = hole_mask(tmp_path / "mask.png")
    (tmp_path / "locked").mkdir()
    read_only(tmp_path / "locked")
    with pytest.raises(UserError, match="folder .*locked is not writable"):
        inpaint_cli.plan_jobs(os.path.join(images, "a.png"), mask, str(tmp_path / "locked" / "out.png"), None)
    with pytest.raises(UserError, match="cannot write --output folder .*locked is not writable"):
        inpaint_cli.plan_jobs(images, mask, str(tmp_path / "locked" / "results"), None)
    with pytest.raises(UserError, match="--flow and --output are the same folder"):
        inpaint_cli.plan_jobs(images, mask, str(tmp_path / "r"), str(tmp_path / "r"))


def test_inpaint_folder_mode_stops_on_a_full_disk_keeping_earlier_results(inpaint_cli, tmp_path,
                                                                          disk_fills_after):
    images = pictures_folder(tmp_path / "in")
    jobs = inpaint_cli.plan_jobs(images, hole_mask(tmp_path / "mask.png"), str(tmp_path / "out"), None)
    (tmp_path / "out").mkdir()
    disk_fills_after(1)
    with pytest.raises(WriteError) as caught:
        inpaint_cli.inpaint_folder(Unchanged(), jobs, str(tmp_path / "out"), "full")
    assert str(caught.value) == (f"cannot write {tmp_path / 'out' / 'b.png'}: No space left on device; stopped, "
                                 f"1 of 3 results were written to {tmp_path / 'out'} before")
    assert os.listdir(tmp_path / "out") == ["a.png"]
    assert np.array_equal(cv2.imread(str(tmp_path / "out" / "a.png")), cv2.imread(os.path.join(images, "a.png")))


# --- test.py ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def validation(tmp_path_factory):
    """A tiny random checkpoint and a validation folder holding the bomb, evaluated as test.py evaluates it
    (``--baselines mean_fill --set max_delta=4 val_windows=1``): ``validation(save_dir)`` → the report."""
    from deepfill.models.generator import InpaintGenerator
    root = tmp_path_factory.mktemp("hostile_evaluation")
    paddle.seed(0)
    checkpoint = str(root / "tiny.pdparams")
    save_checkpoint(checkpoint, ModelSpec(cnum=8, image_size=32, hole_size=16, source="test"),
                    {"generator": {k: v.numpy() for k, v in InpaintGenerator(8).state_dict().items()}})
    images = pictures_folder(root / "images", ["a", "b"])
    (root / "images" / "c_bomb.png").write_bytes(declared_png(40000, 40000))

    def evaluate(save_dir: str | None = None) -> evaluation.Report:
        loaded = load_checkpoint(checkpoint)
        settings = load_config(None, ["max_delta=4", "val_windows=1"], os.path.join(ROOT, "configs", "demo.yaml"))
        config = evaluation.evaluation_geometry(settings, loaded.spec)
        paths = list_sources(images)
        holes, _ = evaluation.hole_source(config, len(paths))
        return evaluation.evaluate_pictures(Filler.from_checkpoint(loaded), paths, config, holes, ["mean_fill"],
                                            save_dir, progress=False)
    return evaluate


def test_evaluation_skips_and_counts_the_bomb(validation, capsys):
    report = validation().to_dict()
    assert report["count"] == 2 and report["skipped"]["count"] == 1
    assert report["skipped"]["paths"][0].endswith("c_bomb.png")
    assert "declares 40000x40000" in capsys.readouterr().err


def test_evaluation_refuses_outputs_it_could_not_write(tmp_path, read_only):
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="cannot write --report .*folder: it is a folder"):
        evaluation.check_outputs(str(tmp_path / "folder"), None)
    read_only(tmp_path / "folder")
    with pytest.raises(UserError, match="cannot write --report .*folder is not writable"):
        evaluation.check_outputs(str(tmp_path / "folder" / "r.json"), None)
    with pytest.raises(UserError, match="cannot write --save-dir .*folder is not writable"):
        evaluation.check_outputs(None, str(tmp_path / "folder" / "pictures"))
    assert os.listdir(tmp_path / "folder") == []


def test_test_py_refuses_a_folder_as_report_before_any_work(tmp_path):
    (tmp_path / "folder").mkdir()
    result = run_command("test.py", "--checkpoint", str(tmp_path / "none.pdparams"), "--report",
                         str(tmp_path / "folder"))
    assert result.returncode == 2
    assert one_error_line(result.stderr).startswith(f"error: cannot write --report {tmp_path / 'folder'}")
    assert os.listdir(tmp_path / "folder") == []


def test_evaluation_stops_on_a_full_disk_keeping_the_pictures_written(validation, tmp_path, disk_fills_after,
                                                                      capsys):
    disk_fills_after(3)          # a's three pictures (model, mean_fill, grid), then b's first fails
    with pytest.raises(SystemExit) as stopped:
        run(lambda: validation(str(tmp_path / "pics")))
    assert stopped.value.code == 2
    assert one_error_line(capsys.readouterr().err) == (f"error: cannot write {tmp_path / 'pics' / 'model' / 'b.png'}: "
                                                       "No space left on device")
    written = {folder: os.listdir(tmp_path / "pics" / folder) for folder in os.listdir(tmp_path / "pics")}
    assert written == {"model": ["a.png"], "mean_fill": ["a.png"], "grid": ["a.png"]}
    assert not temporaries(tmp_path / "pics" / "model")
    disk_fills_after(0)
    with pytest.raises(WriteError, match="r.json: No space left on device"):
        evaluation.write_report(str(tmp_path / "r.json"), validation().to_dict())
    assert sorted(os.listdir(tmp_path)) == ["pics"]


def test_evaluation_treats_a_picture_it_cannot_fit_as_unreadable(monkeypatch, tmp_path):
    path = os.path.join(pictures_folder(tmp_path / "images", ["a"]), "a.png")

    def too_large(*args):
        raise cv2.error("Insufficient memory")
    monkeypatch.setattr(evaluation_views, "evaluation_view", too_large)
    with pytest.raises(UserError, match=r"cannot use .*a.png: error while fitting its 64x48 pixels to 256"):
        evaluation.load_truth(path, load_config())
