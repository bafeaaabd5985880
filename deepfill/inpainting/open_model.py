"""What ``--checkpoint`` names, ready to fill pictures: a checkpoint (file or training run's folder) runs the
generator eagerly, an exported folder (``model.json`` beside the model files) runs in the
runtime of its format — Paddle Inference for ``paddle``, ONNX Runtime for ``onnx`` — without the training
code. Either way the same ``Filler`` handles the pictures."""
from __future__ import annotations

import os

from deepfill.inpainting.export import is_export, read_export
from deepfill.inpainting.filler import Filler
from deepfill.inpainting.runners import BACKENDS, OnnxRuntimeRunner, PaddleInferenceRunner
from deepfill.models.checkpoint import load_checkpoint
from deepfill.utils.cli import UserError

EXPORTED_BACKENDS = {"paddle-inference": "paddle", "onnxruntime": "onnx"}
REMOVED_BACKENDS = {"compiled": "the eager backend (the default) is faster and leaner on the CPU"}


def check_backend(backend: str | None) -> None:
    """Refuse a backend that is not one of ``runners.BACKENDS``, saying what to use for a removed one."""
    if backend in REMOVED_BACKENDS:
        raise UserError(f"the {backend} backend was removed: {REMOVED_BACKENDS[backend]}; choose one of "
                        f"{', '.join(BACKENDS)}")
    if backend is not None and backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def open_model(path: str, backend: str | None = None) -> Filler:
    """An ``Filler`` for ``path``. ``backend`` (one of ``runners.BACKENDS``) picks how it runs; by
    default a checkpoint runs eagerly, an exported folder in Paddle Inference if it holds the paddle
    format, else in ONNX Runtime."""
    check_backend(backend)
    if os.path.isdir(path) and is_export(path):
        return _open_export(path, backend)
    if backend in EXPORTED_BACKENDS:
        raise UserError(f"{path} is a checkpoint; the {backend} backend runs an exported model "
                        f"(python tools/export_model.py --checkpoint {path} --output DIR)")
    checkpoint = load_checkpoint(path)
    return Filler.from_checkpoint(checkpoint)


def _open_export(folder: str, backend: str | None) -> Filler:
    info = read_export(folder)
    files = info["files"]
    if backend is None:
        backend = "paddle-inference" if "paddle" in files else "onnxruntime"
    if backend not in EXPORTED_BACKENDS:
        raise UserError(f"{folder} is an exported model; it runs with paddle-inference or onnxruntime, "
                        f"not {backend}")
    if EXPORTED_BACKENDS[backend] not in files:
        raise UserError(f"{folder} holds no {EXPORTED_BACKENDS[backend]} model for {backend} "
                        f"(it holds {', '.join(files) or 'none'})")
    if backend == "paddle-inference":
        if not isinstance(files["paddle"], dict):
            raise UserError(f"{folder}/model.json does not name the Paddle program's files")
        runner = PaddleInferenceRunner(folder, files["paddle"])
    else:
        runner = OnnxRuntimeRunner(os.path.join(folder, str(files["onnx"])))
    return Filler(runner, info["channel_order"], training_size=int(info.get("spec", {}).get("image_size", 256)))
