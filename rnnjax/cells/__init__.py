"""Recurrent cells: pure functions with their config in frozen dataclasses."""

from rnnjax.cells.base import Cell, StepRule, Strategy
from rnnjax.cells.clockwork import ClockworkCarry, ClockworkRNN
from rnnjax.cells.conv import CONV_CELL_TYPES, ConvGRU, ConvLSTM, make_conv
from rnnjax.cells.echo_state import EchoState
from rnnjax.cells.gru import GRU
from rnnjax.cells.linear import LRU, LinearRecurrence, MinGRU, MinLSTM
from rnnjax.cells.lstm import LSTM, LSTMCarry, PeepholeLSTM
from rnnjax.cells.orthogonal import OrthogonalRNN
from rnnjax.cells.simple import IRNN, SimpleRNN

#: the cell types by the names experiments use on their command line (the
#: convolutional cells, which need a spatial shape, are in `CONV_CELL_TYPES`)
CELL_TYPES = {
    "tanh": SimpleRNN,
    "relu": lambda hidden_size, **kw: SimpleRNN(hidden_size, activation="relu", **kw),
    "irnn": IRNN,
    "lstm": LSTM,
    "peephole": PeepholeLSTM,
    "gru": GRU,
    "clockwork": ClockworkRNN,
    "lru": LRU,
    "mingru": MinGRU,
    "minlstm": MinLSTM,
    "exprnn": OrthogonalRNN,
    "scornn": lambda hidden_size, **kw: OrthogonalRNN(hidden_size, parametrization="cayley",
                                                      **kw),
}


def make(name: str, hidden_size: int, **options) -> Cell:
    """The cell called `name` (a key of `CELL_TYPES`), e.g. `make("lstm", 64)`."""
    if name not in CELL_TYPES:
        raise ValueError(f"cell name must be one of {sorted(CELL_TYPES)}, got {name!r}")
    return CELL_TYPES[name](hidden_size, **options)


__all__ = [
    "CELL_TYPES",
    "CONV_CELL_TYPES",
    "GRU",
    "IRNN",
    "LRU",
    "LSTM",
    "Cell",
    "ClockworkCarry",
    "ClockworkRNN",
    "ConvGRU",
    "ConvLSTM",
    "EchoState",
    "LSTMCarry",
    "LinearRecurrence",
    "MinGRU",
    "MinLSTM",
    "OrthogonalRNN",
    "PeepholeLSTM",
    "SimpleRNN",
    "StepRule",
    "Strategy",
    "make",
    "make_conv",
]
