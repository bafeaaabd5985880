"""Fill holes in your own pictures with a trained or converted DeepFill v1 checkpoint or an exported model.

    python inpaint.py --checkpoint CKPT --image IMG --mask MASK --output OUT [--flow FLOW.png]
                      [--hd-strategy full|crop|resize|auto]

CKPT may be a pretrained name (places2, celeba, celebahq, imagenet): the official model is downloaded and
converted on first use and kept in $DEEPFILL_HOME (see tools/download_pretrained.py).

IMG/OUT may be folders: every image in IMG is done, with MASK either one mask for all or a folder of
masks with the same file names; a picture that cannot be done (unreadable, too large, no matching size) is
skipped, and the summary names it. White (> 127) in the mask is the hole; any number and shape of holes, any
image size. The output has the input's size and layout (grey, colour, alpha, 16 bit) and is byte-identical
to it outside the hole (use a lossless format such as PNG to keep that on disk). Big photos can be filled
around each hole only (``--hd-strategy crop``) or on a downscaled copy (``resize``); see
``inpainting/strategy.py``.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from utils.environment import prepare_paddle

prepare_paddle()

from tqdm import tqdm  # noqa: E402

from inpainting.inpainter import Inpainter  # noqa: E402
from inpainting.open_model import open_model  # noqa: E402
from inpainting.strategy import CHOICES, fill_picture  # noqa: E402
from utils.cli import ArgumentParser, UserError, run  # noqa: E402
from utils.device import pick_device  # noqa: E402
from utils.files import WriteError, check_writable_folder, make_folder  # noqa: E402
from utils.image_io import (check_declared_size, check_writable, decode_image, list_images,  # noqa: E402
                            mask_from_image, read_file, write_image)


@dataclass(frozen=True)
class Job:
    """One picture to fill: where it comes from, its mask, where its result and flow picture go."""
    image: str
    mask: str
    output: str
    flow: str | None


def plan_jobs(image: str, mask: str, output: str, flow: str | None) -> list[Job]:
    """Expand the command line into jobs, checking every path before any work is done."""
    if not os.path.exists(image):
        raise UserError(f"image not found: {image}")
    if not os.path.exists(mask):
        raise UserError(f"mask not found: {mask}")
    if not os.path.isdir(image):
        if os.path.isdir(mask) or os.path.isdir(output):
            raise UserError("--image is a file, so --mask and --output must be files too")
        for path in filter(None, (output, flow)):
            check_writable(path)
        if flow is not None and os.path.abspath(flow) == os.path.abspath(output):
            raise UserError("--flow and --output are the same file")
        return [Job(image, mask, output, flow)]
    images = list_images(image)
    if not images:
        raise UserError(f"no images in {image}")
    if os.path.exists(output) and not os.path.isdir(output):
        raise UserError(f"--image is a folder, so --output must be a folder ({output} is a file)")
    if flow is not None and os.path.exists(flow) and not os.path.isdir(flow):
        raise UserError(f"--image is a folder, so --flow must be a folder ({flow} is a file)")
    check_writable_folder(output, "--output folder")
    if flow is not None:
        check_writable_folder(flow, "--flow folder")
        if os.path.abspath(flow) == os.path.abspath(output):
            raise UserError("--flow and --output are the same folder; the flow pictures would replace the results")
    masks = {}
    if os.path.isdir(mask):
        for candidate in list_images(mask):
            masks.setdefault(os.path.splitext(os.path.basename(candidate))[0], candidate)
    jobs, stems = [], set()
    for path in images:
        name = os.path.basename(path)
        stem = os.path.splitext(name)[0]
        if stem in stems:
            raise UserError(f"two images in {image} are called {stem}; their results would overwrite "
                            "each other")
        stems.add(stem)
        mask_path = (os.path.join(mask, name) if os.path.isfile(os.path.join(mask, name))
                     else masks.get(stem)) if os.path.isdir(mask) else mask
        if mask_path is None:
            raise UserError(f"no mask for {name} in {mask} (looked for {name} and {stem}.*)")
        jobs.append(Job(path, mask_path, os.path.join(output, stem + ".png"),
                        os.path.join(flow, stem + ".png") if flow else None))
    return jobs


def check_sizes(job: Job, image_size: tuple[int, int] | None, mask_size: tuple[int, int] | None) -> None:
    """Refuse a mask whose (width, height) differs from the image's."""
    if image_size and mask_size and image_size != mask_size:
        raise UserError(f"{job.mask} is {mask_size[0]}x{mask_size[1]} but {job.image} is "
                        f"{image_size[0]}x{image_size[1]}")


def inpaint_file(inpainter: Inpainter, job: Job, strategy: str = "full") -> None:
    """Read, fill and write one picture; nothing is written if anything about it is wrong. The sizes the
    files' headers declare are checked (against each other, and against the memory when the whole picture
    goes through the model) before anything is decoded."""
    image_data, mask_data = read_file(job.image), read_file(job.mask)
    image_size = check_declared_size(image_data, job.image)
    check_sizes(job, image_size, check_declared_size(mask_data, job.mask))
    if image_size and strategy == "full":
        inpainter.check_fits(image_size[1], image_size[0])
    original = decode_image(image_data, job.image)
    hole = mask_from_image(decode_image(mask_data, job.mask))
    check_sizes(job, original.shape[1::-1], hole.shape[1::-1])
    filled = fill_picture(inpainter, original, hole, strategy)
    write_image(job.output, filled.picture)
    if job.flow:
        write_image(job.flow, filled.flow[:, :, ::-1])


def main() -> None:
    parser = ArgumentParser(prog="inpaint.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="our .pdparams (trained or converted), a training run's folder (→ latest), a "
                             "pretrained name: places2, celeba, celebahq, imagenet (fetched on first use), or "
                             "a folder written by tools/export_model.py")
    parser.add_argument("--image", required=True, help="image file, or a folder of images")
    parser.add_argument("--mask", required=True, help="mask file (white = hole), or a folder of masks")
    parser.add_argument("--output", required=True, help="output file, or folder when --image is a folder")
    parser.add_argument("--flow", help="also write the attention flow picture here (file or folder)")
    parser.add_argument("--device", default="auto", help="auto (GPU if available), cpu, gpu or gpu:N")
    parser.add_argument("--hd-strategy", default="full", choices=CHOICES,
                        help="full: the model sees the whole picture; crop: a window around each hole (big "
                             "photos, fast); resize: a downscaled copy, only the hole upsampled; auto: crop "
                             "over 1024 px on a side, else full")
    args = parser.parse_args()

    jobs = plan_jobs(args.image, args.mask, args.output, args.flow)
    pick_device(args.device, all_cpu_cores=True)
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


def inpaint_folder(inpainter: Inpainter, jobs: list[Job], output: str, strategy: str) -> None:
    """Do every job; a picture that cannot be done is skipped (said at once, named in the summary), a
    write that fails (disk full) stops the run, keeping the results written before."""
    failed, written = [], 0
    for job in tqdm(jobs, desc="inpainting", unit="image"):
        try:
            inpaint_file(inpainter, job, strategy)
            written += 1
        except WriteError as error:
            raise WriteError(f"{error}; stopped, {written} of {len(jobs)} results were written to {output} "
                             "before") from None
        except UserError as error:
            failed.append(os.path.basename(job.image))
            tqdm.write(f"skipped: {error}", file=sys.stderr)
    if failed:
        raise UserError(f"{len(failed)} of {len(jobs)} images failed ({', '.join(failed)}); the other "
                        f"{written} are in {output}")
    print(f"wrote {len(jobs)} images to {output}")


if __name__ == "__main__":
    run(main)
