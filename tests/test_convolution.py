"""oneDNN's kernels (``deepfill.models.onednn_convolution``, ``deepfill.models.onednn_matmul``, ``deepfill.utils.onednn``) against Paddle's, through the
kernel table (``deepfill.models.kernels``): the same values and the same first and second derivatives, for every
geometry the model uses; and the self-check catches a primitive that disagrees."""
from __future__ import annotations

import platform

import numpy as np
import paddle
import pytest

from deepfill.models import activations, kernels, onednn_convolution
from deepfill.models.layers import resize_nearest, upsample_twice
from deepfill.utils import onednn

GEOMETRIES = [  # input shape, kernel, stride, dilation, TF-'SAME' padding (top, bottom, left, right)
    ((2, 5, 16, 16), 5, 1, 1, (2, 2, 2, 2)),     # conv1: the 5-channel input
    ((2, 8, 16, 16), 3, 2, 1, (0, 1, 0, 1)),     # stride 2 on an even side pads after only
    ((2, 8, 16, 12), 3, 1, 4, (4, 4, 4, 4)),     # dilated, not square
    ((1, 3, 17, 17), 5, 2, 1, (2, 2, 2, 2)),     # a critic's first layer, odd side
]


BACKENDS = ("onednn", "paddle")


def test_onednn_is_used_on_this_machine():
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("Paddle ships oneDNN on x86-64 only")
    assert onednn.instance() is not None, onednn.unavailable_reason()
    assert kernels.backend() == "onednn"


def _run(backend: str, x0, w0, b0, geometry, activation) -> list[np.ndarray]:
    """y, the input gradient of a score (kept in the graph), and the gradients of score + a penalty on that
    input gradient — the critic's gradient-penalty pattern, which needs second derivatives."""
    with kernels.using(backend):
        x = paddle.to_tensor(x0, stop_gradient=False)
        w, b = paddle.to_tensor(w0, stop_gradient=False), paddle.to_tensor(b0, stop_gradient=False)
        y = kernels.conv2d(x, w, b, *geometry, activation)
        score = (paddle.tanh(y) * paddle.linspace(-1, 1, y.size).reshape(y.shape)).sum()
        gradient = paddle.grad(score, [x, w, b], create_graph=True)[0]   # all three: deepfill.models.onednn_convolution's caveat
        total = score + ((gradient * gradient).sum(axis=[1, 2, 3]).sqrt() - 1).pow(2).mean()
        total.backward()
    return [t.numpy() for t in (y, gradient, x.grad, w.grad, b.grad)]


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
@pytest.mark.parametrize("shape,kernel,stride,dilation,padding", GEOMETRIES)
def test_onednn_matches_paddle_to_the_second_derivative(shape, kernel, stride, dilation, padding, activation):
    generator = np.random.default_rng(len(shape) + kernel + stride + dilation)
    x0 = generator.standard_normal(shape).astype(np.float32)
    w0 = (0.2 * generator.standard_normal((6, shape[1], kernel, kernel))).astype(np.float32)
    b0 = generator.standard_normal(6).astype(np.float32)
    ours = _run("onednn", x0, w0, b0, (stride, dilation, padding), activation)
    theirs = _run("paddle", x0, w0, b0, (stride, dilation, padding), activation)
    for name, a, b in zip(("output", "input gradient", "x grad", "w grad", "b grad"), ours, theirs):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * max(1.0, np.abs(b).max()), err_msg=name)


def test_frozen_inputs_get_no_gradient():
    x = paddle.randn([1, 4, 8, 8])                  # stop_gradient: an image, not a parameter
    w = paddle.to_tensor(np.ones((2, 4, 3, 3), np.float32), stop_gradient=False)
    b = paddle.zeros([2])
    kernels.conv2d(x, w, b, 1, 1, (1, 1, 1, 1)).sum().backward()
    assert x.grad is None and b.grad is None
    assert w.grad is not None and float(w.grad.abs().sum()) > 0


@pytest.mark.parametrize("height,width", [(1, 1), (2, 3), (8, 8), (31, 64), (128, 96)])
def test_upsample_twice_is_the_official_nearest_resize(height, width):
    x = paddle.to_tensor(np.random.default_rng(height).random((2, 3, height, width), np.float32),
                         stop_gradient=False)
    weights = paddle.to_tensor(np.random.default_rng(width).random((2, 3, 2 * height, 2 * width), np.float32))
    fast, slow = upsample_twice(x), resize_nearest(x, 2 * height, 2 * width)
    assert np.array_equal(fast.numpy(), slow.numpy())
    (fast_grad,) = paddle.grad((fast * weights).sum(), x)
    (slow_grad,) = paddle.grad((slow * weights).sum(), x)
    np.testing.assert_allclose(fast_grad.numpy(), slow_grad.numpy(), atol=1e-6)


@pytest.mark.parametrize("shape,kernel,stride,dilation,padding", GEOMETRIES[:3])
def test_fused_elu_matches_paddle_to_the_first_derivative(shape, kernel, stride, dilation, padding):
    generator = np.random.default_rng(7)
    arrays = (generator.standard_normal(shape), 0.3 * generator.standard_normal((6, shape[1], kernel, kernel)),
              generator.standard_normal(6))
    results = []
    for backend in BACKENDS:
        with kernels.using(backend):
            x, w, b = (paddle.to_tensor(a.astype(np.float32), stop_gradient=False) for a in arrays)
            y = kernels.conv2d(x, w, b, stride, dilation, padding, "elu")
            (y * paddle.linspace(-1, 1, y.size).reshape(y.shape)).sum().backward()
            results.append([t.numpy() for t in (y, x.grad, w.grad, b.grad)])
            with paddle.no_grad():
                np.testing.assert_allclose(kernels.conv2d(x, w, b, stride, dilation, padding, "elu").numpy(),
                                           results[-1][0], atol=1e-6)
    for name, a, b in zip(("output", "x grad", "w grad", "b grad"), *results):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * max(1.0, np.abs(b).max()), err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("operation", ["conv2d", "conv2d dilated 16", "upsample_conv2d"])
def test_elu_refuses_second_derivatives_alike_on_both_backends(backend, operation):
    """The generator's ELU keeps only its output for backward (``deepfill.models.activations``), fused into oneDNN's
    convolution or not: a second derivative through it is refused with the same error on both backends."""
    x = paddle.to_tensor(np.random.default_rng(2).standard_normal((1, 2, 20, 20)).astype(np.float32),
                         stop_gradient=False)
    w = paddle.to_tensor(np.full((2, 2, 3, 3), 0.1, np.float32), stop_gradient=False)
    with kernels.using(backend):
        if operation == "upsample_conv2d":
            y = kernels.upsample_conv2d(x, w, paddle.zeros([2]), "elu")
        else:
            dilation = 16 if operation.endswith("16") else 1     # oneDNN: the transposed path
            y = kernels.conv2d(x, w, paddle.zeros([2]), 1, dilation, (dilation,) * 4, "elu")
        with pytest.raises(Exception, match="second derivatives through the generator's ELU are not implemented"):
            paddle.grad(y.sum(), [x, w], create_graph=True)
        y.sum().backward()                             # first derivatives: fine
        assert np.isfinite(x.grad.numpy()).all() and np.isfinite(w.grad.numpy()).all()


def test_elu_from_its_output_is_paddles_elu_bit_for_bit():
    """Paddle's kernels' ELU (what a GPU runs) backed by its output alone: the same values and gradients as
    ``F.elu``, at and around 0 and where exp saturates."""
    x0 = np.concatenate([np.linspace(-20, 20, 4001), [0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0]]).astype(np.float32)
    dy = paddle.to_tensor(np.random.default_rng(3).standard_normal(x0.shape).astype(np.float32))
    results = []
    for elu in (paddle.nn.functional.elu, activations.elu):
        x = paddle.to_tensor(x0, stop_gradient=False)
        y = elu(x)
        y.backward(dy)
        results.append((y.numpy(), x.grad.numpy()))
    assert all(np.array_equal(a, b) for a, b in zip(*results))
    x = paddle.to_tensor(x0, stop_gradient=False)
    with pytest.raises(Exception, match="second derivatives"):
        paddle.grad(activations.elu(x).sum(), [x], create_graph=True)


def test_paddle_kernels_keep_one_tensor_per_convolution_and_elu():
    """On Paddle's kernels a stack of convolution + ELU layers keeps, for backward, each layer's ELU output
    (also the next convolution's input) and not its convolution's output as well: about half the memory of
    ``F.elu``'s, which keeps both."""
    from paddle.base import core
    x = paddle.to_tensor(np.random.default_rng(4).standard_normal((1, 8, 128, 128)).astype(np.float32),
                         stop_gradient=False)
    w = paddle.to_tensor(np.full((8, 8, 3, 3), 0.05, np.float32), stop_gradient=False)
    kept = []
    with kernels.using("paddle"):
        for elu in (paddle.nn.functional.elu, activations.elu):
            start = core.host_memory_stat_current_value("Allocated", 0)
            y = x
            for _ in range(6):
                y = elu(kernels.conv2d(y, w, None, 1, 1, (1, 1, 1, 1)))
            kept.append(core.host_memory_stat_current_value("Allocated", 0) - start)
            y.sum().backward()
            del y
    layer = 8 * 128 * 128 * 4
    assert kept[1] < 6.5 * layer and kept[0] > 11 * layer, [k / layer for k in kept]


@pytest.mark.parametrize("activation", [None, "elu", "relu"])
def test_upsample_convolution_is_upsampling_then_convolving(activation):
    """oneDNN's ``upsample_conv2d`` (one transposed convolution) against Paddle's (the upsampled image
    convolved): the values and the gradients of input, weights and bias, whatever the activation."""
    generator = np.random.default_rng(3)
    arrays = (generator.standard_normal((2, 6, 5, 7)), 0.3 * generator.standard_normal((4, 6, 3, 3)),
              generator.standard_normal(4))
    results = []
    for backend in BACKENDS:
        with kernels.using(backend):
            x, w, b = (paddle.to_tensor(a.astype(np.float32), stop_gradient=False) for a in arrays)
            y = kernels.upsample_conv2d(x, w, b, activation)
            (y * paddle.linspace(-1, 1, y.size).reshape(y.shape)).sum().backward()
            results.append([t.numpy() for t in (y, x.grad, w.grad, b.grad)])
    for name, a, b in zip(("output", "x grad", "w grad", "b grad"), *results):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * max(1.0, np.abs(b).max()), err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask_channel", [False, True])
def test_critic_input_gradient_is_autograds(backend, mask_channel):
    """``Critic.input_gradient`` (the backward pass written out on the kernels) against ``paddle.grad`` of the
    critic's score on Paddle's kernels: the gradient, and the weights' gradients of a penalty on it."""
    from deepfill.models.critics import global_critic
    x0 = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
    mask0 = (np.random.default_rng(6).random((2, 1, 32, 32)) > 0.5).astype(np.float32)
    paddle.seed(1)
    critic = global_critic(32, mask_channel)
    mask = paddle.to_tensor(mask0) if mask_channel else None
    results = []
    for written_out in (True, False):
        with kernels.using(backend if written_out else "paddle"):
            x = paddle.to_tensor(x0, stop_gradient=False)
            if written_out:
                gradient = critic.input_gradient(x, mask)
            else:       # with respect to the whole input: Paddle has no double grad through the mask's concat
                inputs = critic.with_mask(x, mask).detach()
                inputs.stop_gradient = False
                gradient = paddle.grad(critic.score(inputs), inputs, create_graph=True)[0][:, :3]
            ((gradient * gradient).sum(axis=[1, 2, 3]).sqrt() - 1).pow(2).mean().backward()
        results.append([gradient.numpy()] + [np.zeros(p.shape) if p.grad is None else p.grad.numpy()
                                             for p in critic.parameters()])   # biases: zero almost everywhere
        critic.clear_gradients()
    for i, (a, b) in enumerate(zip(*results)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * max(1.0, np.abs(b).max()), err_msg=str(i))


@pytest.mark.parametrize("activation", [None, "elu"])
def test_convolution_as_transposed_matches_paddle(activation):
    """A stride-1 convolution computed as the backward-data pass of the flipped kernel (what runs where
    oneDNN's forward kernel is the generic one, e.g. dilation 16 on 64² features): values and first
    derivatives as Paddle's convolution."""
    generator = np.random.default_rng(11)
    arrays = (generator.standard_normal((2, 16, 20, 20)), 0.2 * generator.standard_normal((8, 16, 3, 3)),
              generator.standard_normal(8))
    geometry = onednn.Geometry(1, 4, (4, 4, 4, 4))
    results = []
    for transposed in (True, False):
        with kernels.using("onednn" if transposed else "paddle"):
            x, w, b = (paddle.to_tensor(a.astype(np.float32), stop_gradient=False) for a in arrays)
            if transposed:
                y = onednn_convolution._as_transposed(x, w, b, geometry, activation)
            else:
                y = kernels.conv2d(x, w, b, 1, 4, geometry.padding, activation)
            (y * paddle.linspace(-1, 1, y.size).reshape(y.shape)).sum().backward()
            results.append([t.numpy() for t in (y, x.grad, w.grad, b.grad)])
    for name, a, b in zip(("output", "x grad", "w grad", "b grad"), *results):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * max(1.0, np.abs(b).max()), err_msg=name)


@pytest.mark.parametrize("activation", ["leaky_relu", "elu"])
def test_fused_outputs_are_freed_after_a_second_order_step(activation):
    """A fused layer keeps its output for its backward; keeping the output object itself made a cycle
    (output → its grad node → saved output) that a create_graph backward never broke: the critics leaked
    14 MB per iteration at the demo's size. The output must die with the graph."""
    import gc
    import weakref
    w = paddle.to_tensor(np.ones((2, 2, 3, 3), np.float32) * 0.1, stop_gradient=False)
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((1, 2, 6, 6)).astype(np.float32),
                         stop_gradient=False)
    y = kernels.conv2d(x, w, paddle.zeros([2]), 1, 1, (1, 1, 1, 1), activation)
    alive = weakref.ref(y)
    if activation == "leaky_relu":
        gradient = paddle.grad(y.sum(), [x, w], create_graph=True)[0]
        (gradient * gradient).sum().backward()
        del gradient
    else:
        y.sum().backward()
    del y
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("transpose_a,transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_attention_matmul_on_onednn_matches_paddle(transpose_a, transpose_b):
    """The attention's products (``kernels.matmul``): the same values and first derivatives on both
    backends, for every way the operands can be stored."""
    generator = np.random.default_rng(int(transpose_a) * 2 + int(transpose_b))
    a0 = generator.standard_normal((3, 7, 5) if transpose_a else (3, 5, 7)).astype(np.float32)
    b0 = generator.standard_normal((3, 6, 7) if transpose_b else (3, 7, 6)).astype(np.float32)
    weights = paddle.to_tensor(generator.standard_normal((3, 5, 6)).astype(np.float32))
    results = []
    for backend in BACKENDS:
        with kernels.using(backend):
            a, b = paddle.to_tensor(a0, stop_gradient=False), paddle.to_tensor(b0, stop_gradient=False)
            y = kernels.matmul(a, b, transpose_a, transpose_b)
            (paddle.tanh(y) * weights).sum().backward()
            results.append([t.numpy() for t in (y, a.grad, b.grad)])
    for ours, theirs in zip(*results):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("size,rate", [((16, 16), 2), ((12, 20), 2), ((8, 32), 2)])
def test_attention_paste_on_onednn_matches_paddle(size, rate):
    """The attention's paste (``kernels.paste``): oneDNN's transposed convolution against Paddle's matrix
    product and fold — values and the gradients of the attention map and the patches, two images."""
    from deepfill.models.layers import same_padding
    grid = (size[0] // rate, size[1] // rate)
    padding = (*same_padding(size[0], 2 * rate, rate), *same_padding(size[1], 2 * rate, rate))
    generator = np.random.default_rng(rate)
    attention0 = generator.random((2, grid[0] * grid[1], 10)).astype(np.float32)
    patches0 = generator.standard_normal((2, 3 * (2 * rate) ** 2, 10)).astype(np.float32)
    weights = paddle.to_tensor(generator.standard_normal((2, 3, *size)).astype(np.float32))
    results = []
    for backend in BACKENDS:
        with kernels.using(backend):
            attention = paddle.to_tensor(attention0, stop_gradient=False)
            patches = paddle.to_tensor(patches0, stop_gradient=False)
            y = kernels.paste(attention, patches, grid, size, rate, padding)
            (y * weights).sum().backward()
            results.append([t.numpy() for t in (y, attention.grad, patches.grad)])
    for name, ours, theirs in zip(("output", "attention grad", "patches grad"), *results):
        assert ours.shape == theirs.shape, name
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5 * max(1.0, np.abs(theirs).max()), err_msg=name)


@pytest.mark.parametrize("primitive", ["forward", "backward_data", "backward_weights", "activation_backward",
                                       "add_bias", "matmul"])
def test_self_check_catches_a_primitive_that_disagrees(monkeypatch, primitive):
    """``deepfill.utils.onednn.self_check`` runs every primitive the model uses against Paddle's kernels: one that is
    off by 1 % anywhere (here: every result scaled) makes oneDNN unusable."""
    library = onednn.OneDNN()
    onednn.self_check(library)
    right = getattr(library, primitive)

    def wrong(*args, **kwargs):
        result = right(*args, **kwargs)
        return tuple(t * 1.01 for t in result) if isinstance(result, tuple) else result * 1.01

    monkeypatch.setattr(library, primitive, wrong)
    with pytest.raises(onednn.OneDNNError, match="disagrees with Paddle's"):
        onednn.self_check(library)
