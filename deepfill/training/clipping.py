"""The official GRADIENT_CLIP: each gradient tensor g of the generator scaled by min(1, value·size(g)/‖g‖),
so that its average norm ‖g‖/size(g) is at most GRADIENT_CLIP_VALUE (``tf.clip_by_average_norm``, the
gradient processor of the official train.py).

Why an optimiser's ``grad_clip``: the official trainer clips the gradient the optimiser is handed, after
the batch's gradient is complete; here that is after data-parallel averaging, which happens before
``optimizer.step()`` (``deepfill.training.trainer.Trainer.update``), and the step applies ``grad_clip`` first. The
official code hands the processor to neuralgym's primary trainer (the generator's) only: the critics'
secondary trainer gets none, so the critics' gradients are never clipped.
"""
from __future__ import annotations

import paddle
from paddle.nn.clip import ClipGradBase


def clip_by_average_norm(gradient: paddle.Tensor, value: float) -> paddle.Tensor:
    """``gradient`` · min(1, value · size / ‖gradient‖) (a zero gradient stays zero)."""
    norm = paddle.sqrt(paddle.sum(gradient * gradient))
    return gradient * paddle.minimum(value * gradient.size / norm, paddle.ones_like(norm))


class ClipByAverageNorm(ClipGradBase):
    """``grad_clip`` of a Paddle optimiser that applies ``clip_by_average_norm`` to each gradient."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def _dygraph_clip(self, params_grads: list) -> list:
        with paddle.no_grad():
            return [(p, clip_by_average_norm(g, self.value)) for p, g in params_grads if g is not None]
