"""rnnjax: recurrent networks in JAX for research.

>>> import jax, rnnjax as rj
>>> cell = rj.LSTM(hidden_size=8)
>>> params = cell.init(jax.random.key(0), input_size=3)
>>> carry, ys = rj.unroll(cell, params, jax.numpy.ones((2, 5, 3)))
>>> ys.shape
(2, 5, 8)

The parts that need a heavy optional dependency load on first use, so `import rnnjax`
pulls in neither flax.linen, SciPy's signal processing nor matplotlib: `rj.audio` (wav
files and spectrograms, SciPy), `rj.vision` (convolutional encoders, Flax),
`rj.linen` and `rj.nnx` (our cells in Flax models), `rj.models`.
"""

import importlib

from rnnjax import crf, decode, filters, initializers, interop, parallel, seq2seq
from rnnjax._checks import InputTypeError, checked
from rnnjax.cells import (
    GRU,
    IRNN,
    LRU,
    LSTM,
    Cell,
    ClockworkCarry,
    ClockworkRNN,
    ConvGRU,
    ConvLSTM,
    EchoState,
    LinearRecurrence,
    LSTMCarry,
    MinGRU,
    MinLSTM,
    OrthogonalRNN,
    PeepholeLSTM,
    SimpleRNN,
)
from rnnjax.layers import Bidirectional, Dense, Embedding, Stacked
from rnnjax.loop import CellProtocolError, check_cell, reverse_within_lengths, unroll

__version__ = "0.1.0"

#: submodules loaded on first access as attributes (`rj.vision`): each needs a heavy
#: dependency (Flax; SciPy for audio), and none of them is imported by the modules above
LAZY_SUBMODULES = ("audio", "linen", "models", "nnx", "vision")


def __getattr__(name: str):
    if name not in LAZY_SUBMODULES:
        raise AttributeError(f"module 'rnnjax' has no attribute {name!r}")
    try:
        module = importlib.import_module(f"rnnjax.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"rnnjax.{name}":  # a missing dependency: say which
            raise
        raise AttributeError(f"module 'rnnjax' has no attribute {name!r}") from None
    return module  # the import also set it as an attribute: __getattr__ runs once


def __dir__():
    return sorted(set(globals()) | set(LAZY_SUBMODULES))


__all__ = [
    "GRU",
    "IRNN",
    "LRU",
    "LSTM",
    "Bidirectional",
    "Cell",
    "CellProtocolError",
    "ClockworkCarry",
    "ClockworkRNN",
    "ConvGRU",
    "ConvLSTM",
    "Dense",
    "EchoState",
    "Embedding",
    "InputTypeError",
    "LSTMCarry",
    "LinearRecurrence",
    "MinGRU",
    "MinLSTM",
    "OrthogonalRNN",
    "PeepholeLSTM",
    "SimpleRNN",
    "Stacked",
    "check_cell",
    "checked",
    "crf",
    "decode",
    "filters",
    "initializers",
    "interop",
    "linen",
    "nnx",
    "parallel",
    "reverse_within_lengths",
    "seq2seq",
    "unroll",
    "vision",
]
