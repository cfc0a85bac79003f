"""Each cell against an independent NumPy float64 reference, its initialisers,
and its gradients against finite differences."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
import scipy.stats
from helpers import CELLS, randomize
from jax.test_util import check_grads

import rnnjax as rj

B, T, I = 3, 9, 4


def setup(cell, seed=0, dtype=jnp.float32):
    k_p, k_x = jax.random.split(jax.random.key(seed))
    params = randomize(cell.init(k_p, I, dtype), seed)
    if isinstance(cell, rj.ClockworkRNN):  # keep the mask in params as init makes it
        params["W_h"] = params["W_h"] * cell.recurrent_mask()
    xs = jax.random.normal(k_x, (B, T, I), dtype)
    return params, xs


@pytest.mark.parametrize("name", CELLS)
def test_matches_reference_float64(name):
    cell = CELLS[name]
    with jax.enable_x64(True):
        params, xs = setup(cell, dtype=jnp.float64)
        lengths = np.array([T, 5, 1])
        carry, ys = rj.unroll(cell, params, xs, seq_lengths=lengths)
        ref_ys, ref_finals = reference.run(cell, params, xs, lengths)
        assert ys.dtype == jnp.float64
        np.testing.assert_allclose(ys, ref_ys, rtol=0, atol=1e-12)
        np.testing.assert_allclose(cell.hidden(carry),
                                   np.stack([np.atleast_1d(f[0] if isinstance(f, tuple) else f)
                                             for f in ref_finals]), atol=1e-12)


@pytest.mark.parametrize("name", CELLS)
def test_matches_reference_float32(name):
    cell = CELLS[name]
    params, xs = setup(cell, seed=1)
    _, ys = rj.unroll(cell, params, xs)
    ref_ys, _ = reference.run(cell, params, xs)
    assert ys.dtype == jnp.float32
    np.testing.assert_allclose(ys, ref_ys, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", CELLS)
def test_gradients_match_finite_differences(name):
    cell = CELLS[name]
    with jax.enable_x64(True):
        params, xs = setup(cell, seed=2, dtype=jnp.float64)
        xs = xs[:, :5]

        def loss(params, xs):
            carry, ys = rj.unroll(cell, params, xs, seq_lengths=jnp.array([5, 3, 2]))
            return jnp.sum(ys ** 2) + jnp.sum(cell.hidden(carry))

        # a hand-written backward (custom_vjp) is reverse-mode only
        modes = ("rev",) if getattr(cell, "loop_rule", None) else ("fwd", "rev")
        check_grads(loss, (params, xs), order=1, modes=modes, eps=1e-6,
                    atol=1e-7, rtol=1e-7)


class TestStep(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_step_is_pure_and_jittable(self):
        for name, cell in CELLS.items():
            params, xs = setup(cell)
            step = self.variant(lambda p, c, x, cell=cell: cell(p, c, x))
            carry0 = cell.initial_carry((B,))
            c1, y1 = step(params, carry0, xs[:, 0])
            c2, _y2 = step(params, carry0, xs[:, 0])
            chex.assert_trees_all_equal(c1, c2)
            chex.assert_shape(y1, (B, cell.hidden_size))
            chex.assert_trees_all_equal_shapes_and_dtypes(c1, carry0)
            # one step equals the first step of an unroll
            _, ys = rj.unroll(cell, params, xs)
            np.testing.assert_allclose(y1, ys[:, 0], atol=1e-6, err_msg=name)

    def test_unbatched_step(self):
        cell = rj.LSTM(5)
        params = cell.init(jax.random.key(0), 3)
        carry, y = cell(params, cell.initial_carry(), jnp.ones(3))
        chex.assert_shape([y, carry.h, carry.c], (5,))


def test_cells_are_hashable_static_config():
    for cell in CELLS.values():
        assert hash(cell) == hash(type(cell)(**{f: getattr(cell, f)
                                                for f in cell.__dataclass_fields__}))
    cell = CELLS["lstm"]
    params, xs = setup(cell)
    f = jax.jit(rj.unroll, static_argnums=0)
    np.testing.assert_allclose(f(cell, params, xs)[1], rj.unroll(cell, params, xs)[1],
                               atol=1e-6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.hidden_size = 3


# -- initialisers ------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.5, 1.0, 1.5])
def test_scaled_orthogonal_blocks(scale):
    for cell in [rj.SimpleRNN(8, recurrent_scale=scale), rj.LSTM(8, recurrent_scale=scale),
                 rj.GRU(8, recurrent_scale=scale)]:
        w = cell.init(jax.random.key(3), 5)["W_h"]
        for block in jnp.split(w, cell.gates, axis=1):
            np.testing.assert_allclose(np.linalg.svd(block, compute_uv=False),
                                       np.full(8, scale), atol=1e-5)


def test_irnn_is_identity_relu():
    cell = rj.IRNN(7, recurrent_scale=0.5)
    p = cell.init(jax.random.key(0), 3)
    np.testing.assert_array_equal(p["W_h"], 0.5 * np.eye(7))
    np.testing.assert_array_equal(p["b"], np.zeros(7))
    assert cell.activation == "relu"
    # with zero input an IRNN scales a positive state by recurrent_scale each step
    h, _ = cell.step(p, jnp.ones(7), jnp.zeros(7))
    np.testing.assert_allclose(h, 0.5 * np.ones(7))


def test_lstm_biases_and_glorot_inputs():
    cell = rj.LSTM(8, forget_bias=2.5)
    p = cell.init(jax.random.key(0), 16)
    np.testing.assert_array_equal(p["b"], np.r_[np.zeros(8), np.full(8, 2.5), np.zeros(16)])
    limit = np.sqrt(6 / (16 + 32))
    assert np.abs(p["W_x"]).max() <= limit and np.abs(p["W_x"]).max() > 0.8 * limit


def test_chrono_bias_spreads_time_constants_uniformly():
    # b = log u with u ~ U(1, 49): a keep gate with bias b holds about 1 + e^b steps
    u = np.exp(np.asarray(rj.initializers.chrono_bias(jax.random.key(0), 4000, 50), np.float64))
    assert u.min() >= 1 and u.max() <= 49
    assert scipy.stats.kstest(u, scipy.stats.uniform(1, 48).cdf).pvalue > 1e-3
    with pytest.raises(ValueError, match="chrono max_delay must be > 2"):
        rj.initializers.chrono_bias(jax.random.key(0), 4, 2)


@pytest.mark.parametrize("cell", [rj.LSTM(16, chrono=50), rj.PeepholeLSTM(16, chrono=50),
                                  rj.GRU(16, chrono=50)], ids=lambda c: type(c).__name__)
def test_chrono_init_sets_the_keep_gate_biases(cell):
    b = np.asarray(cell.init(jax.random.key(0), 3)["b"], np.float64)
    h = cell.hidden_size
    keep = b[h:2 * h]
    assert np.all((keep >= 0) & (keep <= np.log(49))) and np.unique(keep).size == h
    if isinstance(cell, rj.GRU):     # r and n biases stay zero
        np.testing.assert_array_equal(np.r_[b[:h], b[2 * h:]], 0)
    else:                            # the input gate opens as the forget gate closes
        np.testing.assert_array_equal(b[:h], -keep)
        np.testing.assert_array_equal(b[2 * h:], 0)
    with pytest.raises(ValueError, match="chrono max_delay must be > 2"):
        type(cell)(4, chrono=2).init(jax.random.key(0), 3)


def test_custom_recurrent_init_and_activation():
    cell = rj.SimpleRNN(4, activation=jnp.sin, recurrent_init=lambda k, s, d: jnp.full(s, 0.1, d))
    p = cell.init(jax.random.key(0), 2)
    np.testing.assert_array_equal(p["W_h"], np.full((4, 4), 0.1, np.float32))
    h, _ = cell(p, jnp.ones(4), jnp.zeros(2))
    np.testing.assert_allclose(h, np.sin(0.4 * np.ones(4)), atol=1e-7)


def test_gru_forms_differ_and_reset_after_has_b_hn():
    x = jax.random.normal(jax.random.key(1), (2, 3))
    p = randomize(rj.GRU(4, reset_after=True).init(jax.random.key(0), 3), 2)
    assert p["b_hn"].shape == (4,)
    h0 = jax.random.normal(jax.random.key(3), (2, 4))
    a = rj.GRU(4, reset_after=True)(p, h0, x)[1]
    without_b_hn = {k: v for k, v in p.items() if k != "b_hn"}
    b = rj.GRU(4, reset_after=False)(without_b_hn, h0, x)[1]
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match=r"unexpected params\['b_hn'\]"):
        rj.GRU(4, reset_after=False)(p, h0, x)


# -- clockwork ---------------------------------------------------------------
def test_clockwork_modules_tick_at_their_periods():
    cell = rj.ClockworkRNN(hidden_size=8, periods=(1, 2, 4, 8))
    params, _ = setup(cell)
    xs = jax.random.normal(jax.random.key(4), (1, 17, I))
    _, ys = rj.unroll(cell, params, xs)
    h = np.concatenate([np.zeros((1, 1, 8)), np.asarray(ys)], axis=1)[0]  # h_{-1} = 0
    for m, period in enumerate(cell.periods):
        units = slice(2 * m, 2 * m + 2)
        for t in range(17):
            changed = not np.allclose(h[t + 1, units], h[t, units])
            assert changed == (t % period == 0), (period, t)


def test_clockwork_masked_weights_never_act():
    cell = rj.ClockworkRNN(hidden_size=6, periods=(1, 2, 4))
    params, xs = setup(cell)
    mask = cell.recurrent_mask()
    noisy = dict(params, W_h=params["W_h"] + 10.0 * (1 - mask))
    np.testing.assert_array_equal(rj.unroll(cell, params, xs)[1],
                                  rj.unroll(cell, noisy, xs)[1])
    grad = jax.grad(lambda p: jnp.sum(rj.unroll(cell, p, xs)[1]))(params)["W_h"]
    assert np.all(np.asarray(grad)[mask == 0] == 0)
    assert np.any(np.asarray(grad)[mask == 1] != 0)


LOOP_RULE_CELLS = {
    "lstm": lambda use: rj.LSTM(6, use_loop_rule=use),
    "gru": lambda use: rj.GRU(6, use_loop_rule=use),
    "gru_reset_after": lambda use: rj.GRU(6, reset_after=True, use_loop_rule=use),
    "tanh": lambda use: rj.SimpleRNN(6, use_loop_rule=use),
    "relu": lambda use: rj.SimpleRNN(6, activation="relu", use_loop_rule=use)}


@pytest.mark.parametrize("name", LOOP_RULE_CELLS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, (9, 5, 0)])
def test_hand_written_backward_equals_autodiff(name, reverse, lengths):
    """The loop rule (hand-written backward) against autodiff of the generic scan of `step`:
    outputs, final carry, gradients of params, inputs and initial carry; also with
    remat (chunked re-run of the fast path vs jax.checkpoint of each step)."""
    ruled, plain = LOOP_RULE_CELLS[name](True), LOOP_RULE_CELLS[name](False)
    assert ruled.loop_rule is not None and plain.loop_rule is None
    params, xs = setup(ruled, seed=5)
    carry0 = randomize(ruled.initial_carry((B,)), 6)
    lengths = None if lengths is None else jnp.array(lengths)

    def loss(cell, params, xs, carry, remat):
        final, ys = rj.unroll(cell, params, xs, carry=carry, seq_lengths=lengths,
                              reverse=reverse, remat=remat)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(a ** 3) for a in jax.tree.leaves(final)), ys

    grad = lambda cell, remat: jax.value_and_grad(loss, argnums=(1, 2, 3), has_aux=True)(
        cell, params, xs, carry0, remat)
    reference = grad(plain, False)
    for remat in (False, True):
        chex.assert_trees_all_close(grad(ruled, remat), reference, atol=1e-5, rtol=1e-5)


def test_linear_rnn_fast_path_equals_autodiff_float64():
    """identity activation: outputs grow large, so compared in float64."""
    with jax.enable_x64(True):
        ruled, plain = (rj.SimpleRNN(6, activation="identity", use_loop_rule=use)
                        for use in (True, False))
        params, xs = setup(ruled, seed=7, dtype=jnp.float64)
        lengths = jnp.array([9, 4, 0])
        loss = lambda cell, p, xs: jnp.sum(jnp.sin(rj.unroll(cell, p, xs, seq_lengths=lengths)[1]))
        grads = [jax.grad(loss, argnums=(1, 2))(cell, params, xs) for cell in (ruled, plain)]
        chex.assert_trees_all_close(*grads, atol=0, rtol=1e-9)


@pytest.mark.parametrize("name", LOOP_RULE_CELLS)
def test_bfloat16_inputs_with_float32_params(name):
    """bfloat16 xs and float32 params compute in float32 (the carry too); the fast path's
    gradients come back in each primal's dtype and equal the generic loop's."""
    ruled, plain = LOOP_RULE_CELLS[name](True), LOOP_RULE_CELLS[name](False)
    params, xs = setup(ruled, seed=8)
    xs = xs.astype(jnp.bfloat16)

    def grads(cell, remat):
        loss = lambda p, xs: jnp.sum(jnp.sin(rj.unroll(cell, p, xs, remat=remat)[1]))
        return jax.grad(loss, argnums=(0, 1))(params, xs)

    carry, ys = rj.unroll(ruled, params, xs)
    assert ys.dtype == jnp.float32 and all(a.dtype == jnp.float32 for a in jax.tree.leaves(carry))
    reference = grads(plain, False)
    for remat in (False, True):
        got = grads(ruled, remat)
        assert got[1].dtype == jnp.bfloat16
        assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(got[0]))
        chex.assert_trees_all_close(got, reference, atol=1e-5, rtol=1e-5)
