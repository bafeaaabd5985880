"""Data-parallel agreement (``paddle.distributed.launch``): each process takes an equal share of every
batch, gradients are averaged before each update, and at the end of an iteration the processes agree on the
logged scalars, on whether to stop, and on which files turned out unreadable. With one process every
function here is the identity."""
from __future__ import annotations

import numpy as np
import paddle
import paddle.distributed as dist


class DataParallel:
    """This process's place among ``world`` processes and the collective operations training needs."""

    def __init__(self) -> None:
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    @staticmethod
    def start() -> None:
        """Join the process group when started by Paddle's launcher (a no-op for one process)."""
        if dist.get_world_size() > 1:
            dist.init_parallel_env()

    def share(self, batch_size: int) -> slice:
        """The part of each global batch this process computes."""
        share = batch_size // self.world
        return slice(self.rank * share, (self.rank + 1) * share)

    def average_gradients(self, parameters: list) -> None:
        """Replace each gradient by its mean over the processes (one flat all-reduce)."""
        if self.world == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        flat = paddle.concat([g.reshape([-1]) for g in grads])
        dist.all_reduce(flat)
        flat = flat / self.world
        offset = 0
        for grad in grads:
            grad.set_value(flat[offset:offset + grad.size].reshape(grad.shape))
            offset += grad.size

    def agree(self, scalars: dict[str, float], stop: bool, pairs: np.ndarray
              ) -> tuple[dict[str, float], bool, np.ndarray, int]:
        """Average ``scalars``, stop if any process wants to, and gather the (requested, delivered)
        index pairs when any process skipped a file. Returns those and the number of skips."""
        skipped = int((pairs[:, 0] != pairs[:, 1]).sum())
        if self.world == 1:
            return scalars, stop, pairs, skipped
        values = paddle.to_tensor([*scalars.values(), float(stop), float(skipped)], dtype="float64")
        dist.all_reduce(values)
        *averaged, stops, total = values.tolist()
        scalars = dict(zip(scalars, (v / self.world for v in averaged)))
        if total:
            gathered: list[paddle.Tensor] = []
            dist.all_gather(gathered, paddle.to_tensor(pairs))
            pairs = np.concatenate([g.numpy() for g in gathered])
        return scalars, stops > 0, pairs, int(total)
