"""The GPU's code path, checked on the CPU (no GPU has been lent to this project).

On a GPU the model runs on Paddle's kernels (``deepfill.models.kernels.choose`` installs oneDNN's only when the device
is the CPU), and the oneDNN binding (CPU memory only) must never be reached. These tests force that path on
the CPU: the kernel choice told the device is not the CPU, Paddle's kernels installed, ``onednn.instance``
raising; and then run what a GPU owner runs.
"""
from __future__ import annotations

import collections

import cv2
import numpy as np
import paddle
import pytest

from deepfill.data.dataset import list_sources
from deepfill.evaluation import evaluate_pictures, evaluation_geometry, hole_source
from deepfill.inpainting.export import export_model
from deepfill.inpainting.filler import Filler
from deepfill.inpainting.server import Model, fill_request
from deepfill.models import kernels
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models.checkpoint_file import save_checkpoint
from deepfill.models.generator import InpaintGenerator
from deepfill.models.spec import ModelSpec
from tests.test_training import noise_pictures, tiny_config
from deepfill.training import algorithm
from deepfill.training.trainer import Trainer, TrainingDiverged
from deepfill.utils import onednn
from deepfill.utils.config import load_config


def _no_onednn(*args, **kwargs):
    raise AssertionError("the oneDNN binding was reached on the GPU's code path")


@pytest.fixture
def gpu_code_path(monkeypatch):
    """The GPU's code path on the CPU: Paddle's kernels, whatever is chosen, and touching oneDNN fails the
    test."""
    monkeypatch.setattr(kernels, "device_is_cpu", lambda: False)
    monkeypatch.setattr(onednn, "instance", _no_onednn)
    with kernels.using("paddle"):
        yield


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A random-init generator at 64² (cnum 8), as a checkpoint file."""
    root = tmp_path_factory.mktemp("gpu_path")
    paddle.seed(0)
    path = str(root / "tiny.pdparams")
    save_checkpoint(path, ModelSpec(cnum=8, image_size=64, hole_size=32, source="test"),
                    {"generator": {k: v.numpy() for k, v in InpaintGenerator(8).state_dict().items()}})
    return path


def picture_and_hole() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 256, (72, 88, 3)).astype(np.uint8), (0, 0), 2)
    hole = np.zeros((72, 88), bool)
    hole[20:44, 30:60] = True
    return image, hole


def test_training_iteration_runs_without_onednn(gpu_code_path, tmp_path):
    trainer = Trainer(tiny_config(tmp_path / "run", "device=cpu"))
    scalars, _, _ = trainer.iteration()
    assert trainer.step == 1 and all(np.isfinite(list(scalars.values())))
    trainer.close()


HOST_READS = ("numpy", "item", "tolist", "__float__", "__int__", "__bool__", "__index__", "__array__")


class HostTraffic:
    """Counts, while ``counting``, the reads of tensors back to the host (``HOST_READS``; one per outermost
    call, as ``float(t)`` calls ``t.numpy()`` inside) and the copies to the device (``paddle.to_tensor``),
    and keeps what ``paddle.to_tensor`` made and the places it was asked for."""

    def __init__(self, monkeypatch) -> None:
        self.counting, self.depth = False, 0
        self.reads, self.copies = collections.Counter(), 0
        self.made: list[paddle.Tensor] = []
        self.places: list[object] = []
        for name in HOST_READS:
            monkeypatch.setattr(paddle.Tensor, name, self._read(name, getattr(paddle.Tensor, name)))
        to_tensor = paddle.to_tensor

        def copy(data, dtype=None, place=None, stop_gradient=True):
            tensor = to_tensor(data, dtype=dtype, place=place, stop_gradient=stop_gradient)
            if self.counting and self.depth == 0:
                self.copies += 1
                self.made.append(tensor)
                self.places.append(place)
            return tensor

        monkeypatch.setattr(paddle, "to_tensor", copy)

    def _read(self, name: str, method):
        def read(tensor, *args, **kwargs):
            if self.counting and self.depth == 0:
                self.reads[name] += 1
            self.depth += 1
            try:
                return method(tensor, *args, **kwargs)
            finally:
                self.depth -= 1
        return read

    def count(self, action):
        self.counting, self.reads, self.copies, self.made, self.places = True, collections.Counter(), 0, [], []
        try:
            return action()
        finally:
            self.counting = False


def test_an_iteration_synchronises_only_to_log(gpu_code_path, monkeypatch, tmp_path):
    """One Algorithm-1 iteration (5 critic updates, one generator update) on the GPU's code path reads
    back from the device only what ``log_every`` logging needs — one packed read on a logging step (the
    scalars and whether every scalar since the last read was finite), none on another — and copies to
    the device only what it cannot make there: per batch its pixels and its holes, per critic update the
    penalty's interpolation factors, per contextual attention one pack of index arrays:
    2·6 + 5 + 6 = 23. Before this was counted, one iteration
    read 56 values back and made 167 copies (32², batch 2). Everything the step makes is on the training
    device."""
    config = tiny_config(tmp_path / "run", "device=cpu", "onednn=false", "critic_steps=5", "log_every=2",
                         "save_every=100", "max_iters=100")
    trainer = Trainer(config)
    trainer.iteration()                                   # step 1, logged: the first step always is
    traffic = HostTraffic(monkeypatch)
    device = paddle.framework._current_expected_place()
    logged, tensors, _ = traffic.count(trainer.iteration)      # step 2: logged (log_every=2)
    batches, attention_calls = config.critic_steps + 1, config.critic_steps + 1
    budget = 2 * batches + config.critic_steps + attention_calls
    assert sum(traffic.reads.values()) == 1 and traffic.copies <= budget, (traffic.reads, traffic.copies)
    assert logged and all(np.isfinite(list(logged.values())))
    made = [*traffic.made, *tensors, *trainer.generator.parameters(), *trainer.nets.critic_parameters]
    assert all(place is None for place in traffic.places)       # nothing asks for a place of its own
    assert all(str(t.place) == str(device) for t in made)
    quiet, _, _ = traffic.count(trainer.iteration)              # step 3: not logged
    assert quiet == {} and sum(traffic.reads.values()) == 0 and traffic.copies <= budget, traffic.reads
    trainer.close()


def test_divergence_between_logged_steps_is_caught_at_the_next_read(monkeypatch, tmp_path):
    """Scalars are read every ``log_every`` steps; a loss that was not finite in between still stops the
    run at the next read, before any checkpoint."""
    trainer = Trainer(tiny_config(tmp_path / "run", "device=cpu", "critic_steps=1", "log_every=3",
                                  "save_every=100", "max_iters=100"))
    trainer.iteration()
    original = algorithm.generator_step

    def poisoned(*args, **kwargs):
        scalars, tensors = original(*args, **kwargs)
        return {**scalars, "l1_loss": scalars["l1_loss"] * float("nan")}, tensors

    monkeypatch.setattr(algorithm, "generator_step", poisoned)
    assert trainer.iteration()[0] == {}                      # step 2: not read
    monkeypatch.undo()
    with pytest.raises(TrainingDiverged, match="between steps 2 and 3"):
        trainer.iteration()                                  # step 3: read, finite now, not before
    trainer.close()


def test_inference_commands_run_without_onednn(gpu_code_path, tiny_checkpoint, tmp_path):
    """An ``Filler`` fill, app.py's fill, test.py's evaluation and an export, as on a GPU."""
    checkpoint = load_checkpoint(tiny_checkpoint)
    image, hole = picture_and_hole()
    inpainter = Filler.from_checkpoint(checkpoint)
    filled, flow = inpainter(image, hole)
    assert filled.shape == image.shape and (filled[~hole] == image[~hole]).all() and flow.shape == image.shape

    model = Model(Filler.from_checkpoint(checkpoint), checkpoint.spec, "tiny", paddle.device.get_device())
    png = cv2.imencode(".png", image)[1].tobytes()
    mask = cv2.imencode(".png", hole.astype(np.uint8) * 255)[1].tobytes()
    answer = fill_request({"model": model}, png, "image.png", mask, "mask.png", "full", False, 10 ** 6)
    assert (answer.width, answer.height) == (88, 72) and answer.png

    noise_pictures(tmp_path / "images", 2)      # test.py's evaluation: the library it runs
    config = evaluation_geometry(load_config(None, [f"val_data={tmp_path / 'images'}", "val_windows=1"]),
                                 checkpoint.spec)
    paths = list_sources(config.val_data)
    holes, _ = hole_source(config, len(paths))
    report = evaluate_pictures(inpainter, paths, config, holes, progress=False)
    assert report.count == 2 and np.isfinite(report.model["l1_hole"])

    info = export_model(checkpoint, str(tmp_path / "exported"), ("paddle",), report=lambda line: None)
    assert max(info["self_check_max_error"].values()) < 1e-3


@pytest.mark.parametrize("device", ["cpu", "gpu:0"])
def test_cpu_tuning_only_on_the_cpu(monkeypatch, device):
    """Threads and malloc tuning are the CPU's: a device that turns out a GPU gets neither."""
    from deepfill.utils import device as device_module
    calls = []
    monkeypatch.setattr(paddle, "set_device", lambda requested: requested)
    monkeypatch.setattr(paddle.device, "get_device", lambda: device)
    monkeypatch.setattr(device_module, "keep_freed_memory", lambda: calls.append("malloc"))
    monkeypatch.setattr(device_module, "restore_cpu_threads", lambda: calls.append("threads"))
    device_module.pick_device(device, training=True)
    assert calls == (["threads", "malloc"] if device == "cpu" else [])
    calls.clear()
    device_module.pick_device(device)
    assert calls == (["threads"] if device == "cpu" else [])
    calls.clear()
    device_module.pick_device(device, inference=True)                  # inpaint.py, app.py
    assert calls == (["threads", "malloc"] if device == "cpu" else [])


def test_a_numbered_gpu_under_the_launcher_is_each_process_own(monkeypatch, capsys):
    from deepfill.utils.device import own_gpu_under_launcher
    assert own_gpu_under_launcher("gpu:1") == "gpu:1"            # one process: as asked
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "4")
    monkeypatch.setenv("PADDLE_TRAINER_ID", "0")
    assert own_gpu_under_launcher("gpu:1") == "gpu" and own_gpu_under_launcher("cpu") == "cpu"
    assert "each of the 4 processes uses its own GPU" in capsys.readouterr().err


def test_the_gpu_check_runs_and_prints_its_numbers():
    """tools/check_gpu.py on the CPU (where it says it was not a GPU), small: what a GPU owner runs."""
    from tests.conftest import run_command
    result = run_command("tools/check_gpu.py", "--device", "cpu", "--set", "image_size=64", "hole_size=32",
                         "max_delta=8", "cnum=8", "batch_size=2", "critic_steps=1")
    assert result.returncode == 0, result.stderr
    assert "s per iteration" in result.stdout and "512x512 fill" in result.stdout
    assert "not a GPU" in result.stderr
