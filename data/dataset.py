"""Places2-style image loading: a folder (searched recursively), a file list, or the bundled demo pictures,
delivered as ``image_size`` squares on [-1, 1] in the configured channel order.

Images are scaled so the shorter side fits, then cropped (random in training, centred in evaluation), so
Places2's 256×256 pictures pass unchanged and larger photographs of your own are not distorted. A file
that cannot be read is reported once and replaced by the next one: a bad image must not end a long run.
The order of images and every crop is a pure function of (seed, epoch, position), which is what makes
resuming a run exact.
"""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np
import paddle

from utils.cli import UserError
from utils.image_io import IMAGE_EXTENSIONS, read_image, to_rgb8

DEMO_PICTURES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
                 "retina.jpg", "ihc.png", "motorcycle_left.png", "motorcycle_right.png", "color.png",
                 "brick.png", "grass.png", "gravel.png", "camera.png", "horse.png", "logo.png")


def demo_paths() -> list[str]:
    """Photographs shipped inside scikit-image (no download), for the demo run and the demo evaluation."""
    import skimage
    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    return [os.path.join(folder, name) for name in DEMO_PICTURES if os.path.isfile(os.path.join(folder, name))]


def list_sources(spec: str) -> list[str]:
    """Image paths from a folder (recursive), a file list (one path per line, relative to the list), or
    ``demo``."""
    if spec == "demo":
        paths = demo_paths()
    elif os.path.isdir(spec):
        paths = sorted(os.path.join(root, name) for root, _, names in os.walk(spec) for name in names
                       if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
    elif os.path.isfile(spec):
        base = os.path.dirname(os.path.abspath(spec))
        with open(spec, encoding="utf-8", errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
        paths = [line if os.path.isabs(line) else os.path.join(base, line) for line in lines]
    else:
        raise UserError(f"data not found: {spec} (give a folder, a file list, or 'demo')")
    if not paths:
        raise UserError(f"no images in {spec}")
    return paths


def fit_square(image: np.ndarray, size: int, rng: np.random.Generator | None) -> np.ndarray:
    """Scale so the shorter side is ``size`` (no-op if it already is), then crop a square: random when an
    ``rng`` is given, centred otherwise."""
    height, width = image.shape[:2]
    scale = size / min(height, width)
    if scale != 1:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (max(size, round(width * scale)), max(size, round(height * scale))),
                           interpolation=interpolation)
        height, width = image.shape[:2]
    if rng is None:
        top, left = (height - size) // 2, (width - size) // 2
    else:
        top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    return image[top:top + size, left:left + size]


class ImageDataset(paddle.io.Dataset):
    """Items are ``(index, crop_seed)`` pairs (crop_seed < 0: centred crop) → float32 [3, S, S] on [-1, 1]."""

    def __init__(self, paths: list[str], image_size: int, channel_order: str = "RGB") -> None:
        self.paths, self.image_size, self.channel_order = paths, image_size, channel_order
        self.reported: set[str] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def load_rgb(self, index: int, crop_seed: int) -> np.ndarray:
        """Image ``index`` as a uint8 RGB ``image_size`` square (random crop from ``crop_seed``, centred if < 0)."""
        rng = np.random.default_rng(crop_seed) if crop_seed >= 0 else None
        return fit_square(to_rgb8(read_image(self.paths[index])), self.image_size, rng)

    def load(self, index: int, crop_seed: int) -> np.ndarray:
        """Image ``index`` as the model sees it: float32 [3, S, S] on [-1, 1] in the channel order."""
        image = self.load_rgb(index, crop_seed)
        if self.channel_order == "BGR":
            image = image[:, :, ::-1]
        return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 127.5 - 1.0

    def _first_readable(self, index: int, crop_seed: int, load) -> np.ndarray:
        """``load`` image ``index``, or the next readable one; each unreadable file is reported once."""
        for attempt in range(len(self.paths)):
            candidate = (index + attempt) % len(self.paths)
            try:
                return load(candidate, crop_seed)
            except UserError as error:
                if self.paths[candidate] not in self.reported:
                    self.reported.add(self.paths[candidate])
                    print(f"warning: skipping {error}", file=sys.stderr)
        raise UserError("none of the images can be read")

    def __getitem__(self, item: tuple[int, int]) -> np.ndarray:
        return self._first_readable(*item, self.load)

    def centred_rgb(self, index: int) -> np.ndarray:
        """Evaluation view of image ``index``: centred uint8 RGB square (skipping unreadable files)."""
        return self._first_readable(index, -1, self.load_rgb)


class ResumableBatches(paddle.io.BatchSampler):
    """Endless shuffled batches whose order depends only on (seed, epoch, position).

    Starting at ``consumed`` batches reproduces exactly the batches an uninterrupted run would have seen
    from there on; each epoch is a fresh permutation and drops its last incomplete batch. With ``world``
    data-parallel processes, process ``rank`` gets its equal share of each (global) batch, so together
    they see exactly what a single process would.
    """

    def __init__(self, count: int, batch_size: int, seed: int, consumed: int = 0, rank: int = 0,
                 world: int = 1) -> None:
        if count < batch_size:
            raise UserError(f"{count} images are fewer than batch_size={batch_size}")
        if batch_size % world:
            raise UserError(f"batch_size={batch_size} does not split evenly over {world} processes")
        self.count, self.batch_size, self.seed, self.consumed = count, batch_size, seed, consumed
        self.per_epoch = count // batch_size
        share = batch_size // world
        self.share = slice(rank * share, (rank + 1) * share)

    def __iter__(self):
        position = self.consumed
        while True:
            epoch, cursor = divmod(position, self.per_epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.count)
            for batch in range(cursor, self.per_epoch):
                indices = order[batch * self.batch_size:(batch + 1) * self.batch_size]
                seeds = np.random.default_rng([self.seed, epoch, batch, 1]).integers(0, 2 ** 31, len(indices))
                yield [(int(i), int(s)) for i, s in zip(indices, seeds)][self.share]
                position += 1

    def __len__(self) -> int:
        return sys.maxsize


def training_loader(config, consumed: int = 0, rank: int = 0, world: int = 1) -> paddle.io.DataLoader:
    """Endless training batches [B/world, 3, S, S] from ``config.data`` (this process's share), resuming
    after ``consumed`` batches."""
    dataset = ImageDataset(list_sources(config.data), config.image_size, config.channel_order)
    sampler = ResumableBatches(len(dataset), config.batch_size, config.seed, consumed, rank, world)
    return paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers,
                                use_shared_memory=False)
