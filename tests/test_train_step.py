"""The train step (optax, clipping, jit, vmap over seeds) and the masked losses."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnjax.train.losses import accuracy, mse, softmax_cross_entropy
from rnnjax.train.step import TrainState, init_state, make_train_step


def regression_batch(seed, n=16, features=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    w_true = rng.normal(size=(features, 1)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(x @ w_true + 0.5)


def init_params(seed, features=3):
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(0.1 * rng.normal(size=(features, 1)), jnp.float32),
            "b": jnp.zeros((1,), jnp.float32)}


def loss_fn(params, batch, key):
    x, y = batch
    pred = x @ params["w"] + params["b"]
    return jnp.mean((pred - y) ** 2), {"pred_mean": jnp.mean(pred)}


def noisy_loss_fn(params, batch, key):
    """Uses the step's key (a multiplicative input noise), so seeds differ."""
    x, y = batch
    x = x * (1.0 + 0.1 * jax.random.normal(key, x.shape))
    return loss_fn(params, (x, y), key)


BATCH = regression_batch(0)


def test_step_decreases_loss_and_counts():
    step = jax.jit(make_train_step(loss_fn, optax.adam(0.1)))
    state = init_state(init_params(1), optax.adam(0.1), jax.random.key(2))
    losses = []
    for _ in range(20):
        state, metrics = step(state, BATCH)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.3 * losses[0]
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert int(state.step) == 20
    assert set(metrics) == {"loss", "grad_norm", "clipped", "pred_mean"}
    assert float(metrics["clipped"]) == 0.0  # no clip_norm: never clipped


def test_grad_norm_clipping_is_sgd_on_the_clipped_gradient():
    params = init_params(3)
    state = init_state(params, optax.sgd(1.0), jax.random.key(4))
    _, sub = jax.random.split(state.key)  # the key the step passes to loss_fn
    grads = jax.jit(jax.grad(lambda p: noisy_loss_fn(p, BATCH, sub)[0]))(params)
    norm = float(optax.tree.norm(grads))
    assert norm > 0.5

    for clip_norm in (0.25 * norm, 2.0 * norm, None):
        step = jax.jit(make_train_step(noisy_loss_fn, optax.sgd(1.0), clip_norm=clip_norm))
        new, metrics = step(state, BATCH)
        np.testing.assert_allclose(metrics["grad_norm"], norm, rtol=1e-6)
        acts = clip_norm is not None and norm > clip_norm
        assert float(metrics["clipped"]) == (1.0 if acts else 0.0)
        scale = clip_norm / norm if acts else 1.0
        for k in params:
            np.testing.assert_allclose(new.params[k], params[k] - scale * grads[k],
                                       rtol=1e-6, atol=1e-6)
        if acts:  # the applied update has exactly the clip norm
            update = jax.tree_util.tree_map(jnp.subtract, params, new.params)
            np.testing.assert_allclose(optax.tree.norm(update), clip_norm, rtol=1e-5)


def test_step_vmaps_over_seeds():
    optimizer = optax.adam(0.05)
    step = make_train_step(noisy_loss_fn, optimizer, clip_norm=1.0)
    seeds = jnp.arange(3)

    def init(seed):
        k_p, k_s = jax.random.split(jax.random.key(seed))
        params = {"w": 0.1 * jax.random.normal(k_p, (3, 1)), "b": jnp.zeros((1,))}
        return init_state(params, optimizer, k_s)

    def run(state):
        for _ in range(3):
            state, metrics = step(state, BATCH)
        return state, metrics

    states, metrics = jax.jit(jax.vmap(lambda s: run(init(s))))(seeds)
    one = jax.jit(lambda s: run(init(s)))
    for i, seed in enumerate(seeds):
        state_i, metrics_i = one(seed)
        for got, want in zip(jax.tree_util.tree_leaves((states.params, states.opt_state,
                                                        states.step, metrics)),
                             jax.tree_util.tree_leaves((state_i.params, state_i.opt_state,
                                                        state_i.step, metrics_i))):
            np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(jax.random.key_data(states.key[i]),
                                      jax.random.key_data(state_i.key))
    assert isinstance(states, TrainState)
    assert len(np.unique(np.asarray(metrics["loss"]))) == 3  # the seeds really differ


# -- losses -----------------------------------------------------------------------------
LENGTHS = np.array([4, 2, 0])


def test_softmax_cross_entropy_ignores_padding_and_matches_hand():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=(3, 4))
    got = softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(LENGTHS))

    # by hand, in float64, over the valid steps only
    log_p = logits - np.log(np.exp(logits.astype(np.float64)).sum(-1, keepdims=True))
    terms = [-log_p[b, t, labels[b, t]] for b in range(3) for t in range(LENGTHS[b])]
    np.testing.assert_allclose(got, np.mean(terms), rtol=1e-6)

    # anything past the lengths changes nothing, even non-finite-looking garbage
    changed, relabelled = logits.copy(), labels.copy()
    for b in range(3):
        changed[b, LENGTHS[b]:] = 1e4 * rng.normal(size=changed[b, LENGTHS[b]:].shape)
        relabelled[b, LENGTHS[b]:] = 4 - relabelled[b, LENGTHS[b]:]
    again = softmax_cross_entropy(jnp.asarray(changed), jnp.asarray(relabelled),
                                  jnp.asarray(LENGTHS))
    assert float(again) == float(got)
    # no lengths: the mean over all steps
    all_terms = [-log_p[b, t, labels[b, t]] for b in range(3) for t in range(4)]
    np.testing.assert_allclose(softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(labels)),
                               np.mean(all_terms), rtol=1e-6)


def test_mse_with_lengths_ignores_padding_and_matches_hand():
    rng = np.random.default_rng(1)
    pred = rng.normal(size=(3, 4, 2)).astype(np.float32)
    target = rng.normal(size=(3, 4, 2)).astype(np.float32)
    got = mse(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(LENGTHS))
    sq = [(pred[b, t] - target[b, t]).astype(np.float64) ** 2
          for b in range(3) for t in range(LENGTHS[b])]
    np.testing.assert_allclose(got, np.mean(sq), rtol=1e-6)
    pred2 = pred.copy()
    pred2[1, 2:] += 100.0
    pred2[2] -= 7.0
    assert float(mse(jnp.asarray(pred2), jnp.asarray(target), jnp.asarray(LENGTHS))) == float(got)
    np.testing.assert_allclose(mse(jnp.asarray(pred), jnp.asarray(target)),
                               np.mean((pred - target).astype(np.float64) ** 2), rtol=1e-6)
    # every length zero: no valid step, loss 0 rather than nan
    assert float(mse(jnp.asarray(pred), jnp.asarray(target), jnp.zeros(3, jnp.int32))) == 0.0


def test_accuracy():
    logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]],
                        [[0.0, 3.0], [1.0, 0.0], [0.0, 9.0]]])   # argmax [[0,1,0],[1,0,1]]
    labels = jnp.array([[0, 0, 1], [1, 1, 0]])
    assert float(accuracy(logits, labels)) == pytest.approx(2 / 6)
    # valid: row 0 steps 0, 1 (1 hit of 2); row 1 step 0 (1 hit of 1)
    assert float(accuracy(logits, labels, jnp.array([2, 1]))) == pytest.approx(2 / 3)
    assert float(accuracy(logits, labels, jnp.array([1, 1]))) == 1.0


def test_losses_without_lengths_take_one_label_per_sequence():
    """Many-to-one: logits [B, C] against labels [B], no time axis."""
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5], [0.3, 0.2, 0.1]])
    labels = np.array([0, 2, 1])
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.mean(log_p[np.arange(3), labels])
    assert float(softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))) == \
        pytest.approx(expected, rel=1e-6)
    assert float(accuracy(jnp.asarray(logits), jnp.asarray(labels))) == pytest.approx(1 / 3)
