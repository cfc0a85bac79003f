"""Data for the classic sequence tasks: pure functions of a PRNG key."""

from rnnjax.tasks.adding import ADDING_BASELINE_MSE, adding_batch
from rnnjax.tasks.copy_memory import copy_memory_baseline, copy_memory_batch

__all__ = ["ADDING_BASELINE_MSE", "adding_batch", "copy_memory_baseline", "copy_memory_batch"]
