"""Convert an official DeepFill v1 TensorFlow checkpoint to our Paddle checkpoint.

    python tools/convert_tf_checkpoint.py TF_CKPT OUT.pdparams

TF_CKPT is a folder holding a ``checkpoint`` file (or ``checkpoint.txt``, as Google Drive delivers it) or a
prefix such as ``…/snap-0``. TensorFlow is not needed. Generator and critics are kept, optimiser slots are
dropped (see ``deepfill.models.tf_convert``). The result records channel order BGR — the official models were
trained on OpenCV's BGR arrays — and the source path, so ``inpaint.py`` feeds them correctly. For the
official release models, ``tools/download_pretrained.py NAME`` does this in one step.
"""
from __future__ import annotations

import os

from deepfill.utils.environment import prepare_paddle

prepare_paddle()

from deepfill.models.checkpoint_file import save_checkpoint  # noqa: E402
from deepfill.models.tf_convert import convert  # noqa: E402
from deepfill.utils.cli import ArgumentParser, UserError, run  # noqa: E402


def main() -> None:
    parser = ArgumentParser(prog="convert_tf_checkpoint.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("tf_checkpoint", help="folder with a 'checkpoint' file, or a prefix like …/snap-0")
    parser.add_argument("output", help="where to write the Paddle checkpoint (.pdparams)")
    args = parser.parse_args()
    if not os.path.exists(args.tf_checkpoint) and not os.path.exists(args.tf_checkpoint + ".index"):
        raise UserError(f"TF checkpoint not found: {args.tf_checkpoint}")
    spec, weights = convert(args.tf_checkpoint)
    save_checkpoint(args.output, spec, weights)
    count = sum(v.size for part in weights.values() for v in part.values())
    print(f"wrote {args.output}: {', '.join(weights)} ({count:,} parameters; {spec.describe()}) "
          f"from {spec.source}")


if __name__ == "__main__":
    run(main)
