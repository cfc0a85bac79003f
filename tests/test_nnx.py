"""rnnjax.nnx: the NNX wrappers equal the functional API (values, grads, an optimizer
step) with the same params, under nnx.jit, and inside flax.nnx's own RNN."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from helpers import WRAPPED_MODELS, max_diff, normal, random_params, randomize

import rnnjax as rj
import rnnjax.nnx as rjn

B, T, I = 3, 7, 3
LENGTHS = jnp.array([7, 4, 0])

MODELS = WRAPPED_MODELS


# Params come from NumPy (`params=`), shapes from eval_shape: on a 2-core CPU an
# eager init costs more than the tests themselves.


def inputs(seed=0, shape=(B, T, I)):
    return normal(seed, shape)


def model_params(model, seed=1):
    return random_params(model, I, seed)


def as_params(module, state):
    """A State over `module` (grads from nnx.grad) as the model's params pytree."""
    like = nnx.clone(module)
    nnx.update(like, state)
    return like.get_params()


def total(carry, ys):
    """A scalar loss that reads every output and every leaf of the final carry."""
    return jnp.sum(ys ** 2) + sum(jnp.sum(c) for c in jax.tree_util.tree_leaves(carry))


# -- the wrappers against the functional form -----------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_rnn_equals_unroll_values_and_grads(name):
    model = MODELS[name]
    p, xs = model_params(model), inputs()
    carry0 = randomize(model.initial_carry((B,)), 5)
    module = rjn.RNN(model, params=p)

    @nnx.jit  # one compilation; op-by-op dispatch of scans and grads is slow on CPU
    def results(module, p):
        def run_nnx(m, reverse, carry):
            return m(xs, LENGTHS, carry, reverse=reverse)

        def run_fn(p, reverse, carry):
            return rj.unroll(model, p, xs, carry=carry, seq_lengths=LENGTHS, reverse=reverse)

        def grads(run, grad, arg):
            return grad(lambda a, r, c: total(*run(a, r, c)))(arg, False, None), \
                grad(lambda a, r, c: total(*run(a, r, c)))(arg, True, carry0)

        g_nnx = grads(run_nnx, nnx.grad, module)
        return ((run_nnx(module, False, None), run_nnx(module, True, carry0),
                 tuple(as_params(module, g) for g in g_nnx)),
                (run_fn(p, False, None), run_fn(p, True, carry0), grads(run_fn, jax.grad, p)))

    got, want = results(module, p)
    chex.assert_trees_all_close(got, want, atol=1e-6, rtol=0)
    assert max_diff(got[2][0], jax.tree_util.tree_map(jnp.zeros_like, p)) > 1e-3


@pytest.mark.parametrize("name", MODELS)
def test_init_holds_the_models_params(name):
    model = MODELS[name]
    abstract = nnx.eval_shape(lambda: rjn.RNN(model, I, rngs=nnx.Rngs(0)))
    want = jax.eval_shape(lambda: model.init(jax.random.key(0), I))
    chex.assert_trees_all_equal_shapes_and_dtypes(abstract.get_params(), want)
    # one nnx.Param per array, named by its path in the rnnjax pytree; nothing else
    names = [("params", *(getattr(k, "idx", getattr(k, "key", None)) for k in path))
             for path, _ in jax.tree_util.tree_flatten_with_path(want)[0]]
    assert sorted(map(str, names)) == sorted(
        str(path) for path, _ in nnx.to_flat_state(nnx.state(abstract, nnx.Param)))
    assert set(nnx.state(abstract)) == {"params"}


def test_init_draws_from_the_params_stream_and_weights_move_both_ways():
    model = rj.IRNN(hidden_size=5)  # identity recurrence: a cheap eager init
    module = rjn.RNN(model, I, rngs=nnx.Rngs(params=3))
    chex.assert_trees_all_equal(module.get_params(), model.init(nnx.Rngs(params=3).params(), I))
    p2, xs = model_params(model, seed=7), inputs()
    module.set_params(p2)
    chex.assert_trees_all_equal(module(xs), rj.unroll(model, p2, xs))
    again = rjn.RNN(model, params=module.get_params())
    chex.assert_trees_all_equal(nnx.state(again), nnx.state(module))


def test_nnx_jit_carries_param_updates_and_time_major():
    model = MODELS["stacked"]
    p, xs = model_params(model), inputs()
    module = rjn.RNN(model, params=p, time_major=True, unroll=2, remat=True)

    @nnx.jit
    def scale_and_run(m, xs_tm):
        m.set_params(jax.tree_util.tree_map(lambda w: 0.5 * w, m.get_params()))
        return m(xs_tm, LENGTHS)

    half = jax.tree_util.tree_map(lambda w: 0.5 * w, p)
    carry, ys = scale_and_run(module, jnp.swapaxes(xs, 0, 1))
    want_carry, want_ys = rj.unroll(model, half, xs, seq_lengths=LENGTHS)
    chex.assert_trees_all_close((carry, jnp.swapaxes(ys, 0, 1)), (want_carry, want_ys),
                                atol=1e-6, rtol=0)
    chex.assert_trees_all_close(module.get_params(), half, atol=0, rtol=0)
    assert module.initial_carry((B,))[0].h.shape == (B, 5)


def test_optimizer_step_equals_functional_step():
    model = MODELS["stacked"]
    p, xs = model_params(model), inputs()
    targets = inputs(seed=9, shape=(B, T, 4))
    tx = optax.adam(1e-2)

    def loss_fn(ys):
        return jnp.mean((ys - targets) ** 2)

    module = rjn.RNN(model, params=p)
    optimizer = nnx.Optimizer(module, tx, wrt=nnx.Param)

    @nnx.jit
    def nnx_step(module, optimizer):
        grads = nnx.grad(lambda m: loss_fn(m(xs, LENGTHS)[1]))(module)
        optimizer.update(module, grads)

    @jax.jit
    def fn_step(p, opt_state):
        grads = jax.grad(lambda p: loss_fn(rj.unroll(model, p, xs, seq_lengths=LENGTHS)[1]))(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state

    want, opt_state = p, tx.init(p)
    for _ in range(2):  # the second step reads the optimizer state of the first
        nnx_step(module, optimizer)
        want, opt_state = fn_step(want, opt_state)
    chex.assert_trees_all_close(module.get_params(), want, atol=1e-6, rtol=0)
    assert max_diff(want, p) > 1e-3


@pytest.mark.parametrize("name", ["lstm", "stacked"])
def test_cell_equals_functional_step(name):
    model = MODELS[name]
    p, xs = model_params(model), inputs()
    step = rjn.Cell(model, params=p)
    carry_n, y_n = step(None, xs[:, 0])
    carry_j, y_j = model(p, model.initial_carry((B,)), xs[:, 0])
    chex.assert_trees_all_close((carry_n, y_n), (carry_j, y_j), atol=1e-6, rtol=0)
    for t in range(1, 3):
        carry_n, y_n = step(carry_n, xs[:, t])
        carry_j, y_j = model(p, carry_j, xs[:, t])
        chex.assert_trees_all_close((carry_n, y_n), (carry_j, y_j), atol=1e-6, rtol=0)


def test_cell_inside_nnx_rnn_equals_unroll():
    model = MODELS["gru"]
    p, xs = model_params(model), inputs()
    scanned = nnx.RNN(rjn.Cell(model, params=p), return_carry=True)
    carry, ys = scanned(xs)
    chex.assert_trees_all_close((carry, ys), rj.unroll(model, p, xs), atol=1e-6, rtol=0)


def test_stacked_dropout_follows_deterministic():
    model = rj.Stacked([rj.LSTM(hidden_size=5), rj.LSTM(hidden_size=5)], dropout=0.5)
    p, xs = model_params(model), inputs()
    module = rjn.RNN(model, params=p, rngs=nnx.Rngs(dropout=1))
    with pytest.raises(ValueError, match="deterministic"):
        module(xs)
    _, off = module(xs, deterministic=True)
    chex.assert_trees_all_close(off, rj.unroll(model, p, xs)[1], atol=1e-6, rtol=0)
    # a key at call time is the functional form's key; the stored stream moves on
    key = jax.random.key(4)
    _, on = module(xs, deterministic=False, rngs=key)
    chex.assert_trees_all_close(on, rj.unroll(model, p, xs, key=key)[1], atol=1e-6, rtol=0)
    training = nnx.view(module, deterministic=False)
    _, a = training(xs)
    _, b = training(xs)
    assert max_diff(a, off) > 1e-3 and max_diff(a, b) > 1e-3
    _, off_again = nnx.view(training, deterministic=True)(xs)
    np.testing.assert_array_equal(off_again, off)
    with pytest.raises(ValueError, match="rngs"):
        rjn.RNN(model, params=p, deterministic=False)(xs)
    # the one-step wrapper draws its key the same way
    step = rjn.Cell(model, params=p, deterministic=False)
    carry = model.initial_carry((B,))
    _, y = step(carry, xs[:, 0], rngs=nnx.Rngs(dropout=2))
    chex.assert_trees_all_close(
        y, model(p, carry, xs[:, 0], nnx.Rngs(dropout=2).dropout())[1], atol=1e-6, rtol=0)
    assert max_diff(y, step(carry, xs[:, 0], deterministic=True)[1]) > 1e-3
    # a model without dropout needs neither the flag nor a dropout rng
    lstm = MODELS["lstm"]
    rjn.RNN(lstm, params=model_params(lstm), deterministic=False)(xs)


def test_errors_name_the_argument():
    lstm = MODELS["lstm"]
    p = model_params(lstm)
    with pytest.raises(TypeError, match=r"rngs must be an nnx\.Rngs"):
        rjn.RNN(lstm, I, rngs=0)
    with pytest.raises(ValueError, match="input_size and rngs"):
        rjn.RNN(lstm, I)
    with pytest.raises(ValueError, match="input_size must be a positive integer"):
        rjn.RNN(lstm, 0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="input_size must match params"):
        rjn.RNN(lstm, I + 1, params=p)
    with pytest.raises(ValueError, match="params must"):
        rjn.RNN(lstm, params={"W_x": p["W_x"]})
    with pytest.raises(ValueError, match="params must"):
        rjn.RNN(MODELS["stacked"], params=p)
    with pytest.raises(ValueError, match="params must have leaf shapes"):
        rjn.RNN(lstm, params=p).set_params({**p, "b": p["b"][:-1]})
    with pytest.raises(TypeError, match="model must be an rnnjax model"):
        rjn.RNN("lstm", params=p)
    with pytest.raises(TypeError, match="cell must be an rnnjax cell"):
        rjn.Cell(MODELS["bidirectional"], params=model_params(MODELS["bidirectional"]))
    with pytest.raises(ValueError, match="xs must have rank 3"):
        rjn.RNN(lstm, params=p)(jnp.ones((T, I)))
    with pytest.raises(ValueError, match="xs must have 3 features"):
        rjn.RNN(lstm, params=p)(jnp.ones((B, T, I + 1)))
    with pytest.raises(ValueError, match="x must have 3 features"):
        rjn.Cell(lstm, params=p)(None, jnp.ones((B, I + 1)))
    with pytest.raises(ValueError, match="carry_init"):
        rjn.Cell(lstm, params=p).initialize_carry((B, I), carry_init=jnp.zeros)
