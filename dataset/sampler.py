"""Batch samplers: the weighted labelled/unlabelled training stream and the
sharded, duplicate-free test order.

Training (METHOD.md section 2): each epoch draws ``len(D_L u D_U)`` indices
with replacement, weight 1 for a labelled image and |D_L|/|D_U| for an
unlabelled one, so a batch is about half labelled. The whole epoch's stream
comes from one generator seeded by (seed, epoch); global batch b is the draws
[b*B, (b+1)*B) and process r of W takes its contiguous B/W of them. The
processes together therefore see exactly the single-process stream, with no
overlap, and an epoch can restart at any step. The last incomplete global
batch is dropped (a batch of one crashes BatchNorm).

Each yielded item is ``(dataset index, epoch, draw position)``: the dataset
seeds the sample's augmentation from it.
"""
from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


def labelled_weights(labelled: np.ndarray) -> np.ndarray:
    """1 for labelled rows, |D_L|/|D_U| for unlabelled ones."""
    labelled = np.asarray(labelled, dtype=bool)
    n_lab, n_unl = int(labelled.sum()), int((~labelled).sum())
    return np.where(labelled, 1.0, n_lab / n_unl if n_unl else 1.0)


class EpochDrawSampler(Sampler):
    """Yields this process's batches of ``(index, epoch, position)`` for one epoch."""

    def __init__(self, weights: np.ndarray, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, num_draws: int | None = None):
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} is not divisible by the {world_size} processes; "
                             f"choose a multiple of {world_size}")
        self.probs = np.asarray(weights, dtype=np.float64) / np.sum(weights)
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.num_draws = len(self.probs) if num_draws is None else num_draws
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the epoch's stream; ``start_step`` skips batches already trained on."""
        self.epoch, self.start_step = epoch, start_step

    def draws(self, epoch: int) -> np.ndarray:
        """The epoch's full stream of dataset indices (identical on every process)."""
        rng = np.random.default_rng([self.seed, epoch])
        return rng.choice(len(self.probs), size=self.num_draws, replace=True, p=self.probs)

    def __len__(self) -> int:
        return self.num_draws // self.batch_size - self.start_step

    def __iter__(self):
        stream = self.draws(self.epoch)
        local = self.batch_size // self.world_size
        for step in range(self.start_step, self.num_draws // self.batch_size):
            first = step * self.batch_size + self.rank * local
            yield [(int(stream[p]), self.epoch, p) for p in range(first, first + local)]


class ShardSampler(Sampler):
    """Test order for process ``rank``: indices rank, rank+W, ... (no padding,
    so each image is scored exactly once across processes)."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, size, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices)
