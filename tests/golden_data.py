"""The golden data the tests use, from ``tests/golden/`` (made by ``tests/golden/make_golden.py`` from
``../shared/golden``; see there for what each file holds). Nothing here needs ``../shared``.

The real golden TF bundle (41 MB) is not kept: its weights are rebuilt from ``weights.json``'s recipe and its
other entries (Adam slots, ``beta1_power``, ``lr``, ``global_step``) from ``distractors.json``, and
``write_golden_bundle`` writes them as a TF bundle with the same 111 entries.
"""
from __future__ import annotations

import json
import os

import numpy as np

from tests.tf_bundle_writer import write_bundle, write_checkpoint_state

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN_DIR = os.path.join(HERE, "golden")
TF_READER_DIR = os.path.join(GOLDEN_DIR, "tf_reader")
SHARED_GOLDEN_DIR = os.path.normpath(os.path.join(ROOT, "..", "shared", "golden", "official_v1"))
PROJECTION_SEED = 7


def _load_json(name: str):
    with open(os.path.join(GOLDEN_DIR, name), encoding="utf-8") as handle:
        return json.load(handle)


def _load_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def load_tensors() -> dict[str, np.ndarray]:
    """The official graph's tensors (NHWC), as ``../shared/golden/official_v1/tensors.npz``."""
    return _load_npz(os.path.join(GOLDEN_DIR, "tensors.npz"))


def load_train_step() -> dict[str, np.ndarray]:
    """The reduced training step: losses, inputs, gradient summaries and a few whole gradients."""
    return _load_npz(os.path.join(GOLDEN_DIR, "train_step.npz"))


def load_meta() -> dict:
    return _load_json("meta.json")


def projection_vector(size: int) -> np.ndarray:
    """The fixed vector ``gradproj/<name>`` projects a flattened (C order, TF layout) gradient on."""
    return np.random.default_rng(PROJECTION_SEED).standard_normal(size)


def gradient_projection(gradient: np.ndarray) -> float:
    flat = np.asarray(gradient, dtype=np.float64).ravel()
    return float(np.dot(flat, projection_vector(flat.size)))


def rebuild_weights() -> dict[str, np.ndarray]:
    """The golden checkpoint's weights (TF layout, float32), rebuilt from ``weights.json``'s recipe."""
    recipe = _load_json("weights.json")
    rng = np.random.default_rng(recipe["seed"])
    weights = {}
    for name, shape in recipe["order"]:
        shape = tuple(shape)
        if name.endswith("/bias"):
            value = 0.05 * rng.standard_normal(shape)
        elif name.endswith("/kernel"):
            value = rng.standard_normal(shape) * np.sqrt(1 / np.prod(shape[:-1]))
        else:
            raise ValueError(f"weights.json: {name} is neither a kernel nor a bias")
        weights[name] = value.astype(np.float32)
    return weights


MASK_CHANNEL_KERNEL = "discriminator/discriminator_global/conv1/kernel"
MASK_CHANNEL_SEED = 2019


def mask_channel_kernel() -> np.ndarray:
    """The global critic's ``conv1`` kernel slice for the hole-mask input channel (``gan_with_mask``,
    official GAN_WITH_MASK), [5, 5, 1, 64] in TF layout: ``weights.json``'s recipe extended — drawn from
    ``numpy.random.default_rng(2019)`` as ``standard_normal · sqrt(1/75)``, the scale of the recipe's
    3-channel kernel, whose channels stay as they are (``tests/golden/make_switch_golden.py``)."""
    rng = np.random.default_rng(MASK_CHANNEL_SEED)
    return (rng.standard_normal((5, 5, 1, 64)) * np.sqrt(1 / 75)).astype(np.float32)


def load_switches() -> dict[str, dict[str, np.ndarray]]:
    """One official training step for each non-default value of a switch (``tests/golden/switches.npz``,
    made by ``tests/golden/make_switch_golden.py``), by the settings that give it (``"padding=symmetric"``):
    each a dict as ``load_train_step``'s — ``loss/<name>``, ``grad{norm,sum,abssum,maxabs,proj}/<variable>``
    and a few whole ``grad/<variable>``."""
    packed = _load_npz(os.path.join(GOLDEN_DIR, "switches.npz"))
    variables, losses = list(packed.pop("variables")), list(packed.pop("losses"))
    cases: dict[str, dict[str, np.ndarray]] = {}
    for key, value in packed.items():
        case, kind = key.split("/", 1)
        if "=" not in case:
            continue
        step = cases.setdefault(case, {})
        if kind == "loss":
            step.update({f"loss/{name}": v for name, v in zip(losses, value)})
        elif kind.startswith("grad/"):
            step[kind] = value
        else:
            step.update({f"{kind}/{name}": v for name, v in zip(variables, value)})
    return cases


def distractors() -> dict[str, np.ndarray]:
    """The golden bundle's entries that are not weights: optimiser slots and bookkeeping variables."""
    return {item["name"]: np.full(item["shape"], item["value"], dtype=item["dtype"])
            for item in _load_json("distractors.json")["distractors"]}


def golden_bundle_tensors() -> dict[str, np.ndarray]:
    tensors = rebuild_weights()
    extra = distractors()
    assert not set(tensors) & set(extra)
    tensors.update(extra)
    return tensors


def write_golden_bundle(folder: str) -> str:
    """Write the golden TF checkpoint as the official release folders hold one: ``folder/checkpoint``
    naming ``snap-0``, and ``snap-0.index`` / ``snap-0.data-00000-of-00001``. Returns ``folder``."""
    os.makedirs(folder, exist_ok=True)
    write_bundle(os.path.join(folder, "snap-0"), golden_bundle_tensors())
    write_checkpoint_state(folder, "snap-0")
    return folder
