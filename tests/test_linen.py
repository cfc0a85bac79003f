"""rnnjax.linen: the linen wrappers equal the functional API, and flax.linen's own
cells with their weights copied (`from_linen_cell`) equal ours."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import WRAPPED_MODELS, max_diff, normal, random_params, randomize

import rnnjax as rj
import rnnjax.linen as rjl

B, T, I = 3, 7, 3
LENGTHS = jnp.array([7, 4, 0])

MODELS = WRAPPED_MODELS


# Test data comes from NumPy and shapes from jax.eval_shape: on a 2-core CPU, running
# inits op by op (each op compiled on first use) costs more than the tests themselves.


def inputs(seed=0, shape=(B, T, I)):
    return normal(seed, shape)


def model_params(model, seed=1):
    return random_params(model, I, seed)


# -- the wrappers against the functional form -----------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_rnn_equals_unroll_values_and_grads(name):
    model = MODELS[name]
    p, xs = model_params(model), inputs()
    wrapped = rjl.RNN(model)

    def via_flax(p, reverse):
        return wrapped.apply({"params": {"cell": p}}, xs, LENGTHS, reverse=reverse)

    def via_unroll(p, reverse):
        return rj.unroll(model, p, xs, seq_lengths=LENGTHS, reverse=reverse)

    def loss(run):
        def f(p):
            carry, ys = run(p, False)
            return jnp.sum(ys ** 2) + sum(jnp.sum(c) for c in jax.tree_util.tree_leaves(carry))
        return f

    @jax.jit  # one compilation; op-by-op dispatch of scans and grads is slow on CPU
    def results(p):
        return {tag: (run(p, False), run(p, True), jax.grad(loss(run))(p))
                for tag, run in (("flax", via_flax), ("unroll", via_unroll))}

    out = results(p)
    chex.assert_trees_all_close(out["flax"], out["unroll"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_rnn_init_has_the_models_params_under_cell(name):
    model = MODELS[name]
    variables = jax.eval_shape(rjl.RNN(model).init, jax.random.key(0), inputs())
    assert list(variables) == ["params"] and list(variables["params"]) == ["cell"]
    chex.assert_trees_all_equal_shapes_and_dtypes(
        variables["params"]["cell"], jax.eval_shape(lambda: model.init(jax.random.key(0), I)))


def test_rnn_carry_time_major_and_jit():
    model = MODELS["stacked"]
    p, xs = model_params(model), inputs()
    carry = randomize(model.initial_carry((B,)), 5)
    wrapped = rjl.RNN(model, time_major=True, unroll=2, remat=True)
    xs_tm = jnp.swapaxes(xs, 0, 1)
    got = jax.jit(wrapped.apply)({"params": {"cell": p}}, xs_tm, LENGTHS, carry)
    want = rj.unroll(model, p, xs, carry=carry, seq_lengths=LENGTHS)
    chex.assert_trees_all_close(got[0], want[0], atol=1e-6, rtol=0)
    chex.assert_trees_all_close(got[1], jnp.swapaxes(want[1], 0, 1), atol=1e-6, rtol=0)
    assert wrapped.initial_carry((B,))[0].h.shape == (B, 5)


@pytest.mark.parametrize("name", ["lstm", "stacked"])
def test_cell_equals_functional_step(name):
    model = MODELS[name]
    p, xs = model_params(model), inputs()
    step = rjl.Cell(model)
    variables = jax.eval_shape(step.init, jax.random.key(0), None, xs[:, 0])
    chex.assert_trees_all_equal_shapes_and_dtypes(variables["params"]["cell"], p)
    carry_f = carry_j = randomize(step.initial_carry((B,)), 3)
    for t in range(3):
        carry_f, y_f = step.apply({"params": {"cell": p}}, carry_f, xs[:, t])
        carry_j, y_j = model(p, carry_j, xs[:, t])
        chex.assert_trees_all_close((carry_f, y_f), (carry_j, y_j), atol=1e-6, rtol=0)


def test_cell_inside_linen_rnn_equals_unroll():
    model = MODELS["gru"]
    p, xs = model_params(model), inputs()
    scanned = nn.RNN(rjl.Cell(model), return_carry=True)
    variables = jax.eval_shape(scanned.init, jax.random.key(0), xs)
    assert jax.tree_util.tree_structure(variables["params"]["cell"]["cell"]) == \
        jax.tree_util.tree_structure(p)
    carry, ys = scanned.apply({"params": {"cell": {"cell": p}}}, xs)
    chex.assert_trees_all_close((carry, ys), rj.unroll(model, p, xs), atol=1e-6, rtol=0)


def test_stacked_dropout_follows_deterministic():
    model = rj.Stacked([rj.LSTM(hidden_size=5), rj.LSTM(hidden_size=5)], dropout=0.5)
    p, xs = model_params(model), inputs()
    v = {"params": {"cell": p}}
    wrapped = rjl.RNN(model)
    with pytest.raises(ValueError, match="deterministic"):
        wrapped.apply(v, xs)
    _, off = wrapped.apply(v, xs, deterministic=True)
    chex.assert_trees_all_close(off, rj.unroll(model, p, xs)[1], atol=1e-6, rtol=0)
    train = jax.jit(lambda seed: rjl.RNN(model, deterministic=False).apply(
        v, xs, rngs={"dropout": jax.random.key(seed)})[1])
    a, a2, b = train(1), train(1), train(2)
    np.testing.assert_array_equal(a, a2)
    assert max_diff(a, off) > 1e-3 and max_diff(a, b) > 1e-3
    # the one-step wrapper draws its key the same way
    step = rjl.Cell(model, deterministic=False)
    carry = model.initial_carry((B,))
    _, y = step.apply(v, carry, xs[:, 0], rngs={"dropout": jax.random.key(1)})
    _, y_off = step.apply(v, carry, xs[:, 0], deterministic=True)
    assert max_diff(y, y_off) > 1e-3
    # a model without dropout needs neither the flag nor a dropout rng
    lstm = MODELS["lstm"]
    rjl.RNN(lstm, deterministic=False).apply({"params": {"cell": model_params(lstm)}}, xs)


def test_errors_name_the_argument():
    lstm = MODELS["lstm"]
    v = {"params": {"cell": model_params(lstm)}}
    with pytest.raises(ValueError, match="xs must have rank 3"):
        rjl.RNN(lstm).apply(v, jnp.ones((T, I)))
    with pytest.raises(ValueError, match="xs must have 3 features"):
        rjl.RNN(lstm).apply(v, jnp.ones((B, T, I + 1)))
    with pytest.raises(ValueError, match="rnnjax cell"):
        rjl.Cell(MODELS["bidirectional"]).init(jax.random.key(0), None, jnp.ones((B, I)))
    with pytest.raises(ValueError, match="MGUCell"):
        rjl.from_linen_cell(nn.MGUCell(features=4), {})
    with pytest.raises(ValueError, match="residual"):
        rjl.from_linen_cell(nn.SimpleCell(features=4, residual=True), {})
    with pytest.raises(ValueError, match="gate_fn"):
        rjl.from_linen_cell(nn.LSTMCell(features=4, gate_fn=nn.hard_sigmoid), {})


# -- flax.linen's own cells with copied weights -------------------------------------


H = 5
LINEN = {
    "LSTMCell": nn.LSTMCell(features=H),
    "OptimizedLSTMCell": nn.OptimizedLSTMCell(features=H),
    "GRUCell": nn.GRUCell(features=H),
    "SimpleCell": nn.SimpleCell(features=H),
}
EXPECTED = {"LSTMCell": rj.LSTM(H), "OptimizedLSTMCell": rj.LSTM(H),
            "GRUCell": rj.GRU(H, reset_after=True), "SimpleCell": rj.SimpleRNN(H)}


def to_rnnjax_carry(cell, linen_carry):
    """flax's LSTM carry is (c, h); ours is LSTMCarry(h, c). Other cells: h both."""
    if isinstance(cell, rj.LSTM):
        c, h = linen_carry
        return rj.LSTMCarry(h=h, c=c)
    return linen_carry


def linen_setup(name):
    lin, xs = LINEN[name], inputs()
    carry0 = lin.initialize_carry(jax.random.key(0), xs[:, 0].shape)
    shapes = jax.eval_shape(lin.init, jax.random.key(1), carry0, xs[:, 0])["params"]
    params = randomize(shapes, 2)
    cell, p = rjl.from_linen_cell(lin, params)
    assert cell == EXPECTED[name]
    chex.assert_trees_all_equal_shapes_and_dtypes(
        p, jax.eval_shape(lambda: cell.init(jax.random.key(0), I)))
    return lin, params, cell, p, xs


@pytest.mark.parametrize("name", LINEN)
def test_linen_cell_steps_equal(name):
    lin, params, cell, p, xs = linen_setup(name)
    # a random start state checks the carry order as well
    carry_l = randomize(lin.initialize_carry(jax.random.key(0), xs[:, 0].shape), 4)
    carry_r = to_rnnjax_carry(cell, carry_l)
    for t in range(4):
        carry_l, y_l = lin.apply({"params": params}, carry_l, xs[:, t])
        carry_r, y_r = cell(p, carry_r, xs[:, t])
        assert max_diff(y_l, y_r) <= 1e-5
        assert max_diff(to_rnnjax_carry(cell, carry_l), carry_r) <= 1e-5


@pytest.mark.parametrize("name", LINEN)
def test_linen_rnn_sequence_equals(name):
    lin, params, cell, p, xs = linen_setup(name)
    lengths = jnp.array([7, 4, 1])  # flax's carry selection needs lengths >= 1
    carry_l, ys_l = nn.RNN(lin, return_carry=True).apply(
        {"params": {"cell": params}}, xs, seq_lengths=lengths)
    carry_r, ys_r = rjl.RNN(cell).apply({"params": {"cell": p}}, xs, lengths)
    valid = (jnp.arange(T)[None, :] < lengths[:, None])[..., None]
    # flax leaves the outputs past a sequence's length unmasked; we zero them
    assert max_diff(jnp.where(valid, ys_l, 0.0), ys_r) <= 1e-5
    assert bool((jnp.where(valid, 0.0, ys_r) == 0).all())
    assert max_diff(to_rnnjax_carry(cell, carry_l), carry_r) <= 1e-5
