"""Invariants of the time loop: variable lengths, reversal, layouts, jit/unroll/remat,
and the combinators."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CELLS, assert_trees_close, randomize
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnjax as rj

I = 3
CELL_NAMES = sorted(CELLS)
SLOW = settings(max_examples=6, deadline=None)
# compiled once per (cell, shapes, flags) and reused across hypothesis examples
unroll = jax.jit(rj.unroll, static_argnums=0, static_argnames=("reverse", "time_major"))


def setup(model, batch, steps, seed=0):
    k_p, k_x = jax.random.split(jax.random.key(seed))
    params = randomize(model.init(k_p, I), seed)
    return params, jax.random.normal(k_x, (batch, steps, I))


@st.composite
def padded_batch(draw):
    steps = draw(st.integers(1, 7))
    lengths = draw(st.lists(st.integers(0, steps), min_size=1, max_size=4))
    return draw(st.sampled_from(CELL_NAMES)), steps, np.array(lengths)


@SLOW
@given(padded_batch(), st.booleans())
def test_padded_batch_equals_each_sequence_alone(case, reverse):
    name, steps, lengths = case
    cell = CELLS[name]
    params, xs = setup(cell, len(lengths), steps)
    carry, ys = unroll(cell, params, xs, seq_lengths=lengths, reverse=reverse)
    for b, length in enumerate(lengths):
        alone_carry, alone_ys = unroll(cell, params, xs[b:b + 1, :length], reverse=reverse)
        assert_trees_close(ys[b, :length], alone_ys[0])
        assert np.all(np.asarray(ys[b, length:]) == 0)  # zero past the length
        assert_trees_close(jax.tree_util.tree_map(lambda a: a[b], carry),
                           jax.tree_util.tree_map(lambda a: a[0], alone_carry))


@SLOW
@given(padded_batch())
def test_reverse_is_forward_over_each_flipped_sequence(case):
    name, steps, lengths = case
    cell = CELLS[name]
    params, xs = setup(cell, len(lengths), steps, seed=1)
    carry, ys = unroll(cell, params, xs, seq_lengths=lengths, reverse=True)
    flipped = rj.reverse_within_lengths(jnp.swapaxes(xs, 0, 1), jnp.asarray(lengths))
    f_carry, f_ys = unroll(cell, params, flipped, seq_lengths=lengths, time_major=True)
    back = jnp.swapaxes(rj.reverse_within_lengths(f_ys, jnp.asarray(lengths)), 0, 1)
    assert_trees_close(ys, back)
    assert_trees_close(carry, f_carry)


def test_reverse_without_lengths_flips_time():
    cell = CELLS["lstm"]
    params, xs = setup(cell, 2, 6)
    carry, ys = rj.unroll(cell, params, xs, reverse=True)
    f_carry, f_ys = rj.unroll(cell, params, xs[:, ::-1])
    assert_trees_close(ys, f_ys[:, ::-1])
    assert_trees_close(carry, f_carry)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_jit_unroll_and_remat_agree(name):
    cell = CELLS[name]
    params, xs = setup(cell, 3, 11, seed=2)
    lengths = jnp.array([11, 6, 0])

    def loss(params, xs, unroll, remat):
        carry, ys = rj.unroll(cell, params, xs, seq_lengths=lengths, unroll=unroll, remat=remat)
        return jnp.sum(jnp.tanh(ys)) + jnp.sum(cell.hidden(carry) ** 2), ys

    f = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
    jitted = jax.jit(f, static_argnums=(2, 3))
    reference = f(params, xs, 1, False)  # eager, no unroll, no remat
    configs = [(jitted, 1, False), (jitted, 8, False), (f, 1, True)]
    if name == "lstm":  # every combination once; the rest of the cells share the loop code
        configs += [(jitted, 8, True), (jitted, 1, True), (f, 8, False)]
    for fn, unroll, remat in configs:
        assert_trees_close(fn(params, xs, unroll, remat), reference, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 3, 4, 11, 16])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_lstm_chunked_remat_equals_stored_residuals(chunk, with_lengths):
    """The chunked backward (run_rule chunk=K, T=11: padded chunks for K=3, 4, 16)
    gives the same outputs, final carry and every gradient as keeping all steps."""
    from rnnjax.loop.rules import run_rule
    cell = CELLS["lstm"]
    params, xs = setup(cell, 3, 11, seed=4)
    xs = jnp.swapaxes(xs, 0, 1)
    h0, c0 = (jax.random.normal(k, (3, cell.hidden_size))
              for k in jax.random.split(jax.random.key(5)))
    alive = (jnp.arange(11)[:, None] < jnp.array([11, 5, 0])[None, :]) if with_lengths else None

    def loss(params, xs, h0, c0, chunk):
        (h, c), ys = run_rule(cell.loop_rule, params, xs, (h0, c0), alive, None, 1, chunk)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(h ** 2) + jnp.sum(c ** 3), (h, c, ys)

    grad = jax.jit(jax.value_and_grad(loss, argnums=range(4), has_aux=True), static_argnums=4)
    args = (params, xs, h0, c0)
    assert_trees_close(grad(*args, chunk), grad(*args, None), atol=1e-5)


RULED = {"lstm": lambda use: rj.LSTM(4, use_loop_rule=use),
         "gru": lambda use: rj.GRU(4, use_loop_rule=use),
         "gru_reset_after": lambda use: rj.GRU(4, reset_after=True, use_loop_rule=use),
         "tanh": lambda use: rj.SimpleRNN(4, use_loop_rule=use),
         "relu": lambda use: rj.SimpleRNN(4, activation="relu", use_loop_rule=use)}


@pytest.mark.parametrize("name", RULED)
@pytest.mark.parametrize("reverse, remat", [(False, False), (True, True)])
def test_loop_rules_keep_resets_and_match_autodiff_of_the_scan(name, reverse, remat):
    """With resets (and lengths) the hand-written backward passes run, and give the
    outputs, final carry and gradients (params, inputs, initial carry) of autodiff
    through the generic scan, in float64; remat=True runs the chunked backward (T=9:
    chunks of 3)."""
    ruled, plain = RULED[name](True), RULED[name](False)
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64),
                                        ruled.init(jax.random.key(3), 3))
        xs = jax.random.normal(jax.random.key(4), (4, 9, 3), jnp.float64)
        carry = jax.tree_util.tree_map(
            lambda a: jax.random.normal(jax.random.key(5), a.shape, jnp.float64),
            ruled.initial_carry((4,)))
        resets = jnp.zeros((4, 9), bool).at[0, 3].set(True).at[1, 1].set(True) \
            .at[1, 5].set(True).at[2, 0].set(True).at[3, 6].set(True)
        lengths = jnp.array([9, 7, 4, 6])

        def loss(cell, p, x, c):
            final, ys = rj.unroll(cell, p, x, c, seq_lengths=lengths, resets=resets,
                                  reverse=reverse, remat=remat)
            leaves = jax.tree_util.tree_leaves(final)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(l ** 2) for l in leaves)

        got = jax.value_and_grad(partial(loss, ruled), argnums=(0, 1, 2))(params, xs, carry)
        want = jax.value_and_grad(partial(loss, plain), argnums=(0, 1, 2))(params, xs, carry)
        assert_trees_close(got, want, atol=1e-12)
        assert ruled.strategy is rj.cells.Strategy.LOOP_RULE
        assert plain.strategy is rj.cells.Strategy.SCAN


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_remat_memory_is_sublinear_in_length(name):
    """XLA's temp buffers of fwd+bwd at T=2048: remat keeps a carry per step (generic
    loop) or per chunk (LSTM), not the step activations and the input projection."""
    cell = CELLS[name]
    params, xs = setup(cell, 4, 2048)

    def temp_bytes(remat):
        loss = lambda p, xs: jnp.sum(rj.unroll(cell, p, xs, remat=remat)[1] ** 2)
        compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, xs).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    # a [T, B, G*H] projection alone is 2048*4*G*H*4 bytes: G=4 (LSTM) -> 64 * 2048 * H
    stored, remat = temp_bytes(False), temp_bytes(True)
    assert remat < stored / 2.5, (stored, remat)


def test_time_major_layout_and_given_carry():
    cell = CELLS["gru"]
    params, xs = setup(cell, 4, 5)
    carry0 = jax.random.normal(jax.random.key(9), (4, cell.hidden_size))
    c1, y1 = rj.unroll(cell, params, xs, carry=carry0)
    c2, y2 = rj.unroll(cell, params, jnp.swapaxes(xs, 0, 1), carry=carry0, time_major=True)
    assert_trees_close((c1, y1), (c2, jnp.swapaxes(y2, 0, 1)))
    # the given carry is used: a different one changes the outputs
    assert not np.allclose(y1, rj.unroll(cell, params, xs)[1])


def test_zero_length_keeps_the_initial_carry():
    cell = CELLS["lstm"]
    params, xs = setup(cell, 2, 4)
    carry0 = jax.tree_util.tree_map(lambda a: a + 0.3, cell.initial_carry((2,)))
    carry, ys = rj.unroll(cell, params, xs, carry=carry0, seq_lengths=jnp.array([0, 4]))
    assert_trees_close(jax.tree_util.tree_map(lambda a: a[0], carry),
                       jax.tree_util.tree_map(lambda a: a[0], carry0))
    assert np.all(np.asarray(ys[0]) == 0)


# -- Stacked -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tanh", "lstm", "gru", "clockwork"])
def test_stacked_of_one_layer_equals_the_layer(name):
    cell = CELLS[name]
    params, xs = setup(cell, 3, 6)
    lengths = jnp.array([6, 2, 4])
    carry, ys = rj.unroll(cell, params, xs, seq_lengths=lengths)
    s_carry, s_ys = rj.unroll(rj.Stacked([cell]), (params,), xs, seq_lengths=lengths)
    assert_trees_close((carry,), s_carry)
    assert_trees_close(ys, s_ys)


def test_stacked_step_scan_equals_layer_by_layer_unroll():
    stack = rj.Stacked([rj.LSTM(5), rj.GRU(4), rj.SimpleRNN(3)])
    params, xs = setup(stack, 2, 7)
    carry, ys = rj.unroll(stack, params, xs)
    # stack as one cell, stepped by hand
    step_carry = stack.initial_carry((2,))
    outs = []
    for t in range(7):
        step_carry, y = stack(params, step_carry, xs[:, t])
        outs.append(y)
    assert_trees_close(ys, jnp.stack(outs, axis=1))
    assert_trees_close(carry, step_carry)
    assert stack.output_size == 3 and ys.shape == (2, 7, 3)


def test_stacked_dropout_needs_a_key_and_keeps_the_mean():
    stack = rj.Stacked([rj.SimpleRNN(64, activation="identity"), rj.SimpleRNN(64)], dropout=0.5)
    params, xs = setup(stack, 2, 3)
    _, plain = rj.unroll(stack, params, xs)
    _, same = rj.unroll(rj.Stacked(stack.layers), params, xs)
    assert_trees_close(plain, same)  # no key: no dropout
    _, a = rj.unroll(stack, params, xs, key=jax.random.key(0))
    _, b = rj.unroll(stack, params, xs, key=jax.random.key(1))
    assert not np.allclose(a, plain) and not np.allclose(a, b)
    # inverted dropout keeps the expected input of the next layer
    y = jnp.ones((20000,))
    dropped = stack._drop(y, jax.random.key(2))
    assert abs(float(dropped.mean()) - 1.0) < 0.03
    assert set(np.unique(np.asarray(dropped))) == {0.0, 2.0}


# -- Bidirectional ---------------------------------------------------------------
@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional_is_forward_plus_reversed_backward(merge):
    fwd, bwd = rj.LSTM(4), rj.GRU(4)
    bi = rj.Bidirectional(fwd, bwd, merge=merge)
    params, xs = setup(bi, 3, 6)
    lengths = jnp.array([6, 3, 1])
    (c_f, c_b), ys = rj.unroll(bi, params, xs, seq_lengths=lengths)
    ref_cf, y_f = rj.unroll(fwd, params["fwd"], xs, seq_lengths=lengths)
    ref_cb, y_b = rj.unroll(bwd, params["bwd"], xs, seq_lengths=lengths, reverse=True)
    want = jnp.concatenate([y_f, y_b], -1) if merge == "concat" else y_f + y_b
    assert_trees_close(ys, want)
    assert_trees_close((c_f, c_b), (ref_cf, ref_cb))
    assert ys.shape[-1] == bi.output_size


def test_stack_of_bidirectional_layers():
    model = rj.Stacked([rj.Bidirectional(rj.GRU(4), rj.GRU(4)),
                        rj.Bidirectional(rj.LSTM(3), rj.LSTM(3))])
    params, xs = setup(model, 2, 5)
    lengths = jnp.array([5, 2])
    carry, ys = rj.unroll(model, params, xs, seq_lengths=lengths)
    _, mid = rj.unroll(model.layers[0], params[0], xs, seq_lengths=lengths)
    _, top = rj.unroll(model.layers[1], params[1], mid, seq_lengths=lengths)
    assert_trees_close(ys, top)
    assert ys.shape == (2, 5, 6)
    with pytest.raises(ValueError, match="Bidirectional"):
        model(params, carry, xs[:, 0])


def test_forward_mode_names_use_loop_rule_false_and_that_works():
    xs = jax.random.normal(jax.random.key(1), (2, 5, 3))
    for cell in (rj.GRU(4), rj.Stacked([rj.LSTM(4), rj.SimpleRNN(3)])):
        params = cell.init(jax.random.key(0), 3)
        f = lambda xs: rj.unroll(cell, params, xs)[1].sum()
        with pytest.raises(TypeError, match=r"cannot go through a loop rule.*here in a "
                                            + type(cell).__name__ + r".*use_loop_rule=False"):
            jax.jvp(f, (xs,), (xs,))
    cell = rj.GRU(4)
    params = cell.init(jax.random.key(0), 3)
    scanned = rj.GRU(4, use_loop_rule=False)
    fwd = jax.jacfwd(lambda xs: rj.unroll(scanned, params, xs)[1].sum())(xs)
    rev = jax.grad(lambda xs: rj.unroll(cell, params, xs)[1].sum())(xs)
    np.testing.assert_allclose(fwd, rev, rtol=1e-5, atol=1e-6)
