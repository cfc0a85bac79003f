"""Linear recurrences (LRU, MinGRU, MinLSTM): the associative and the sequential
scan against stepping the cell, resets against running each segment alone, the cells against their
formulas, and the probe's answers against the analytic ones."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import normal

import rnnjax as rj
from rnnjax import probe

LINEAR = {
    "lru": rj.LRU(hidden_size=5, state_size=4, r_min=0.6, r_max=0.99),
    "mingru": rj.MinGRU(hidden_size=5),
    "minlstm": rj.MinLSTM(hidden_size=5),
}
LENGTHS = jnp.array([9, 5, 0, 7])
RESETS = jnp.asarray(np.random.default_rng(7).random((4, 9)) < 0.25)


def sequential(cell):
    return dataclasses.replace(cell, parallel_scan=False)


def setup(cell, seed=0, dtype=jnp.float32):
    params = cell.init(jax.random.key(seed), 3, dtype)
    xs = normal(seed + 1, (4, 9, 3)).astype(dtype)
    carry = normal(seed + 2, (4, cell.initial_carry(()).shape[-1])).astype(dtype)
    return params, xs, carry


@functools.cache
def jitted_step(cell):
    """One step of `cell` from the raw input, compiled once per cell."""
    return jax.jit(lambda params, h, x: cell.step(params, h, cell.project_inputs(params, x)))


def stepwise(cell, params, xs, carry, lengths=None, resets=None, reverse=False):
    """The reference: `cell.step` one row and one step at a time, in Python, with
    `unroll`'s documented semantics written out (lengths, reverse within lengths,
    resets restarting from the initial carry)."""
    batch, steps = xs.shape[:2]
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    resets = np.zeros((batch, steps), bool) if resets is None else np.asarray(resets)
    finals, outputs = [], np.zeros((batch, steps, cell.hidden_size))
    for row in range(batch):
        n = int(lengths[row])
        order = range(n - 1, -1, -1) if reverse else range(n)
        h = carry[row]
        for t in order:
            # forwards a segment starts at a reset; backwards it starts at the step
            # before the next segment's reset
            if (not reverse and resets[row, t]) or (reverse and t + 1 < n
                                                     and resets[row, t + 1]):
                h = carry[row]
            h, y = jitted_step(cell)(params, h, xs[row, t])
            outputs[row, t] = y
        finals.append(h)
    return np.stack(finals), outputs


@pytest.mark.parametrize("name", LINEAR)
@pytest.mark.parametrize("reverse, options", [(False, "plain"), (False, "both"),
                                              (True, "plain"), (True, "both")])
def test_both_scans_equal_stepping_the_cell(name, reverse, options):
    cell = LINEAR[name]
    params, xs, carry = setup(cell)
    kwargs = {} if options == "plain" else dict(seq_lengths=LENGTHS, resets=RESETS)
    expected = stepwise(cell, params, xs, carry, kwargs.get("seq_lengths"),
                        kwargs.get("resets"), reverse)
    for model in (cell, sequential(cell)):
        got = rj.unroll(model, params, xs, carry, reverse=reverse, **kwargs)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", LINEAR)
def test_parallel_and_sequential_agree_to_1e10_in_float64_with_their_gradients(name):
    cell = LINEAR[name]
    with jax.enable_x64(True):
        params, xs, carry = setup(cell, 3, jnp.float64)

        def loss(p, model):
            final, ys = rj.unroll(model, p, xs, carry, seq_lengths=LENGTHS, resets=RESETS)
            return jnp.sum(ys ** 2) + jnp.sum(jnp.sin(final))

        for model in (cell, sequential(cell)):
            assert rj.unroll(model, params, xs, carry)[1].dtype == jnp.float64
        value, grads = jax.value_and_grad(loss)(params, cell)
        value_seq, grads_seq = jax.value_and_grad(loss)(params, sequential(cell))
        np.testing.assert_allclose(value, value_seq, rtol=1e-10)
        for g, e in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(grads_seq)):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)


def segments(row_resets, length):
    """[(start, stop)] of the segments of one row, up to its length."""
    if length == 0:
        return []
    starts = [0] + [t for t in range(1, length) if row_resets[t]]
    return list(zip(starts, starts[1:] + [length]))


MODELS = {
    "lstm": rj.LSTM(hidden_size=4),                      # a loop rule: the generic scan runs
    "lru": LINEAR["lru"],
    "bidirectional": rj.Bidirectional(rj.LSTM(hidden_size=3), rj.MinGRU(hidden_size=2)),
    "stacked": rj.Stacked([rj.GRU(hidden_size=3), rj.LRU(hidden_size=3)]),
}


@pytest.mark.parametrize("name, reverse", [("lstm", False), ("lru", False), ("lru", True),
                                           ("bidirectional", False), ("stacked", False)])
def test_resets_equal_running_each_segment_alone(name, reverse):
    """The reference: every segment of every row run by itself from the initial carry."""
    model = MODELS[name]
    params = model.init(jax.random.key(1), 3)
    xs = normal(5, (4, 9, 3))
    carry0 = model.initial_carry((1,))
    final, ys = rj.unroll(model, params, xs, seq_lengths=LENGTHS, resets=RESETS,
                          reverse=reverse)
    for b in range(4):
        length = int(LENGTHS[b])
        expected = np.zeros(ys.shape[1:])
        last_final = None
        for start, stop in segments(np.asarray(RESETS[b]), length):
            seg_final, seg_ys = rj.unroll(model, params, xs[b:b + 1, start:stop], carry0,
                                          reverse=reverse)
            expected[start:stop] = seg_ys[0]
            if last_final is None or not reverse:
                last_final = seg_final if not reverse or last_final is None else last_final
            if reverse and start == 0:
                last_final = seg_final   # read backwards, the first segment ends last
        np.testing.assert_allclose(ys[b], expected, rtol=1e-5, atol=1e-5)
        if length and not isinstance(model, rj.Bidirectional):
            for g, e in zip(jax.tree_util.tree_leaves(final),
                            jax.tree_util.tree_leaves(last_final)):
                np.testing.assert_allclose(g[b], e[0], rtol=1e-5, atol=1e-5)


def test_resets_are_checked():
    cell = LINEAR["mingru"]
    params, xs, _ = setup(cell)
    with pytest.raises(ValueError, match=r"resets must have shape \(4, 9\)"):
        rj.unroll(cell, params, xs, resets=RESETS[:, :5])
    with pytest.raises(ValueError, match="resets must be a bool array"):
        rj.unroll(cell, params, xs, resets=RESETS.astype(jnp.int32))


def test_lru_equals_its_formula_in_complex_numpy():
    cell = LINEAR["lru"]
    params, xs, _ = setup(cell, 4)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    gamma = np.sqrt(1 - np.abs(lam) ** 2)
    b, c = p["B_re"] + 1j * p["B_im"], p["C_re"] + 1j * p["C_im"]
    x = np.zeros((4, 4), complex)
    expected = []
    for t in range(9):
        u = np.asarray(xs[:, t], np.float64)
        x = lam * x + gamma * (u @ b)
        expected.append((x @ c).real + u @ p["D"])
    final, ys = rj.unroll(cell, params, xs)
    np.testing.assert_allclose(ys, np.stack(expected, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(final, np.concatenate([x.real, x.imag], -1), atol=1e-5)


def test_lru_eigenvalues_lie_on_the_ring_and_the_normalisation_holds_the_scale():
    cell = rj.LRU(hidden_size=8, state_size=2000, r_min=0.4, r_max=0.9, max_phase=np.pi)
    lam = np.asarray(cell.eigenvalues(cell.init(jax.random.key(0), 3)))
    radius = np.abs(lam)
    assert radius.min() >= 0.4 - 1e-6 and radius.max() <= 0.9 + 1e-6
    # uniform by area: P(|lambda|^2 <= r^2) is linear in r^2
    assert abs(np.mean(radius ** 2 <= 0.65 ** 2) - (0.65 ** 2 - 0.16) / (0.81 - 0.16)) < 0.04
    assert np.angle(lam).min() >= 0 and np.angle(lam).max() <= np.pi
    # With gamma, the impulse response's energy sum_t |gamma lambda^t|^2 = 1 - |lambda|^2T
    # (the state's variance under unit white noise) does not grow as |lambda| -> 1.
    radii, steps = np.array([0.5, 0.999]), 4000
    cell = rj.LRU(hidden_size=4, state_size=2)
    params = cell.init(jax.random.key(1), 1)
    eye, zero = jnp.eye(2), jnp.zeros((2, 2))
    params = {**params, "nu_log": jnp.log(-jnp.log(jnp.asarray(radii, jnp.float32))),
              "B_re": jnp.ones((1, 2)), "B_im": jnp.zeros((1, 2)), "D": jnp.zeros((1, 4)),
              "C_re": jnp.concatenate([eye, zero], 1), "C_im": jnp.concatenate([zero, -eye], 1)}
    impulse = jnp.zeros((1, steps, 1)).at[0, 0, 0].set(1.0)
    _, ys = rj.unroll(cell, params, impulse)          # ys = [Re x_t, Im x_t]
    energy = np.sum(np.asarray(ys[0, :, :2], np.float64) ** 2
                    + np.asarray(ys[0, :, 2:], np.float64) ** 2, axis=0)
    np.testing.assert_allclose(energy, 1 - radii ** (2 * steps), rtol=1e-3)


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_minimal_cells_equal_their_formulas(name):
    cell = LINEAR[name]
    params, xs, carry = setup(cell, 6)
    x, h = np.asarray(xs[:, 0], np.float64), np.asarray(carry, np.float64)
    pre = x @ np.asarray(params["W_x"], np.float64) + np.asarray(params["b"], np.float64)
    sig = lambda v: 1 / (1 + np.exp(-v))
    if name == "mingru":
        z, cand = sig(pre[:, :5]), pre[:, 5:]
        expected = (1 - z) * h + z * cand
    else:
        f, i, cand = sig(pre[:, :5]), sig(pre[:, 5:10]), pre[:, 10:]
        expected = f / (f + i) * h + i / (f + i) * cand
    new, y = cell(params, carry, xs[:, 0])
    np.testing.assert_allclose(new, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def diagonal_lru(radii, steps=12):
    """An LRU with the given |lambda| (state size len(radii)) and inputs xs [2, T, 2]."""
    cell = rj.LRU(hidden_size=3, state_size=len(radii))
    params = cell.init(jax.random.key(0), 2)
    params = {**params, "nu_log": jnp.log(-jnp.log(jnp.asarray(radii, jnp.float32)))}
    return cell, params, normal(9, (2, steps, 2))


def test_probe_jacobian_norms_of_a_diagonal_recurrence_are_powers_of_its_radius():
    radii = [0.95, 0.7, 0.3]
    cell, params, xs = diagonal_lru(radii)
    norms = probe.jacobian_norms(cell, params, xs, method="exact")
    steps = xs.shape[1]
    np.testing.assert_allclose(norms, 0.95 ** (steps - 1 - np.arange(steps)), rtol=1e-4)


def test_probe_lyapunov_spectrum_of_a_diagonal_recurrence_is_log_radius():
    radii = [0.95, 0.7, 0.3]
    cell, params, xs = diagonal_lru(radii)
    spectrum = probe.lyapunov_spectrum(cell, params, xs)
    expected = np.sort(np.log(np.repeat(radii, 2)))[::-1]   # real and imaginary parts
    np.testing.assert_allclose(spectrum, expected, rtol=1e-4, atol=1e-5)


def test_param_sensitivity_equals_the_derivative_of_a_geometric_sum():
    """h_T = sum_j w^j x for the linear scalar RNN h_t = w h_{t-1} + x with x = 1, so
    dh_T/dw = sum_j j w^(j-1), which grows like 1 / (1 - w)^2 as w -> 1, and
    dh_T/dW_x = sum_j w^j."""
    cell = rj.SimpleRNN(hidden_size=1, activation="identity")
    steps = 200
    for w in (0.5, 0.9, 0.99):
        params = {"W_x": jnp.ones((1, 1)), "W_h": jnp.full((1, 1), w), "b": jnp.zeros(1)}
        sens = probe.param_sensitivity(cell, params, jnp.ones((2, steps, 1)))
        j = np.arange(steps)
        np.testing.assert_allclose(sens["W_h"], np.sum(j[1:] * w ** (j[1:] - 1.0)), rtol=1e-4)
        np.testing.assert_allclose(sens["W_x"], np.sum(w ** j), rtol=1e-5)
        np.testing.assert_allclose(sens["b"], np.sum(w ** j), rtol=1e-5)


def test_linear_cells_by_name_and_bad_options():
    assert isinstance(rj.cells.make("lru", 4), rj.LRU)
    assert isinstance(rj.cells.make("minlstm", 4), rj.MinLSTM)
    with pytest.raises(ValueError, match="r_min and r_max"):
        rj.LRU(hidden_size=4, r_min=0.9, r_max=0.5)


def test_probe_gradient_norms_through_the_lru_output():
    """With every |lambda| = r and the loss on the last output, ||dL/dh_k|| =
    r^(T-1-k) ||dL/dh_{T-1}||, the output read through C and D."""
    cell, params, xs = diagonal_lru([0.8, 0.8, 0.8], steps=8)
    w = normal(3, (3,))
    loss = lambda ys: jnp.sum(ys[:, -1] @ w)
    norms = probe.hidden_grad_norms(cell, params, xs, loss)
    np.testing.assert_allclose(norms, norms[-1] * 0.8 ** (7 - np.arange(8)), rtol=1e-4)


def test_probe_one_pass_equals_the_naive_probe_on_the_lru():
    # the naive probe compiles a program per step: a short sequence
    cell, params, xs = diagonal_lru([0.8, 0.5, 0.3], steps=5)
    w = normal(3, (3,))
    loss = lambda ys: jnp.sum(ys[:, -1] @ w)
    norms = probe.hidden_grad_norms(cell, params, xs, loss)
    naive = probe.naive_hidden_grad_norms(cell, params, xs, loss).mean(axis=0)
    np.testing.assert_allclose(norms, naive, rtol=1e-4)
