"""The model's kernels: the few numeric operations whose implementation depends on where the model runs,
which the layers call by name through this module and nowhere else.

* ``conv2d``: a convolution with TF padding (top, bottom, left, right), then an activation
  (``deepfill.models.activations``) — every layer;
* ``upsample_conv2d``: nearest ×2 upsampling, then a 3×3 TF-'SAME' convolution — ``gen_deconv``;
* ``conv2d_input_gradient`` and ``leaky_relu_gradient``: the backward pass of a critic, written out for
  the gradient penalty (``Critic.input_gradient``);
* ``matmul``: batched products — the contextual attention's matching and pasting;
* ``paste``: the attention's paste of the whole attention map at once (where a gradient is wanted).

Each has one meaning, and Paddle's own kernels define it (``PADDLE``): they are what runs on a GPU and in static
graphs (the export), and by default everywhere. On the CPU oneDNN's kernels (``deepfill.models.onednn_convolution``,
``deepfill.models.onednn_matmul``) compute the same, faster. ``choose`` installs them, once per process: the
training run (``Trainer``) from its ``onednn`` setting, each inference entry point (``inpaint.py``, ``app.py``, the
Python API, …) after picking the device — building a network never does. Tests switch with ``using``.

The dispatch lives here alone: an installed backend runs a call only when every tensor it takes is an
eager float32 tensor on the CPU of the operation's rank; Paddle's kernel runs every other call. A backend
whose kernel fails at call time (``OneDNNError``, e.g. a shape it cannot run, met mid-run) does not end
the run: the table says so once on stderr, gives that operation back to Paddle's kernel for the rest of
the process, and reruns the call there. (The backend builds what its backward passes need during the
call — ``OneDNN.prepare_convolution`` — so that such a failure surfaces here and not in a backward pass.)
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

import paddle
import paddle.nn.functional as F

from deepfill.models import onednn_convolution, onednn_matmul
from deepfill.models.activations import activate
from deepfill.utils import onednn
from deepfill.utils.config import CPU_PRECISIONS
from deepfill.utils.errors import UserError
from deepfill.utils.onednn import LEAKY_SLOPE, OneDNNError


def upsample_twice(x: paddle.Tensor) -> paddle.Tensor:
    """TF1's nearest resize (align_corners=True) to twice the size, as a broadcast: faster than two
    gathers, forward and backward. It is the same resize: output row j of 2n reads round(j (n-1)/(2n-1)),
    and for j = 2k that is round(k - k/(2n-1)) = k, for j = 2k+1 round(k + 1/2 - (k+1/2)/(2n-1)) = k,
    since k < n — so each row (and column) is simply repeated (``tests/test_convolution.py`` checks it against
    the gathers)."""
    n, c, h, w = x.shape
    return x.reshape([n, c, h, 1, w, 1]).expand([n, c, h, 2, w, 2]).reshape([n, c, 2 * h, 2 * w])


def _paddle_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, stride: int,
                   dilation: int, padding: tuple[int, int, int, int], activation: str | None = None
                   ) -> paddle.Tensor:
    return activate(F.conv2d(x, weight, bias, stride=stride, dilation=dilation, padding=list(padding)), activation)


def _paddle_upsample_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor,
                            activation: str | None = None) -> paddle.Tensor:
    return _paddle_conv2d(upsample_twice(x), weight, bias, 1, 1, (1, 1, 1, 1), activation)


def _paddle_conv2d_input_gradient(dy: paddle.Tensor, weight: paddle.Tensor, x_shape: tuple[int, ...], stride: int,
                                  dilation: int, padding: tuple[int, int, int, int]) -> paddle.Tensor:
    return F.conv2d_transpose(dy, weight, stride=stride, dilation=dilation, padding=list(padding),
                              output_size=list(x_shape[2:]))


def _paddle_leaky_relu_gradient(dy: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
    return paddle.where(y.detach() > 0, dy, dy * LEAKY_SLOPE)


def _paddle_matmul(a: paddle.Tensor, b: paddle.Tensor, transpose_a: bool = False, transpose_b: bool = False
                   ) -> paddle.Tensor:
    return paddle.matmul(a, b, transpose_x=transpose_a, transpose_y=transpose_b)


def _paddle_paste(attention: paddle.Tensor, patches: paddle.Tensor, grid: tuple[int, int], size: tuple[int, int],
                  rate: int, padding: tuple[int, int, int, int]) -> paddle.Tensor:
    top, bottom, left, right = padding
    columns = paddle.matmul(attention, patches, transpose_y=True)
    return F.fold(columns.transpose([0, 2, 1]), output_sizes=list(size), kernel_sizes=2 * rate, strides=rate,
                  paddings=[top, left, bottom, right])


PADDLE: dict[str, Callable] = {
    "conv2d": _paddle_conv2d, "upsample_conv2d": _paddle_upsample_conv2d,
    "conv2d_input_gradient": _paddle_conv2d_input_gradient, "leaky_relu_gradient": _paddle_leaky_relu_gradient,
    "matmul": _paddle_matmul, "paste": _paddle_paste}
"""Paddle's kernels: what each operation means."""

ONEDNN: dict[str, Callable] = {
    "conv2d": onednn_convolution.conv2d, "upsample_conv2d": onednn_convolution.upsample_conv2d,
    "conv2d_input_gradient": onednn_convolution.conv2d_input_gradient,
    "leaky_relu_gradient": onednn_convolution.leaky_relu_gradient, "matmul": onednn_matmul.matmul,
    "paste": onednn_convolution.paste}
"""oneDNN's kernels, for eager float32 tensors on the CPU."""

BACKENDS = {"paddle": PADDLE, "onednn": ONEDNN}
RANKS = {"conv2d": 4, "upsample_conv2d": 4, "conv2d_input_gradient": 4, "leaky_relu_gradient": 4, "matmul": 3,
         "paste": 3}
"""The number of axes of every tensor an operation takes, as oneDNN's kernels expect them."""

_installed: dict[str, Callable] = dict(PADDLE)
_backend = "paddle"
_said_unavailable = False


def install(backend: str) -> None:
    """Run the model's operations on ``backend``'s kernels ("paddle" or "onednn") from now on. oneDNN's
    need a library that loaded and passed its self-check (``deepfill.utils.onednn.instance()``): OneDNNError
    otherwise."""
    global _backend
    if backend == "onednn" and onednn.instance() is None:
        raise OneDNNError(f"oneDNN cannot be used here: {onednn.unavailable_reason()}")
    _installed.clear()
    _installed.update(BACKENDS[backend])
    _backend = backend


def backend() -> str:
    """The installed backend's name (some of its operations may have been given back to Paddle's)."""
    return _backend


def running(operation: str) -> str:
    """The name of the backend that runs ``operation`` for tensors it applies to."""
    return _backend if _installed[operation] is BACKENDS[_backend][operation] else "paddle"


def device_is_cpu() -> bool:
    """Whether Paddle's current device is the CPU, the only one oneDNN's kernels can serve (their engine
    reads host memory). The one question ``choose`` asks of the device (``tests/test_gpu_path.py``
    answers it as a GPU would)."""
    return paddle.device.get_device() == "cpu"


def choose(onednn_wanted: bool = True, precision: str = "float32") -> str:
    """Install the kernels this process runs the model on, after the device is picked: oneDNN's when
    ``onednn_wanted`` (the ``onednn`` setting), the device is the CPU and the library passed its self-check;
    Paddle's otherwise. When oneDNN was wanted on the CPU but cannot be used, says so once on stderr, with
    the reason. Returns the installed backend's name.

    ``precision`` ("float32" or "bfloat16", the ``cpu_precision`` setting) is what oneDNN's convolutions
    multiply in: bfloat16 factors (8 bits of mantissa) with float32 sums and results, about twice as fast
    on a processor with bfloat16 instructions, and no longer the official float32 arithmetic. It is
    refused (UserError) on a processor without them, where oneDNN would emulate them, slower. Paddle's
    kernels (a GPU, ``onednn=false``) always compute in float32; asking them for bfloat16 is said on stderr."""
    global _said_unavailable
    if precision not in CPU_PRECISIONS:
        raise UserError(f"cpu_precision must be one of {', '.join(CPU_PRECISIONS)}, got {precision!r}")
    if onednn_wanted and device_is_cpu():
        library = onednn.instance()
        if library is not None:
            if precision == "bfloat16" and not library.multiplies_bfloat16_natively():
                raise UserError("cpu_precision=bfloat16 needs a processor with bfloat16 instructions (AVX512_BF16 "
                                "or AMX); this one would emulate them, slower than float32")
            library.precision = precision
            install("onednn")
            return "onednn"
        if not _said_unavailable:
            print(f"note: oneDNN cannot be used ({onednn.unavailable_reason()}); the CPU runs Paddle's own "
                  "kernels, which are slower", file=sys.stderr)
            _said_unavailable = True
    if precision != "float32":
        print(f"note: cpu_precision={precision} applies to oneDNN's kernels on the CPU; Paddle's kernels run "
              "this process in float32", file=sys.stderr)
    install("paddle")
    return "paddle"


@contextmanager
def kept() -> Iterator[None]:
    """Whatever the block installs, the kernels installed before it (and oneDNN's precision) run the model
    after it."""
    global _backend
    saved, saved_backend = dict(_installed), _backend
    library = onednn.existing()
    precision = library.precision if library is not None else None
    try:
        yield
    finally:
        _installed.clear()
        _installed.update(saved)
        _backend = saved_backend
        if library is not None:
            library.precision = precision


@contextmanager
def using(backend: str) -> Iterator[None]:
    """Run the model on ``backend``'s kernels inside the block, and on the kernels installed before it
    after it (tests compare the two)."""
    with kept():
        install(backend)
        yield


def _applies(operation: str, operands: tuple[paddle.Tensor, ...]) -> bool:
    rank = RANKS[operation]
    return paddle.in_dynamic_mode() and all(
        len(t.shape) == rank and t.dtype == paddle.float32 and t.place.is_cpu_place() for t in operands)


def _give_back(operation: str, error: Exception) -> None:
    """Paddle's kernel runs ``operation`` from now on; said once, on one line."""
    _installed[operation] = PADDLE[operation]
    print(f"warning: {_backend}'s {operation} failed ({error}); Paddle's kernel runs it from now on",
          file=sys.stderr)


def _call(operation: str, operands: tuple[paddle.Tensor, ...], *args):
    kernel = _installed[operation]
    if kernel is not PADDLE[operation] and _applies(operation, operands):
        try:
            return kernel(*args)
        except OneDNNError as error:
            _give_back(operation, error)
    return PADDLE[operation](*args)


@paddle.jit.not_to_static
def conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, stride: int, dilation: int,
           padding: tuple[int, int, int, int], activation: str | None = None) -> paddle.Tensor:
    """``F.conv2d`` of NCHW ``x`` with ``padding`` (top, bottom, left, right), then ``activation`` (one of
    ``deepfill.models.activations.ACTIVATIONS``)."""
    return _call("conv2d", (x, weight), x, weight, bias, stride, dilation, padding, activation)


@paddle.jit.not_to_static
def upsample_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, activation: str | None = None
                    ) -> paddle.Tensor:
    """A 3×3 TF-'SAME' convolution of ``x`` upsampled ×2 (``upsample_twice``), then ``activation``."""
    return _call("upsample_conv2d", (x, weight), x, weight, bias, activation)


@paddle.jit.not_to_static
def conv2d_input_gradient(dy: paddle.Tensor, weight: paddle.Tensor, x_shape: tuple[int, ...], stride: int,
                          dilation: int, padding: tuple[int, int, int, int]) -> paddle.Tensor:
    """The gradient of ``conv2d`` (no activation) with respect to its input, of ``x_shape``, given ``dy``:
    the transposed convolution. Differentiable with respect to ``dy`` and ``weight``."""
    return _call("conv2d_input_gradient", (dy, weight), dy, weight, tuple(x_shape), stride, dilation,
                 tuple(padding))


@paddle.jit.not_to_static
def leaky_relu_gradient(dy: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
    """The gradient through y = leaky_relu(z) (slope 0.2) with respect to z, given ``dy``: dy where y > 0,
    else 0.2 dy. Differentiable with respect to ``dy`` (``y`` only decides where: its gradient is zero
    almost everywhere)."""
    return _call("leaky_relu_gradient", (dy, y), dy, y)


@paddle.jit.not_to_static
def matmul(a: paddle.Tensor, b: paddle.Tensor, transpose_a: bool = False, transpose_b: bool = False
           ) -> paddle.Tensor:
    """``paddle.matmul`` of 3-D ``a`` and ``b`` (batch first)."""
    return _call("matmul", (a, b), a, b, transpose_a, transpose_b)


@paddle.jit.not_to_static
def paste(attention: paddle.Tensor, patches: paddle.Tensor, grid: tuple[int, int], size: tuple[int, int],
          rate: int, padding: tuple[int, int, int, int]) -> paddle.Tensor:
    """The contextual attention's paste (official: a transposed convolution): the attention map
    [N, positions, L] over the foreground ``grid`` (positions = its area), each position pasting the L
    background ``patches`` [N, C·(2·rate)², L] weighted by its attention at stride ``rate`` with TF
    padding (top, bottom, left, right), into an [N, C, *size] image."""
    return _call("paste", (attention, patches), attention, patches, tuple(grid), tuple(size), rate, tuple(padding))
