"""Places2-style image loading: a folder (searched recursively), a file list (the official ``.flist``: one
path per line), or the bundled demo pictures, delivered as ``image_size`` squares on [-1, 1] in the
configured channel order.

Training views (``image_fit``): ``scale_crop`` scales the shorter side to ``image_size`` and crops a random
square (Places2's 256×256 pictures pass unchanged, larger photographs keep their proportions);
``random_crop`` cuts a random square at the file's own resolution (Places2's high-resolution release; a
smaller picture is scaled up first); ``resize`` squeezes the whole picture to the square (the official
code's default, RANDOM_CROP: False). ``flip`` mirrors half of them. Evaluation always scales and takes the
centre.

A file that cannot be read — damaged, foreign, declaring more than ``max_image_pixels``, or failing in any
other way — is reported and replaced by the next readable one: one bad file in 1.8 million must not end a
long run, and an item never raises (an exception in a loader would end the data stream). Each item also
says which file it came from, so that the training process can count the unreadable ones even when worker
processes load the data. The order of images and every crop
and flip is a pure function of (seed, epoch, position), which is what makes resuming a run exact.
"""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np
import paddle

from deepfill.data.stream import BatchStream, first_line, in_process_batches
from deepfill.utils.errors import UserError
from deepfill.utils.image_io import IMAGE_EXTENSIONS, read_image, to_rgb8
from deepfill.utils.pixels import to_model_layout

IMAGE_FITS = ("scale_crop", "random_crop", "resize")

DEMO_TRAINING = ("astronaut.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "motorcycle_left.png",
                 "motorcycle_right.png", "color.png", "brick.png", "grass.png", "camera.png", "horse.png",
                 "logo.png", "cell.png", "clock_motion.png", "page.png", "microaneurysms.png")
DEMO_VALIDATION = ("chelsea.png", "coffee.png", "rocket.jpg", "gravel.png", "coins.png", "moon.png")
DEMO_SPECS = {"demo": DEMO_TRAINING, "demo_val": DEMO_VALIDATION}


def demo_paths(which: str = "demo") -> list[str]:
    """Pictures shipped inside scikit-image (no download): ``demo`` for the demo run, ``demo_val`` — photos
    and a texture it never sees — for its evaluation."""
    import skimage
    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    return [os.path.join(folder, name) for name in DEMO_SPECS[which] if os.path.isfile(os.path.join(folder, name))]


def list_sources(spec: str) -> list[str]:
    """Image paths from a folder (recursive), a file list (one path per line, relative to the list),
    ``demo`` or ``demo_val``."""
    if spec in DEMO_SPECS:
        paths = demo_paths(spec)
    elif os.path.isdir(spec):
        paths = sorted(os.path.join(root, name) for root, _, names in os.walk(spec) for name in names
                       if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
    elif os.path.isfile(spec):
        base = os.path.dirname(os.path.abspath(spec))
        with open(spec, encoding="utf-8", errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
        paths = [line if os.path.isabs(line) else os.path.join(base, line) for line in lines]
    else:
        raise UserError(f"data not found: {spec} (give a folder, a file list, 'demo' or 'demo_val')")
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


def random_window(image: np.ndarray, size: int, rng: np.random.Generator | None) -> np.ndarray:
    """A random (centred without ``rng``) ``size`` square at the image's own resolution; a smaller image is
    scaled up first."""
    height, width = image.shape[:2]
    if min(height, width) < size:
        return fit_square(image, size, rng)
    if rng is None:
        top, left = (height - size) // 2, (width - size) // 2
    else:
        top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    return image[top:top + size, left:left + size]


def evaluation_view(image: np.ndarray, size: int, fit: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """A ``size`` square evaluation sees, as the training view (``fit``) cuts it but never mirrored: its
    centre without ``rng`` — a centre window at the picture's own resolution for ``random_crop``, the
    scaled centre otherwise —, or a window at a position drawn from ``rng`` (``resize`` has only one)."""
    if fit == "random_crop":
        return random_window(image, size, rng)
    if fit == "resize":
        return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return fit_square(image, size, rng)


def training_view(image: np.ndarray, size: int, fit: str, flip: bool, rng: np.random.Generator) -> np.ndarray:
    """The ``size`` square a training step sees (``fit``: one of ``IMAGE_FITS``), mirrored left-right with
    probability ½ if ``flip``."""
    if fit == "resize":
        image = cv2.resize(image, (size, size))       # cv2's default (bilinear), as the official loader
    elif fit == "random_crop":
        image = random_window(image, size, rng)
    elif fit == "scale_crop":
        image = fit_square(image, size, rng)
    else:
        raise ValueError(f"image_fit must be one of {IMAGE_FITS}, got {fit!r}")
    if flip and rng.random() < 0.5:
        image = image[:, ::-1]
    return image


def skipped_indices(pairs: np.ndarray, count: int) -> list[int]:
    """The unreadable files passed over, from (requested, delivered) index pairs of ``count`` files."""
    skipped = []
    for requested, delivered in np.asarray(pairs, np.int64).reshape(-1, 2):
        skipped += [(int(requested) + k) % count for k in range((int(delivered) - int(requested)) % count)]
    return skipped


class ImageDataset(paddle.io.Dataset):
    """Items are ``(index, crop_seed)`` pairs → (uint8 [3, S, S] in the model's channel order (the trainer
    puts it on [-1, 1] on the device: ``deepfill.utils.pixels.to_model_on_device``), int64 [requested index,
    delivered index]); the two indices differ when unreadable files were skipped, and the delivered index
    is -1 (with a blank image) when no file at all could be read."""

    def __init__(self, paths: list[str], image_size: int, channel_order: str = "RGB",
                 image_fit: str = "scale_crop", flip: bool = False, max_pixels: int | None = None) -> None:
        if image_fit not in IMAGE_FITS:
            raise ValueError(f"image_fit must be one of {IMAGE_FITS}, got {image_fit!r}")
        self.paths, self.image_size, self.channel_order = paths, image_size, channel_order
        self.image_fit, self.flip, self.max_pixels = image_fit, flip, max_pixels
        self.reported: set[str] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def load_rgb(self, index: int, crop_seed: int) -> np.ndarray:
        """Image ``index`` as a uint8 RGB ``image_size`` square: the training view drawn from
        ``crop_seed``, or the centred evaluation view if ``crop_seed`` < 0."""
        image = to_rgb8(read_image(self.paths[index], self.max_pixels))
        if crop_seed < 0:
            return fit_square(image, self.image_size, None)
        rng = np.random.default_rng(crop_seed)
        return training_view(image, self.image_size, self.image_fit, self.flip, rng)

    def load(self, index: int, crop_seed: int) -> np.ndarray:
        """Image ``index`` in the model's layout: uint8 [3, S, S] in the channel order."""
        return to_model_layout(self.load_rgb(index, crop_seed), self.channel_order)[0]

    def _first_readable(self, index: int, crop_seed: int) -> tuple[np.ndarray | None, int]:
        """Image ``index``, or the next readable one, and the index it came from ((None, -1) if none
        is); each unreadable file is reported once per process. Any exception counts as unreadable."""
        for attempt in range(len(self.paths)):
            candidate = (index + attempt) % len(self.paths)
            try:
                return self.load(candidate, crop_seed), candidate
            except Exception as error:
                if self.paths[candidate] not in self.reported:
                    self.reported.add(self.paths[candidate])
                    reason = str(error) if isinstance(error, UserError) else \
                        f"{self.paths[candidate]}: {first_line(error)}"
                    print(f"warning: skipping {reason}", file=sys.stderr)
        return None, -1

    def __getitem__(self, item: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        image, delivered = self._first_readable(*item)
        if image is None:
            image = np.zeros((3, self.image_size, self.image_size), np.uint8)
        return image, np.array([item[0], delivered], np.int64)

    def check_readable(self, source: str) -> None:
        """Refuse at the start a data set in which no file can be read (a file list with wrong paths,
        a folder of damaged files), instead of failing later inside a loader process. Stops at the
        first readable file, so a healthy data set costs one decode."""
        first_error = None
        for index in range(len(self.paths)):
            try:
                read_image(self.paths[index], self.max_pixels)
                return
            except UserError as error:
                first_error = first_error or error
        raise UserError(f"none of the {len(self.paths)} images in {source} can be read ({first_error})")


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


def _leave_process_group(worker_id: int) -> None:
    """Loader processes leave the training process's process group, so that Ctrl-C in the terminal and
    the SIGTERM of Paddle's launcher reach only the training process, which finishes its iteration, saves
    and then shuts its loaders down; a loader killed by the signal would make that last iteration fail.
    (Ignoring the signals instead would leave loaders that cannot be shut down.)"""
    os.setpgid(0, 0)


def training_dataset(config) -> ImageDataset:
    """The training images of ``config.data``, checked to hold at least one readable file."""
    dataset = ImageDataset(list_sources(config.data), config.image_size, config.channel_order,
                           config.image_fit, config.flip, config.max_image_pixels)
    dataset.check_readable(config.data)
    return dataset


def training_loader(dataset: ImageDataset, config, consumed: int = 0, rank: int = 0,
                    world: int = 1) -> BatchStream:
    """Endless training batches (uint8 images [B/world, 3, S, S], index pairs [B/world, 2]) of this process's
    share, resuming after ``consumed`` batches; loaded in this process (``num_workers=0``) or by Paddle's
    loader processes, never by Paddle's single-process loader (see ``deepfill.data.stream``)."""
    sampler = ResumableBatches(len(dataset), config.batch_size, config.seed, consumed, rank, world)
    if config.num_workers == 0:
        return BatchStream(in_process_batches(dataset, sampler))
    return BatchStream(paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers,
                                            use_shared_memory=False, worker_init_fn=_leave_process_group,
                                            places=paddle.CPUPlace()))   # the trainer sends what it needs
