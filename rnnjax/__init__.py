"""rnnjax: recurrent networks in JAX for research.

>>> import jax, rnnjax as rj
>>> cell = rj.LSTM(hidden_size=8)
>>> params = cell.init(jax.random.key(0), input_size=3)
>>> carry, ys = rj.unroll(cell, params, jax.numpy.ones((2, 5, 3)))
>>> ys.shape
(2, 5, 8)
"""

from rnnjax import crf, decode, filters, initializers, interop, seq2seq, vision
from rnnjax._checks import InputTypeError, checked
from rnnjax.cells import (
    GRU,
    IRNN,
    LRU,
    LSTM,
    Cell,
    ClockworkCarry,
    ClockworkRNN,
    LinearRecurrence,
    LSTMCarry,
    MinGRU,
    MinLSTM,
    PeepholeLSTM,
    SimpleRNN,
)
from rnnjax.layers import Bidirectional, Dense, Embedding, Stacked
from rnnjax.loop import reverse_within_lengths, unroll

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "IRNN",
    "LRU",
    "LSTM",
    "Bidirectional",
    "Cell",
    "ClockworkCarry",
    "ClockworkRNN",
    "Dense",
    "Embedding",
    "InputTypeError",
    "LSTMCarry",
    "LinearRecurrence",
    "MinGRU",
    "MinLSTM",
    "PeepholeLSTM",
    "SimpleRNN",
    "Stacked",
    "checked",
    "crf",
    "decode",
    "filters",
    "initializers",
    "interop",
    "reverse_within_lengths",
    "seq2seq",
    "unroll",
    "vision",
]
