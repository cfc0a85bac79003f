"""Truncated BPTT: full BPTT at k2 >= T, exact truncation, the k1 = k2 loop by hand, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_trees_close, normal, random_params

import rnnjax as rj
from rnnjax.train.tbptt import SubParams, tbptt_value_and_grad

B, T, F, H = 2, 8, 3, 4


def mse_loss(params, ys, targets):
    return jnp.mean((ys - targets) ** 2)


def weighted_sum(params, ys, weights):
    return jnp.sum(ys * weights)

TOL = dict(atol=1e-5, rtol=1e-5)


def setup(cell, seed=0):
    return random_params(cell, F, seed), normal(seed + 100, (B, T, F)), \
        normal(seed + 200, (B, T, H))


def chunk_sum(loss_fn, params, ys, targets, k1):
    return sum(loss_fn(params, ys[:, s:s + k1], targets[:, s:s + k1])
               for s in range(0, ys.shape[1], k1))


# -- (a) k2 >= T is full BPTT of the summed chunk losses ---------------------------------
def sq_loss(params, ys, targets):
    """A sum over the chunk's steps, so the summed chunk losses do not depend on k1."""
    return 0.5 * jnp.sum((ys - targets) ** 2) / ys.shape[0]


@pytest.mark.parametrize("cell", [rj.LSTM(H), rj.GRU(H)], ids=["lstm", "gru"])
def test_long_k2_is_full_bptt(cell):
    params, xs, targets = setup(cell)

    @jax.jit
    def full(p):
        carry, ys = rj.unroll(cell, p, xs)
        return sq_loss(p, ys, targets), carry

    (ref_loss, ref_carry), ref_grads = jax.value_and_grad(full, has_aux=True)(params)
    for k1, k2 in [(T, T), (T // 4, 3 * T)]:
        loss, grads, carry = tbptt_value_and_grad(cell, params, xs, targets, sq_loss, k1, k2)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
        assert_trees_close(grads, ref_grads, **TOL)
        assert_trees_close(carry, ref_carry, **TOL)


def test_head_in_loss_gets_gradients_and_stacked_model():
    rnn = rj.Stacked((rj.SimpleRNN(5), rj.SimpleRNN(H)))
    head = rj.Dense(2)
    params = {"rnn": random_params(rnn, F, 1), "head": random_params(head, H, 2)}
    xs, targets = normal(3, (B, T, F)), normal(4, (B, T, 2))

    def loss_fn(p, ys, t):
        return jnp.mean((head(p["head"], ys) - t) ** 2)

    @jax.jit
    def full(p):
        _, ys = rj.unroll(rnn, p["rnn"], xs)
        return chunk_sum(loss_fn, p, ys, targets, 2)

    ref_loss, ref_grads = jax.value_and_grad(full)(params)
    loss, grads, _ = tbptt_value_and_grad(SubParams(rnn, "rnn"), params, xs, targets,
                                          loss_fn, k1=2, k2=T)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    assert_trees_close(grads, ref_grads, **TOL)


# -- (b) truncation is exact --------------------------------------------------------------
@pytest.mark.parametrize("k1,k2", [(2, 5)])
def test_input_gradient_truncated_at_k2(k1, k2):
    """Loss on the last chunk: d loss / d x_t is 0 for t < T - k2, full BPTT after."""
    cell = rj.SimpleRNN(H)
    params, xs, _ = setup(cell, seed=2)
    weights = np.zeros((B, T, H), np.float32)
    weights[:, T - k1:] = np.random.default_rng(3).normal(size=(B, k1, H))
    weights = jnp.asarray(weights)

    def tbptt_loss(x):
        return tbptt_value_and_grad(cell, params, x, weights, weighted_sum, k1, k2)[0]

    def full_loss(x):
        return weighted_sum(params, rj.unroll(cell, params, x)[1], weights)

    g = np.asarray(jax.grad(tbptt_loss)(xs))
    g_full = np.asarray(jax.grad(full_loss)(xs))
    assert np.all(g[:, :T - k2] == 0.0)
    assert np.abs(g_full[:, :T - k2]).min() > 0  # the truncation really cut something
    np.testing.assert_allclose(g[:, T - k2:], g_full[:, T - k2:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k1,k2", [(2, 5), (3, 3), (4, 12)])
def test_linear_rnn_matches_analytic_truncated_gradient(k1, k2):
    """h_t = h_{t-1} rho I + x_t W_x, loss = sum(h_{T-1}): dL/dW_h and dL/dW_x in float64.

    d loss / d h_t = rho^(T-1-t) * ones, so with the carry cut k2 steps before the
    end,  dL/dW_h = sum_{t=T-k2}^{T-1} rho^(T-1-t) h_{t-1}^T 1,
          dL/dW_x = sum_{t=T-k2}^{T-1} rho^(T-1-t) x_t^T 1,
    dL/db   = B * sum_{t=T-k2}^{T-1} rho^(T-1-t)   per unit  (h_{-1} = 0).
    """
    steps, rho = 12, 0.9
    cell = rj.SimpleRNN(H, activation="identity")
    w_x = np.asarray(normal(4, (F, H)), np.float64)
    xs = np.asarray(normal(5, (B, steps, F)), np.float64)
    params = {"W_x": jnp.asarray(w_x, jnp.float32),
              "W_h": jnp.asarray(rho * np.eye(H), jnp.float32), "b": jnp.zeros(H, jnp.float32)}
    weights = np.zeros((B, steps, H), np.float32)
    weights[:, -1] = 1.0  # loss = sum of the last output

    h = np.zeros((steps + 1, B, H))  # h[t + 1] = h_t
    for t in range(steps):
        h[t + 1] = h[t] @ (rho * np.eye(H)) + xs[:, t] @ w_x
    ones = np.ones((B, H))
    ref_wh = sum(rho ** (steps - 1 - t) * h[t].T @ ones for t in range(steps - k2, steps))
    ref_wx = sum(rho ** (steps - 1 - t) * xs[:, t].T @ ones for t in range(steps - k2, steps))

    loss, grads, carry = tbptt_value_and_grad(cell, params, jnp.asarray(xs, jnp.float32),
                                              jnp.asarray(weights), weighted_sum, k1, k2)
    np.testing.assert_allclose(loss, h[-1].sum(), rtol=1e-5)
    np.testing.assert_allclose(carry, h[-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads["W_h"], ref_wh, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads["W_x"], ref_wx, rtol=1e-5, atol=1e-5)
    ref_b = B * sum(rho ** (steps - 1 - t) for t in range(steps - k2, steps)) * np.ones(H)
    np.testing.assert_allclose(grads["b"], ref_b, rtol=1e-5)


# -- (c) k1 = k2: the plain loop that detaches the carry every k steps ---------------------
def sequential_by_hand(cell, params, xs, targets, k, lengths=None):
    @jax.jit
    def total(p):
        carry, loss = None, 0.0
        for s in range(0, T, k):
            if carry is not None:
                carry = jax.lax.stop_gradient(carry)
            chunk_lengths = None if lengths is None else np.clip(lengths - s, 0, k)
            carry, ys = rj.unroll(cell, p, xs[:, s:s + k], carry=carry,
                                  seq_lengths=chunk_lengths)
            loss = loss + mse_loss(p, ys, targets[:, s:s + k])
        return loss, carry

    (loss, carry), grads = jax.value_and_grad(total, has_aux=True)(params)
    return loss, grads, carry


@pytest.mark.parametrize("k,with_lengths", [(2, False), (4, True)])
def test_k1_equals_k2_is_the_sequential_detach_loop(k, with_lengths):
    cell = rj.SimpleRNN(H)
    params, xs, targets = setup(cell, seed=5)
    lengths = np.array([T, 3]) if with_lengths else None
    ref = sequential_by_hand(cell, params, xs, targets, k, lengths)
    got = tbptt_value_and_grad(cell, params, xs, targets, mse_loss, k, k,
                               seq_lengths=None if lengths is None else jnp.asarray(lengths))
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5)
    assert_trees_close(got[1], ref[1], **TOL)
    assert_trees_close(got[2], ref[2], **TOL)


def test_overlapping_windows_with_lengths_match_windows_by_hand():
    """k1 < k2 < T: chunk j's loss through its own window, re-run by hand from the
    exact (stop_gradient) carry at the window start; lengths shift with the window."""
    k1, k2 = 2, 5
    cell = rj.SimpleRNN(H)
    params, xs, targets = setup(cell, seed=8)
    lengths = np.array([T, 5])

    @jax.jit
    def by_hand(p):
        loss = 0.0
        for end in range(k1, T + 1, k1):
            start = max(end - k2, 0)
            carry = None
            if start:
                carry, _ = rj.unroll(cell, p, xs[:, :start],
                                     seq_lengths=np.clip(lengths, 0, start))
                carry = jax.lax.stop_gradient(carry)
            _, ys = rj.unroll(cell, p, xs[:, start:end], carry=carry,
                              seq_lengths=np.clip(lengths - start, 0, end - start))
            loss = loss + mse_loss(p, ys[:, -k1:], targets[:, end - k1:end])
        return loss

    ref_loss, ref_grads = jax.value_and_grad(by_hand)(params)
    loss, grads, carry = tbptt_value_and_grad(cell, params, xs, targets, mse_loss, k1, k2,
                                              seq_lengths=jnp.asarray(lengths))
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    assert_trees_close(grads, ref_grads, **TOL)
    final = rj.unroll(cell, params, xs, seq_lengths=jnp.asarray(lengths))[0]
    assert_trees_close(carry, final, **TOL)


def test_k2_below_k1_is_k1_and_initial_carry_and_jit():
    cell = rj.Stacked((rj.SimpleRNN(5), rj.SimpleRNN(H)))   # a tuple carry
    params, xs, targets = setup(cell, seed=6)
    carry = (normal(7, (B, 5)), normal(8, (B, H)))
    a = tbptt_value_and_grad(cell, params, xs, targets, mse_loss, 4, 1, carry=carry)
    b = jax.jit(lambda p, x, c: tbptt_value_and_grad(cell, p, x, targets, mse_loss, 4, 4,
                                                     carry=c))(params, xs, carry)
    assert_trees_close(a, b, **TOL)
    full_carry, _ = rj.unroll(cell, params, xs, carry=carry)
    assert_trees_close(a[2], full_carry, **TOL)


# -- (d) errors ----------------------------------------------------------------------------
def test_bad_truncation_lengths_and_inputs_are_value_errors():
    cell = rj.GRU(H)
    params, xs, targets = setup(cell)
    call = lambda k1, k2, **kw: tbptt_value_and_grad(cell, params, kw.pop("xs", xs),
                                                     kw.pop("targets", targets), mse_loss,
                                                     k1, k2, **kw)
    with pytest.raises(ValueError, match=r"k1 = 3, T = 8"):
        call(3, 3)
    for bad in (0, -2, 1.5, True, None):
        with pytest.raises(ValueError, match="k1 must be a positive integer"):
            call(bad, 4)
        with pytest.raises(ValueError, match="k2 must be a positive integer"):
            call(4, bad)
    with pytest.raises(ValueError, match="targets must be"):
        call(4, 4, targets=targets[:, :5])
    with pytest.raises(ValueError, match="xs must have rank 3"):
        call(4, 4, xs=xs[0])
    with pytest.raises(ValueError, match="seq_lengths must lie in"):
        call(4, 4, seq_lengths=jnp.array([9, 1]))
    with pytest.raises(ValueError, match="carry must"):
        call(4, 4, carry=np.zeros((B, H + 1), np.float32))


# -- tbptt_loss: the truncated gradient as jax.grad of a loss ------------------------------
def test_tbptt_loss_gradient_is_the_truncated_gradient_inside_a_vmapped_train_step():
    import optax

    from rnnjax.train import make_train_step, sweep_states, sweep_step, tbptt_loss
    rnn, head = rj.GRU(H), rj.Dense(2)
    xs = normal(5, (B, T, F))
    labels = (normal(6, (B, T)) > 0).astype(jnp.int32)          # int targets: float0 tangents
    weights = jnp.ones((B, T)).at[:, :2].set(0.0)

    def loss_fn(p, ys, t):
        logits = head(p["head"], ys)
        ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), t[0][..., None], -1)[..., 0]
        return jnp.sum(ce * t[1])

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"rnn": rnn.init(k1, F), "head": head.init(k2, H)}

    model = SubParams(rnn, "rnn")
    truncated = lambda p, batch, key: (tbptt_loss(model, p, *batch, loss_fn, 2, 3), {})
    opt = optax.sgd(1.0)   # one step of SGD(lr 1): params - gradient
    state, _ = sweep_states(init, lambda: opt, seeds=[0, 1])
    new_state, metrics = jax.jit(sweep_step(make_train_step(truncated, opt)))(
        state, (xs, (labels, weights)))
    for m in range(2):
        params = jax.tree_util.tree_map(lambda x, m=m: x[m], state.params)
        loss, grads, _ = tbptt_value_and_grad(model, params, xs, (labels, weights), loss_fn,
                                              2, 3)
        np.testing.assert_allclose(metrics["loss"][m], loss, rtol=1e-6)
        stepped = jax.tree_util.tree_map(lambda x, m=m: x[m], new_state.params)
        assert_trees_close(stepped, jax.tree_util.tree_map(jnp.subtract, params, grads),
                           atol=1e-6, rtol=1e-6)
    # and it differs from full BPTT: the truncation matters for this loss
    full = jax.grad(lambda p: tbptt_loss(model, p, xs, (labels, weights), loss_fn, 2, T))(
        params)
    assert not np.allclose(full["rnn"]["W_h"], grads["rnn"]["W_h"], atol=1e-6)
