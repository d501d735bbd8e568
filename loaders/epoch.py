"""The epoch a dataset shuffles, crops and augments by, kept in shared memory.

A DataLoader worker holds a copy of the dataset made when it started. With
``persistent_workers=True`` that copy lives across epochs, so a plain attribute set by
``set_epoch`` in the trainer never reaches it, and every epoch would shuffle, crop and
augment exactly like the first. Here the value lives in one shared-memory cell that the
trainer's object and every worker's copy point at.
"""

from __future__ import annotations

import torch


class SharedEpoch:
    """Mixin: ``epoch`` and ``set_epoch(epoch)``, seen by persistent workers too."""

    _epoch_cell: torch.Tensor | None = None

    @property
    def epoch(self) -> int:
        return 0 if self._epoch_cell is None else int(self._epoch_cell[0])

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.set_epoch(value)

    def set_epoch(self, epoch: int) -> None:
        """Set from the trainer before iterating (``self.epoch = 0`` in ``__init__``
        allocates the cell, so workers started later share it)."""
        if self._epoch_cell is None:
            self._epoch_cell = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._epoch_cell[0] = int(epoch)
