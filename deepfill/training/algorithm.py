"""Algorithm 1 of the paper: for each generator update, ``critic_steps`` (5) critic updates, each on a fresh
batch and hole; losses as in the official ``build_graph_with_losses``.

* critic step: complete the batch with the generator (no gradient), score real and completed images with
  the local critic (on the box around the hole) and the global critic (whole image), and minimise the WGAN
  critic loss plus λ · the gradient penalty measured over the hole;
* generator step: 1.2 · l1 (spatially discounted, local box) + 1.2 · ae (known region) + 0.001 · WGAN
  generator loss of the completed image (stage 2 pasted into the hole); when pretraining the coarse
  network, l1 and ae of stage 1 alone.

The official inpaint.yml switches that change training are settings too: ``ae_loss`` (AE_LOSS) and
``discounted_mask`` (DISCOUNTED_MASK) here, ``gan_with_mask`` (the global critic also sees the hole,
``deepfill.models.critics``), ``padding`` (the generator's, ``deepfill.models.layers``) and ``gradient_clip`` (the
generator's optimiser, ``deepfill.training.clipping``); ``tests/test_switches.py`` checks each against the official
graph.

Two settings leave the adversarial part out: ``pretrain_coarse`` for the whole run (the official
PRETRAIN_COARSE_NETWORK), ``reconstruction_iters`` for the first N generator updates of a run, which then
train both stages on l1 + ae alone without critic updates — a warm start that lets a short run reach
plausible fills before the critics, which need many updates to become useful, join in. Algorithm 1
proper follows unchanged; with both settings at their defaults every update is Algorithm 1.

``critic_losses`` and ``generator_losses`` take given images, hole, boxes and interpolation factors, so a
test can run exactly this code on the official graph's inputs.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import paddle

from deepfill.data.masks import Box
from deepfill.models.checkpoint_file import generator_for
from deepfill.models.critics import Critic, global_critic, local_critic
from deepfill.models.hole_reach import fill_holes
from deepfill.models.losses import (gradient_penalty, local_patches, reconstruction_losses, spatial_discount,
                                    wgan_critic_loss, wgan_generator_loss)
from deepfill.models.spec import spec_of_settings
from deepfill.training.clipping import ClipByAverageNorm
from deepfill.utils.config import Config

Update = Callable[[paddle.optimizer.Optimizer, list], None]
CRITIC_SCORES = ("real_local", "fake_local", "real_global", "fake_global")


@dataclass
class Batch:
    """Images [B, 3, S, S] on [-1, 1], their holes [B, 1, S, S] (1 = hole) and the local boxes; ``holes``
    is the mask's host copy when the caller has it (the attention and ``fill_holes`` plan on the host,
    and would otherwise read the mask back from the device)."""
    images: paddle.Tensor
    mask: paddle.Tensor
    boxes: list[Box]
    holes: np.ndarray | None = None
    known_fraction: float | None = None     # of the whole batch, when this is a data-parallel share


class Networks:
    """The generator, the two critics and one Adam optimiser for each side, built from the settings."""

    def __init__(self, config: Config) -> None:
        with paddle.utils.unique_name.guard():
            self.generator = generator_for(spec_of_settings(config), config.per_image_masks)
            self.local_critic: Critic = local_critic(config.hole_size)
            self.global_critic: Critic = global_critic(config.image_size, config.gan_with_mask)
            clip = ClipByAverageNorm(config.gradient_clip_value) if config.gradient_clip else None
            self.opt_g = paddle.optimizer.Adam(config.lr, config.beta1, config.beta2,
                                               parameters=self.generator.parameters(), grad_clip=clip)
            self.critic_parameters = self.local_critic.parameters() + self.global_critic.parameters()
            self.opt_d = paddle.optimizer.Adam(config.lr, config.beta1, config.beta2,
                                               parameters=self.critic_parameters)
        discount = spatial_discount(config.hole_size, config.hole_size, config.discount_gamma)
        self.discount = paddle.to_tensor((discount if config.discounted_mask else np.ones_like(discount))[None, None])

    def completion_without_gradient(self, images: paddle.Tensor, mask: paddle.Tensor,
                                    holes: np.ndarray | None = None) -> paddle.Tensor:
        """The critic steps' stage 2 of the holed ``images``, without gradient: exact inside the holes,
        which is all the critics see of it (``complete``). The attention and the decoders are computed
        only where they reach a hole (``deepfill.models.hole_reach.fill_holes``), so outside the holes it is not
        the official result."""
        with paddle.no_grad():
            return fill_holes(self.generator, images * (1.0 - mask), mask, holes)[0]


@contextmanager
def frozen(parameters: list[paddle.Tensor]) -> Iterator[None]:
    """Take no gradient for ``parameters`` within the block (gradients still flow through them to their
    inputs). The generator update differentiates through the critics only to reach the generator: the
    critics' own weight gradients would be thrown away, and computing them costs a backward-weights
    convolution per critic layer."""
    wanted = [p.stop_gradient for p in parameters]
    for parameter in parameters:
        parameter.stop_gradient = True
    try:
        yield
    finally:
        for parameter, stop in zip(parameters, wanted):
            parameter.stop_gradient = stop


def complete(images: paddle.Tensor, mask: paddle.Tensor, x_stage2: paddle.Tensor) -> paddle.Tensor:
    """What the critics judge: stage 2 inside the hole, the real pixels outside."""
    return x_stage2 * mask + images * (1.0 - mask)


def _scored_together(critic: Critic, real: paddle.Tensor, fake: paddle.Tensor, mask: paddle.Tensor
                     ) -> list[paddle.Tensor]:
    """The critic's scores of ``real`` and of ``fake`` from one pass over both, as the official graph
    scores them (one batch is faster than two half batches); ``mask`` for a critic that sees it."""
    return paddle.split(critic(paddle.concat([real, fake]), mask), 2)


def critic_losses(nets: Networks, batch: Batch, alphas: paddle.Tensor, config: Config) -> dict[str, paddle.Tensor]:
    """The critic objective on ``batch``; ``alphas`` [2, B, 1, 1, 1] are the gradient penalty's
    interpolation factors (local, global). ``total_d_loss`` is what the critic step minimises."""
    images, mask, boxes = batch.images, batch.mask, batch.boxes
    completed = complete(images, mask, nets.completion_without_gradient(images, mask, batch.holes))
    local_real, local_fake = local_patches(images, boxes), local_patches(completed, boxes)
    local_mask = local_patches(mask, boxes)
    scores = dict(zip(CRITIC_SCORES, (*_scored_together(nets.local_critic, local_real, local_fake, local_mask),
                                      *_scored_together(nets.global_critic, images, completed, mask))))
    d_loss_local = wgan_critic_loss(scores["real_local"], scores["fake_local"])
    d_loss_global = wgan_critic_loss(scores["real_global"], scores["fake_global"])
    penalty_local = gradient_penalty(nets.local_critic, local_real, local_fake, alphas[0], local_mask)
    penalty_global = gradient_penalty(nets.global_critic, images, completed, alphas[1], mask)
    d_loss = d_loss_local + d_loss_global
    gp_loss = config.wgan_gp_lambda * (penalty_local + penalty_global)
    return {"d_loss": d_loss, "gp_loss": gp_loss, "total_d_loss": d_loss + gp_loss,
            "d_loss_local": d_loss_local, "d_loss_global": d_loss_global,
            "penalty_local": penalty_local, "penalty_global": penalty_global, **scores}


def adversarial(config: Config, step: int) -> bool:
    """Whether the generator update that follows ``step`` completed ones is one of Algorithm 1 (critic
    updates and the WGAN term) rather than of reconstruction alone (``pretrain_coarse``, or within the
    first ``reconstruction_iters``)."""
    return not config.pretrain_coarse and step >= config.reconstruction_iters


def generator_losses(nets: Networks, batch: Batch, config: Config, adversarial: bool = True
                     ) -> tuple[dict[str, paddle.Tensor], tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]]:
    """The generator objective on ``batch`` (``total_g_loss``), its terms, and the generator's outputs
    (stage 1, stage 2, attention offsets). Without ``adversarial`` (or when pretraining the coarse
    network) the WGAN term is left out and the critics are not run."""
    images, mask, boxes = batch.images, batch.mask, batch.boxes
    x_stage1, x_stage2, offsets = nets.generator(images * (1.0 - mask), mask, holes=batch.holes)
    l1_loss, ae_loss = reconstruction_losses(images, x_stage1, x_stage2, mask, boxes, nets.discount,
                                             config.coarse_l1_alpha, coarse_only=config.pretrain_coarse,
                                             known_fraction=batch.known_fraction)
    losses = {"l1_loss": l1_loss, "ae_loss": ae_loss}
    total = config.l1_loss_alpha * l1_loss
    if config.ae_loss:
        total = total + config.ae_loss_alpha * ae_loss
    if adversarial and not config.pretrain_coarse:
        completed = complete(images, mask, x_stage2)
        fake_local = nets.local_critic(local_patches(completed, boxes))
        fake_global = nets.global_critic(completed, mask)
        losses["g_loss"] = wgan_generator_loss(fake_local, fake_global, config.global_wgan_loss_alpha)
        losses["g_loss_local"], losses["g_loss_global"] = -paddle.mean(fake_local), -paddle.mean(fake_global)
        total = total + config.gan_loss_alpha * losses["g_loss"]
    losses["total_g_loss"] = total
    return losses, (x_stage1, x_stage2, offsets)


LOGGED_CRITIC = ("d_loss", "gp_loss", "total_d_loss")
LOGGED_GENERATOR = ("l1_loss", "ae_loss", "g_loss", "total_g_loss")


def critic_step(nets: Networks, batch: Batch, alphas: paddle.Tensor, config: Config, update: Update
                ) -> dict[str, paddle.Tensor]:
    """One critic update (the generator is left as it is). Returns the logged scalars: the losses and
    the mean critic scores of real and completed images, as 0-D tensors left on the device (reading
    them is a synchronisation on a GPU; the trainer reads them only when it logs)."""
    losses = critic_losses(nets, batch, alphas, config)
    losses["total_d_loss"].backward()
    update(nets.opt_d, nets.critic_parameters)
    return {**{k: losses[k].detach() for k in LOGGED_CRITIC},
            **{k: paddle.mean(losses[k]).detach() for k in CRITIC_SCORES}}


def generator_step(nets: Networks, batch: Batch, config: Config, update: Update, adversarial: bool = True
                   ) -> tuple[dict[str, paddle.Tensor], list[paddle.Tensor]]:
    """One generator update (no gradient is taken for the critics' weights: ``frozen``). Returns the logged
    scalars (0-D tensors on the device, as ``critic_step``) and [images, mask, stage 1, stage 2, offsets]
    for the sample pictures."""
    with frozen(nets.critic_parameters):
        losses, (x_stage1, x_stage2, offsets) = generator_losses(nets, batch, config, adversarial)
        losses["total_g_loss"].backward()
    update(nets.opt_g, nets.generator.parameters())
    scalars = {k: losses[k].detach() for k in LOGGED_GENERATOR if k in losses}
    return scalars, [batch.images, batch.mask, x_stage1.detach(), x_stage2.detach(), offsets]


def iteration(critic: Callable[[], dict[str, paddle.Tensor]],
              generator: Callable[[], tuple[dict[str, paddle.Tensor], list[paddle.Tensor]]],
              config: Config, adversarial: bool = True) -> tuple[dict[str, paddle.Tensor], list[paddle.Tensor]]:
    """One pass of Algorithm 1: ``critic_steps`` critic updates (none when pretraining the coarse
    network or not ``adversarial``), then one generator update. Returns the scalars (critic ones averaged
    over the critic updates) and the generator step's tensors."""
    rounds = config.critic_steps if adversarial and not config.pretrain_coarse else 0
    critic_scalars = [critic() for _ in range(rounds)]
    scalars, tensors = generator()
    if critic_scalars:
        scalars.update({k: paddle.mean(paddle.stack([s[k] for s in critic_scalars])) for k in critic_scalars[0]})
    return scalars, tensors
