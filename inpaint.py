"""Fill holes in your own pictures with a trained or converted DeepFill v1 checkpoint or an exported model.

    python inpaint.py --checkpoint CKPT --image IMG --mask MASK --output OUT [--flow FLOW.png]
                      [--hd-strategy full|crop|resize|auto] [--cpu-precision float32|bfloat16]

CKPT may be a pretrained name (v1: places2, celeba, celebahq, imagenet; v2, for free-form holes: places2_v2,
celebahq_v2): the official model is downloaded and converted on first use and kept in $DEEPFILL_HOME (see
tools/download_pretrained.py).

IMG/OUT may be folders: every image in IMG is done, with MASK either one mask for all or a folder of
masks with the same file names; a picture that cannot be done (unreadable, too large, no matching size) is
skipped, and the summary names it. White (> 127) in the mask is the hole; any number and shape of holes, any
image size. The output has the input's size and layout (grey, colour, alpha, 16 bit) and is byte-identical
to it outside the hole (use a lossless format such as PNG to keep that on disk). Big photos can be filled
around each hole only (``--hd-strategy crop``) or on a downscaled copy (``resize``); see
``deepfill/inpainting/strategy.py``.
"""
from __future__ import annotations

import os
import time

from deepfill.utils.environment import prepare_paddle

prepare_paddle()

from deepfill.inpainting.jobs import inpaint_file, inpaint_folder, plan_jobs  # noqa: E402
from deepfill.inpainting.open_model import open_model  # noqa: E402
from deepfill.inpainting.strategy import CHOICES  # noqa: E402
from deepfill.models import kernels  # noqa: E402
from deepfill.utils.cli import ArgumentParser, add_cpu_precision, run  # noqa: E402
from deepfill.utils.device import pick_device  # noqa: E402
from deepfill.utils.files import make_folder  # noqa: E402


def main() -> None:
    parser = ArgumentParser(prog="inpaint.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="our .pdparams (trained or converted), a training run's folder (→ latest), a "
                             "pretrained name: places2, celeba, celebahq, imagenet, places2_v2, celebahq_v2 "
                             "(fetched on first use), or "
                             "a folder written by tools/export_model.py")
    parser.add_argument("--image", required=True, help="image file, or a folder of images")
    parser.add_argument("--mask", required=True, help="mask file (white = hole), or a folder of masks")
    parser.add_argument("--output", required=True, help="output file, or folder when --image is a folder")
    parser.add_argument("--flow", help="also write the attention flow picture here (file or folder)")
    parser.add_argument("--device", default="auto", help="auto (GPU if available), cpu, gpu or gpu:N")
    parser.add_argument("--hd-strategy", default="auto", choices=CHOICES,
                        help="full: the model sees the whole picture; crop: a window around each hole of the "
                             "model's training size or more (big photos, fast); resize: a downscaled copy, only "
                             "the hole upsampled; auto (default): crop over four training sides (1024 px for "
                             "the official models, 256 for the demo's), else full")
    add_cpu_precision(parser)
    args = parser.parse_args()

    jobs = plan_jobs(args.image, args.mask, args.output, args.flow)
    pick_device(args.device, inference=True)
    kernels.choose(precision=args.cpu_precision)
    inpainter = open_model(args.checkpoint)
    if os.path.isdir(args.image):
        for folder in filter(None, (args.output, args.flow)):
            make_folder(folder)

    if len(jobs) == 1:
        start = time.perf_counter()
        inpaint_file(inpainter, jobs[0], args.hd_strategy)
        print(f"wrote {jobs[0].output} ({time.perf_counter() - start:.2f} s)")
        return
    inpaint_folder(inpainter, jobs, args.output, args.hd_strategy)


if __name__ == "__main__":
    run(main)
