"""Export a DeepFill v1 or v2 generator for deployment: Paddle Inference and/or ONNX, with a model.json.

    python tools/export_model.py --checkpoint CKPT --output DIR [--format paddle|onnx|both]

The whole official graph is exported (contextual attention included) with a dynamic batch, height and
width (multiples of 8): inputs ``image`` (N×3×H×W on [-1, 1] in the checkpoint's channel order, hole
zeroed) and ``mask`` (1×1×H×W or N×1×H×W, 1 = hole), outputs ``x_stage2`` and ``offsets``. DIR then holds
``generator.json`` + ``generator.pdiparams`` (paddle), ``generator.onnx`` (onnx) and ``model.json``;
``inpaint.py --checkpoint DIR`` runs it. ONNX needs the optional extras: pip install .[onnx].
"""
from __future__ import annotations

import os

from deepfill.utils.environment import prepare_paddle

prepare_paddle()

from deepfill.inpainting.export import FORMATS, export_model, formats_of, is_export  # noqa: E402
from deepfill.models.checkpoint import load_checkpoint  # noqa: E402
from deepfill.utils.cli import ArgumentParser, UserError, run  # noqa: E402


def folder_size(folder: str) -> str:
    sizes = {name: os.path.getsize(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}
    return ", ".join(f"{name} {size / 2 ** 20:.1f} MB" if size > 2 ** 20 else f"{name} {size / 1024:.0f} KB"
                     for name, size in sizes.items())


def main() -> None:
    parser = ArgumentParser(prog="export_model.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="our .pdparams (trained or converted, v1 or v2), a training run's folder (→ latest) "
                             "or a pretrained name")
    parser.add_argument("--output", required=True, help="folder to create for the exported model")
    parser.add_argument("--format", default="paddle", choices=FORMATS,
                        help="paddle (Paddle Inference, the default), onnx (ONNX Runtime) or both")
    args = parser.parse_args()

    formats = formats_of(args.format)
    if os.path.isdir(args.checkpoint) and is_export(args.checkpoint):
        raise UserError(f"{args.checkpoint} is already an exported model; give the checkpoint it came from")
    checkpoint = load_checkpoint(args.checkpoint)
    print(f"exporting {checkpoint.path}: {checkpoint.spec.describe()}")
    info = export_model(checkpoint, args.output, formats)
    checks = ", ".join(f"{name} {error:.1e}" for name, error in info["self_check_max_error"].items())
    print(f"wrote {args.output}: {folder_size(args.output)}")
    print(f"checked against the generator on a probe picture (max abs difference): {checks}")


if __name__ == "__main__":
    run(main)
