"""Step-addressed batch order for exact resuming and distributed training.

The training order is one endless stream: epoch ``e`` is a permutation of the
training indices drawn from ``seed + e``. Global step ``s`` takes stream
positions ``[s * batch, (s + 1) * batch)`` and process ``rank`` of
``world_size`` takes its contiguous slice of that batch. Every position also
gets its own augmentation seed. So the batch of a step depends only on the
step number, never on how many processes ran or whether the run was resumed.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

# Multiplier that spreads (seed, position) pairs over distinct 31-bit seeds.
_SEED_STRIDE = 1_000_003


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yield this process's ``(index, seed)`` pairs for steps ``start_step .. num_steps - 1``.

    Args:
        indices: dataset indices to train on.
        global_batch_size: samples per optimizer step over all processes.
        num_steps: total optimizer steps of the run.
        seed: seed of the shuffling and of the per-sample augmentation seeds.
        start_step: first step to yield (the step a resumed run continues at).
        rank / world_size: this process's place in the distributed group.
    """

    def __init__(
        self,
        indices: list[int],
        global_batch_size: int,
        num_steps: int,
        seed: int = 0,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not indices:
            raise ValueError("no training samples to draw batches from")
        if global_batch_size % world_size:
            raise ValueError(
                f"batch_size={global_batch_size} must be divisible by the {world_size} processes"
            )
        self.indices = list(indices)
        self.global_batch_size = global_batch_size
        self.local_batch_size = global_batch_size // world_size
        self.num_steps = num_steps
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self._epoch_cache: tuple[int, list[int]] | None = None

    def __len__(self) -> int:
        return max(0, self.num_steps - self.start_step)

    def _epoch_order(self, epoch: int) -> list[int]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(len(self.indices), generator=generator).tolist()
            self._epoch_cache = (epoch, [self.indices[i] for i in order])
        return self._epoch_cache[1]

    def batch_for_step(self, step: int) -> list[tuple[int, int]]:
        """Return the ``(index, seed)`` pairs of this process at ``step``."""
        first = step * self.global_batch_size + self.rank * self.local_batch_size
        pairs = []
        for position in range(first, first + self.local_batch_size):
            epoch, offset = divmod(position, len(self.indices))
            sample_seed = (self.seed * _SEED_STRIDE + position) % (2**31 - 1)
            pairs.append((self._epoch_order(epoch)[offset], sample_seed))
        return pairs

    def epoch_of_step(self, step: int) -> float:
        """Return the fractional epoch reached at the start of ``step``."""
        return step * self.global_batch_size / len(self.indices)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.num_steps):
            yield self.batch_for_step(step)
