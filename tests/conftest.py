import os
import sys

import jax

import rnnjax as rj

sys.path.insert(0, os.path.dirname(__file__))  # tests/reference.py

# One of each cell and option, small enough for a 2-core CPU.
CELLS = {
    "tanh": rj.SimpleRNN(hidden_size=6),
    "relu": rj.SimpleRNN(hidden_size=6, activation="relu", recurrent_scale=0.9),
    "irnn": rj.IRNN(hidden_size=6),
    "lstm": rj.LSTM(hidden_size=6),                      # hand-written backward
    "lstm_autodiff": rj.LSTM(hidden_size=6, use_loop_rule=False),  # the generic scan
    "peephole": rj.PeepholeLSTM(hidden_size=6, peephole_scale=0.5),
    "peephole_previous": rj.PeepholeLSTM(hidden_size=6, peephole_scale=0.5,
                                         output_peephole="previous"),  # the lectures' form
    "gru": rj.GRU(hidden_size=6),
    "gru_reset_after": rj.GRU(hidden_size=6, reset_after=True),
    "clockwork": rj.ClockworkRNN(hidden_size=6, periods=(1, 2, 4)),
}


def randomize(params, key, scale=0.5):
    """Params with every entry random (zero biases would hide bias bugs)."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [scale * jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)])
