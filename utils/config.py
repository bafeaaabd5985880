"""The one configuration object: defaults are the official recipe (inpaint.yml), YAML files override them,
and ``--set key=value`` on the command line overrides the file.

Values from ``--set`` and YAML are converted to the field's type, and an unknown key is a user error that
lists the valid ones — a typo must never silently train with a default.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields

import yaml

from utils.cli import UserError


@dataclass
class Config:
    """Every setting of training and evaluation. Field comments give the official name where one exists."""

    # data
    data: str = "demo"                 # training images: a folder, a file list (one path per line) or "demo"
    val_data: str = "demo"             # evaluation images for test.py, same forms
    image_size: int = 256              # IMG_SHAPES
    hole_size: int = 128               # HEIGHT, WIDTH of the random box
    max_delta: int = 32                # MAX_DELTA_HEIGHT/WIDTH: the box shrinks by 0..delta/2 per side
    per_image_masks: bool = False      # official: one mask for the whole batch
    mask_type: str = "box"             # box (official) or free_form: brush strokes inside the box
    image_fit: str = "scale_crop"      # training view: scale_crop, random_crop, resize (RANDOM_CROP: False)
    flip: bool = False                 # mirror half the training images left-right (official: no)
    channel_order: str = "RGB"         # "BGR" to fine-tune converted official weights
    batch_size: int = 16               # BATCH_SIZE
    num_workers: int = 2               # data-loading processes (0 = in the training process)
    # model
    cnum: int = 32
    # losses (SPEC §4)
    coarse_l1_alpha: float = 1.2       # COARSE_L1_ALPHA: weight of stage-1 terms in l1 and ae
    l1_loss_alpha: float = 1.2         # L1_LOSS_ALPHA
    ae_loss_alpha: float = 1.2         # AE_LOSS_ALPHA
    gan_loss_alpha: float = 0.001      # GAN_LOSS_ALPHA
    global_wgan_loss_alpha: float = 1.0  # GLOBAL_WGAN_LOSS_ALPHA
    wgan_gp_lambda: float = 10.0       # WGAN_GP_LAMBDA
    discount_gamma: float = 0.9        # SPATIAL_DISCOUNTING_GAMMA (the paper's text says 0.99)
    # optimisation (Algorithm 1)
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    critic_steps: int = 5              # critic updates per generator update
    max_iters: int = 1_000_000         # generator updates
    pretrain_coarse: bool = False      # PRETRAIN_COARSE_NETWORK: train stage 1 alone on l1 + ae, no critics
    # bookkeeping
    run_dir: str = "checkpoints/places2"
    init_checkpoint: str = ""          # start from these weights (e.g. converted official ones)
    checkpoint: str = ""               # test.py: weights to evaluate (default: latest in run_dir)
    log_every: int = 100
    sample_every: int = 1000
    save_every: int = 5000
    keep_checkpoints: int = 5          # older step_*.pdparams are deleted (0 = keep all)
    val_count: int = 0                 # test.py: evaluate only the first N images (0 = all)
    val_mask: str = "box"              # test.py: box (training holes), center (hole_size square), mask folder
    baselines: str = "mean_fill,opencv_telea,opencv_ns,biharmonic,patchmatch"  # test.py; "" for none
    device: str = "auto"               # auto, cpu, gpu, gpu:N
    seed: int = 2018

    def validate(self) -> "Config":
        """Refuse settings that cannot work, with the reason."""
        if self.image_size % 8:
            raise UserError(f"image_size must be a multiple of 8, got {self.image_size}")
        if not 0 < self.hole_size <= self.image_size or self.hole_size % 8:
            raise UserError(f"hole_size must be a multiple of 8 in (0, image_size], got {self.hole_size}")
        if not 0 <= self.max_delta < self.hole_size:
            raise UserError(f"max_delta must be in [0, hole_size), got {self.max_delta}")
        if self.channel_order not in ("RGB", "BGR"):
            raise UserError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")
        for name, allowed in (("mask_type", ("box", "free_form")),
                              ("image_fit", ("scale_crop", "random_crop", "resize"))):
            if getattr(self, name) not in allowed:
                raise UserError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("batch_size", "critic_steps", "max_iters", "log_every", "sample_every", "save_every"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        return self

    def baseline_names(self) -> list[str]:
        return [name.strip() for name in self.baselines.split(",") if name.strip()]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _convert(name: str, kind: type, value: object) -> object:
    """Give ``value`` (from YAML or the command line) the field's type, or refuse it."""
    if kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if kind is bool else float(value)
            except (ValueError, yaml.YAMLError):
                pass
        if kind is bool and isinstance(value, bool):
            return value
        if kind is not bool and isinstance(value, (int, float)) and not isinstance(value, bool):
            if kind is float:
                return float(value)
            if float(value).is_integer():
                return int(value)
    raise UserError(f"{name} must be {kind.__name__}, got {value!r}")


def _apply(config: Config, overrides: dict, origin: str) -> None:
    kinds = {f.name: {"int": int, "float": float, "bool": bool, "str": str}[f.type] for f in fields(Config)}
    for name, value in overrides.items():
        if name not in kinds:
            raise UserError(f"unknown setting {name!r} in {origin} (valid: {', '.join(sorted(kinds))})")
        setattr(config, name, _convert(name, kinds[name], value))


def load_config(path: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults ← YAML file ← ``key=value`` overrides; validated."""
    config = Config()
    if path:
        if not os.path.isfile(path):
            raise UserError(f"config not found: {path}")
        try:
            with open(path, encoding="utf-8") as handle:
                loaded = yaml.safe_load(handle) or {}
        except yaml.YAMLError as error:
            raise UserError(f"{path} is not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise UserError(f"{path} must hold a mapping of settings")
        _apply(config, loaded, path)
    pairs = {}
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value
    _apply(config, pairs, "--set")
    return config.validate()
