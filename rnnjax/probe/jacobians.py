"""Jacobians of the recurrence: norms of dh_{T-1}/dh_k and Lyapunov exponents.

The state of a cell is the vector of its float carry leaves (h for SimpleRNN/GRU,
(h, c) for the LSTMs; a clockwork cell's step counter is not state). Everything is
per sequence and then averaged over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from rnnjax import _checks, _linalg
from rnnjax.loop.flat import flat_step, split_carry


def _state_step(cell, params, carry_example):
    """`rnnjax.loop.flat.flat_step` without the output: `step(state, aux, xp) ->
    (state, aux)`, and the initial `(state, aux)`."""
    step, initial = flat_step(cell, params, carry_example)
    return (lambda state, aux, xp: step(state, aux, xp)[0]), initial


def hidden_mask(cell, carry_example):
    """[S] bool: which entries of one sequence's flat state are the hidden state h."""
    zeros = jax.tree_util.tree_map(jnp.zeros_like, carry_example)
    marked = cell.replace_hidden(zeros, jnp.ones_like(cell.hidden(zeros)))
    leaves, _, is_float = split_carry(marked)
    return ravel_pytree([l for l, f in zip(leaves, is_float) if f])[0] != 0


def step_jacobians(cell, params, xs, carry=None):
    """The per-step state Jacobians d s_t / d s_{t-1}: [B, T, S, S] (S = state size).

    Exact (forward-mode, one jvp per state unit). Their singular values are
    `jnp.linalg.svd(step_jacobians(...), compute_uv=False)` (batched: on XLA:CPU
    with jaxlib 0.10, keep it the only LAPACK call in flight; docs/troubleshooting.md).
    """
    xs, carry = _checks.batch_major_sequences(cell, params, xs, carry)
    xp = cell.project_inputs(params, xs)  # [B, T, G*H]

    def one_sequence(carry_b, xp_b):
        step, (state, aux) = _state_step(cell, params, carry_b)

        def body(sa, xp_t):
            state, aux = sa
            jac = jax.jacfwd(lambda s: step(s, aux, xp_t)[0])(state)
            return step(state, aux, xp_t), jac

        return lax.scan(body, (state, aux), xp_b)[1]

    return jax.vmap(one_sequence)(carry, xp)


def jacobian_norms(cell, params, xs, carry=None, method="auto", iterations=30, key=None):
    """The spectral norm of dh_{T-1}/dh_k for every step k: [T], mean over the batch.

    h_k is the hidden state after step k (the LSTMs' cell state carries the
    perturbation forward but is not perturbed or read). k = T-1 gives the identity
    (norm 1).

    method:
      "exact": per-step Jacobians (forward mode), their products from the end
        backwards and an SVD of each: O(T S^3) per sequence, exact.
      "power": power iteration on P_k^T P_k with jvp/vjp only, never forming a
        Jacobian: `iterations` rounds of one forward (jvp) and one backward (vjp)
        sweep that serve every k at once (the tangent of each k rides in a batch
        axis): O(iterations T^2 S^2) work and no S x S matrix.
      "auto": "exact" for state sizes up to 512, else "power".
    """
    xs, carry = _checks.batch_major_sequences(cell, params, xs, carry)
    mask = hidden_mask(cell, jax.tree_util.tree_map(lambda l: l[0], carry))
    if method == "auto":
        method = "exact" if mask.shape[0] <= 512 else "power"
    if method == "exact":
        jacs = step_jacobians(cell, params, xs, carry)  # [B, T, S, S]
        norms = jax.vmap(lambda j: _exact_product_norms(j, mask))(jacs)
    elif method == "power":
        key = jax.random.key(0) if key is None else key
        norms = _power_product_norms(cell, params, xs, carry, mask, iterations, key)
    else:
        raise ValueError(f"method must be 'auto', 'exact' or 'power', got {method!r}")
    return norms.mean(axis=0)


def _exact_product_norms(jacs, mask):
    """jacs [T, S, S] (J_t = ds_t/ds_{t-1}) -> [T] ||P_k|| restricted to h.

    P_k = J_{T-1} ... J_{k+1}."""
    size = jacs.shape[-1]

    def body(product, jac_k):  # product = ds_{T-1}/ds_k; ds_{T-1}/ds_{k-1} = product J_k
        return product @ jac_k, product

    _, products = lax.scan(body, jnp.eye(size, dtype=jacs.dtype), jacs, reverse=True)
    h_block = jnp.where(mask[:, None] & mask[None, :], products, 0.0)
    return _linalg.spectral_norm(h_block)


def _power_product_norms(cell, params, xs, carry, mask, iterations, key):
    xp = cell.project_inputs(params, xs)
    steps = xs.shape[1]

    def one_sequence(carry_b, xp_b, key_b):
        step, (state0, aux0) = _state_step(cell, params, carry_b)

        def forward(sa, xp_t):  # emits the (state, aux) each step reads
            return step(sa[0], sa[1], xp_t), sa

        # one primal pass: the state s_{t-1} and step counters entering each step t
        _, (prev_states, aux_seq) = lax.scan(forward, (state0, aux0), xp_b)
        linear = lambda t_state, aux, xp_t, v: jax.jvp(
            lambda s: step(s, aux, xp_t)[0], (t_state,), (v,))[1]

        def apply_p(v):  # v [T(k), S] injected at s_k; returns P_k v for all k
            def body(u, inputs):
                t, s_prev, aux, xp_t = inputs
                u = jax.vmap(lambda w: linear(s_prev, aux, xp_t, w))(u)
                u = jnp.where((jnp.arange(steps) == t)[:, None], v, u)
                return u, None
            u, _ = lax.scan(body, jnp.zeros_like(v), (jnp.arange(steps), prev_states, aux_seq,
                                                     xp_b))
            return u

        def apply_pt(u):  # u [T(k), S] at s_{T-1}; returns P_k^T u for all k
            def body(w, inputs):
                t, s_prev, aux, xp_t = inputs
                out = jnp.where((jnp.arange(steps) == t)[:, None], w, 0.0)
                vjp = jax.vjp(lambda s: step(s, aux, xp_t)[0], s_prev)[1]
                w = jax.vmap(lambda c: vjp(c)[0])(w)
                return w, out
            _, outs = lax.scan(body, u, (jnp.arange(steps), prev_states, aux_seq, xp_b),
                               reverse=True)
            return outs.sum(axis=0)

        v = jax.random.normal(key_b, (steps, state0.shape[0]), state0.dtype) * mask

        def iterate(v, _):
            v = v / jnp.linalg.norm(v, axis=-1, keepdims=True)
            v = apply_pt(apply_p(v) * mask) * mask
            return v, None

        v, _ = lax.scan(iterate, v, None, length=iterations)
        v = v / jnp.linalg.norm(v, axis=-1, keepdims=True)
        return jnp.linalg.norm(apply_p(v) * mask, axis=-1)

    keys = jax.random.split(key, xs.shape[0])
    return jax.vmap(one_sequence)(carry, xp, keys)


def lyapunov_spectrum(cell, params, xs, k=None, carry=None):
    """The k largest Lyapunov exponents (natural log, per step), mean over the batch.

    The QR method (Benettin et al. 1980; for RNNs Engelken et al. 2020, Vogt et al.
    2022): push an orthonormal frame Q through every step Jacobian with jvps,
    re-orthonormalise (Z = J_t Q = Q' R), and average log |diag R| over the T
    steps. k defaults to the whole state size. Returns [k], sorted descending.
    """
    xs, carry = _checks.batch_major_sequences(cell, params, xs, carry)
    xp = cell.project_inputs(params, xs)

    def one_sequence(carry_b, xp_b):
        step, (state0, aux0) = _state_step(cell, params, carry_b)
        size = state0.shape[0]
        n = size if k is None else k
        if not 0 < n <= size:
            raise ValueError(f"k must lie in [1, {size}] (the state size), got {k}")

        def body(carry, xp_t):
            (state, aux), q, log_r = carry
            push = lambda col: jax.jvp(lambda s: step(s, aux, xp_t)[0], (state,), (col,))[1]
            z = jax.vmap(push, in_axes=1, out_axes=1)(q)
            q, r = _linalg.qr(z)
            return (step(state, aux, xp_t), q, log_r + jnp.log(jnp.abs(jnp.diagonal(r)))), None

        q0 = jnp.eye(size, n, dtype=state0.dtype)
        (_, _, log_r), _ = lax.scan(body, ((state0, aux0), q0, jnp.zeros(n, state0.dtype)),
                                    xp_b)
        return log_r / xp_b.shape[0]

    exponents = jax.vmap(one_sequence)(carry, xp).mean(axis=0)
    return jnp.sort(exponents)[::-1]
