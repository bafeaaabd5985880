"""Convolutions on oneDNN for Paddle's eager mode on the CPU, through the oneDNN library Paddle ships.

Why this exists: Paddle's eager CPU convolutions (and their gradients) are im2col + GEMM and never use
oneDNN — ``FLAGS_use_mkldnn`` / ``FLAGS_use_onednn`` change nothing in eager mode — while oneDNN's JIT
kernels (AVX-512 or AVX2, picked by oneDNN for the processor) run the same layers several times faster,
forward and both backward passes (docs/performance.md). Paddle's wheel carries ``libdnnl.so.3`` (it uses it
for Paddle Inference), so this module binds oneDNN's stable C API with ``ctypes``: no compiler and no extra
package. ``$DEEPFILL_ONEDNN_LIBRARY`` names another copy of the library to load instead.

Three convolution primitives, each on NCHW float32 Paddle tensors, with outputs as new Paddle tensors:
``forward`` (y = conv(x, w) + b), ``backward_data`` (dx from dy and w), ``backward_weights`` (dw and db
from x and dy); and, for the contextual attention, a batched ``matmul``. Each call reorders its operands
into the blocked layouts oneDNN chose and the results back; the primitives and reorders are built once per
shape and geometry and kept (``CACHE_SIZE``), the blocked copies live in a few reused work buffers, so
memory does not grow per layer. ``deepfill.models.onednn_convolution`` builds differentiable convolutions from these,
``deepfill.models.onednn_matmul`` differentiable products, and ``deepfill.models.kernels`` puts them behind the model.

``instance()`` is None (and the model keeps Paddle's own kernels) when the library is missing, is not
oneDNN 3, or disagrees with Paddle's kernels (``self_check``).
"""
from __future__ import annotations

import ctypes
import os
import threading
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass

import numpy as np
import paddle

CACHE_SIZE = 256
LIBRARY_VARIABLE = "DEEPFILL_ONEDNN_LIBRARY"
KEPT_BUFFER_BYTES = 64 << 20
_BF16, _F32, _FORMAT_ANY, _CPU, _IN_ORDER, _SCRATCHPAD_USER = 2, 3, 1, 1, 1, 1
_FACTOR_TYPE = {"float32": _F32, "bfloat16": _BF16}
"""The oneDNN data type of what a convolution multiplies (its two factors, never its result), by precision
(``deepfill.utils.config.CPU_PRECISIONS``)."""
_FORWARD_TRAINING, _CONVOLUTION_DIRECT = 64, 1
_RELU, _ELU, _RELU_FROM_OUTPUT, _ELU_FROM_OUTPUT, _BINARY_ADD = 0x20, 0x22, 0x100, 0x102, 0x1fff0
LEAKY_SLOPE = 0.2
"""The critics' leaky ReLU slope (``activation='leaky_relu'``); ELU is always α = 1."""
_ACTIVATIONS = {"elu": (_ELU, 1.0), "leaky_relu": (_RELU, LEAKY_SLOPE)}
_QUERY_IMPL, _QUERY_SRC, _QUERY_DIFF_SRC, _QUERY_WEIGHTS, _QUERY_DIFF_WEIGHTS = 8, 129, 130, 131, 132
_QUERY_DST, _QUERY_DIFF_DST, _QUERY_SCRATCHPAD = 133, 134, 136
SRC, SRC_1, DST, WEIGHTS, BIAS, SCRATCHPAD, DIFF_SRC, DIFF_DST, DIFF_WEIGHTS, DIFF_BIAS = 1, 2, 17, 33, 41, 80, 129, 145, 161, 169
_QUERY_OF = {SRC: _QUERY_SRC, DST: _QUERY_DST, WEIGHTS: _QUERY_WEIGHTS, DIFF_SRC: _QUERY_DIFF_SRC,
             DIFF_DST: _QUERY_DIFF_DST, DIFF_WEIGHTS: _QUERY_DIFF_WEIGHTS}

_Pointer = ctypes.c_void_p
_Dims = ctypes.c_int64 * 12


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", _Pointer)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int)]


class OneDNNError(RuntimeError):
    """A oneDNN call failed (its status code says why); ``deepfill.models.kernels`` then runs that operation on
    Paddle's kernel."""


@dataclass(frozen=True)
class Geometry:
    """A convolution's stride, dilation and padding (top, bottom, left, right: TF 'SAME' pads unevenly)."""
    stride: int
    dilation: int
    padding: tuple[int, int, int, int]

    def output_side(self, side: int, kernel: int, axis: int) -> int:
        before, after = self.padding[2 * axis], self.padding[2 * axis + 1]
        return (side + before + after - (kernel - 1) * self.dilation - 1) // self.stride + 1

    def output_shape(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        return (x_shape[0], w_shape[0], self.output_side(x_shape[2], w_shape[2], 0),
                self.output_side(x_shape[3], w_shape[3], 1))


def dense_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The element strides of a dense row-major array of ``shape``."""
    return tuple(int(v) for v in np.cumprod((1, *shape[::-1]))[:-1][::-1])


def cpu_empty(shape: tuple[int, ...]) -> paddle.Tensor:
    """An uninitialised float32 tensor in host memory, whatever Paddle's current device (``paddle.empty``
    takes a place only from Paddle 3; this is the operation it calls, in 2.6 as in 3)."""
    return paddle._C_ops.empty(list(shape), paddle.float32, paddle.CPUPlace())


def cpu_zeros(shape: tuple[int, ...]) -> paddle.Tensor:
    """A float32 tensor of zeros in host memory, whatever Paddle's current device."""
    return paddle.to_tensor(np.zeros(shape, np.float32), place=paddle.CPUPlace())


def library_path() -> str:
    """The oneDNN library to load: ``$DEEPFILL_ONEDNN_LIBRARY`` if set, else the one in Paddle's wheel."""
    return os.environ.get(LIBRARY_VARIABLE) or os.path.join(os.path.dirname(paddle.__file__), "libs",
                                                            "libdnnl.so.3")


def _dims(values) -> _Dims:
    dims = _Dims()
    dims[:len(values)] = [int(v) for v in values]
    return dims


class _Library:
    """The loaded ``libdnnl.so.3`` with one CPU engine and one in-order stream."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(library_path())
        self.lib.dnnl_version.restype = ctypes.POINTER(_Version)
        version = self.lib.dnnl_version().contents
        if version.major != 3:
            raise OneDNNError(f"oneDNN {version.major}.{version.minor} is not oneDNN 3")
        self.version = f"{version.major}.{version.minor}.{version.patch}"
        self.lib.dnnl_primitive_desc_query_md.restype = _Pointer
        self.lib.dnnl_memory_desc_get_size.restype = ctypes.c_size_t
        self.lib.dnnl_memory_desc_equal.restype = ctypes.c_int
        self.engine, self.stream = _Pointer(), _Pointer()
        self.call("dnnl_engine_create", ctypes.byref(self.engine), _CPU, 0)
        self.call("dnnl_stream_create", ctypes.byref(self.stream), self.engine, _IN_ORDER)

    def call(self, name: str, *args) -> None:
        status = getattr(self.lib, name)(*args)
        if status != 0:
            raise OneDNNError(f"{name} failed with oneDNN status {status}")

    def plain(self, shape: tuple[int, ...], strides: tuple[int, ...] | None = None) -> _Pointer:
        """A memory descriptor of a dense row-major float32 array (Paddle's layout), or of one read with
        ``strides`` (a transposed view of such an array)."""
        if strides is None:
            strides = dense_strides(shape)
        desc = _Pointer()
        self.call("dnnl_memory_desc_create_with_strides", ctypes.byref(desc), len(shape), _dims(shape), _F32,
                  _dims(strides))
        return desc

    def any_layout(self, shape: tuple[int, ...], data_type: int = _F32) -> _Pointer:
        """A memory descriptor whose layout the primitive chooses, of ``data_type`` elements."""
        desc = _Pointer()
        self.call("dnnl_memory_desc_create_with_tag", ctypes.byref(desc), len(shape), _dims(shape), data_type,
                  _FORMAT_ANY)
        return desc

    def memory(self, desc: _Pointer) -> _Pointer:
        memory = _Pointer()
        self.call("dnnl_memory_create", ctypes.byref(memory), desc, self.engine, None)
        return memory

    def primitive(self, descriptor: _Pointer) -> _Pointer:
        primitive = _Pointer()
        self.call("dnnl_primitive_create", ctypes.byref(primitive), descriptor)
        return primitive

    def reorder(self, source: _Pointer, destination: _Pointer) -> _Pointer:
        descriptor = _Pointer()
        self.call("dnnl_reorder_primitive_desc_create", ctypes.byref(descriptor), source, self.engine,
                  destination, self.engine, None)
        return self.primitive(descriptor)

    def attributes(self, activation: str | None = None) -> _Pointer:
        """Primitive attributes: the scratchpad is ours (``OneDNN``'s shared work buffer, rather than one
        kept by every primitive for good), and ``activation`` (``_ACTIVATIONS``), if any, is applied to
        the output as it is written."""
        attributes = _Pointer()
        self.call("dnnl_primitive_attr_create", ctypes.byref(attributes))
        self.call("dnnl_primitive_attr_set_scratchpad_mode", attributes, _SCRATCHPAD_USER)
        if activation:
            kind, alpha = _ACTIVATIONS[activation]
            post_ops = _Pointer()
            self.call("dnnl_post_ops_create", ctypes.byref(post_ops))
            self.call("dnnl_post_ops_append_eltwise", post_ops, kind, ctypes.c_float(alpha), ctypes.c_float(0.0))
            self.call("dnnl_primitive_attr_set_post_ops", attributes, post_ops)
        return attributes

    def implementation(self, descriptor: _Pointer) -> str:
        name = ctypes.c_char_p()
        self.call("dnnl_primitive_desc_query", descriptor, _QUERY_IMPL, 0, ctypes.byref(name))
        return name.value.decode()

    def execute(self, primitive: _Pointer, args: list[tuple[int, _Pointer]]) -> None:
        array = (_ExecArg * len(args))(*[_ExecArg(arg, memory) for arg, memory in args])
        self.call("dnnl_primitive_execute", primitive, self.stream, len(args), array)
        self.call("dnnl_stream_wait", self.stream)


class _Operand:
    """One argument of a primitive: its Paddle-layout memory and, when oneDNN chose another layout, the
    blocked memory (backed by work buffer ``slot``) and the reorder between the two."""

    def __init__(self, library: _Library, arg: int, shape: tuple[int, ...], descriptor: _Pointer | None,
                 slot: int, is_output: bool, strides: tuple[int, ...] | None = None) -> None:
        self.arg, self.slot = arg, slot
        user = library.plain(shape, strides)
        self.user = library.memory(user)
        chosen = _Pointer(library.lib.dnnl_primitive_desc_query_md(descriptor, _QUERY_OF[arg], 0)) \
            if descriptor is not None and arg in _QUERY_OF else user
        if library.lib.dnnl_memory_desc_equal(chosen, user):
            self.blocked, self.reorder, self.size = None, None, 0
        else:
            self.blocked = library.memory(chosen)
            self.size = library.lib.dnnl_memory_desc_get_size(chosen)
            self.reorder = library.reorder(chosen, user) if is_output else library.reorder(user, chosen)


class _Plan:
    """A built primitive with its operands, for one kind, shape and geometry."""

    def __init__(self, library: _Library, descriptor: _Pointer | None, inputs: list[tuple],
                 outputs: list[tuple], plain_descriptor: _Pointer | None = None) -> None:
        """``descriptor``: a primitive whose operands take the layouts it chose; or ``plain_descriptor``: one
        whose operands are all in Paddle's layout. Operands are (arg, shape) or (arg, shape, strides)."""
        self.implementation = library.implementation(descriptor or plain_descriptor)
        self.primitive = library.primitive(descriptor or plain_descriptor)
        operands = [_Operand(library, operand[0], operand[1], descriptor, slot, slot >= len(inputs), *operand[2:])
                    for slot, operand in enumerate([*inputs, *outputs])]
        slot = len(operands)
        self.inputs, self.outputs = operands[:len(inputs)], operands[len(inputs):]
        scratchpad = _Pointer(library.lib.dnnl_primitive_desc_query_md(descriptor or plain_descriptor,
                                                                      _QUERY_SCRATCHPAD, 0))
        self.scratchpad_size = library.lib.dnnl_memory_desc_get_size(scratchpad)
        self.scratchpad = library.memory(scratchpad) if self.scratchpad_size else None
        self.scratchpad_slot = slot


def multiply_adds(key: tuple) -> int:
    """The multiply-adds of the primitive cached under ``key``: convolutions (each of whose three passes
    does one per output element and kernel tap) and products; 0 for element-wise work."""
    kind = key[0]
    if kind in ("forward", "backward_data", "backward_weights"):
        x_shape, w_shape, geometry = key[1], key[2], key[3]
        return int(np.prod(geometry.output_shape(x_shape, w_shape))) * int(np.prod(w_shape[1:]))
    if kind == "matmul":
        a_shape, b_shape, transpose_a, transpose_b = key[1:]
        rows, inner = (a_shape[2], a_shape[1]) if transpose_a else (a_shape[1], a_shape[2])
        return a_shape[0] * rows * inner * (b_shape[1] if transpose_b else b_shape[2])
    return 0


class KernelTimes:
    """Seconds spent in oneDNN while ``OneDNN.times`` holds one of these: per kind of primitive (with its
    multiply-adds, so that its speed can be set against the processor's), and in the reorders between
    Paddle's layout and the one a primitive chose — the measure of how close a run is to what this
    processor can compute (``benchmarks/train_speed.py --kernels``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.multiply_adds: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self.reorder_seconds = 0.0

    def add(self, key: tuple, seconds: float, reorder: bool) -> None:
        if reorder:
            self.reorder_seconds += seconds
            return
        self.seconds[key[0]] += seconds
        self.multiply_adds[key[0]] += multiply_adds(key)
        self.calls[key[0]] += 1


class OneDNN:
    """The three convolution primitives on Paddle tensors. One instance per process (``instance()``)."""

    def __init__(self) -> None:
        self.library = _Library()
        self.plans: OrderedDict[tuple, _Plan] = OrderedDict()
        self.buffers: list[np.ndarray] = []
        self.kept_buffer_bytes = _kept_buffer_bytes
        self.lock = threading.Lock()
        self.times: KernelTimes | None = None
        self.precision = "float32"      # or "bfloat16": what convolutions multiply in (_FACTOR_TYPE)

    def _buffer(self, slot: int, size: int) -> int:
        while len(self.buffers) <= slot:
            self.buffers.append(np.empty(0, np.uint8))
        if self.buffers[slot].nbytes < size:
            self.buffers[slot] = np.empty(size, np.uint8)
        return self.buffers[slot].ctypes.data

    def _release_large_buffers(self) -> None:
        """Work buffers over ``kept_buffer_bytes`` are given back after each call: they only occur for
        big pictures, whose convolutions take far longer than allocating them again, and keeping them
        would hold a copy of the largest activation for good (1 GB at 2048²)."""
        for slot, buffer in enumerate(self.buffers):
            if buffer.nbytes > self.kept_buffer_bytes:
                self.buffers[slot] = np.empty(0, np.uint8)

    def _plan(self, key: tuple, build) -> _Plan:
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = build()
            while len(self.plans) > CACHE_SIZE:
                self.plans.popitem(last=False)
        self.plans.move_to_end(key)
        return plan

    def _execute(self, key: tuple, primitive: _Pointer, args: list[tuple[int, _Pointer]], reorder: bool = False
                 ) -> None:
        if self.times is None:
            self.library.execute(primitive, args)
            return
        start = time.perf_counter()
        self.library.execute(primitive, args)
        self.times.add(key, time.perf_counter() - start, reorder)

    def _run(self, key: tuple, plan: _Plan, inputs: list[paddle.Tensor], outputs: list[paddle.Tensor]) -> None:
        call = self.library.call
        args = []
        for operand, tensor in zip(plan.inputs, inputs):
            call("dnnl_memory_set_data_handle", operand.user, _Pointer(tensor.data_ptr()))
            if operand.reorder is None:
                args.append((operand.arg, operand.user))
                continue
            call("dnnl_memory_set_data_handle", operand.blocked, _Pointer(self._buffer(operand.slot, operand.size)))
            self._execute(key, operand.reorder, [(SRC, operand.user), (DST, operand.blocked)], reorder=True)
            args.append((operand.arg, operand.blocked))
        for operand, tensor in zip(plan.outputs, outputs):
            call("dnnl_memory_set_data_handle", operand.user, _Pointer(tensor.data_ptr()))
            if operand.reorder is not None:
                call("dnnl_memory_set_data_handle", operand.blocked,
                     _Pointer(self._buffer(operand.slot, operand.size)))
            args.append((operand.arg, operand.user if operand.reorder is None else operand.blocked))
        if plan.scratchpad is not None:
            call("dnnl_memory_set_data_handle", plan.scratchpad,
                 _Pointer(self._buffer(plan.scratchpad_slot, plan.scratchpad_size)))
            args.append((SCRATCHPAD, plan.scratchpad))
        self._execute(key, plan.primitive, args)
        for operand in plan.outputs:
            if operand.reorder is not None:
                self._execute(key, operand.reorder, [(SRC, operand.blocked), (DST, operand.user)], reorder=True)
        self._release_large_buffers()

    def _compute(self, key: tuple, build, inputs: list[paddle.Tensor], output_shapes: list[tuple]
                 ) -> list[paddle.Tensor]:
        """Run the plan cached under ``key`` (built by ``build`` the first time) on ``inputs``, into new
        float32 tensors of ``output_shapes``. oneDNN's engine is the CPU's: every pointer it is handed must
        be host memory, so the inputs are checked and the outputs made on the CPU whatever Paddle's
        current device is (on a GPU build it would otherwise be the GPU)."""
        for tensor in inputs:
            if not tensor.place.is_cpu_place():
                raise OneDNNError(f"oneDNN runs on the CPU; an operand is on {tensor.place}")
        outputs = [cpu_empty(shape) for shape in output_shapes]
        with self.lock:
            self._run(key, self._plan(key, build), inputs, outputs)
        return outputs

    def _forward_descriptor(self, x_shape, w_shape, y_shape, geometry: Geometry, precision: str,
                            activation: str | None = None, output_type: int = _F32) -> _Pointer:
        """A forward convolution whose input and weights are in ``precision`` (oneDNN converts them as it
        reorders them into its layout) and whose output is ``output_type``."""
        library, factor = self.library, _FACTOR_TYPE[precision]
        attributes = library.attributes(activation)
        descriptor = _Pointer()
        library.call("dnnl_convolution_forward_primitive_desc_create", ctypes.byref(descriptor), library.engine,
                     _FORWARD_TRAINING, _CONVOLUTION_DIRECT, library.any_layout(x_shape, factor),
                     library.any_layout(w_shape, factor), library.plain((w_shape[0],)),
                     library.any_layout(y_shape, output_type), *self._geometry(geometry), attributes)
        return descriptor

    def multiplies_bfloat16_natively(self) -> bool:
        """Whether this processor has bfloat16 dot-product instructions (AVX512_BF16 or AMX), read from
        the kernel oneDNN picks for a small bfloat16 convolution: elsewhere oneDNN emulates them, slower
        than float32."""
        try:
            with self.lock:
                plan = self._plan(*self._forward_plan((1, 16, 8, 8), (16, 16, 3, 3), Geometry(1, 1, (1, 1, 1, 1)),
                                                      None, "bfloat16"))
        except OneDNNError:
            return False
        instructions = plan.implementation.split(":")[-1]
        return "bf16" in instructions or "amx" in instructions

    @staticmethod
    def _geometry(geometry: Geometry) -> tuple[_Dims, _Dims, _Dims, _Dims]:
        top, bottom, left, right = geometry.padding
        return (_dims((geometry.stride, geometry.stride)), _dims((geometry.dilation - 1, geometry.dilation - 1)),
                _dims((top, left)), _dims((bottom, right)))

    def forward(self, x: paddle.Tensor, w: paddle.Tensor, b: paddle.Tensor, geometry: Geometry,
                activation: str | None = None) -> paddle.Tensor:
        """conv(x, w) + b, then ``activation`` ("elu", α = 1, or "leaky_relu", slope ``LEAKY_SLOPE``) in the
        same pass over the output."""
        x_shape, w_shape = tuple(x.shape), tuple(w.shape)
        key, build = self._forward_plan(x_shape, w_shape, geometry, activation)
        return self._compute(key, build, [x, w, b], [geometry.output_shape(x_shape, w_shape)])[0]

    def _forward_plan(self, x_shape: tuple, w_shape: tuple, geometry: Geometry, activation: str | None,
                      precision: str | None = None):
        """The cache key and builder of a forward convolution's plan, in ``precision`` (default: the
        instance's)."""
        y_shape = geometry.output_shape(x_shape, w_shape)
        precision = precision or self.precision

        def build() -> _Plan:
            descriptor = self._forward_descriptor(x_shape, w_shape, y_shape, geometry, precision, activation)
            return _Plan(self.library, descriptor, [(SRC, x_shape), (WEIGHTS, w_shape), (BIAS, (w_shape[0],))],
                         [(DST, y_shape)])

        return ("forward", x_shape, w_shape, geometry, activation, precision), build

    def forward_is_generic(self, x_shape: tuple, w_shape: tuple, geometry: Geometry, activation: str | None
                           ) -> bool:
        """Whether oneDNN runs this forward convolution on its generic GEMM kernel rather than a direct
        JIT one: on AVX-512 it does for dilations of 8 and 16 on the generator's 64² features, where its
        own backward-data kernel for the same shapes is faster."""
        with self.lock:
            return "gemm" in self._plan(*self._forward_plan(tuple(x_shape), tuple(w_shape), geometry,
                                                            activation)).implementation

    def add_bias(self, z: paddle.Tensor, b: paddle.Tensor, elu: bool = False) -> paddle.Tensor:
        """z + b per channel of NCHW ``z``, then ELU (α = 1) if ``elu``: one pass over ``z``."""
        shape = tuple(z.shape)

        def build() -> _Plan:
            library, plain = self.library, self.library.plain(shape)
            descriptor = _Pointer()
            library.call("dnnl_binary_primitive_desc_create", ctypes.byref(descriptor), library.engine,
                         _BINARY_ADD, plain, library.plain((1, shape[1], 1, 1)), plain,
                         library.attributes("elu" if elu else None))
            return _Plan(library, None, [(SRC, shape), (SRC_1, (1, shape[1], 1, 1))], [(DST, shape)], descriptor)

        return self._compute(("add_bias", shape, elu), build, [z, b], [shape])[0]

    def activation_backward(self, dy: paddle.Tensor, y: paddle.Tensor, activation: str) -> paddle.Tensor:
        """The gradient through y = activation(z) with respect to z, computed from y: for ELU, dy where
        y > 0, else dy (y + 1); for the leaky ReLU, dy where y > 0, else ``LEAKY_SLOPE`` dy."""
        shape = tuple(y.shape)
        return self._compute(*self._activation_backward_plan(shape, activation), [dy, y], [shape])[0]

    def _activation_backward_plan(self, shape: tuple, activation: str):
        kind = {"elu": _ELU_FROM_OUTPUT, "leaky_relu": _RELU_FROM_OUTPUT}[activation]
        alpha = ctypes.c_float(_ACTIVATIONS[activation][1])

        def build() -> _Plan:
            library, plain = self.library, self.library.plain(shape)
            hint, descriptor = _Pointer(), _Pointer()
            library.call("dnnl_eltwise_forward_primitive_desc_create", ctypes.byref(hint), library.engine,
                         _FORWARD_TRAINING, kind, plain, plain, alpha, ctypes.c_float(0.0), library.attributes())
            library.call("dnnl_eltwise_backward_primitive_desc_create", ctypes.byref(descriptor), library.engine,
                         kind, plain, plain, plain, alpha, ctypes.c_float(0.0), hint, library.attributes())
            return _Plan(library, None, [(DIFF_DST, shape), (DST, shape)], [(DIFF_SRC, shape)], descriptor)

        return ("activation_backward", shape, activation), build

    def backward_data(self, dy: paddle.Tensor, w: paddle.Tensor, x_shape: tuple[int, ...], geometry: Geometry
                      ) -> paddle.Tensor:
        """The gradient of conv(x, w) with respect to x (of shape ``x_shape``), given dy."""
        x_shape = tuple(x_shape)
        key, build = self._backward_data_plan(x_shape, tuple(w.shape), geometry)
        return self._compute(key, build, [dy, w], [x_shape])[0]

    def _backward_data_plan(self, x_shape: tuple, w_shape: tuple, geometry: Geometry):
        y_shape = geometry.output_shape(x_shape, w_shape)
        precision = self.precision

        def build() -> _Plan:
            library, factor = self.library, _FACTOR_TYPE[precision]
            hint = self._forward_descriptor(x_shape, w_shape, y_shape, geometry, precision, output_type=factor)
            descriptor = _Pointer()
            library.call("dnnl_convolution_backward_data_primitive_desc_create", ctypes.byref(descriptor),
                         library.engine, _CONVOLUTION_DIRECT, library.any_layout(x_shape),
                         library.any_layout(w_shape, factor), library.any_layout(y_shape, factor),
                         *self._geometry(geometry), hint, library.attributes())
            return _Plan(library, descriptor, [(DIFF_DST, y_shape), (WEIGHTS, w_shape)], [(DIFF_SRC, x_shape)])

        return ("backward_data", x_shape, w_shape, geometry, precision), build

    def backward_weights(self, x: paddle.Tensor, dy: paddle.Tensor, kernel: tuple[int, int], geometry: Geometry
                         ) -> tuple[paddle.Tensor, paddle.Tensor]:
        """The gradients of conv(x, w) + b with respect to w (``kernel`` sized) and b, given dy."""
        x_shape, y_shape = tuple(x.shape), tuple(dy.shape)
        w_shape = (y_shape[1], x_shape[1], *kernel)
        key, build = self._backward_weights_plan(x_shape, w_shape, geometry)
        dw, db = self._compute(key, build, [x, dy], [w_shape, (w_shape[0],)])
        return dw, db

    def _backward_weights_plan(self, x_shape: tuple, w_shape: tuple, geometry: Geometry):
        y_shape = geometry.output_shape(x_shape, w_shape)
        precision = self.precision

        def build() -> _Plan:
            library, factor = self.library, _FACTOR_TYPE[precision]
            hint = self._forward_descriptor(x_shape, w_shape, y_shape, geometry, precision, output_type=factor)
            descriptor = _Pointer()
            library.call("dnnl_convolution_backward_weights_primitive_desc_create", ctypes.byref(descriptor),
                         library.engine, _CONVOLUTION_DIRECT, library.any_layout(x_shape, factor),
                         library.any_layout(w_shape), library.plain((w_shape[0],)),
                         library.any_layout(y_shape, factor), *self._geometry(geometry), hint,
                         library.attributes())
            return _Plan(library, descriptor, [(SRC, x_shape), (DIFF_DST, y_shape)],
                         [(DIFF_WEIGHTS, w_shape), (DIFF_BIAS, (w_shape[0],))])

        return ("backward_weights", x_shape, w_shape, geometry, precision), build

    def prepare_convolution(self, x_shape: tuple, w_shape: tuple, geometry: Geometry, plain_forward: bool = False
                            ) -> None:
        """Build now (once per shape) the plans that the first derivatives of this convolution run: backward
        data and backward weights of its geometry and, with ``plain_forward``, its forward without an
        activation (what the derivatives of a backward-data pass run). Called by a forward pass whose
        gradients will be taken, so that a shape oneDNN cannot run fails there — where ``deepfill.models.kernels``
        can still hand the operation to Paddle's kernel — and not in the backward pass, which nothing
        could rerun. (Second derivatives build what else they need when they first run.)"""
        x_shape, w_shape = tuple(x_shape), tuple(w_shape)
        plans = [self._backward_data_plan(x_shape, w_shape, geometry),
                 self._backward_weights_plan(x_shape, w_shape, geometry)]
        if plain_forward:
            plans.append(self._forward_plan(x_shape, w_shape, geometry, None))
        with self.lock:
            for key, build in plans:
                self._plan(key, build)

    def prepare_activation_gradient(self, shape: tuple, activation: str) -> None:
        """Build now the plan of ``activation_backward`` for outputs of ``shape`` (``prepare_convolution``
        says why)."""
        with self.lock:
            self._plan(*self._activation_backward_plan(tuple(shape), activation))

    def matmul(self, a: paddle.Tensor, b: paddle.Tensor, transpose_a: bool = False, transpose_b: bool = False
               ) -> paddle.Tensor:
        """The batched product op(a) · op(b) of dense 3-D ``a`` and ``b`` (op transposes the last two axes
        when asked), read in place through strides (the contextual attention's matching and pasting)."""
        key, build, y_shape = self._matmul_plan(tuple(a.shape), tuple(b.shape), transpose_a, transpose_b)
        return self._compute(key, build, [a, b], [y_shape])[0]

    def _matmul_plan(self, a_shape: tuple, b_shape: tuple, transpose_a: bool, transpose_b: bool):
        operands = []
        for shape, transposed in ((a_shape, transpose_a), (b_shape, transpose_b)):
            strides = dense_strides(shape)
            if transposed and 1 in shape[1:]:       # a vector's transpose is the same memory, read densely:
                shape = (shape[0], shape[2], shape[1])    # oneDNN's brgemm misreads a unit axis with stride 1
                strides = dense_strides(shape)
            elif transposed:
                shape, strides = (shape[0], shape[2], shape[1]), (strides[0], strides[2], strides[1])
            operands.append((shape, strides))
        (a_view, a_strides), (b_view, b_strides) = operands
        if a_view[0] != b_view[0] or a_view[2] != b_view[1]:
            raise ValueError(f"cannot multiply {a_view} by {b_view}")
        y_shape = (a_view[0], a_view[1], b_view[2])

        def build() -> _Plan:
            library = self.library
            descriptor = _Pointer()
            library.call("dnnl_matmul_primitive_desc_create", ctypes.byref(descriptor), library.engine,
                         library.plain(a_view, a_strides), library.plain(b_view, b_strides), None,
                         library.plain(y_shape), library.attributes())
            return _Plan(library, None, [(SRC, a_view, a_strides), (WEIGHTS, b_view, b_strides)], [(DST, y_shape)],
                         descriptor)

        return ("matmul", a_shape, b_shape, transpose_a, transpose_b), build, y_shape

    def prepare_matmul(self, a_shape: tuple, b_shape: tuple, transpose_a: bool, transpose_b: bool) -> None:
        """Build now the plan of this product (``prepare_convolution`` says why)."""
        with self.lock:
            self._plan(*self._matmul_plan(tuple(a_shape), tuple(b_shape), transpose_a, transpose_b)[:2])

    def implementations(self) -> dict[tuple, str]:
        """Which oneDNN kernel each cached plan runs (``jit:avx512_core``, ``brgconv:avx2``, …)."""
        return {key: plan.implementation for key, plan in self.plans.items()}


_INSTANCE: OneDNN | None = None
_FAILED: str | None = None
_kept_buffer_bytes = KEPT_BUFFER_BYTES


def keep_buffers_up_to(size: int) -> None:
    """Give work buffers larger than ``size`` bytes back after each call (``KEPT_BUFFER_BYTES`` by
    default). Inference on one picture sets a small size: its largest blocked copies (tens of MB at
    512²) otherwise stay allocated while the attention, which needs none, reaches the peak. A setting of
    the process, applied to its binding whenever that is made: asking for the binding here would load
    oneDNN where nothing runs on it (a GPU)."""
    global _kept_buffer_bytes
    _kept_buffer_bytes = size
    if _INSTANCE is not None:
        _INSTANCE.kept_buffer_bytes = size


def self_check(onednn: OneDNN) -> None:
    """Run every primitive the model uses on small operands, oneDNN's way and with Paddle's kernels, and
    raise if a result differs by more than float32 rounding allows: a strided, unevenly padded forward
    convolution, plain and with each fused activation; both backward passes (data; weights and bias); the
    activations' gradients; the bias + ELU pass; and the batched product, with each operand stored either
    way."""
    import paddle.nn.functional as F
    generator = np.random.default_rng(0)

    def tensor(*shape: int) -> paddle.Tensor:
        return paddle.to_tensor(generator.standard_normal(shape).astype(np.float32), place=paddle.CPUPlace())

    x, w, b = tensor(2, 5, 9, 8), tensor(4, 5, 3, 3), tensor(4)
    geometry = Geometry(2, 1, (0, 1, 1, 1))
    activations = {"elu": F.elu, "leaky_relu": lambda t: F.leaky_relu(t, LEAKY_SLOPE)}
    with paddle.set_grad_enabled(True):
        leaves = [t.detach() for t in (x, w, b)]
        for leaf in leaves:
            leaf.stop_gradient = False
        z = F.conv2d(*leaves, stride=geometry.stride, padding=list(geometry.padding))
        dy = tensor(*z.shape)
        dx, dw, db = paddle.grad(z, leaves, grad_outputs=dy)
        z_leaf = z.detach()
        z_leaf.stop_gradient = False
        outputs = {name: function(z_leaf) for name, function in activations.items()}
        gradients = {name: paddle.grad(y, z_leaf, grad_outputs=dy)[0] for name, y in outputs.items()}
    z = z.detach()
    checks = {"forward": (onednn.forward(x, w, b, geometry), z),
              "backward data": (onednn.backward_data(dy, w, x.shape, geometry), dx),
              "backward weights": (onednn.backward_weights(x, dy, (3, 3), geometry)[0], dw),
              "bias gradient": (onednn.backward_weights(x, dy, (3, 3), geometry)[1], db),
              "bias + ELU": (onednn.add_bias(z, b, elu=True), F.elu(z + b.reshape([1, -1, 1, 1])))}
    for name, function in activations.items():
        checks[f"forward + {name}"] = (onednn.forward(x, w, b, geometry, name), function(z))
        checks[f"{name} gradient"] = (onednn.activation_backward(dy, outputs[name].detach(), name), gradients[name])
    for transpose_a in (False, True):
        for transpose_b in (False, True):
            left, right = tensor(3, 7, 5) if transpose_a else tensor(3, 5, 7), tensor(3, 6, 7) if transpose_b \
                else tensor(3, 7, 6)
            checks[f"matmul (transposed: {transpose_a}, {transpose_b})"] = (
                onednn.matmul(left, right, transpose_a, transpose_b),
                paddle.matmul(left, right, transpose_x=transpose_a, transpose_y=transpose_b))
    for name, (ours, theirs) in checks.items():
        ours, theirs = ours.numpy(), theirs.numpy()
        if ours.shape != theirs.shape or not np.allclose(ours, theirs, rtol=0,
                                                          atol=1e-4 * max(1.0, float(np.abs(theirs).max()))):
            raise OneDNNError(f"oneDNN's {name} disagrees with Paddle's")


def existing() -> OneDNN | None:
    """The process's oneDNN binding if ``instance()`` has made it, without making it."""
    return _INSTANCE


def instance() -> OneDNN | None:
    """The process's oneDNN binding, or None when it cannot be used here (``unavailable_reason()``)."""
    global _INSTANCE, _FAILED
    if _INSTANCE is None and _FAILED is None:
        try:
            if not hasattr(paddle.Tensor, "data_ptr"):
                raise OneDNNError("this Paddle has no Tensor.data_ptr")
            candidate = OneDNN()
            self_check(candidate)
            _INSTANCE = candidate
        except (OSError, AttributeError, OneDNNError) as error:
            _FAILED = str(error)
    return _INSTANCE


def unavailable_reason() -> str | None:
    """Why ``instance()`` is None, once it has been asked."""
    return _FAILED
