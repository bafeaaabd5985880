"""Regenerate ``tests/golden/`` from the full golden data in ``../shared/golden``.

Why: the golden data made by running the official TensorFlow graph (see ``../shared/SPEC.md`` §7) is ~85 MB
and lives beside the project, not in it. The tests must pass on a fresh clone without ``../shared``, so what
they need of it is kept here, small (a few MB):

- ``tensors.npz``, ``meta.json``, ``weights.json``: byte-for-byte copies (every key of ``tensors.npz`` is
  read by the tests, and it is already compressed float32).
- ``tf_reader/``: a copy of the small real TF checkpoint (with ``expected.npz``) for the bundle reader.
- ``distractors.json``: the name, dtype, shape and (constant) value of every entry of the real golden TF
  bundle that is not a weight of ``weights.json``'s recipe (Adam slots, ``beta1_power``, ``lr``,
  ``global_step``), so that ``tests/golden_data.write_golden_bundle`` writes a bundle with the same 111
  entries as the real 41 MB one: the weights are rebuilt from the recipe, the distractors from this list.
- ``train_step.npz``: a reduced form of the 40 MB ``train_step.npz`` (one official training step). Kept
  whole: every ``loss/<name>``, ``x``, ``mask``, ``local_box``, ``spatial_discount``, ``alpha_local``,
  ``alpha_global`` (``x_stage1``/``x_stage2`` are left out: they equal ``tensors.npz``'s bit for bit). For
  every ``grad/<name>`` (TF layout: HWIO kernels, NHWC-flattened dense rows) it keeps, in float64:
  ``gradnorm/<name>`` (L2 norm), ``gradsum/<name>``, ``gradabssum/<name>`` (sum of absolute values),
  ``gradmaxabs/<name>`` and ``gradproj/<name>`` = the flattened (C order) gradient · a fixed random vector,
  ``numpy.random.default_rng(7).standard_normal(size)`` drawn afresh for each tensor (see
  ``tests/golden_data.projection_vector``); a projection catches the permutations and sign errors that norms
  and sums miss. A few whole gradients (``FULL_GRADIENTS`` below) are also kept, under their own
  ``grad/<name>`` keys, unchanged (float32).

How: ``python tests/golden/make_golden.py [SHARED_GOLDEN_DIR]`` (default ``../shared/golden`` beside the
project). It overwrites the files above and prints the total size. ``tests/test_golden_data.py`` checks,
whenever ``../shared`` is present, that these files still agree with it.
"""
from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.golden_data import PROJECTION_SEED, projection_vector  # noqa: E402
from deepfill.utils.tf_bundle import read_index, read_tensors, resolve_prefix  # noqa: E402

KEPT_WHOLE = ["x", "mask", "local_box", "spatial_discount", "alpha_local", "alpha_global"]
FULL_GRADIENTS = [
    "inpaint_net/conv1/kernel", "inpaint_net/conv1/bias",                 # generator input layer
    "inpaint_net/allconv17/kernel", "inpaint_net/allconv17/bias",         # generator output layer
    "inpaint_net/pmconv1/kernel",                                         # contextual-attention branch
    "discriminator/discriminator_local/conv1/kernel", "discriminator/dout_local_fc/kernel",
    "discriminator/discriminator_global/conv1/kernel", "discriminator/dout_global_fc/kernel",
]
NUMPY_DTYPES = {"float32": np.float32, "int64": np.int64}


def gradient_summaries(name: str, gradient: np.ndarray) -> dict[str, np.ndarray]:
    flat = gradient.astype(np.float64).ravel()
    return {f"gradnorm/{name}": np.float64(np.sqrt(np.dot(flat, flat))),
            f"gradsum/{name}": np.float64(flat.sum()),
            f"gradabssum/{name}": np.float64(np.abs(flat).sum()),
            f"gradmaxabs/{name}": np.float64(np.abs(flat).max()),
            f"gradproj/{name}": np.float64(np.dot(flat, projection_vector(flat.size)))}


def reduce_train_step(path: str) -> dict[str, np.ndarray]:
    reduced = {}
    with np.load(path) as full:
        for key in full.files:
            if key.startswith("loss/") or key in KEPT_WHOLE:
                reduced[key] = full[key]
            elif key.startswith("grad/"):
                name = key[len("grad/"):]
                reduced.update(gradient_summaries(name, full[key]))
                if name in FULL_GRADIENTS:
                    reduced[key] = full[key]
        missing = [k for k in KEPT_WHOLE + [f"grad/{n}" for n in FULL_GRADIENTS] if k not in reduced]
        if missing:
            raise SystemExit(f"{path} lacks {missing}")
    return reduced


def distractor_list(bundle: str, recipe_names: set[str]) -> list[dict]:
    prefix = resolve_prefix(bundle)
    _, entries = read_index(prefix)
    names = sorted(n for n in entries if n not in recipe_names)
    tensors = read_tensors(prefix, names)
    listed = []
    for name in names:
        value = tensors[name]
        if str(value.dtype) not in NUMPY_DTYPES:
            raise SystemExit(f"{name}: dtype {value.dtype} is not supported by tests/tf_bundle_writer.py")
        constant = value.ravel()[0] if value.size else 0
        if not (value == constant).all():
            raise SystemExit(f"{name} is not constant; distractors.json can only describe constants")
        listed.append({"name": name, "dtype": str(value.dtype), "shape": list(value.shape),
                       "value": constant.item()})
    return listed


def main(shared: str) -> None:
    official = os.path.join(shared, "official_v1")
    for name in ("tensors.npz", "meta.json", "weights.json"):
        shutil.copyfile(os.path.join(official, name), os.path.join(HERE, name))
    reader = os.path.join(HERE, "tf_reader")
    shutil.rmtree(reader, ignore_errors=True)
    os.makedirs(reader)
    for name in sorted(os.listdir(os.path.join(shared, "tf_reader"))):
        shutil.copyfile(os.path.join(shared, "tf_reader", name), os.path.join(reader, name))

    with open(os.path.join(official, "weights.json"), encoding="utf-8") as handle:
        recipe_names = {name for name, _ in json.load(handle)["order"]}
    with open(os.path.join(HERE, "distractors.json"), "w", encoding="utf-8") as handle:
        json.dump({"source": "../shared/golden/official_v1/tf_checkpoint (entries not in weights.json)",
                   "distractors": distractor_list(os.path.join(official, "tf_checkpoint"), recipe_names)},
                  handle, indent=1)
        handle.write("\n")

    reduced = reduce_train_step(os.path.join(official, "train_step.npz"))
    reduced["projection_seed"] = np.int64(PROJECTION_SEED)
    np.savez_compressed(os.path.join(HERE, "train_step.npz"), **reduced)

    total = sum(os.path.getsize(os.path.join(folder, f)) for folder, _, files in os.walk(HERE) for f in files
                if "__pycache__" not in folder)
    print(f"tests/golden: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "golden"))
