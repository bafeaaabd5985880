"""Opening a checkpoint by any reference a user may give: a checkpoint file, a training run's folder (its
latest checkpoint) or a pretrained name (``places2``, ``celeba``, ``celebahq``, ``imagenet``, ``places2_v2``,
``celebahq_v2``: fetched into the cache of ``deepfill.models.pretrained`` on first use, checksum verified). The file
format itself is ``deepfill.models.checkpoint_file``.
"""
from __future__ import annotations

import os

from deepfill.models.checkpoint_file import Checkpoint, latest_checkpoint, read_checkpoint
from deepfill.models.pretrained import RELEASES, is_pretrained_name, resolve
from deepfill.utils.errors import UserError


def load_checkpoint(path: str) -> Checkpoint:
    """Load and check the checkpoint ``path`` names: a file, a training run's folder (→ latest), a bare
    generator state dict, or a pretrained name (an existing file or folder of that name wins)."""
    if not os.path.exists(path) and is_pretrained_name(path):
        path = resolve(path)
    if os.path.isdir(path):
        path = latest_checkpoint(path)
    if not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {path} (give a .pdparams file, a training run's folder, or "
                        f"a pretrained name: {', '.join(RELEASES)})")
    return read_checkpoint(path)
