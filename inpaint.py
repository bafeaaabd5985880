"""Fill holes in your own pictures with a trained or converted DeepFill v1 checkpoint or an exported model.

    python inpaint.py --checkpoint CKPT --image IMG --mask MASK --output OUT [--flow FLOW.png]

IMG/OUT may be folders: every image in IMG is done, with MASK either one mask for all or a folder of
masks with the same file names. White (> 127) in the mask is the hole; any number and shape of holes, any
image size. The output has the input's size and layout (grey, colour, alpha, 16 bit) and is byte-identical
to it outside the hole (use a lossless format such as PNG to keep that on disk).
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
from utils.cli import ArgumentParser, UserError, run  # noqa: E402
from utils.device import pick_device  # noqa: E402
from utils.image_io import (check_writable, list_images, paste_hole, read_image, read_mask, to_rgb8,  # noqa: E402
                            write_image)


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
        return [Job(image, mask, output, flow)]
    images = list_images(image)
    if not images:
        raise UserError(f"no images in {image}")
    if os.path.exists(output) and not os.path.isdir(output):
        raise UserError(f"--image is a folder, so --output must be a folder ({output} is a file)")
    if flow is not None and os.path.exists(flow) and not os.path.isdir(flow):
        raise UserError(f"--image is a folder, so --flow must be a folder ({flow} is a file)")
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


def inpaint_file(inpainter: Inpainter, job: Job) -> None:
    """Read, fill and write one picture; nothing is written if anything about it is wrong."""
    original = read_image(job.image)
    hole = read_mask(job.mask)
    if hole.shape != original.shape[:2]:
        raise UserError(f"{job.mask} is {hole.shape[1]}x{hole.shape[0]} but {job.image} is "
                        f"{original.shape[1]}x{original.shape[0]}")
    completed, flow = inpainter(to_rgb8(original), hole)
    result = paste_hole(original, completed, hole)
    write_image(job.output, result)
    if job.flow:
        write_image(job.flow, flow[:, :, ::-1])


def main() -> None:
    parser = ArgumentParser(prog="inpaint.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="our .pdparams (trained or converted), a training run's folder (→ latest), or "
                             "a folder written by tools/export_model.py")
    parser.add_argument("--image", required=True, help="image file, or a folder of images")
    parser.add_argument("--mask", required=True, help="mask file (white = hole), or a folder of masks")
    parser.add_argument("--output", required=True, help="output file, or folder when --image is a folder")
    parser.add_argument("--flow", help="also write the attention flow picture here (file or folder)")
    parser.add_argument("--device", default="auto", help="auto (GPU if available), cpu, gpu or gpu:N")
    args = parser.parse_args()

    jobs = plan_jobs(args.image, args.mask, args.output, args.flow)
    pick_device(args.device, all_cpu_cores=True)
    inpainter = open_model(args.checkpoint)
    if os.path.isdir(args.image):
        for folder in filter(None, (args.output, args.flow)):
            os.makedirs(folder, exist_ok=True)

    if len(jobs) == 1:
        start = time.perf_counter()
        inpaint_file(inpainter, jobs[0])
        print(f"wrote {jobs[0].output} ({time.perf_counter() - start:.2f} s)")
        return
    failures = 0
    for job in tqdm(jobs, desc="inpainting", unit="image"):
        try:
            inpaint_file(inpainter, job)
        except UserError as error:
            failures += 1
            tqdm.write(f"error: {error}", file=sys.stderr)
    if failures:
        raise UserError(f"{failures} of {len(jobs)} images failed; the others are in {args.output}")
    print(f"wrote {len(jobs)} images to {args.output}")


if __name__ == "__main__":
    run(main)
