"""The time loop: `unroll` and the strategies that run a model over time.

- `api.py`: `unroll`, the checked entry (shapes, lengths, resets), compiled per model.
- `dispatch.py`: `run`, from a model's declared `Strategy` to its loop.
- `protocol.py`: `check_cell`, a model checked against the protocol the loop runs.
- `masking.py`: the one masked step (lengths freeze, resets restart) every loop uses.
- `scan.py`: the generic strategy, a `lax.scan` of the cell's step.
- `rules.py`: loops around a cell's `StepRule`, with a hand-written backward pass.
- `associative.py`: recurrences linear in the carry, by associative scan.
- `remat.py`: chunked rematerialisation for the loop rules.
"""

from rnnjax.loop.api import unroll
from rnnjax.loop.dispatch import run
from rnnjax.loop.masking import masked_step, reverse_within_lengths
from rnnjax.loop.protocol import CellProtocolError, check_cell

__all__ = ["CellProtocolError", "check_cell", "masked_step", "reverse_within_lengths", "run",
           "unroll"]
