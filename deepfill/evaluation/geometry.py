"""The picture and hole size an evaluation runs at: a model is measured at the scale it was trained at,
unless the user asks otherwise."""
from __future__ import annotations

import dataclasses
import sys

from deepfill.models.spec import ModelSpec
from deepfill.utils.config import Config


def evaluation_geometry(config: Config, spec: ModelSpec) -> Config:
    """Evaluate at the geometry the model was trained at (its record), unless the user set another:
    then keep the user's, with a warning naming both. The box's shrink ``max_delta`` follows the hole
    (a quarter of it, the official 32 of 128) unless set."""
    changes = {}
    for name in ("image_size", "hole_size"):
        ours, theirs = getattr(config, name), getattr(spec, name)
        if ours == theirs:
            continue
        if name in config.explicit:
            print(f"warning: evaluating at {name}={ours}, but the checkpoint was trained at {name}={theirs}",
                  file=sys.stderr)
        else:
            changes[name] = theirs
    if changes and "max_delta" not in config.explicit:
        changes["max_delta"] = changes.get("hole_size", config.hole_size) // 4
    return dataclasses.replace(config, **changes).validate()
