"""The DeepFill v2 golden data, from ``tests/golden/v2/`` (made by ``tests/golden/v2/make_v2_golden.py``
running the official v2 graph; see there for what each file holds).

As for v1 (``tests/golden_data``), the checkpoint itself is not kept: its model variables are rebuilt from
``weights.json``'s recipe, its other entries (Adam slots, ``beta*_power``, ``lr``) from ``distractors.json``,
and ``write_v2_bundle`` writes them as a TF bundle with the same entries as the one the official graph saved.
"""
from __future__ import annotations

import json
import os

import numpy as np

from tests.tf_bundle_writer import write_bundle, write_checkpoint_state

V2_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "v2")


def _load_json(name: str):
    with open(os.path.join(V2_DIR, name), encoding="utf-8") as handle:
        return json.load(handle)


def _load_npz(name: str) -> dict[str, np.ndarray]:
    with np.load(os.path.join(V2_DIR, name)) as data:
        return {key: data[key] for key in data.files}


def load_tensors() -> dict[str, np.ndarray]:
    """The official v2 graph's tensors (NHWC)."""
    return _load_npz("tensors.npz")


def load_train_step() -> dict[str, np.ndarray]:
    """One official v2 training step: losses, gradient reductions and a few whole gradients."""
    return _load_npz("train_step.npz")


def rebuild_weights() -> dict[str, np.ndarray]:
    """The golden model's variables (TF layout, float32), rebuilt from ``weights.json``'s recipe."""
    recipe = _load_json("weights.json")
    rng = np.random.default_rng(recipe["seed"])
    weights = {}
    for name, shape in recipe["order"]:
        shape = tuple(shape)
        if name.endswith("/bias"):
            value = 0.05 * rng.standard_normal(shape)
        elif name.endswith("/kernel"):
            gain = recipe["generator_gain"] if name.startswith("inpaint_net/") else 1.0
            value = rng.standard_normal(shape) * np.sqrt(gain / np.prod(shape[:-1]))
        elif name.endswith("/u"):
            value = rng.standard_normal(shape)
        else:
            raise ValueError(f"weights.json: no recipe for {name}")
        weights[name] = value.astype(np.float32)
    return weights


def distractors() -> dict[str, np.ndarray]:
    return {item["name"]: np.full(item["shape"], item["value"], dtype=item["dtype"])
            for item in _load_json("distractors.json")["distractors"]}


def write_v2_bundle(folder: str) -> str:
    """Write the v2 golden TF checkpoint as a release folder holds one (``checkpoint`` naming ``snap-0``).
    Returns ``folder``."""
    tensors = rebuild_weights()
    extra = distractors()
    assert not set(tensors) & set(extra)
    tensors.update(extra)
    os.makedirs(folder, exist_ok=True)
    write_bundle(os.path.join(folder, "snap-0"), tensors)
    write_checkpoint_state(folder, "snap-0")
    return folder
