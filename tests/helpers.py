"""What the tests share: the cells under test, random params, tree comparisons, and the
check of a study's usage error."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax as rj

# One of each cell and option, small enough for a 2-core CPU.
CELLS = {
    "tanh": rj.SimpleRNN(hidden_size=6),
    "relu": rj.SimpleRNN(hidden_size=6, activation="relu", recurrent_scale=0.9),
    "irnn": rj.IRNN(hidden_size=6),
    "lstm": rj.LSTM(hidden_size=6),                      # hand-written backward
    "lstm_autodiff": rj.LSTM(hidden_size=6, use_loop_rule=False),  # the generic scan
    "peephole": rj.PeepholeLSTM(hidden_size=6, peephole_scale=0.5),
    "peephole_previous": rj.PeepholeLSTM(hidden_size=6, peephole_scale=0.5,
                                         output_peephole="previous"),  # all gates read c_{t-1}
    "gru": rj.GRU(hidden_size=6),
    "gru_reset_after": rj.GRU(hidden_size=6, reset_after=True),
    "clockwork": rj.ClockworkRNN(hidden_size=6, periods=(1, 2, 4)),
}


#: what the Flax wrappers are tested with: both loop-rule cells, a stack, a bidirectional
WRAPPED_MODELS = {
    "lstm": rj.LSTM(hidden_size=5),
    "gru": rj.GRU(hidden_size=5),
    "stacked": rj.Stacked([rj.LSTM(hidden_size=5), rj.GRU(hidden_size=4, reset_after=True)]),
    "bidirectional": rj.Bidirectional(rj.LSTM(hidden_size=5), rj.GRU(hidden_size=4)),
}


def normal(seed, shape):
    """A float32 array of standard normal draws (NumPy: nothing compiles)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def randomize(tree, seed, scale=0.5):
    """`tree` (arrays or `jax.ShapeDtypeStruct`s) with every entry drawn from
    N(0, scale^2): zero biases, as init makes them, would hide bias bugs. NumPy draws,
    so nothing compiles."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype), tree)


def random_params(model, input_size, seed, scale=0.5):
    """`randomize` on the shapes of `model.init(key, input_size)` (never run eagerly)."""
    return randomize(jax.eval_shape(lambda: model.init(jax.random.key(0), input_size)), seed,
                     scale)


def max_diff(a, b):
    """The largest absolute difference between two arrays or pytrees, in float64."""
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def assert_trees_close(a, b, atol=1e-6, rtol=0.0):
    """Same structure and every leaf within `atol + rtol * |b|`."""
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    jax.tree_util.tree_map(
        lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol,
                                                atol=atol), a, b)


def assert_usage_error(capsys, main, argv, match: str) -> str:
    """`main(argv)` stops with an argparse usage error: exit status 2, a `usage:` line
    and a message matching `match` on stderr, no traceback. Returns the message."""
    capsys.readouterr()   # what ran before
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:") and "Traceback" not in err, err
    message = err.strip().splitlines()[-1]
    assert re.search(match, message), message
    return message
