"""A discrete hidden state observed through actions (an input-output hidden Markov
model), its exact forward filter, and sampling.

The state s_t takes one of S values and is never observed; at each step it emits an
action a_t, one of A values, and the action taken moves the state on:

    s_1 ~ initial,   a_t ~ emission[s_t],   s_{t+1} ~ transition[a_t, s_t],

so `transition[a, i, j]` = p(s_{t+1} = j | s_t = i, a_t = a). With the same matrix for
every action this is an ordinary hidden Markov model. The filter's output at step t
is the exact posterior p(s_t | a_1 .. a_t): what an ideal observer knows of the
hidden state, and the optimum a recurrent network reading the actions can learn.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from rnnjax import _checks


class DiscreteStateModel(NamedTuple):
    """s_1 ~ initial, a_t ~ emission[s_t], s_{t+1} ~ transition[a_t, s_t].

    initial [S] = p(s_1); emission [S, A] = p(a_t | s_t); transition [A, S, S] with
    transition[a, i, j] = p(s_{t+1} = j | s_t = i, a_t = a). Every row is a
    probability distribution (non-negative, summing to 1). A pytree of arrays.
    """

    initial: jax.Array
    emission: jax.Array
    transition: jax.Array


#: how far a row of a DiscreteStateModel may sum from 1 (probabilities written to a
#: few digits, or normalised in float32)
ROW_SUM_TOLERANCE = 1e-4


def discrete_sizes(model: DiscreteStateModel) -> tuple[int, int]:
    """(S, A): the numbers of states and actions, the model's shapes and (when
    concrete) its rows checked to be probability distributions."""
    if not isinstance(model, DiscreteStateModel):
        raise TypeError(f"model must be a filters.DiscreteStateModel, got "
                        f"{type(model).__name__}")
    initial = _checks.float_array("initial", model.initial, rank=1, layout="[S]")
    emission = _checks.float_array("emission", model.emission, rank=2, layout="[S, A]")
    transition = _checks.float_array("transition", model.transition, rank=3,
                                     layout="[A, S, S]")
    states, actions = initial.shape[0], emission.shape[1]
    if emission.shape[0] != states:
        raise ValueError(f"emission must have shape [S, A] with S = {states} (len(initial)), "
                         f"got shape {emission.shape}")
    if transition.shape != (actions, states, states):
        raise ValueError(f"transition must have shape [A, S, S] = ({actions}, {states}, "
                         f"{states}) (A from emission, S from initial), got shape "
                         f"{transition.shape}")
    for name, rows in (("initial", initial), ("emission", emission),
                       ("transition", transition)):
        _check_distributions(name, rows)
    return states, actions


def _check_distributions(name: str, rows) -> None:
    """Rows along the last axis are distributions: a ValueError naming the first bad one
    (only for concrete values; traced ones are the caller's to get right)."""
    if not _checks.is_concrete(rows):
        return
    _checks.finite(name, rows)
    values = np.asarray(rows, np.float64)
    if (values < 0).any():
        where = tuple(int(i) for i in np.argwhere(values < 0)[0])
        raise ValueError(f"{name} must hold probabilities (>= 0), got {values[where]} "
                         f"at index {where}")
    sums = values.sum(-1)
    bad = np.abs(sums - 1) > ROW_SUM_TOLERANCE
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(np.atleast_1d(bad))[0])
        row = f"row {where[0] if len(where) == 1 else where}" if values.ndim > 1 else "it"
        raise ValueError(f"{name} must sum to 1 along its last axis, but {row} sums to "
                         f"{np.atleast_1d(sums)[where]:.6g}")


def _actions(actions, num_actions: int, lengths):
    """actions int [T] or [B, T] and lengths [B] (or None), checked: -> (actions [B, T],
    lengths [B] int32, whether the input had a batch axis)."""
    if not hasattr(actions, "shape"):
        actions = np.asarray(actions)
    if actions.ndim not in (1, 2):
        raise ValueError(f"actions must have shape [T] or [B, T], got shape "
                         f"{tuple(actions.shape)}")
    if not jnp.issubdtype(actions.dtype, jnp.integer):
        raise TypeError(f"actions must be an integer array, got dtype {actions.dtype}")
    batched = actions.ndim == 2
    actions = jnp.asarray(actions if batched else actions[None], jnp.int32)
    batch, steps = actions.shape
    if lengths is None:
        lengths = jnp.full((batch,), steps, jnp.int32)
    else:
        if not batched:
            raise ValueError("lengths needs a batch of actions [B, T], got actions of shape "
                             f"{(steps,)}")
        lengths = _checks.seq_lengths(lengths, batch, steps)
    if _checks.is_concrete(actions) and _checks.is_concrete(lengths):
        valid = np.arange(steps)[None, :] < np.asarray(lengths)[:, None]
        _checks.values_in_range(np.asarray(actions)[valid], 0, num_actions - 1,
                                f"actions must lie in [0, {num_actions - 1}] (A = "
                                f"{num_actions}) within each sequence's length, got "
                                "values in ")
    return actions, lengths, batched


def discrete_filter(model: DiscreteStateModel, actions, lengths=None):
    """log p(s_t | a_1 .. a_t): the exact filtered distribution of the hidden state at
    every step (the normalised forward algorithm, in log space, one `lax.scan`).

    Arguments:
        model: a `DiscreteStateModel` with S states and A actions.
        actions: int [B, T] (or [T]) in [0, A) within each sequence's length.
        lengths: int [B] in [0, T], or None (every sequence T steps). Past its length
            a sequence's rows repeat its last filtered distribution (the prior
            `initial` for length 0); its actions there are never read.

    Returns log-probabilities [B, T, S] (or [T, S]); exp sums to 1 over S. A sequence
    of actions the model gives probability 0 has no posterior: its rows are NaN from
    the first impossible action on.
    """
    _, num_actions = discrete_sizes(model)
    actions, lengths, batched = _actions(actions, num_actions, lengths)
    log_probs = _discrete_filter(model, actions, lengths)
    return log_probs if batched else log_probs[0]


@jax.jit
def _discrete_filter(model, actions, lengths):
    dtype = jnp.result_type(model.initial, model.emission, model.transition, jnp.float32)
    log_emission = jnp.log(model.emission.astype(dtype)).T          # [A, S]
    log_transition = jnp.log(model.transition.astype(dtype))        # [A, S, S]
    batch, steps = actions.shape
    prior = jnp.broadcast_to(jnp.log(model.initial.astype(dtype)),
                             (batch, model.initial.shape[0]))

    def step(carry, inputs):
        predicted, last = carry                # log p(s_t | a_<t), log p(s_{t-1} | a_<t)
        action, valid = inputs                 # [B], [B]
        joint = predicted + log_emission[action]                    # + log p(a_t | s_t)
        posterior = joint - jax.nn.logsumexp(joint, axis=-1, keepdims=True)
        following = jax.nn.logsumexp(posterior[:, :, None] + log_transition[action], axis=1)
        keep = valid[:, None]
        carry = (jnp.where(keep, following, predicted), jnp.where(keep, posterior, last))
        return carry, carry[1]

    valid = jnp.arange(steps)[:, None] < lengths[None, :]             # [T, B]
    _, posteriors = lax.scan(step, (prior, prior), (actions.T, valid))
    return jnp.swapaxes(posteriors, 0, 1)


def simulate_discrete(model: DiscreteStateModel, key, steps: int, batch: int):
    """`batch` independent sequences of the model: hidden states [batch, steps] and
    actions [batch, steps], both int32 (s_1 .. s_T and a_1 .. a_T)."""
    discrete_sizes(model)
    return _simulate_discrete(model, _checks.prng_key("key", key),
                              _checks.positive_int("steps", steps),
                              _checks.positive_int("batch", batch))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _simulate_discrete(model, key, steps, batch):
    log_initial = jnp.log(model.initial)
    log_emission, log_transition = jnp.log(model.emission), jnp.log(model.transition)
    k_first, k_steps = jax.random.split(key)

    def step(state, key):
        k_action, k_next = jax.random.split(key)
        action = jax.random.categorical(k_action, log_emission[state])
        following = jax.random.categorical(k_next, log_transition[action, state])
        return following, (state, action)

    first = jax.random.categorical(k_first, log_initial, shape=(batch,))
    _, (states, actions) = lax.scan(step, first, jax.random.split(k_steps, steps))
    return states.T.astype(jnp.int32), actions.T.astype(jnp.int32)
