"""What a set of weights is: the record every checkpoint carries, so that no consumer has to guess.

A DeepFill v1 generator's weights only make sense together with the width they were built with (``cnum``),
the channel order of the pictures it was trained on (the official release used OpenCV's BGR arrays), and the
geometry of its training (image side and hole side, which are also the input sides of the global and local
critics). Evaluation takes its default geometry from here, inference its channel order, fine-tuning its
critic sizes.

Two official switches change the model itself and are recorded too: ``padding`` (the generator's, official
PADDING) and ``gan_with_mask`` (the global critic's extra mask input channel, GAN_WITH_MASK). Records written
before they existed describe SAME padding and 3-channel critics, their dataclass defaults.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from deepfill.utils.config import PADDINGS, padding_mode

CHANNEL_ORDERS = ("RGB", "BGR")
ARCHITECTURES = {1: "deepfill_v1", 2: "deepfill_v2"}
"""The architecture each recorded ``version`` names: v1's generator (``deepfill.models.generator``) with the
local and global WGAN-GP critics, or v2's gated generator (``deepfill.models.gated``) with the SN-PatchGAN
critic. The record keeps the number, which every file written so far holds; ``generator_for`` builds the
generator it names."""
VERSIONS = tuple(ARCHITECTURES)


class SpecError(ValueError):
    """A stored model record that cannot describe a DeepFill v1 model."""


@dataclass(frozen=True)
class ModelSpec:
    """The description of one DeepFill v1 model, written into every checkpoint.

    ``image_size``/``hole_size`` are the training image side and hole (local box) side; the global critic
    takes ``image_size`` squares, the local critic ``hole_size`` squares. ``source`` says where the weights
    came from (a training run folder, a converted TF checkpoint, a pretrained name). ``version`` is the
    DeepFill generation (1 for every file written before v2 existed); for v2, ``hole_size`` is the side of
    the box that its training holes combine with brush strokes."""

    cnum: int = 32
    channel_order: str = "RGB"
    image_size: int = 256
    hole_size: int = 128
    source: str = ""
    version: int = 1
    padding: str = "SAME"
    gan_with_mask: bool = False

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise SpecError(f"unknown DeepFill version {self.version!r} (known: {VERSIONS})")
        if self.channel_order not in CHANNEL_ORDERS:
            raise SpecError(f"unknown channel_order {self.channel_order!r}")
        if self.padding not in PADDINGS:
            raise SpecError(f"unknown padding {self.padding!r}")
        if not isinstance(self.gan_with_mask, bool):
            raise SpecError(f"gan_with_mask must be true or false, got {self.gan_with_mask!r}")
        for name in ("cnum", "image_size", "hole_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError(f"{name} must be a positive integer, got {value!r}")
        if self.hole_size > self.image_size:
            raise SpecError(f"hole_size {self.hole_size} exceeds image_size {self.image_size}")

    @property
    def architecture(self) -> str:
        """The name of the architecture these weights belong to (``ARCHITECTURES``)."""
        return ARCHITECTURES[self.version]

    @property
    def critic_local_size(self) -> int:
        return self.hole_size

    @property
    def critic_global_size(self) -> int:
        return self.image_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, stored: Any) -> "ModelSpec":
        """Read a stored record; unknown keys are refused so that a typo never passes as a default."""
        if not isinstance(stored, dict):
            raise SpecError("the model record is not a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(stored) - known)
        if unknown:
            raise SpecError(f"unknown model record field {unknown[0]!r}")
        numbers = ("cnum", "image_size", "hole_size", "version")
        values = {k: (int(v) if k in numbers and not isinstance(v, str) else
                      str(v) if k in ("channel_order", "source") else
                      padding_mode(str(v)) if k == "padding" else
                      bool(v) if k == "gan_with_mask" and str(v) in ("True", "False", "0", "1") else v)
                  for k, v in stored.items()}
        return cls(**values)

    def describe(self) -> str:
        """One line for logs and reports."""
        holes = f"{self.hole_size}x{self.hole_size} " + ("holes" if self.version == 1 else "boxes and brush strokes")
        switches = "".join([f", {self.padding} padding" if self.padding != "SAME" else "",
                            ", global critic sees the mask" if self.gan_with_mask else ""])
        return (f"DeepFill v{self.version}, cnum {self.cnum}, {self.channel_order}, trained at {self.image_size}x"
                f"{self.image_size} with {holes}{switches}")


def spec_of_settings(config: Any, source: str = "") -> ModelSpec:
    """The record of the model a training run with these settings (``utils.config.Config``) builds and
    writes: its generator is built from this record (``checkpoint_file.generator_for``), as a loaded
    checkpoint's is."""
    return ModelSpec(cnum=config.cnum, channel_order=config.channel_order, image_size=config.image_size,
                     hole_size=config.hole_size, source=source, version=config.version, padding=config.padding,
                     gan_with_mask=config.gan_with_mask)
