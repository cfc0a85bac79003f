"""Data for the classic sequence tasks: pure functions of a PRNG key."""

from rnnjax.tasks.adding import ADDING_BASELINE_MSE, adding_batch
from rnnjax.tasks.copy_memory import copy_memory_baseline, copy_memory_batch
from rnnjax.tasks.double_dependency import double_dependency_batch, reference_cross_entropies
from rnnjax.tasks.echo import echo_batch

__all__ = [
    "ADDING_BASELINE_MSE",
    "adding_batch",
    "copy_memory_baseline",
    "copy_memory_batch",
    "double_dependency_batch",
    "echo_batch",
    "reference_cross_entropies",
]
