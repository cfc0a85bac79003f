"""Data for the classic sequence tasks: pure functions of a PRNG key."""

from rnnjax.tasks.adding import ADDING_BASELINE_MSE, adding_batch

__all__ = ["adding_batch", "ADDING_BASELINE_MSE"]
