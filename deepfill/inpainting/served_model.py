"""Which model the app serves, what the page says about it, and which others it offers in its menu.

The page paints free-form strokes, the holes DeepFill v2 was trained for; v1 was trained on boxes only. So
when no model is named, a cached v2 release is preferred over a v1 one. The menu offers only the pretrained
models already in the cache (by name, so each is checksum-verified when loaded) and the one the server
started with: an HTTP client can never make the server open an arbitrary path.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import paddle

from deepfill.inpainting.filler import Filler
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models.checkpoint_file import latest_checkpoint
from deepfill.models.pretrained import RELEASES, cache_home, is_cached, is_pretrained_name
from deepfill.models.spec import ModelSpec
from deepfill.utils.errors import UserError

DEMO_RUN = os.path.join("checkpoints", "demo")


@dataclass(frozen=True)
class Model:
    """What the app serves: the inpainter, the record of its weights, the name the page shows and what
    ``--checkpoint`` named to load it (by default the name)."""
    inpainter: Filler
    spec: ModelSpec
    name: str
    device: str
    reference: str = ""

    @property
    def trained_on(self) -> str:
        """The data and holes it learnt from, for the page: a release's dataset, else its record's source."""
        data = (RELEASES[self.name].dataset if is_pretrained_name(self.name)
                else self.spec.source or "unknown data")
        holes = "boxes" if self.spec.version == 1 else "boxes and free-form brush strokes"
        return f"{data}, {self.spec.image_size}×{self.spec.image_size} pictures with {holes}"

    def describe(self) -> dict[str, object]:
        """The page's and ``GET /api/model``'s description of the model."""
        return {"name": self.name, "version": self.spec.version, "trained_on": self.trained_on,
                "source": self.spec.source, "channel_order": self.spec.channel_order,
                "image_size": self.spec.image_size, "hole_size": self.spec.hole_size, "cnum": self.spec.cnum,
                "device": self.device}


def model_name(requested: str, path: str) -> str:
    """What the page calls the model: a pretrained name as given, a file's name, or run folder @ step."""
    if not os.path.exists(requested):
        return requested
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"{os.path.basename(os.path.normpath(requested))} @ {stem}" if os.path.isdir(requested) else stem


def open_served(requested: str) -> Model:
    """Load ``requested`` (pretrained name, file or run folder) on the current device."""
    checkpoint = load_checkpoint(requested)
    return Model(Filler.from_checkpoint(checkpoint), checkpoint.spec, model_name(requested, checkpoint.path),
                 paddle.device.get_device(), requested)


def cached_names() -> list[str]:
    """The pretrained models with a finished entry in the cache, in the release list's order."""
    return [name for name in RELEASES if is_cached(name)]


def menu(first: str) -> list[str]:
    """The models the page may switch between: the cached releases, and first the model the server started
    with if it is not one of them."""
    cached = cached_names()
    return cached if first in cached else [first, *cached]


def default_checkpoint() -> str:
    """The model to serve when none is named: the most recently fetched pretrained DeepFill v2 model (made
    for the page's brush strokes), else the most recently fetched v1 one (by name, so that its checksum is
    verified on loading), else the demo run (relative to the current folder, where ``python train.py``
    writes it)."""
    stems = [os.path.splitext(os.path.basename(path))[0]
             for path in glob.glob(os.path.join(cache_home(), "*.pdparams"))]
    cached = [name for name in stems if is_pretrained_name(name)]
    if cached:
        return max(cached, key=lambda name: (RELEASES[name].version == 2,
                                             os.path.getmtime(os.path.join(cache_home(), f"{name}.pdparams"))))
    try:
        latest_checkpoint(DEMO_RUN)
        return DEMO_RUN
    except UserError:
        pass
    raise UserError(f"no checkpoint found (none in {cache_home()}, none in {DEMO_RUN}): get the pretrained "
                    "Places2 model with `python tools/download_pretrained.py places2_v2`, or train the demo with "
                    "`python train.py`, or pass --checkpoint PATH")
