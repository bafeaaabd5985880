"""The paper's model: the two-stage generator with contextual attention (paper §3.1-3.2) and the local and
global WGAN-GP critics (§3.1), plus DeepFill v2's gated generator and SN-PatchGAN critic.

The code lives in ``deepfill.models`` (the project installs under the one name ``deepfill``); this folder
keeps the names a reader of the paper looks for. Where each concept is: docs/architecture.md.
"""
from deepfill.models.attention import contextual_attention
from deepfill.models.critics import Critic, global_critic, local_critic
from deepfill.models.gated import GatedGenerator
from deepfill.models.generator import CoarseNetwork, InpaintGenerator, RefineNetwork
from deepfill.models.sn_patch_gan import SNPatchGAN

__all__ = ["contextual_attention", "Critic", "global_critic", "local_critic", "GatedGenerator", "CoarseNetwork",
           "InpaintGenerator", "RefineNetwork", "SNPatchGAN"]
