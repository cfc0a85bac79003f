"""Bad input fails at the API edge with a ValueError naming the argument and shapes."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax as rj

CELL = rj.LSTM(hidden_size=4)
PARAMS = CELL.init(jax.random.key(0), input_size=3)
XS = jnp.ones((2, 5, 3))


@pytest.mark.parametrize("make", [
    lambda h: rj.SimpleRNN(h), lambda h: rj.IRNN(h), lambda h: rj.LSTM(h),
    lambda h: rj.PeepholeLSTM(h), lambda h: rj.GRU(h), lambda h: rj.ClockworkRNN(h, (1,)),
    lambda h: rj.Dense(h), lambda h: rj.Embedding(10, h)])
@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_sizes_must_be_positive_integers(make, size):
    with pytest.raises(ValueError, match=r"(hidden_size|features) must be a positive integer"):
        make(size)


def test_input_size_must_be_positive():
    with pytest.raises(ValueError, match="input_size must be a positive integer, got 0"):
        CELL.init(jax.random.key(0), 0)


@pytest.mark.parametrize("shape", [(5, 3), (2, 5, 3, 1), (3,)])
def test_xs_wrong_rank(shape):
    with pytest.raises(ValueError, match=rf"xs must have rank 3 \[B, T, F\], got shape "
                                         rf"{re_shape(shape)}"):
        rj.unroll(CELL, PARAMS, jnp.ones(shape))


def test_xs_wrong_rank_time_major_names_the_layout():
    with pytest.raises(ValueError, match=r"rank 3 \[T, B, F\] \(time_major=True\)"):
        rj.unroll(CELL, PARAMS, jnp.ones((5, 3)), time_major=True)


def test_xs_wrong_feature_size():
    with pytest.raises(ValueError, match=r"xs must have 3 features .* got shape \(2, 5, 7\)"):
        rj.unroll(CELL, PARAMS, jnp.ones((2, 5, 7)))


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_])
def test_xs_must_be_float(dtype):
    with pytest.raises(ValueError, match=r"xs must be a floating-point array, got dtype"):
        rj.unroll(CELL, PARAMS, jnp.ones((2, 5, 3), dtype))


def test_step_input_checks():
    carry = CELL.initial_carry((2,))
    with pytest.raises(ValueError, match=r"x must have 3 features .* got shape \(2, 4\)"):
        CELL(PARAMS, carry, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="x must be a floating-point array"):
        CELL(PARAMS, carry, jnp.ones((2, 3), jnp.int32))


@pytest.mark.parametrize("lengths, message", [
    (np.array([5, 6]), r"seq_lengths must lie in \[0, 5\] \(T = 5\), got values in \[5, 6\]"),
    (np.array([-1, 2]), r"seq_lengths must lie in \[0, 5\] .* got values in \[-1, 2\]"),
    (np.array([1, 2, 3]), r"seq_lengths must have shape \(2,\) .* got shape \(3,\)"),
    (np.array([[1, 2]]), r"seq_lengths must have shape \(2,\) .* got shape \(1, 2\)"),
    (np.array([1.0, 2.0]), r"seq_lengths must be an integer array, got dtype float"),
])
def test_seq_lengths(lengths, message):
    with pytest.raises(ValueError, match=message):
        rj.unroll(CELL, PARAMS, XS, seq_lengths=lengths)


def test_seq_lengths_shape_is_checked_under_jit():
    f = jax.jit(lambda xs, lengths: rj.unroll(CELL, PARAMS, xs, seq_lengths=lengths)[1])
    with pytest.raises(ValueError, match=r"seq_lengths must have shape \(2,\)"):
        f(XS, jnp.array([1, 2, 3]))


def test_carry_structure_and_shapes():
    with pytest.raises(ValueError, match="carry must have leaf shapes"):
        rj.unroll(CELL, PARAMS, XS, carry=CELL.initial_carry((3,)))
    with pytest.raises(ValueError, match="carry must have the structure"):
        rj.unroll(CELL, PARAMS, XS, carry=jnp.zeros((2, 4)))
    # float32 params: a bfloat16 carry would change dtype after the first step
    with pytest.raises(ValueError, match="carry must be float32"):
        rj.unroll(CELL, PARAMS, XS, carry=CELL.initial_carry((2,), jnp.bfloat16))


def test_unroll_factor_and_options():
    with pytest.raises(ValueError, match="unroll must be a positive integer"):
        rj.unroll(CELL, PARAMS, XS, unroll=0)
    with pytest.raises(ValueError, match="activation must be one of"):
        rj.SimpleRNN(4, activation="swishy")
    with pytest.raises(ValueError, match="recurrent_init must be one of"):
        rj.SimpleRNN(4, recurrent_init="zeros").init(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="merge must be 'concat' or 'sum'"):
        rj.Bidirectional(CELL, CELL, merge="mean")
    with pytest.raises(ValueError, match="merge='sum' needs equal output sizes"):
        rj.Bidirectional(rj.GRU(3), rj.GRU(4), merge="sum")
    with pytest.raises(ValueError, match="dropout must lie in"):
        rj.Stacked([CELL], dropout=1.0)
    with pytest.raises(ValueError, match="layers must hold at least one layer"):
        rj.Stacked([])


def test_clockwork_config():
    with pytest.raises(ValueError, match="multiple of the number of modules"):
        rj.ClockworkRNN(hidden_size=10, periods=(1, 2, 4))
    with pytest.raises(ValueError, match="sorted fast to slow"):
        rj.ClockworkRNN(hidden_size=8, periods=(4, 1))
    with pytest.raises(ValueError, match="periods must be a non-empty tuple"):
        rj.ClockworkRNN(hidden_size=8, periods=(0, 1))


def test_dense_and_embedding_inputs():
    dense = rj.Dense(3)
    p = dense.init(jax.random.key(0), 4)
    with pytest.raises(ValueError, match=r"x must have 4 features .* got shape \(2, 5\)"):
        dense(p, jnp.ones((2, 5)))
    emb = rj.Embedding(vocab_size=10, features=3)
    pe = emb.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"ids must be an integer array, got dtype float32"):
        emb(pe, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 9\] .* got values in \[0, 10\]"):
        emb(pe, jnp.array([0, 10]))


def re_shape(shape):
    return re.escape(str(tuple(shape)))

