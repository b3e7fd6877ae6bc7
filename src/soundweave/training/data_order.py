"""The trainer's data order: a seeded permutation per epoch, and per-item RNG seeds, so a resumed run reads
exactly the batches (and random crops) an uninterrupted run would have."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class EpochSampler(Sampler[int]):
    """A fresh, seeded permutation each epoch: epoch e always gives the same order for the same seed.

    The epoch is set with `use_epoch` (not `set_epoch`, which Accelerate calls with its own per-loader
    count that restarts when a resumed run skips into the middle of an epoch).
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True):
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.size))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=g).tolist())

    def __len__(self) -> int:
        return self.size


class SeededItems(Dataset):
    """Reads item i of epoch e under its own RNG seeded from (seed, e, i), then puts the global RNG back.

    Random crops and augmentations then neither draw from nor depend on the global RNG: the loader reads one
    batch ahead (so an uninterrupted run would otherwise have drawn the next batch's crops before a checkpoint
    saved the RNG, and a resumed run after), and worker processes read the same items as the main process.
    """

    def __init__(self, dataset: Dataset, sampler: EpochSampler):
        self.dataset, self.sampler = dataset, sampler

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        seed = ((self.sampler.seed * 1_000_003 + self.sampler.epoch) * 1_000_033 + int(index)) % 2**63
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


__all__ = ["EpochSampler", "SeededItems"]
