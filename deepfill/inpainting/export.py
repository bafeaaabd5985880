"""Export the whole generator for deployment: a Paddle Inference program and/or an ONNX model, with a
``model.json`` that says how to feed it.

What is exported is the official full graph — the coarse network, the paste, the refinement network's two
branches and the contextual attention over every position — with a dynamic batch, height and width, not
the hole-only shortcut ``inpaint.py`` runs eagerly (whose work depends on the hole). It is the generator's
own ``forward`` traced, with ``RefineNetwork.attention`` set to the traceable form of the same computation
(``deepfill.models.generator.graph_attention``) while it is traced. DeepFill v2's ``GatedGenerator`` is a subclass
with the same forward, so either generation exports alike.

Inputs: ``image`` N×3×H×W float32 on [-1, 1] in the checkpoint's channel order, the hole zeroed; ``mask``
1×1×H×W (one hole for the batch) or N×1×H×W (one per image), 1 = hole; H and W multiples of 8. Outputs:
``x_stage2`` N×3×H×W (composite it with the known pixels) and ``offsets`` N×2×H/8×W/8 int64.

The folder is built beside its destination under a temporary name and renamed when complete, so an
interrupted or failed export leaves no output folder. Each exported file is run once on a probe picture
and compared with the eager generator before the folder is published.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import paddle
import paddle.nn as nn

from deepfill.inpainting.runners import OnnxRuntimeRunner, PaddleInferenceRunner
from deepfill.models.checkpoint_file import Checkpoint
from deepfill.models.generator import InpaintGenerator, graph_attention
from deepfill.utils.cli import UserError
from deepfill.utils.streams import captured_output
from deepfill.utils.version import project_version

MODEL_JSON = "model.json"
EXPORT_FORMAT = "deepfill-v1-export"
FORMATS = ("paddle", "onnx", "both")
PADDLE_PREFIX = "generator"
ONNX_FILE = "generator.onnx"
OPSET = 17
MULTIPLE = 8
INPUTS = ("image", "mask")
OUTPUTS = ("x_stage2", "offsets")
ONNX_INSTALL = "pip install paddle2onnx onnxruntime (or pip install .[onnx] in the project)"
PROBE_SIZE = (64, 96)          # the self-check's picture: small, not square
PROBE_TOLERANCE = 1e-3         # oneDNN sums in another order than the eager kernels (float rounding);
                               # a wrong graph is off by 1e-2 or more
INPUT_SPECS = [paddle.static.InputSpec([-1, 3, -1, -1], "float32", INPUTS[0]),
               paddle.static.InputSpec([-1, 1, -1, -1], "float32", INPUTS[1])]


class GeneratorGraph(nn.Layer):
    """The generator's own forward pass with the exported outputs: ``(image, mask) → (x_stage2, offsets)``.
    Trace it inside ``traceable_attention``."""

    def __init__(self, generator: InpaintGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, image: paddle.Tensor, mask: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        _, x_stage2, offsets = self.generator(image, mask)
        return x_stage2, offsets


@contextmanager
def traceable_attention(generator: InpaintGenerator) -> Iterator[InpaintGenerator]:
    """``generator`` with the traceable contextual attention while inside; its own one again after. The
    generator must honour a mask per image (``per_sample_mask``), as model.json says the export does."""
    if not generator.refine.per_sample_mask:
        raise ValueError("the exported graph takes a mask per image: build the generator with per_sample_mask")
    generator.refine.attention = graph_attention
    try:
        yield generator
    finally:
        del generator.refine.attention


def trace(generator: InpaintGenerator) -> nn.Layer:
    """``GeneratorGraph(generator)`` traced by ``paddle.jit.to_static`` for any batch and side, in eval mode;
    call it (or save it) inside ``traceable_attention``."""
    graph = GeneratorGraph(generator)
    graph.eval()
    return paddle.jit.to_static(graph, input_spec=INPUT_SPECS, full_graph=True)


def formats_of(choice: str) -> tuple[str, ...]:
    """``paddle``/``onnx``/``both`` → the formats to write."""
    if choice not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {choice!r}")
    return ("paddle", "onnx") if choice == "both" else (choice,)


def check_onnx_tools() -> None:
    """Refuse an ONNX export when paddle2onnx (to convert) or onnxruntime (to check) cannot be imported:
    missing, or installed but refusing to load (paddle2onnx 2 raises ``ValueError`` under Paddle 2.6)."""
    missing = []
    for name in ("paddle2onnx", "onnx", "onnxruntime"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
        except Exception as error:          # noqa: BLE001  (whatever the package raises on import)
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UserError(f"--format onnx cannot use {name}, which fails to load: {reason}") from None
    if missing:
        raise UserError(f"--format onnx needs {', '.join(missing)}: {ONNX_INSTALL}")


def is_export(path: str) -> bool:
    """Whether ``path`` is a folder written by ``export_model``."""
    return os.path.isfile(os.path.join(path, MODEL_JSON))


def check_output(output: str) -> None:
    """Refuse an output that would overwrite something other than an earlier export."""
    if os.path.isfile(output):
        raise UserError(f"--output {output} is a file; give a folder to create")
    if os.path.isdir(output) and os.listdir(output) and not is_export(output):
        raise UserError(f"--output {output} is a folder with other files in it; give a new or empty folder "
                        "(an earlier export there is replaced)")


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _last_line(log: str) -> str:
    with open(log, encoding="utf-8", errors="replace") as handle:
        lines = [line.strip() for line in handle if line.strip()]
    return lines[-1] if lines else "no message"


def save_paddle(generator: InpaintGenerator, folder: str) -> None:
    """``paddle.jit.save`` of the full graph: ``generator.json`` (or ``.pdmodel`` on Paddle 2) + ``.pdiparams``."""
    with warnings.catch_warnings(), traceable_attention(generator):
        warnings.simplefilter("ignore")              # Paddle's notes on tracing, not the user's business
        paddle.jit.save(trace(generator), os.path.join(folder, PADDLE_PREFIX))


def paddle_program(folder: str) -> str:
    """The saved program's file name: PIR (``.json``, Paddle 3) or the older ``.pdmodel``."""
    for suffix in (".json", ".pdmodel"):
        if os.path.isfile(os.path.join(folder, PADDLE_PREFIX + suffix)):
            return PADDLE_PREFIX + suffix
    raise FileNotFoundError(f"no {PADDLE_PREFIX}.json or .pdmodel in {folder}")


def convert_onnx(paddle_folder: str, target: str, log: str) -> None:
    """paddle2onnx on the saved program, then the ONNX graph tidied: inputs and outputs named as in
    model.json with named dynamic sides, stale shape annotations and unused constants dropped."""
    import onnx
    import paddle2onnx

    try:
        with captured_output(log):
            paddle2onnx.export(os.path.join(paddle_folder, paddle_program(paddle_folder)),
                               os.path.join(paddle_folder, PADDLE_PREFIX + ".pdiparams"), target,
                               opset_version=OPSET, enable_onnx_checker=True,
                               optimize_tool="onnxoptimizer")   # its default (polygraphy) pip-installs things
    except Exception as error:
        raise UserError(f"paddle2onnx {getattr(paddle2onnx, '__version__', '')} could not convert the model "
                        f"({type(error).__name__}: {' '.join(str(error).split())})") from None
    if not os.path.isfile(target):
        raise UserError(f"paddle2onnx wrote no model ({_last_line(log)})")
    model = onnx.load(target)
    graph = model.graph
    renames = {value.name: name for value, name in zip(graph.output, OUTPUTS)}
    for node in graph.node:
        node.output[:] = [renames.get(name, name) for name in node.output]
        node.input[:] = [renames.get(name, name) for name in node.input]
    sides = {"image": ["batch", 3, "height", "width"], "mask": ["mask_batch", 1, "height", "width"],
             "x_stage2": ["batch", 3, "height", "width"], "offsets": ["batch", 2, "height/8", "width/8"]}
    for value in [*graph.input, *graph.output]:
        value.name = renames.get(value.name, value.name)
        for dim, size in zip(value.type.tensor_type.shape.dim, sides[value.name]):
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
    del graph.value_info[:]
    _drop_unused(graph)
    onnx.checker.check_model(model)
    onnx.save(model, target)


def _drop_unused(graph) -> None:
    """Remove nodes whose results nothing reads and constants no node reads (paddle2onnx leaves some;
    ONNX Runtime would warn about each one every time it loads the model)."""
    while True:
        read = {name for node in graph.node for name in node.input} | {value.name for value in graph.output}
        dead = [node for node in graph.node if not any(name in read for name in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def probe(height: int = PROBE_SIZE[0], width: int = PROBE_SIZE[1]) -> tuple[np.ndarray, np.ndarray]:
    """A random picture with two holes, the hole zeroed, for the self-check."""
    rng = np.random.default_rng(0)
    mask = np.zeros((1, 1, height, width), np.float32)
    mask[..., 8:28, 16:40] = 1
    mask[..., 36:56, 60:84] = 1
    image = rng.uniform(-1, 1, (1, 3, height, width)).astype(np.float32) * (1 - mask)
    return image, mask


def self_check(generator: InpaintGenerator, runner: Callable, what: str) -> float:
    """Run an exported file on the probe and compare it with the eager generator; refuse a mismatch."""
    image, mask = probe()
    with paddle.no_grad():
        _, expected, _ = generator(paddle.to_tensor(image), paddle.to_tensor(mask))
    got, _ = runner(image, mask)
    error = float(np.abs(got - expected.numpy()).max())
    if not error < PROBE_TOLERANCE:
        raise UserError(f"the exported {what} model does not reproduce the generator (max difference "
                        f"{error:.2g} on a probe picture); this Paddle/paddle2onnx pair cannot export it")
    return error


def describe(checkpoint: Checkpoint, formats: tuple[str, ...], files: dict, checks: dict) -> dict:
    """The contents of model.json."""
    spec = checkpoint.spec
    return {
        "format": EXPORT_FORMAT,
        "model": f"DeepFill v{spec.version} generator, official full graph (contextual attention included)",
        "channel_order": spec.channel_order,
        "value_range": [-1.0, 1.0],
        "side_multiple": MULTIPLE,
        "training_size": {"image": spec.image_size, "hole": spec.hole_size},
        "spec": spec.to_dict(),
        "inputs": {
            "image": f"N x 3 x H x W float32 on [-1, 1], {spec.channel_order}, hole pixels set to 0",
            "mask": "1 x 1 x H x W or N x 1 x H x W float32, 1 = hole",
        },
        "outputs": {
            "x_stage2": "N x 3 x H x W float32 on [-1, 1]; keep it inside the hole only",
            "offsets": "N x 2 x H/8 x W/8 int64, (row, col) to each position's attended patch",
        },
        "formats": list(formats),
        "files": files,
        "source_checkpoint": {"file": os.path.basename(checkpoint.path), "sha256": sha256_of(checkpoint.path)},
        "project_version": project_version(),
        "paddle_version": paddle.__version__,
        "self_check_max_error": checks,
    }


def export_model(checkpoint: Checkpoint, output: str, formats: tuple[str, ...],
                 report: Callable[[str], None] = print) -> dict:
    """Write ``output`` (a folder) holding the exported generator in ``formats`` and ``model.json``;
    returns model.json's contents. Nothing appears at ``output`` unless the whole export succeeds."""
    if "onnx" in formats:
        check_onnx_tools()
    check_output(output)
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    generator = checkpoint.build_generator(per_sample_mask=True)
    generator.eval()
    building = tempfile.mkdtemp(dir=parent, prefix=".tmp-export-")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(building, 0o777 & ~umask)                # mkdtemp's folder is private; the result need not be
    scratch = tempfile.mkdtemp(prefix="deepfill-export-")
    try:
        paddle_folder = building if "paddle" in formats else scratch
        start = time.perf_counter()
        save_paddle(generator, paddle_folder)
        report(f"traced the generator for Paddle Inference ({time.perf_counter() - start:.1f} s)")
        files, checks = {}, {}
        if "paddle" in formats:
            files["paddle"] = {"program": paddle_program(building), "params": PADDLE_PREFIX + ".pdiparams"}
            checks["paddle"] = self_check(generator, PaddleInferenceRunner(building, files["paddle"]),
                                          "Paddle Inference")
        if "onnx" in formats:
            start = time.perf_counter()
            convert_onnx(paddle_folder, os.path.join(building, ONNX_FILE), os.path.join(scratch, "paddle2onnx.log"))
            report(f"converted to ONNX opset {OPSET} ({time.perf_counter() - start:.1f} s)")
            files["onnx"] = ONNX_FILE
            checks["onnx"] = self_check(generator, OnnxRuntimeRunner(os.path.join(building, ONNX_FILE)), "ONNX")
        info = describe(checkpoint, formats, files, checks)
        with open(os.path.join(building, MODEL_JSON), "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=1)
        _publish(building, output)
    finally:
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return info


def _publish(building: str, output: str) -> None:
    """Rename the finished folder to ``output``, replacing an empty folder or an earlier export."""
    if not os.path.exists(output):
        os.rename(building, output)
        return
    old = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(output)), prefix=".tmp-old-export-")
    os.rmdir(old)
    os.rename(output, old)
    os.rename(building, output)
    shutil.rmtree(old, ignore_errors=True)


def read_export(folder: str) -> dict:
    """model.json of an exported folder, checked enough to run it."""
    path = os.path.join(folder, MODEL_JSON)
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is not readable ({type(error).__name__})") from None
    if not isinstance(info, dict) or info.get("format") != EXPORT_FORMAT or not isinstance(info.get("files"), dict):
        raise UserError(f"{path} does not describe an exported DeepFill model")
    if info.get("channel_order") not in ("RGB", "BGR"):
        raise UserError(f"{path} has no valid channel_order")
    return info
