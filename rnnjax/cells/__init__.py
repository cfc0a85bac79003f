"""Recurrent cells: pure functions with their config in frozen dataclasses."""

from rnnjax.cells.base import Cell
from rnnjax.cells.clockwork import ClockworkCarry, ClockworkRNN
from rnnjax.cells.gru import GRU
from rnnjax.cells.lstm import LSTM, LSTMCarry, PeepholeLSTM
from rnnjax.cells.simple import IRNN, SimpleRNN

__all__ = ["Cell", "SimpleRNN", "IRNN", "LSTM", "LSTMCarry", "PeepholeLSTM", "GRU",
           "ClockworkRNN", "ClockworkCarry"]
