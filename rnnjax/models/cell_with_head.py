"""A recurrent cell with a Dense head on its output at every step: the whole model of
the memory-task studies (echo, double dependency, copy memory, adding)."""

from __future__ import annotations

import dataclasses

from rnnjax import probe
from rnnjax.cells import Cell, make
from rnnjax.layers import Dense
from rnnjax.loop import unroll
from rnnjax.models.compose import combine, part


@dataclasses.dataclass(frozen=True)
class CellWithHead:
    """A cell unrolled over the whole sequence, its output at each step through a Dense
    head. Params are `{"cell": ..., "head": ...}`.

    Arguments:
        cell: any cell (or `rj.Stacked`).
        head: the Dense layer on the cell's output.
        input_size: F, the size of each input vector.

    >>> import jax, jax.numpy as jnp, rnnjax as rj
    >>> model = CellWithHead(rj.GRU(4), rj.Dense(3), input_size=2)
    >>> params = model.init(jax.random.key(0))
    >>> xs = jnp.ones((5, 7, 2))
    >>> model.outputs(params, xs).shape, model.last(params, xs).shape
    ((5, 7, 3), (5, 3))
    """

    cell: Cell
    head: Dense
    input_size: int

    def init(self, key):
        """Params of the cell and the head, from one key split in two (cell first)."""
        return combine(part("cell", lambda k: self.cell.init(k, self.input_size)),
                       part("head", lambda k: self.head.init(k, self.cell.output_size)))(key)

    def outputs(self, params, xs):
        """The head at every step: xs [B, T, F] -> [B, T, outputs]."""
        _, ys = unroll(self.cell, params["cell"], xs)
        return self.head(params["head"], ys)

    def last(self, params, xs):
        """The head on the last step's output only: xs [B, T, F] -> [B, outputs]."""
        _, ys = unroll(self.cell, params["cell"], xs)
        return self.head(params["head"], ys[:, -1])

    def grad_flow(self, params, xs, loss_fn):
        """||dL/dh_k|| [T] for every step k from one backward pass (mean over the batch);
        `loss_fn` maps the head's output at every step [B, T, outputs] to the loss L."""
        return probe.hidden_grad_norms(self.cell, params["cell"], xs,
                                       lambda ys: loss_fn(self.head(params["head"], ys)))


def cell_with_head(name: str, hidden: int, input_size: int, outputs: int,
                   **cell_options) -> CellWithHead:
    """The cell `name` (see `rnnjax.cells.make`) of `hidden` units with a Dense head to
    `outputs`."""
    return CellWithHead(make(name, hidden, **cell_options), Dense(outputs), input_size)
