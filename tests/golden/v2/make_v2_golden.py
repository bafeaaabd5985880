"""Make ``tests/golden/v2/`` by running the official DeepFill v2 graph (never run by the test suite).

Why: the v2 model, critic, losses and converter are checked against what the official code computes, not
against a reading of it. That code (JiahuiYu/generative_inpainting ``master`` = tag v2.0.0, with neuralgym)
needs TensorFlow 1.x, which no current Python installs, so this script runs it under ``tf.compat.v1`` of
TensorFlow 2.15 in a throw-away environment outside the project, with three shims that do not change what is
computed: ``tensorflow`` is ``tf.compat.v1``; ``tf.contrib``'s ``arg_scope``/``add_arg_scope`` are a
minimal re-implementation (keyword defaults for the decorated functions, inner scopes override outer ones)
and ``tf.contrib.layers.flatten`` is ``tf.compat.v1.layers.flatten`` (both reshape NHWC to [N, H·W·C]);
``cv2`` is an empty module (the official files use it only in functions never called here). neuralgym's
own ``ops`` files are imported as they are, without its package ``__init__`` (which starts its trainers).

Variables are resource variables. With TF1's reference variables the gradient of the spectral norm reads
the power-iteration vector ``u`` through an alias of the variable that the forward pass's ``u.assign``
may already have overwritten, depending on the order TF happens to run the ops: the critic's gradients
then mix the old and the new ``u`` (measured: the first critic layer's kernel gradient moves by 10 % of its
largest entry, the other layers by ~1e-5). Resource variables read ``u`` once, which is what the graph
means and what the Paddle port computes; losses and forward values are the same either way.

How::

    python -m venv /work/tfenv-v2 && /work/tfenv-v2/bin/pip install tensorflow-cpu==2.15.* numpy pillow
    git --git-dir=<fetched generative_inpainting> archive master | tar -x -C OFFICIAL
    git --git-dir=<fetched neuralgym> archive HEAD | tar -x -C NEURALGYM
    /work/tfenv-v2/bin/python tests/golden/v2/make_v2_golden.py OFFICIAL NEURALGYM

What it writes, beside itself (NHWC arrays as TF holds them, TF layout for weights):

- ``weights.json``: the recipe of every model variable (generator, critic, the critic's spectral-norm
  vectors ``kernel_sn/u``): ``numpy.random.default_rng(seed)``, then for each ``[name, shape]`` in order a
  bias is ``0.05·N(0,1)``, a kernel ``N(0,1)·sqrt(1/prod(shape[:-1]))``, a ``u`` ``N(0,1)``, as float32.
- ``distractors.json``: every other entry of the real TF checkpoint the script saves of that graph (Adam
  slots, ``beta*_power``, ``lr``), all constants, so that ``tests.golden_data.write_v2_bundle`` writes a
  bundle with the same entries; the script checks that the project's reader reads that bundle and the
  real one equal.
- ``tensors.npz``: ``x`` (the two pictures, 0..255), ``mask`` (1 = hole: a box and brush strokes, two
  holes), ``box_mask``, ``stroke_mask``, ``x_incomplete``, ``x_stage1``, ``x_stage2``, ``ca_input`` (the
  attention layer's input), ``ca_mask``, ``ca_offsets`` (argmax patch as (row, col), before the own
  position is subtracted), ``critic_input`` (positives then completed images, with the mask channel),
  ``critic_output`` (flattened SN-PatchGAN scores), ``sn_u_before/<layer>`` and ``sn_u_after/<layer>``
  (the power iteration's vector before and after that forward), ``brush/<seed>`` (the official
  ``brush_stroke_mask`` drawn after ``numpy.random.seed(seed)`` at 256², as 0/1 uint8).
- ``train_step.npz``: one official training step (``build_graph_with_losses`` with ``inpaint.yml``'s
  settings, the masks above fixed instead of drawn): ``loss/<name>`` for ae_loss, gan_g_loss (the hinge
  generator term), g_loss, d_loss; for each ``grad/<name>`` (g_loss for generator variables, d_loss for
  critic variables) the reductions of ``tests/golden/make_golden.py`` (norm, sum, abssum, maxabs, projection
  on ``tests.golden_data.projection_vector``), and a few whole gradients.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

SEED = 2019
GENERATOR_GAIN = 4.0  # gated layers pass about a quarter of the variance: keeps x_stage2's spread near 1
HEIGHT, WIDTH, BATCH = 128, 192, 2
BOX = (16, 120, 56, 56)           # top, left, height, width of the box hole (right side)
STROKE_SEEDS = range(100, 400)    # the first seed whose strokes make a second, separate hole (left side)
BRUSH_SEEDS = (0, 1, 2018)
FULL_GRADIENTS = ["inpaint_net/conv1/kernel", "inpaint_net/allconv17/kernel", "inpaint_net/allconv17/bias",
                  "inpaint_net/pmconv6/kernel", "discriminator/sn_patch_gan/conv1/kernel",
                  "discriminator/sn_patch_gan/conv6/bias"]


def install_shims(neuralgym: str):
    """``tensorflow`` as ``tf.compat.v1`` with the few ``tf.contrib`` pieces the official code imports."""
    import functools
    import inspect

    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as real_tf
    tf = real_tf.compat.v1
    tf.disable_v2_behavior()
    tf.enable_resource_variables()   # see the module docstring: the power-iteration vector is read once

    scopes: list[dict] = []

    def add_arg_scope(func):
        @functools.wraps(func)
        def wrapped(*args, **kwargs):
            defaults = {}
            for scope in scopes:
                defaults.update(scope.get(func, {}))
            params = inspect.signature(func).parameters
            names = list(params)[:len(args)]
            return func(*args, **{**{k: v for k, v in defaults.items() if k not in names}, **kwargs})
        wrapped._arg_scope_key = func
        return wrapped

    class arg_scope:
        def __init__(self, funcs, **kwargs):
            self.entry = {f._arg_scope_key: kwargs for f in funcs}

        def __enter__(self):
            scopes.append(self.entry)

        def __exit__(self, *exc):
            scopes.pop()

    ops = types.ModuleType("tensorflow.contrib.framework.python.ops")
    ops.add_arg_scope, ops.arg_scope = add_arg_scope, arg_scope
    contrib = types.ModuleType("tensorflow.contrib")
    contrib.layers = types.SimpleNamespace(flatten=tf.layers.flatten,  # the initializer: a default argument
                                           xavier_initializer_conv2d=tf.glorot_uniform_initializer)
    contrib.framework = types.ModuleType("tensorflow.contrib.framework")
    contrib.framework.python = types.ModuleType("tensorflow.contrib.framework.python")
    contrib.framework.python.ops = ops
    tf.contrib = contrib
    sys.modules.update({"tensorflow": tf, "tensorflow.contrib": contrib,
                        "tensorflow.contrib.framework": contrib.framework,
                        "tensorflow.contrib.framework.python": contrib.framework.python,
                        "tensorflow.contrib.framework.python.ops": ops,
                        "cv2": types.ModuleType("cv2")})
    for package in ("neuralgym", "neuralgym.ops", "neuralgym.utils", "neuralgym.models"):
        module = types.ModuleType(package)
        module.__path__ = [os.path.join(neuralgym, *package.split("."))]
        sys.modules[package] = module
    import neuralgym.utils.tf_utils  # noqa: F401  (summary_ops imports it relatively)
    from neuralgym.models.model import Model
    sys.modules["neuralgym.models"].Model = Model
    return tf


class Flags:
    """``inpaint.yml`` (v2) as the graph reads it, at the golden sizes."""
    img_shapes = [HEIGHT, WIDTH, 3]
    height, width = BOX[2], BOX[3]
    max_delta_height = max_delta_width = 0
    vertical_margin = horizontal_margin = 0
    batch_size = BATCH
    gan = "sngan"
    gan_loss_alpha = 1
    gan_with_mask = True
    guided = False
    padding = "SAME"
    ae_loss = True
    l1_loss = True
    l1_loss_alpha = 1.0
    viz_max_out = 1


def components(mask: np.ndarray) -> int:
    """Number of 4-connected hole regions of a 2-D 0/1 mask."""
    seen, count = np.zeros(mask.shape, bool), 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        count, stack = count + 1, [start]
        seen[start] = True
        while stack:
            r, c = stack.pop()
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= rr < mask.shape[0] and 0 <= cc < mask.shape[1] and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    stack.append((rr, cc))
    return count


def pictures() -> np.ndarray:
    from PIL import Image
    out = []
    for name in ("astronaut", "chelsea"):
        image = Image.open(os.path.join(ROOT, "examples", "images", f"{name}.png")).convert("RGB")
        scale = max(WIDTH / image.width, HEIGHT / image.height)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
        out.append(np.asarray(image)[:HEIGHT, :WIDTH])
    return np.stack(out).astype(np.float32)


def recipe_value(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name.endswith("/bias"):
        value = 0.05 * rng.standard_normal(shape)
    elif name.endswith("/kernel"):
        gain = GENERATOR_GAIN if name.startswith("inpaint_net/") else 1.0
        value = rng.standard_normal(shape) * np.sqrt(gain / np.prod(shape[:-1]))
    elif name.endswith("/u"):
        value = rng.standard_normal(shape)
    else:
        raise SystemExit(f"no recipe for {name}")
    return value.astype(np.float32)


def reductions(name: str, gradient: np.ndarray) -> dict[str, np.float64]:
    from tests.golden_data import projection_vector
    flat = gradient.astype(np.float64).ravel()
    return {f"gradnorm/{name}": np.float64(np.sqrt(flat @ flat)), f"gradsum/{name}": np.float64(flat.sum()),
            f"gradabssum/{name}": np.float64(np.abs(flat).sum()),
            f"gradmaxabs/{name}": np.float64(np.abs(flat).max()),
            f"gradproj/{name}": np.float64(flat @ projection_vector(flat.size))}


def main(official: str, neuralgym: str) -> None:
    sys.path[:0] = [official, neuralgym, ROOT]
    tf = install_shims(neuralgym)
    import inpaint_model
    import inpaint_ops

    tensors: dict[str, np.ndarray] = {}
    flags = Flags()
    with tf.Session() as sess:
        for seed in BRUSH_SEEDS:
            brush = inpaint_ops.brush_stroke_mask(types.SimpleNamespace(img_shapes=[256, 256, 3]))
            np.random.seed(seed)
            tensors[f"brush/{seed}"] = sess.run(brush)[0, :, :, 0].astype(np.uint8)
        box = np.zeros((1, HEIGHT, WIDTH, 1), np.float32)
        box[0, BOX[0]:BOX[0] + BOX[2], BOX[1]:BOX[1] + BOX[3]] = 1
        strokes = inpaint_ops.brush_stroke_mask(flags)
        for seed in STROKE_SEEDS:
            np.random.seed(seed)
            stroke = sess.run(strokes)
            union = np.maximum(box, stroke)[0, :, :, 0]
            if components(union) == 2 and 0.1 < union.mean() < 0.35 and not (stroke * box).any():
                break
        else:
            raise SystemExit("no stroke seed gives two separate holes")
        print(f"strokes: seed {seed}, holes cover {union.mean():.3f} of the picture")
    tensors.update(box_mask=box, stroke_mask=stroke, x=pictures())

    tf.reset_default_graph()
    model = inpaint_model.InpaintCAModel()
    inpaint_model.random_bbox = lambda FLAGS: None
    inpaint_model.bbox2mask = lambda FLAGS, bbox, name="mask": tf.constant(box)
    inpaint_model.brush_stroke_mask = lambda FLAGS, name="mask": tf.constant(stroke)
    captured = {}
    build_net, build_critic = model.build_inpaint_net, model.build_gan_discriminator

    def recording_net(x, mask, **kwargs):
        captured["xin"], captured["mask"] = x, mask
        captured["net"] = build_net(x, mask, **kwargs)
        return captured["net"]

    def recording_critic(batch, **kwargs):
        captured["critic_input"] = batch
        captured["critic_output"] = build_critic(batch, **kwargs)
        return captured["critic_output"]

    model.build_inpaint_net, model.build_gan_discriminator = recording_net, recording_critic
    images = tf.constant(tensors["x"])
    g_vars, d_vars, losses = model.build_graph_with_losses(flags, images, training=True)
    neg = tf.split(captured["critic_output"], 2)[1]
    losses["gan_g_loss"] = -tf.reduce_mean(neg)
    graph = tf.get_default_graph()
    argmax = [op for op in graph.get_operations() if op.type == "ArgMax" and op.name.startswith("inpaint_net")]
    patches = [op for op in graph.get_operations()
               if op.type == "ExtractImagePatches" and op.name.startswith("inpaint_net")]
    assert len(argmax) == BATCH and len(patches) == 3, (argmax, patches)
    ca_input, ca_mask = patches[0].inputs[0], patches[2].inputs[0]
    u_vars = [v for v in tf.global_variables() if v.name.endswith("kernel_sn/u:0")]
    model_vars = g_vars + d_vars + u_vars
    g_grads = tf.gradients(losses["g_loss"], g_vars)
    d_grads = tf.gradients(losses["d_loss"], d_vars)

    lr = tf.get_variable("lr", shape=[], trainable=False, initializer=tf.constant_initializer(1e-4))
    optimizer = tf.train.AdamOptimizer(lr, beta1=0.5, beta2=0.999)
    train_ops = [optimizer.apply_gradients(zip(d_grads, d_vars)), optimizer.apply_gradients(zip(g_grads, g_vars))]
    del train_ops  # built only so that the saved checkpoint holds the official optimiser's slots

    rng = np.random.default_rng(SEED)
    order = [(v.op.name, v.shape.as_list()) for v in model_vars]
    values = {name: recipe_value(rng, name, tuple(shape)) for name, shape in order}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for var in model_vars:
            var.load(values[var.op.name], sess)
        folder = tempfile.mkdtemp(prefix="v2-golden-")
        tf.train.Saver().save(sess, os.path.join(folder, "snap"), write_meta_graph=False)
        before = {v.op.name: sess.run(v) for v in u_vars}
        fetched = sess.run({"net": captured["net"], "xin": captured["xin"], "mask": captured["mask"],
                            "critic_input": captured["critic_input"],
                            "critic_output": captured["critic_output"], "argmax": [op.outputs[0] for op in argmax],
                            "ca_input": ca_input, "ca_mask": ca_mask, "losses": losses,
                            "g_grads": g_grads, "d_grads": d_grads})
        after = {v.op.name: sess.run(v) for v in u_vars}

    x_stage1, x_stage2, _ = fetched["net"]
    width = fetched["ca_input"].shape[2] // 2
    fetched["argmax"] = np.concatenate(fetched["argmax"])
    tensors.update(mask=fetched["mask"], x_incomplete=fetched["xin"], x_stage1=x_stage1, x_stage2=x_stage2,
                   ca_input=fetched["ca_input"], ca_mask=fetched["ca_mask"],
                   ca_offsets=np.stack([fetched["argmax"] // width, fetched["argmax"] % width], -1),
                   critic_input=fetched["critic_input"], critic_output=fetched["critic_output"])
    for name in before:
        layer = name.split("/")[-3]
        tensors[f"sn_u_before/{layer}"], tensors[f"sn_u_after/{layer}"] = before[name], after[name]
        assert np.array_equal(before[name], values[name]) and not np.allclose(before[name], after[name])

    step = {f"loss/{k}": np.float64(v) for k, v in fetched["losses"].items()}
    for variables, grads in ((g_vars, fetched["g_grads"]), (d_vars, fetched["d_grads"])):
        for var, grad in zip(variables, grads):
            step.update(reductions(var.op.name, grad))
            if var.op.name in FULL_GRADIENTS:
                step[f"grad/{var.op.name}"] = grad
    missing = [n for n in FULL_GRADIENTS if f"grad/{n}" not in step]
    assert not missing, missing

    check_bundle(tf, folder, values, order)
    np.savez_compressed(os.path.join(HERE, "tensors.npz"), **tensors)
    np.savez_compressed(os.path.join(HERE, "train_step.npz"), **step)
    total = sum(os.path.getsize(os.path.join(HERE, f)) for f in os.listdir(HERE) if not f.endswith(".py"))
    print("losses", {k: float(v) for k, v in fetched["losses"].items()})
    print(f"tests/golden/v2: {total / 1e6:.2f} MB")


def check_bundle(tf, folder: str, values: dict[str, np.ndarray], order: list) -> None:
    """Write weights.json and distractors.json from the real checkpoint, and check that the project's
    writer rebuilds a bundle that the project's reader reads equal to the real one."""
    reader = tf.train.load_checkpoint(os.path.join(folder, "snap"))
    shapes = reader.get_variable_to_shape_map()
    distractors = []
    for name in sorted(shapes):
        value = reader.get_tensor(name)
        if name in values:
            assert np.array_equal(value, values[name]), name
            continue
        value = np.asarray(value)
        constant = value.ravel()[0] if value.size else 0
        assert (value == constant).all(), f"{name} is not constant"
        distractors.append({"name": name, "dtype": str(value.dtype), "shape": list(value.shape),
                            "value": constant.item()})
    with open(os.path.join(HERE, "weights.json"), "w", encoding="utf-8") as handle:
        json.dump({"seed": SEED, "generator_gain": GENERATOR_GAIN,
                   "procedure": "rng = numpy.random.default_rng(seed); for (name, shape) in order: "
                   "bias -> (0.05 * rng.standard_normal(shape)).astype(float32); kernel -> "
                   "(rng.standard_normal(shape) * sqrt(gain / prod(shape[:-1]))).astype(float32), gain "
                   "generator_gain for inpaint_net/ kernels, 1 for the critic's; u -> "
                   "rng.standard_normal(shape).astype(float32). TF layout (HWIO kernels).",
                   "order": order}, handle)
        handle.write("\n")
    with open(os.path.join(HERE, "distractors.json"), "w", encoding="utf-8") as handle:
        json.dump({"source": "the official v2 training graph's checkpoint (entries not in weights.json)",
                   "distractors": distractors}, handle, indent=0)
        handle.write("\n")
    from tests.golden_v2_data import write_v2_bundle
    from deepfill.utils.tf_bundle import read_tensors
    real = read_tensors(os.path.join(folder, "snap"))
    rebuilt = read_tensors(os.path.join(write_v2_bundle(tempfile.mkdtemp(prefix="v2-rebuilt-")), "snap-0"))
    assert sorted(real) == sorted(rebuilt) == sorted(shapes)
    for name in real:
        assert real[name].dtype == rebuilt[name].dtype and np.array_equal(real[name], rebuilt[name]), name
    print(f"bundle: {len(shapes)} entries, {len(values)} model variables; the rebuilt bundle reads equal to it")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: make_v2_golden.py OFFICIAL_CHECKOUT NEURALGYM_CHECKOUT")
    main(os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
