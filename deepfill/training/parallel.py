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

    def broadcast(self, parameters: list) -> None:
        """Give every process the first process's ``parameters`` (at the start: identical seeding makes
        them equal already, but nothing else would notice if it did not)."""
        if self.world == 1:
            return
        for parameter in parameters:
            dist.broadcast(parameter, src=0)

    def share(self, batch_size: int) -> slice:
        """The part of each global batch this process computes."""
        share = batch_size // self.world
        return slice(self.rank * share, (self.rank + 1) * share)

    def average_gradients(self, parameters: list) -> None:
        """Replace each gradient by its mean over the processes (one flat all-reduce), in place on the
        device. Not ``Tensor.set_value``: on Paddle 2.6 it hands the new value to the tensor's ``set`` as an
        array, which copies it to the host and back (3.x copies on the device)."""
        if self.world == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        flat = paddle.concat([g.reshape([-1]) for g in grads])
        dist.all_reduce(flat)
        flat = flat / self.world
        offset = 0
        for grad in grads:
            paddle.assign(flat[offset:offset + grad.size].reshape(grad.shape), output=grad)
            offset += grad.size

    def average(self, values: paddle.Tensor) -> paddle.Tensor:
        """``values`` averaged over the processes, on the device (every process must call this at the
        same step)."""
        if self.world == 1:
            return values
        values = values.clone()
        dist.all_reduce(values)
        return values / self.world

    def agree(self, stop: bool, pairs: np.ndarray) -> tuple[bool, np.ndarray, int]:
        """Stop if any process wants to, and gather the (requested, delivered) index pairs when any
        process skipped a file. Returns those and the number of skips. With several processes this reads
        one small tensor back per iteration: every process must know at once whether to stop."""
        skipped = int((pairs[:, 0] != pairs[:, 1]).sum())
        if self.world == 1:
            return stop, pairs, skipped
        values = paddle.to_tensor([float(stop), float(skipped)], dtype="float64")
        dist.all_reduce(values)
        stops, total = values.tolist()
        if total:
            gathered: list[paddle.Tensor] = []
            dist.all_gather(gathered, paddle.to_tensor(pairs))
            pairs = np.concatenate([g.numpy() for g in gathered])
        return stops > 0, pairs, int(total)
