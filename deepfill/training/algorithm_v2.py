"""DeepFill v2's training step, as the official ``master`` ``train.py`` / ``build_graph_with_losses`` runs it
with ``inpaint.yml``: one critic update per generator update, each on its own batch and holes (the
official trainers draw a fresh batch and fresh holes for each), Adam (lr 1e-4, β 0.5 / 0.999) on both sides.

* critic (SN-PatchGAN, ``deepfill.models.sn_patch_gan``) input: the real images and the completed ones (stage 2
  pasted into the hole), each with the mask as a fourth channel (``gan_with_mask``);
* critic loss: the hinge loss, 0.5 · mean(relu(1 − real)) + 0.5 · mean(relu(1 + fake));
* generator loss: ``gan_loss_alpha`` (1) · −mean(fake) + ae, with ae = ``l1_loss_alpha`` (1) · (mean|x − x1|
  + mean|x − x2|) over the whole image — v2 has no spatial discount, no local box and no stage weights.

The holes (``mask_type: box_and_strokes``) come from ``deepfill.data.masks``. ``losses`` computes everything from
one pass, as the official graph does, so that a test can compare it with the official step.
"""
from __future__ import annotations

import paddle
import paddle.nn.functional as F

from deepfill.models.checkpoint_file import generator_for
from deepfill.models.hole_reach import fill_holes
from deepfill.models.sn_patch_gan import SNPatchGAN
from deepfill.models.spec import spec_of_settings
from deepfill.training.algorithm import Batch, Update, complete, frozen
from deepfill.utils.config import Config


class NetworksV2:
    """The gated generator, the SN-PatchGAN critic (with the mask channel) and one Adam for each."""

    def __init__(self, config: Config) -> None:
        with paddle.utils.unique_name.guard():
            self.generator = generator_for(spec_of_settings(config), config.per_image_masks)
            self.critic = SNPatchGAN(4)
            self.opt_g = paddle.optimizer.Adam(config.lr, config.beta1, config.beta2,
                                               parameters=self.generator.parameters())
            self.critic_parameters = self.critic.parameters()
            self.opt_d = paddle.optimizer.Adam(config.lr, config.beta1, config.beta2,
                                               parameters=self.critic_parameters)

    def critics(self) -> dict[str, paddle.nn.Layer]:
        """The critic by its checkpoint key."""
        return {"critic": self.critic}


def with_mask(images: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
    """The critic's input: the pictures and their holes (one per picture, or one for all) as a fourth
    channel (official ``gan_with_mask``)."""
    return paddle.concat([images, paddle.expand(mask, [images.shape[0], 1, *images.shape[2:]])], axis=1)


def hinge_critic_loss(real: paddle.Tensor, fake: paddle.Tensor) -> paddle.Tensor:
    """neuralgym's ``gan_hinge_loss``, the critic's half."""
    return 0.5 * paddle.mean(F.relu(1.0 - real)) + 0.5 * paddle.mean(F.relu(1.0 + fake))


def ae_loss(images: paddle.Tensor, x_stage1: paddle.Tensor, x_stage2: paddle.Tensor, config: Config
            ) -> paddle.Tensor:
    """v2's reconstruction loss: the l1 of both stages over the whole image, undiscounted."""
    return config.l1_loss_alpha * (paddle.mean(paddle.abs(images - x_stage1))
                                   + paddle.mean(paddle.abs(images - x_stage2)))


def losses(nets: NetworksV2, batch: Batch, config: Config) -> dict[str, paddle.Tensor]:
    """Every term of one official v2 step from one pass: ``ae_loss``, ``gan_g_loss`` (−mean(fake)),
    ``g_loss`` (what the generator minimises) and ``d_loss`` (what the critic minimises)."""
    images, mask = batch.images, batch.mask
    x_stage1, x_stage2, _ = nets.generator(images * (1.0 - mask), mask, holes=batch.holes)
    completed = complete(images, mask, x_stage2)
    real, fake = paddle.split(nets.critic(with_mask(paddle.concat([images, completed]),
                                                     paddle.concat([mask, mask]))), 2)
    terms = {"ae_loss": ae_loss(images, x_stage1, x_stage2, config), "gan_g_loss": -paddle.mean(fake),
             "d_loss": hinge_critic_loss(real, fake)}
    terms["g_loss"] = config.gan_loss_alpha * terms["gan_g_loss"] + terms["ae_loss"]
    return terms


def critic_step(nets: NetworksV2, batch: Batch, config: Config, update: Update) -> dict[str, paddle.Tensor]:
    """One critic update. The completion is computed without gradient and only where it reaches the
    holes (``fill_holes``): the critic sees nothing else of it."""
    images, mask = batch.images, batch.mask
    with paddle.no_grad():
        x_stage2 = fill_holes(nets.generator, images * (1.0 - mask), mask, batch.holes)[0]
    completed = complete(images, mask, x_stage2)
    real, fake = paddle.split(nets.critic(with_mask(paddle.concat([images, completed]),
                                                     paddle.concat([mask, mask]))), 2)
    d_loss = hinge_critic_loss(real, fake)
    d_loss.backward()
    update(nets.opt_d, nets.critic_parameters)
    return {"d_loss": d_loss.detach(), "real": paddle.mean(real).detach(), "fake": paddle.mean(fake).detach()}


def generator_step(nets: NetworksV2, batch: Batch, config: Config, update: Update, adversarial: bool = True
                   ) -> tuple[dict[str, paddle.Tensor], list[paddle.Tensor]]:
    """One generator update (no gradient is taken for the critic's weights: ``frozen``). The critic scores the
    completed images alone: its power iteration does not depend on its input, and the real images'
    scores do not reach the generator. Returns the logged scalars (0-D tensors on the device, read only
    when logged) and [images, mask, stage 1, stage 2, offsets] for the sample pictures."""
    images, mask = batch.images, batch.mask
    with frozen(nets.critic_parameters):
        x_stage1, x_stage2, offsets = nets.generator(images * (1.0 - mask), mask, holes=batch.holes)
        terms = {"ae_loss": ae_loss(images, x_stage1, x_stage2, config)}
        total = terms["ae_loss"]
        if adversarial:
            fake = nets.critic(with_mask(complete(images, mask, x_stage2), mask))
            terms["g_loss"] = -paddle.mean(fake)
            total = total + config.gan_loss_alpha * terms["g_loss"]
        terms["total_g_loss"] = total
        total.backward()
    update(nets.opt_g, nets.generator.parameters())
    return ({k: v.detach() for k, v in terms.items()},
            [images, mask, x_stage1.detach(), x_stage2.detach(), offsets])
