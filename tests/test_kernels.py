"""The kernel table (``deepfill.models.kernels``): which kernels run the model, chosen once per process; what a backend
never sees (other devices, dtypes, ranks, static graphs); a backend that fails mid-run hands its operation to
Paddle's kernel and training goes on; a layer means the same on both backends; and without a usable oneDNN
library training and inference still work, on Paddle's kernels, saying so once."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import paddle
import pytest

from deepfill.data.masks import random_masks
from deepfill.models import kernels
from deepfill.models.layers import GenConv, GenDeconv, upsample_twice
from tests.conftest import run_command
from deepfill.training.algorithm import Batch, Networks, critic_losses, generator_losses
from deepfill.utils import onednn
from deepfill.utils.config import load_config

OPERATIONS = set(kernels.PADDLE)


def _unreachable(*args, **kwargs):
    raise AssertionError("the oneDNN binding was reached")


def test_choose_installs_onednn_on_the_cpu_only_when_asked(monkeypatch, capsys):
    assert kernels.choose(False) == "paddle" and kernels.backend() == "paddle"
    assert kernels.choose(True) == "onednn" and all(kernels.running(op) == "onednn" for op in OPERATIONS)
    monkeypatch.setattr(kernels, "device_is_cpu", lambda: False)
    assert kernels.choose(True) == "paddle"
    assert capsys.readouterr().err == ""


def test_an_unusable_library_is_said_once_and_paddle_runs(monkeypatch, capsys):
    monkeypatch.setattr(onednn, "instance", lambda: None)
    monkeypatch.setattr(onednn, "unavailable_reason", lambda: "libdnnl.so.3: cannot open shared object file")
    monkeypatch.setattr(kernels, "_said_unavailable", False)
    assert kernels.choose() == "paddle" and kernels.choose() == "paddle"
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "oneDNN cannot be used (libdnnl.so.3: cannot open" in lines[0]
    with pytest.raises(onednn.OneDNNError, match="cannot be used here"):
        kernels.install("onednn")


def test_paddle_runs_what_onednn_cannot(monkeypatch):
    """Installed, oneDNN still never sees float64 tensors, other ranks or a static graph (the export)."""
    kernels.install("onednn")
    monkeypatch.setattr(onednn, "instance", _unreachable)
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((1, 2, 8, 8)))          # float64
    w = paddle.to_tensor(np.full((3, 2, 3, 3), 0.1))
    assert kernels.conv2d(x, w, None, 1, 1, (1, 1, 1, 1), "elu").dtype == paddle.float64
    a = paddle.rand([4, 5])
    assert kernels.matmul(a, a, transpose_b=True).shape == [4, 4]                           # rank 2
    layer = GenDeconv(2, 3)
    static = paddle.jit.to_static(layer, input_spec=[paddle.static.InputSpec([1, 2, 8, 8], "float32")],
                                  full_graph=True)
    x32 = paddle.rand([1, 2, 8, 8])
    with paddle.no_grad():
        traced = static(x32).numpy()
        with kernels.using("paddle"):
            np.testing.assert_allclose(traced, layer.conv(upsample_twice(x32)).numpy(), atol=1e-6)


def _tiny_step(nets: Networks, config, batch: Batch, alphas: paddle.Tensor) -> dict[str, np.ndarray]:
    """Every loss and every gradient of one critic objective and one generator objective (no update)."""
    results = {}
    d_losses = critic_losses(nets, batch, alphas, config)
    d_losses["total_d_loss"].backward()
    for which, critic in (("local", nets.local_critic), ("global", nets.global_critic)):
        for name, parameter in critic.named_parameters():
            results[f"{which} critic {name}"] = parameter.grad.numpy()
    nets.opt_d.clear_grad()
    g_losses, _ = generator_losses(nets, batch, config)
    g_losses["total_g_loss"].backward()
    for name, parameter in nets.generator.named_parameters():
        results[f"generator {name}"] = parameter.grad.numpy()
    nets.opt_g.clear_grad()
    nets.opt_d.clear_grad()
    results.update({name: value.numpy() for name, value in {**d_losses, **g_losses}.items() if value.size == 1})
    return results


def _batch(size: int, seed: int, config) -> tuple[Batch, paddle.Tensor]:
    rng = np.random.default_rng(seed)
    masks, boxes = random_masks(rng, size, config.image_size, config.hole_size, config.max_delta, False, "box")
    images = paddle.to_tensor(rng.uniform(-1, 1, (size, 3, config.image_size, config.image_size)).astype(np.float32))
    alphas = paddle.to_tensor(rng.random((2, size, 1, 1, 1)).astype(np.float32))
    return Batch(images, paddle.to_tensor(masks), boxes, masks), alphas


def test_a_backend_failing_at_a_new_shape_mid_run_hands_over_to_paddle(monkeypatch, capsys):
    """Steps at one batch size on oneDNN; then every plan oneDNN has not built yet fails (a new shape):
    each operation says so once, goes to Paddle's kernel for good, and the step computes what Paddle's
    kernels compute; later steps run without another word."""
    config = load_config(None, ["image_size=32", "hole_size=16", "max_delta=4", "cnum=8"])
    kernels.install("onednn")
    monkeypatch.setattr(onednn.instance(), "plans", OrderedDict())     # none from earlier tests
    paddle.seed(0)
    nets = Networks(config)
    _tiny_step(nets, config, *_batch(2, 0, config))
    assert capsys.readouterr().err == ""

    build = onednn.OneDNN._plan

    def no_new_plans(self, key, builder):
        if key not in self.plans:
            raise onednn.OneDNNError(f"no plan for {key[0]} at this shape (injected)")
        return build(self, key, builder)

    monkeypatch.setattr(onednn.OneDNN, "_plan", no_new_plans)
    batch = _batch(1, 1, config)
    handed_over = _tiny_step(nets, config, *batch)
    lines = capsys.readouterr().err.strip().splitlines()
    named = sorted(line.split("'s ")[1].split(" failed")[0] for line in lines)
    assert named == sorted(OPERATIONS), lines
    assert all(line.startswith("warning: onednn's ") and "(injected)" in line and "Paddle's kernel runs it" in line
               for line in lines)
    assert kernels.backend() == "onednn" and all(kernels.running(op) == "paddle" for op in OPERATIONS)
    again = _tiny_step(nets, config, *batch)
    assert capsys.readouterr().err == ""
    with kernels.using("paddle"):
        expected = _tiny_step(nets, config, *batch)
    assert set(handed_over) == set(expected)
    for name, value in expected.items():
        for got in (handed_over[name], again[name]):
            np.testing.assert_allclose(got, value, rtol=0, atol=1e-5 * max(1.0, np.abs(value).max()), err_msg=name)


def test_a_failing_operation_leaves_the_others_on_onednn(monkeypatch, capsys):
    """Only the operation whose kernel failed goes to Paddle's; the call's result is Paddle's."""
    kernels.install("onednn")
    monkeypatch.setattr(onednn.OneDNN, "matmul", lambda *args: (_ for _ in ()).throw(onednn.OneDNNError("x")))
    a = paddle.rand([2, 3, 4])
    np.testing.assert_allclose(kernels.matmul(a, a, transpose_b=True).numpy(),
                               paddle.matmul(a, a, transpose_y=True).numpy(), atol=1e-6)
    assert kernels.running("matmul") == "paddle" and kernels.running("conv2d") == "onednn"
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("activation", [None, "elu", "relu"])
@pytest.mark.parametrize("layer", ["GenConv", "GenDeconv"])
def test_a_layer_means_the_same_on_both_backends(layer, activation):
    """Whatever its activation (the decoder's upsampling layer once dropped a non-ELU one on the CPU)."""
    paddle.seed(4)
    built = GenConv(4, 6, 3, activation=activation) if layer == "GenConv" else GenDeconv(4, 6)
    conv = built.conv if layer == "GenConv" else built.conv.conv
    conv.activation = activation
    x0 = np.random.default_rng(5).standard_normal((2, 4, 6, 10)).astype(np.float32)
    results = []
    for backend in ("onednn", "paddle"):
        with kernels.using(backend):
            x = paddle.to_tensor(x0, stop_gradient=False)
            y = built(x)
            (y * y).sum().backward()
            results.append([y.numpy(), x.grad.numpy(), conv.weight.grad.numpy()])
            built.clear_gradients()
    if layer == "GenDeconv":
        with kernels.using("paddle"):
            np.testing.assert_allclose(results[1][0], built.conv(upsample_twice(paddle.to_tensor(x0))).numpy(),
                                       atol=1e-6)
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5 * max(1.0, np.abs(theirs).max()))


def test_without_the_library_training_and_inference_run_on_paddle_saying_so_once(tmp_path, golden_checkpoint):
    """``$DEEPFILL_ONEDNN_LIBRARY`` pointing at a missing file: ``train.py`` completes an iteration and
    ``inpaint.py`` a fill, each with one line on stderr that says why Paddle's kernels run."""
    import cv2
    env = {onednn.LIBRARY_VARIABLE: str(tmp_path / "missing" / "libdnnl.so.3")}
    result = run_command("train.py", "--set", "image_size=32", "hole_size=16", "max_delta=4", "cnum=8",
                         "batch_size=2", "critic_steps=1", "reconstruction_iters=0", "max_iters=1", "val_every=0",
                         "num_workers=0", f"run_dir={tmp_path / 'run'}", "device=cpu", env=env)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "oneDNN" in line]
    assert len(said) == 1 and "missing/libdnnl.so.3" in said[0] and "Paddle's own kernels" in said[0], result.stderr
    assert any(path.name.startswith("step_") for path in (tmp_path / "run").iterdir())

    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    hole = np.zeros((64, 64), np.uint8)
    hole[20:40, 16:44] = 255
    cv2.imwrite(str(tmp_path / "image.png"), image)
    cv2.imwrite(str(tmp_path / "mask.png"), hole)
    out = tmp_path / "out.png"
    result = run_command("inpaint.py", "--checkpoint", golden_checkpoint, "--image", str(tmp_path / "image.png"),
                         "--mask", str(tmp_path / "mask.png"), "--output", str(out), "--device", "cpu", env=env)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "oneDNN" in line]
    assert len(said) == 1 and "missing/libdnnl.so.3" in said[0], result.stderr
    filled = cv2.imread(str(out))
    assert filled.shape == image.shape and (filled[hole == 0] == image[hole == 0]).all()
