"""The one configuration object: defaults are the official recipe (inpaint.yml), YAML files override them,
and ``--set key=value`` on the command line overrides the file.

Values from ``--set`` and YAML are converted to the field's type, and an unknown key is a user error that
lists the valid ones — a typo must never silently train with a default.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from deepfill.utils.errors import UserError
from deepfill.utils.image_io import MAX_PIXELS

CPU_PRECISIONS = ("float32", "bfloat16")
"""What oneDNN's convolutions multiply in on the CPU (``deepfill.models.kernels.choose``): float32, the official
arithmetic, or bfloat16 factors with float32 sums and results."""


PADDINGS = ("SAME", "SYMMETRIC", "REFLECT")
"""The generator's padding modes (official PADDING). 'SAME' is TF's zero padding; the other two pad each
conv's input by rate·(k−1)/2 on every side by mirroring, then convolve without padding (``gen_conv``)."""
MISSPELT_PADDING = "REFELECT"
"""The official spelling of REFLECT in ``gen_conv``'s assert and ``inpaint.yml``'s comment, accepted as REFLECT:
the official code hands it to ``tf.pad``, which refuses it, so REFLECT never ran there."""
IMPLEMENTED_GAN = "wgan_gp"
UNIMPLEMENTED_GANS = ("dcgan", "lsgan", "one_wgan_gp")
"""Values of the official GAN that ``inpaint.yml`` lists but ``build_graph_with_losses`` builds no loss for."""


def padding_mode(value: str) -> str:
    """A padding setting as one of ``PADDINGS`` (any case; the official misspelling REFELECT = REFLECT)."""
    upper = value.upper()
    return "REFLECT" if upper == MISSPELT_PADDING else upper


def setting(default: Any, meaning: str) -> Any:
    """A field of ``Config`` with its one line of meaning (shown by ``--help``)."""
    return field(default=default, metadata={"help": meaning})


@dataclass
class Config:
    """Every setting of training and evaluation. Field comments give the official name where one exists."""

    # data
    data: str = setting("demo", 'training images: a folder, a file list (one path per line) or "demo"')
    val_data: str = setting("demo", 'evaluation images for test.py, same forms')
    image_size: int = setting(256, 'side of the square training/evaluation images (IMG_SHAPES)')
    hole_size: int = setting(128, 'side of the box holding the hole; the local critic sees it (HEIGHT, WIDTH)')
    max_delta: int = setting(32, 'MAX_DELTA_HEIGHT/WIDTH: the box shrinks by 0..delta/2 per side')
    per_image_masks: bool = setting(False, 'a different hole for every image (official: one for the whole batch)')
    mask_type: str = setting("box", 'box (official v1), free_form: brush strokes inside the box, or '
                             'box_and_strokes (official v2: the box and brush strokes over the whole image)')
    image_fit: str = setting("scale_crop", 'training view: scale_crop, random_crop, resize (RANDOM_CROP: False)')
    flip: bool = setting(False, 'mirror half the training images left-right (official: no)')
    channel_order: str = setting("RGB", '"BGR" to fine-tune converted official weights')
    batch_size: int = setting(16, 'BATCH_SIZE')
    num_workers: int = setting(2, 'data-loading processes (0 = in the training process)')
    max_image_pixels: int = setting(MAX_PIXELS, 'pictures whose header declares more pixels are skipped as '
                                    'unreadable, before decoding (a small file can declare 40000x40000)')
    # model
    version: int = setting(1, "DeepFill version: 1 (contextual attention, WGAN-GP critics) or 2 (gated "
                           "convolutions, SN-PatchGAN critic, hinge loss; configs/places2_v2.yaml)")
    cnum: int = setting(32, "channel width of the generator (official: 32; v2: 48)")
    padding: str = setting("SAME", "PADDING of the generator's convs: SAME (zeros, official), SYMMETRIC or "
                           "REFLECT (mirror rate*(k-1)/2 rows on each side, then no padding); the official "
                           "REFELECT is REFLECT, which its misspelling kept from running in the official code")
    gan_with_mask: bool = setting(False, "GAN_WITH_MASK: the global critic also sees the hole mask as a 4th "
                                  "input channel (official: the global critic only; its gradient penalty, which "
                                  "fails in the official code, is taken over the image channels)")
    # losses (the official inpaint.yml)
    coarse_l1_alpha: float = setting(1.2, 'COARSE_L1_ALPHA: weight of stage-1 terms in l1 and ae')
    l1_loss_alpha: float = setting(1.2, 'L1_LOSS_ALPHA')
    ae_loss_alpha: float = setting(1.2, 'AE_LOSS_ALPHA')
    gan_loss_alpha: float = setting(0.001, 'GAN_LOSS_ALPHA')
    global_wgan_loss_alpha: float = setting(1.0, 'GLOBAL_WGAN_LOSS_ALPHA')
    wgan_gp_lambda: float = setting(10.0, 'WGAN_GP_LAMBDA')
    discount_gamma: float = setting(0.9, "SPATIAL_DISCOUNTING_GAMMA (the paper's text says 0.99)")
    discounted_mask: bool = setting(True, "DISCOUNTED_MASK: weigh l1 by the spatial discount; false: plain l1 "
                                    "over the local box")
    l1_loss: bool = setting(True, "L1_LOSS: the official code adds l1 to g_loss whatever it says, so false is refused")
    ae_loss: bool = setting(True, "AE_LOSS: add ae_loss_alpha * ae to the generator loss (false: l1 and WGAN only)")
    gan: str = setting(IMPLEMENTED_GAN, "GAN: wgan_gp only; the official dcgan, lsgan, one_wgan_gp are declared "
                       "but not implemented there")
    # optimisation (Algorithm 1)
    lr: float = setting(1e-4, "Adam learning rate of generator and critics")
    beta1: float = setting(0.5, "Adam beta1")
    beta2: float = setting(0.9, "Adam beta2")
    critic_steps: int = setting(5, 'critic updates per generator update')
    gradient_clip: bool = setting(False, "GRADIENT_CLIP: scale each generator gradient tensor g by "
                                  "min(1, value*size(g)/|g|) (tf.clip_by_average_norm); the official trainer "
                                  "clips the generator's only, never the critics'")
    gradient_clip_value: float = setting(0.1, "GRADIENT_CLIP_VALUE: the largest average norm |g|/size(g)")
    max_iters: int = setting(1_000_000, 'generator updates to train for')
    pretrain_coarse: bool = setting(False, 'PRETRAIN_COARSE_NETWORK: train stage 1 alone on l1 + ae, no critics')
    reconstruction_iters: int = setting(0, 'the first N generator updates train both stages on l1 + ae alone (no critics), then Algorithm 1 (official: 0)')
    # bookkeeping
    run_dir: str = setting("checkpoints/places2", "folder of the run: checkpoints, train.log, samples/, visualdl/")
    init_checkpoint: str = setting("", 'start from these weights (a file, or a pretrained name such as places2)')
    checkpoint: str = setting("", 'test.py: weights to evaluate (default: latest in run_dir)')
    log_every: int = setting(100, "write scalars to train.log and VisualDL every N steps")
    sample_every: int = setting(1000, "write a sample picture every N steps")
    save_every: int = setting(5000, "write a checkpoint every N steps (also at the end and when stopped)")
    keep_checkpoints: int = setting(5, 'older step_*.pdparams are deleted (0 = keep all)')
    val_every: int = setting(0, 'validation during training every N generator updates on the first val_count '
                             'pictures of val_data (0 = off)')
    val_count: int = setting(0, 'pictures to evaluate, the first N of val_data: test.py 0 = all; validation '
                             'during training 0 = the official STATIC_VIEW_SIZE, 30')
    val_windows: int = setting(1, 'test.py: views per picture: 1 = the centre of the training view, N = N windows at positions drawn from the seed')
    val_mask: str = setting("box", 'test.py holes: box (training holes), center (hole_size square), free_form (v2: strokes and box) or a mask folder')
    baselines: str = setting("mean_fill,opencv_telea,opencv_ns,biharmonic,patchmatch", 'test.py: classical methods beside the model, comma-separated; "" for none')
    onednn: bool = setting(True, "on the CPU, run the convolutions and their gradients on oneDNN, faster "
                           "than Paddle's own CPU kernels; false: Paddle's own")
    cpu_precision: str = setting("float32", "what oneDNN's convolutions multiply in on the CPU: float32 (the "
                                 "official arithmetic) or bfloat16 (float32 sums; about 2x faster on a "
                                 "processor with AVX512_BF16 or AMX, refused on others)")
    cpu_threads: int = setting(0, "math threads on the CPU (0 = one per core)")
    device: str = setting("auto", 'auto (GPU if there is one), cpu, gpu or gpu:N')
    seed: int = setting(2018, "seed of the data order, crops, holes and weights")

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
        if self.version not in (1, 2):
            raise UserError(f"version must be 1 or 2, got {self.version}")
        for name, allowed in (("mask_type", ("box", "free_form", "box_and_strokes")),
                              ("image_fit", ("scale_crop", "random_crop", "resize")),
                              ("cpu_precision", CPU_PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise UserError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("batch_size", "critic_steps", "max_iters", "log_every", "sample_every", "save_every",
                     "max_image_pixels"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.val_windows < 1:
            raise UserError(f"val_windows must be at least 1, got {self.val_windows}")
        for name in ("reconstruction_iters", "val_every", "val_count"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be 0 or more, got {getattr(self, name)}")
        self._validate_switches()
        return self

    def _validate_switches(self) -> None:
        """The official inpaint.yml switches: canonical padding names, and a refusal for what the official
        code declares but does not implement."""
        self.padding = padding_mode(self.padding)
        if self.padding not in PADDINGS:
            raise UserError(f"padding must be one of {', '.join(PADDINGS)}, got {self.padding!r}")
        smallest = {"SAME": 8, "SYMMETRIC": 64, "REFLECT": 72}[self.padding]
        if self.image_size < smallest:
            raise UserError(f"padding={self.padding} needs image_size >= {smallest}: the generator's last "
                            f"dilated conv mirrors 16 rows of a map of image_size/4 = {self.image_size // 4}")
        if self.gan in UNIMPLEMENTED_GANS:
            raise UserError(f"gan={self.gan} is declared in the official inpaint.yml but not implemented by the "
                            f"official code (only {IMPLEMENTED_GAN} builds losses); set gan={IMPLEMENTED_GAN}")
        if self.gan != IMPLEMENTED_GAN:
            raise UserError(f"gan must be {IMPLEMENTED_GAN}, got {self.gan!r}")
        if not self.l1_loss:
            raise UserError("l1_loss=false (L1_LOSS: False) is declared in the official inpaint.yml but not "
                            "implemented: the official code always adds the l1 term; set l1_loss=true")
        if self.gradient_clip_value <= 0:
            raise UserError(f"gradient_clip_value must be above 0, got {self.gradient_clip_value}")
        v1_only = {"padding": "SAME", "gan_with_mask": False, "gradient_clip": False, "ae_loss": True,
                   "discounted_mask": True}
        changed = [name for name, default in v1_only.items() if getattr(self, name) != default]
        if self.version == 2 and changed:
            raise UserError(f"{changed[0]} is a switch of the v1 recipe (inpaint.yml of v1.0.0); version=2 "
                            f"does not use it, leave it at {v1_only[changed[0]]}")

    explicit: frozenset = field(default=frozenset(), compare=False, repr=False,
                                metadata={"help": None})  # keys the user set (a given file or --set)

    def baseline_names(self) -> list[str]:
        return [name.strip() for name in self.baselines.split(",") if name.strip()]

    def to_dict(self) -> dict:
        """The settings (not the record of which were set explicitly)."""
        return {f.name: getattr(self, f.name) for f in settings()}


def settings() -> list[dataclasses.Field]:
    """The user-settable fields of ``Config``."""
    return [f for f in fields(Config) if f.metadata.get("help") is not None]


def settings_help(base: Config | None = None) -> str:
    """Every ``--set`` key with its default (``base``'s value: a command's own defaults) and meaning, for
    the commands' ``--help``."""
    base = base or Config()
    width = max(len(f.name) for f in settings())
    return "settings (--set KEY=VALUE; default shown first):\n" + "\n".join(
        f"  {f.name:<{width}}  {getattr(base, f.name)!r:<13} {f.metadata['help']}" for f in settings())


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
    kinds = {f.name: {"int": int, "float": float, "bool": bool, "str": str}[f.type] for f in settings()}
    for name, value in overrides.items():
        if name not in kinds:
            raise UserError(f"unknown setting {name!r} in {origin} (valid: {', '.join(sorted(kinds))})")
        setattr(config, name, _convert(name, kinds[name], value))


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise UserError(f"config not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle) or {}
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file in UTF-8 (a YAML config was expected)") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML ({str(error).splitlines()[0]})") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    if not isinstance(loaded, dict):
        raise UserError(f"{path} must hold a mapping of settings")
    return loaded


V2_DEFAULTS = {"cnum": 48, "critic_steps": 1, "beta2": 0.999, "gan_loss_alpha": 1.0, "l1_loss_alpha": 1.0,
               "mask_type": "box_and_strokes"}
"""The official v2 recipe (``inpaint.yml`` of ``master``) where it differs from v1's defaults: with
``version=2`` these replace the defaults of every setting no file and no ``--set`` gives."""


def load_config(path: str | None = None, overrides: list[str] | tuple[str, ...] = (),
                defaults_file: str | None = None) -> Config:
    """Defaults ← YAML file ← ``key=value`` overrides; validated.

    ``defaults_file`` is read when no ``path`` is given (a command's own defaults, e.g. the demo); its
    values are not counted as the user's choice in ``Config.explicit``, those of ``path`` and the
    overrides are — so a command can let a checkpoint's own record win over defaults but not over the
    user. With ``version=2``, settings given nowhere take ``V2_DEFAULTS``."""
    config = Config()
    explicit: set[str] = set()
    given: set[str] = set()
    if path:
        loaded = _read_yaml(path)
        _apply(config, loaded, path)
        explicit |= set(loaded)
    elif defaults_file:
        loaded = _read_yaml(defaults_file)
        _apply(config, loaded, defaults_file)
        given |= set(loaded)
    pairs = {}
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value
    _apply(config, pairs, "--set")
    config.explicit = frozenset(explicit | set(pairs))
    if config.version == 2:
        for key, value in V2_DEFAULTS.items():
            if key not in given | config.explicit:
                setattr(config, key, value)
    return config.validate()
