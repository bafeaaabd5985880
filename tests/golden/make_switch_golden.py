"""Make ``tests/golden/switches.npz``: one official training step for each value of an ``inpaint.yml`` switch
that changes training, computed by the official TensorFlow code itself.

Why: the project turns the official switches (GAN_WITH_MASK, PADDING, GRADIENT_CLIP / GRADIENT_CLIP_VALUE,
AE_LOSS, DISCOUNTED_MASK) into settings (``deepfill/utils/config.py``), and each must compute what the official graph
computes with that switch, as the default recipe does (``tests/golden/train_step.npz``). ``tests/
test_switches.py`` compares the project's training step with what this script records.

How it runs the official code: ``inpaint_model.py`` and ``inpaint_ops.py`` of the official release (branch
v1.0.0) and neuralgym's ops, loaded from the folders given on the command line (never from the project),
under TensorFlow 2's ``tf.compat.v1`` in graph mode. TF 1 does not install on Python 3.11, so what TF 2 no
longer has is supplied here with the same meaning: ``tf.contrib``'s ``arg_scope`` / ``add_arg_scope``
(scope keyword arguments are defaults, a call's own arguments win), ``tf.contrib.layers.flatten`` (NHWC
rows, batch kept) and ``xavier_initializer_conv2d`` (a default argument neuralgym evaluates on import); ``cv2`` (used only by the official files' demo functions) is an empty module.

Inputs, weights and randomness are those of the default golden step (``tests/golden/train_step.npz``,
``tests/golden_data.py``): images ``x`` fed as ``(x + 1) · 127.5`` (the graph divides by 127.5 and
subtracts 1), the hole ``mask`` and local box in place of ``random_bbox`` / ``bbox2mask``, the gradient
penalty's ``alpha_local`` / ``alpha_global`` in place of ``random_interpolates``' uniform draw, weights
rebuilt from ``weights.json``'s recipe; geometry IMG_SHAPES 128×128, HEIGHT = WIDTH = 64, BATCH_SIZE 2;
every other key is the official ``inpaint.yml``'s. Before recording anything the script runs the default
recipe and checks it against ``train_step.npz`` (losses within 1e-4 relative, every gradient's norm, sum,
largest entry and projection within 1e-3 of its scale) — the proof that this harness is the official graph.

For each switch value it records, under ``<settings>/`` (the project's ``--set`` pairs, comma-separated):
the losses (the names of ``train_step.npz``) and each gradient's ``gradnorm`` ``gradsum`` ``gradabssum``
``gradmaxabs`` ``gradproj`` as ``make_golden.py`` reduces gradients, plus a few whole gradients
(``grad/<variable>``, ``KEPT_WHOLE``); the scalars are kept in one array per kind (``packed``). The gradients are what each optimiser is handed: the generator's
after the official trainer's gradient processor (``GRADIENT_CLIP``: ``tf.clip_by_average_norm`` of each
gradient, applied by neuralgym's primary ``Trainer`` only — the critics' ``SecondaryTrainer`` is given no
processor, so their gradients are never clipped), the critics' as computed.

Two switch values do not run in the official code; for those the script first shows the failure, then
records the evident intent with the smallest change, stated here and in the settings' help:

* ``PADDING: 'REFELECT'`` (the value ``gen_conv`` asserts) reaches ``tf.pad(mode='REFELECT')``, which TF
  refuses (unknown mode). Recorded with ``tf.pad``'s mode REFLECT (what the misspelling meant) in
  ``gen_conv``, nothing else changed.
* ``GAN_WITH_MASK: True`` appends the (tiled) mask as a 4th channel to the *global* critic's real/completed
  batch only (the local patches get none), but the gradient penalty then calls the critics on the
  3-channel interpolates and TF refuses to share the 4-channel kernel. Recorded with the mask appended to
  the global interpolates inside ``build_wgan_discriminator`` (when its global input has 3 channels), so
  the penalty is the gradient with respect to the image channels (the mask is a condition, not
  interpolated). The global critic's ``conv1`` kernel then has a 4th input channel: channels 0–2 are the
  recipe's, channel 3 is ``tests/golden_data.mask_channel_kernel()`` (stored in the file as well).

Usage (in a throw-away venv with ``tensorflow-cpu==2.15.*``, ``numpy``, ``pyyaml``; never in the suite)::

    python tests/golden/make_switch_golden.py OFFICIAL_CHECKOUT NEURALGYM_CHECKOUT [--output FILE]

OFFICIAL_CHECKOUT holds ``inpaint_model.py``, ``inpaint_ops.py`` and ``inpaint.yml`` of branch v1.0.0;
NEURALGYM_CHECKOUT is neuralgym's repository (the folder holding ``neuralgym/``).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.golden.make_golden import gradient_summaries  # noqa: E402
from tests.golden_data import MASK_CHANNEL_KERNEL, load_train_step, mask_channel_kernel, rebuild_weights  # noqa: E402

GEOMETRY = {"IMG_SHAPES": [128, 128, 3], "HEIGHT": 64, "WIDTH": 64, "BATCH_SIZE": 2,
            "MAX_DELTA_HEIGHT": 0, "MAX_DELTA_WIDTH": 0}
CLIP_VALUE_THAT_BITES = 5e-4
"""A second GRADIENT_CLIP_VALUE: at the official 0.1 only the two output biases of this step's generator
gradients are clipped (average norms ‖g‖/size from 3.7e-6 to 0.19); at this one 43 of its 84 tensors are."""
CASES = {
    "gan_with_mask=true": {"GAN_WITH_MASK": True},
    "padding=symmetric": {"PADDING": "SYMMETRIC"},
    "padding=reflect": {"PADDING": "REFELECT"},
    "gradient_clip=true": {"GRADIENT_CLIP": True},
    f"gradient_clip=true,gradient_clip_value={CLIP_VALUE_THAT_BITES}": {
        "GRADIENT_CLIP": True, "GRADIENT_CLIP_VALUE": CLIP_VALUE_THAT_BITES},
    "ae_loss=false": {"AE_LOSS": False},
    "discounted_mask=false": {"DISCOUNTED_MASK": False},
}
KEPT_WHOLE = {
    "gan_with_mask=true": ["discriminator/discriminator_global/conv1/kernel"],
    "padding=symmetric": ["inpaint_net/conv1/kernel", "inpaint_net/allconv17/kernel"],
    "padding=reflect": ["inpaint_net/conv1/kernel", "inpaint_net/allconv17/kernel"],
    "gradient_clip=true": ["inpaint_net/conv17/bias", "inpaint_net/allconv17/bias"],
    f"gradient_clip=true,gradient_clip_value={CLIP_VALUE_THAT_BITES}": ["inpaint_net/allconv17/kernel"],
}
LOSS_ORDER = ("l1_loss", "ae_loss", "g_loss_local", "g_loss_global", "d_loss_local", "d_loss_global",
              "penalty_local", "penalty_global", "gp_loss", "g_loss", "d_loss")


def tf1_with_contrib():
    """``tf.compat.v1`` in graph mode, installed as ``tensorflow``, with the parts of ``tf.contrib`` the
    official code and neuralgym import."""
    import tensorflow
    tf = tensorflow.compat.v1
    tf.disable_eager_execution()
    scopes: list[dict] = [{}]

    @contextlib.contextmanager
    def arg_scope(functions, **defaults):
        current = {key: dict(value) for key, value in scopes[-1].items()}
        for function in functions:
            current.setdefault(function.scope_key, {}).update(defaults)
        scopes.append(current)
        try:
            yield
        finally:
            scopes.pop()

    def add_arg_scope(function):
        @functools.wraps(function)
        def scoped(*args, **kwargs):
            return function(*args, **{**scopes[-1].get(scoped.scope_key, {}), **kwargs})
        scoped.scope_key = (function.__module__, function.__name__)
        return scoped

    def flatten(x):
        return tf.reshape(x, [-1, int(np.prod(x.get_shape().as_list()[1:]))])

    # flatten is the one used; the initializer is a default argument of a neuralgym layer the model never calls
    tf.contrib = types.SimpleNamespace(layers=types.SimpleNamespace(
        flatten=flatten, xavier_initializer_conv2d=tf.glorot_uniform_initializer))
    sys.modules["tensorflow"] = tf
    for name in ("tensorflow.contrib", "tensorflow.contrib.framework", "tensorflow.contrib.framework.python",
                 "tensorflow.contrib.framework.python.ops"):
        module = types.ModuleType(name)
        module.arg_scope, module.add_arg_scope = arg_scope, add_arg_scope
        sys.modules[name] = module
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    return tf


def load_official(official: str, neuralgym: str):
    """The official modules, neuralgym's ops (its package ``__init__``, which imports its data loaders and
    server, is skipped) and the ``inpaint.yml`` settings."""
    import yaml
    tf = tf1_with_contrib()
    package = os.path.join(neuralgym, "neuralgym") if os.path.isdir(os.path.join(neuralgym, "neuralgym")) else neuralgym
    ng = types.ModuleType("neuralgym")
    ng.__path__ = [package]
    sys.modules["neuralgym"] = ng
    sys.path.insert(0, official)
    import inpaint_model
    import inpaint_ops
    from neuralgym.ops.train_ops import process_gradients
    with open(os.path.join(official, "inpaint.yml"), encoding="utf-8") as handle:
        settings = yaml.safe_load(handle)
    return tf, inpaint_model, inpaint_ops, process_gradients, settings


class OfficialStep:
    """One training step of the official graph on the golden inputs and weights."""

    def __init__(self, official: str, neuralgym: str) -> None:
        (self.tf, self.model_module, self.ops_module, self.process_gradients,
         self.settings) = load_official(official, neuralgym)
        self.golden = load_train_step()
        self.weights = rebuild_weights()
        self.original = {name: getattr(self.model_module, name) for name in
                         ("random_bbox", "bbox2mask", "random_interpolates", "gan_wgan_loss", "gradients_penalty")}
        self.original_discriminator = self.model_module.InpaintCAModel.build_wgan_discriminator
        self.original_tf_of_ops = self.ops_module.tf

    def config(self, overrides: dict) -> types.SimpleNamespace:
        return types.SimpleNamespace(**{**self.settings, **GEOMETRY, **overrides})

    def _patch(self, recorded: dict, fix_padding: bool, fix_gan_with_mask: bool) -> None:
        """Fixed inputs in place of the official random draws; the loss terms that are not in ``losses``
        recorded as they are built; and, when asked, the two fixes of the module's docstring."""
        tf, module, golden, original = self.tf, self.model_module, self.golden, self.original
        box = [int(v) for v in golden["local_box"]]
        module.random_bbox = lambda config: tuple(tf.constant(v) for v in box)
        module.bbox2mask = lambda bbox, config, name="mask": tf.constant(golden["mask"])
        size = GEOMETRY["IMG_SHAPES"][0]

        def random_interpolates(x, y, alpha=None):
            which = "alpha_global" if x.get_shape().as_list()[1] == size else "alpha_local"
            return original["random_interpolates"](x, y, alpha=tf.constant(golden[which]))

        def gan_wgan_loss(pos, neg, name="gan_wgan_loss"):
            g_loss, d_loss = original["gan_wgan_loss"](pos, neg, name=name)
            side = "local" if "local" in name else "global"
            recorded[f"g_loss_{side}"], recorded[f"d_loss_{side}"] = g_loss, d_loss
            return g_loss, d_loss

        def gradients_penalty(x, y, mask=None, norm=1.):
            penalty = original["gradients_penalty"](x, y, mask=mask, norm=norm)
            side = "global" if x.get_shape().as_list()[1] == size else "local"
            recorded[f"penalty_{side}"] = penalty
            return penalty

        module.random_interpolates, module.gan_wgan_loss = random_interpolates, gan_wgan_loss
        module.gradients_penalty = gradients_penalty

        class PadAsMeant:
            """``tf`` as ``inpaint_ops`` sees it, with the misspelt pad mode read as REFLECT."""
            def __getattr__(self, name):
                return getattr(tf, name)

            @staticmethod
            def pad(tensor, paddings, mode="CONSTANT", **kwargs):
                return tf.pad(tensor, paddings, mode="REFLECT" if mode == "REFELECT" else mode, **kwargs)

        self.ops_module.tf = PadAsMeant() if fix_padding else self.original_tf_of_ops
        discriminator = self.original_discriminator

        def with_mask_at_interpolates(model, batch_local, batch_global, reuse=False, training=True):
            if batch_global.get_shape().as_list()[-1] == 3:
                count = batch_global.get_shape().as_list()[0]
                batch_global = tf.concat([batch_global, tf.tile(tf.constant(golden["mask"]), [count, 1, 1, 1])], 3)
            return discriminator(model, batch_local, batch_global, reuse=reuse, training=training)

        module.InpaintCAModel.build_wgan_discriminator = (with_mask_at_interpolates if fix_gan_with_mask
                                                          else discriminator)

    def run(self, overrides: dict, fix_padding: bool = False, fix_gan_with_mask: bool = False
            ) -> tuple[dict, dict]:
        """(losses, gradients) of one step with ``inpaint.yml`` + ``overrides``; the gradients are what
        train.py's optimisers would apply."""
        tf, config = self.tf, self.config(overrides)
        recorded: dict = {}
        graph = tf.Graph()
        with graph.as_default():
            self._patch(recorded, fix_padding, fix_gan_with_mask)
            x = self.golden["x"].astype(np.float64)
            batch = tf.constant(((x + 1.0) * 127.5).astype(np.float32))
            g_vars, d_vars, losses = self.model_module.InpaintCAModel().build_graph_with_losses(batch, config)
            recorded.update(l1_loss=losses["l1_loss"], ae_loss=losses["ae_loss"], gp_loss=losses["gp_loss"],
                            g_loss=losses["g_loss"], d_loss=losses["d_loss"])
            # train.py: one Adam for both; the gradient processor goes to the primary (generator) trainer
            optimizer = tf.train.AdamOptimizer(1e-4, beta1=0.5, beta2=0.9)
            processor = None
            if config.GRADIENT_CLIP:
                processor = lambda grad_var: (tf.clip_by_average_norm(grad_var[0], config.GRADIENT_CLIP_VALUE),
                                              grad_var[1])
            g_grads = self.process_gradients(optimizer.compute_gradients(losses["g_loss"], g_vars), processor)
            d_grads = optimizer.compute_gradients(losses["d_loss"], d_vars)
            with tf.Session(graph=graph) as session:
                session.run(tf.global_variables_initializer())
                variables = {v.op.name: v for v in g_vars + d_vars}
                weights = dict(self.weights)
                if config.GAN_WITH_MASK:
                    name = MASK_CHANNEL_KERNEL
                    weights[name] = np.concatenate([weights[name], mask_channel_kernel()], axis=2)
                if set(variables) != set(weights):
                    raise SystemExit(f"variables differ from the recipe: {sorted(set(variables) ^ set(weights))}")
                for name, variable in variables.items():
                    variable.load(weights[name], session)
                names = [v.op.name for _, v in g_grads + d_grads]
                values = session.run({"losses": recorded, "grads": [g for g, _ in g_grads + d_grads]})
        return values["losses"], dict(zip(names, values["grads"]))

    def fails(self, overrides: dict) -> str:
        """The error the unchanged official code raises with ``overrides`` (none: a SystemExit)."""
        try:
            self.run(overrides)
        except (ValueError, TypeError) as error:
            return f"{type(error).__name__}: {str(error).splitlines()[0]}"
        raise SystemExit(f"{overrides} ran in the unchanged official code; the fix is not needed")


def check_default(step: OfficialStep) -> None:
    """The harness reproduces the default golden step (``train_step.npz``)."""
    losses, gradients = step.run({})
    golden = step.golden
    for name in LOSS_ORDER:
        expected = float(golden[f"loss/{name}"])
        if abs(losses[name] - expected) > 1e-4 * abs(expected):
            raise SystemExit(f"default step: {name} {losses[name]} vs golden {expected}")
    worst = {"inpaint_net": 0.0, "discriminator": 0.0}
    for name, gradient in gradients.items():
        scale = float(golden[f"gradmaxabs/{name}"]) * np.sqrt(gradient.size)
        side = name.split("/")[0]
        for key, value in gradient_summaries(name, gradient).items():
            worst[side] = max(worst[side], abs(float(value) - float(golden[key])) / max(scale, 1e-30))
    if worst["inpaint_net"] > 1e-3 or worst["discriminator"] > 1e-2:
        raise SystemExit(f"default step: gradient summaries differ by {worst} of their scale")
    print(f"default recipe reproduces train_step.npz: losses within 1e-4 relative; gradient summaries within "
          f"{worst['inpaint_net']:.1e} (generator) and {worst['discriminator']:.1e} (critics) of "
          "largest entry x sqrt(size)")


def packed(stored: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``stored`` with each switch value's scalars in arrays (``tests/golden_data.load_switches`` unpacks
    them): ``variables`` and ``losses`` name the entries of ``<settings>/grad{norm,…}`` and
    ``<settings>/loss``. One array per kind instead of a file entry per scalar keeps the file small."""
    settings = sorted({key.split("/")[0] for key in stored if "=" in key.split("/")[0]})
    variables = sorted({key.split("/", 2)[2] for key in stored if key.split("/")[1] == "gradnorm"})
    out = {key: value for key, value in stored.items() if "=" not in key.split("/")[0] or "/grad/" in key}
    out["variables"], out["losses"] = np.array(variables), np.array(LOSS_ORDER)
    for case in settings:
        out[f"{case}/loss"] = np.array([stored[f"{case}/loss/{name}"] for name in LOSS_ORDER], np.float64)
        for kind in ("gradnorm", "gradsum", "gradabssum", "gradmaxabs", "gradproj"):
            out[f"{case}/{kind}"] = np.array([stored[f"{case}/{kind}/{name}"] for name in variables], np.float64)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("official", help="checkout of JiahuiYu/generative_inpainting, branch v1.0.0")
    parser.add_argument("neuralgym", help="checkout of JiahuiYu/neuralgym")
    parser.add_argument("--output", default=os.path.join(HERE, "switches.npz"))
    args = parser.parse_args()
    step = OfficialStep(os.path.abspath(args.official), os.path.abspath(args.neuralgym))
    check_default(step)
    print("official PADDING='REFELECT':", step.fails({"PADDING": "REFELECT"}))
    print("official GAN_WITH_MASK=True:", step.fails({"GAN_WITH_MASK": True}))
    stored: dict[str, np.ndarray] = {MASK_CHANNEL_KERNEL + "/mask_channel": mask_channel_kernel()}
    for settings, overrides in CASES.items():
        losses, gradients = step.run(overrides, fix_padding=overrides.get("PADDING") == "REFELECT",
                                     fix_gan_with_mask=bool(overrides.get("GAN_WITH_MASK")))
        for name in LOSS_ORDER:
            stored[f"{settings}/loss/{name}"] = np.float32(losses[name])
        for name, gradient in gradients.items():
            stored.update({f"{settings}/{k}": v for k, v in gradient_summaries(name, gradient).items()})
        for name in KEPT_WHOLE.get(settings, []):
            stored[f"{settings}/grad/{name}"] = gradients[name].astype(np.float32)
        print(f"{settings}: g_loss {losses['g_loss']:.6f}, d_loss {losses['d_loss']:.6f}")
    np.savez_compressed(args.output, **packed(stored))
    print(f"{args.output}: {os.path.getsize(args.output) / 1e3:.0f} KB")


if __name__ == "__main__":
    main()
