"""The jobs of ``inpaint.py``: which pictures to fill with which masks into which files, checked before any
work, and filling them one by one so that a picture that cannot be done never stops the others."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from tqdm import tqdm

from deepfill.inpainting.filler import Filler
from deepfill.inpainting.strategy import fill_picture
from deepfill.utils.errors import UserError
from deepfill.utils.files import WriteError, check_writable_folder
from deepfill.utils.image_io import (check_declared_size, check_writable, decode_image, list_images, mask_from_image,
                                     read_file, write_image)


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


def inpaint_file(inpainter: Filler, job: Job, strategy: str = "full") -> None:
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


def inpaint_folder(inpainter: Filler, jobs: list[Job], output: str, strategy: str) -> None:
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
