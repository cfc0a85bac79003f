"""Input checks at the API edge.

Every check runs on static shape and dtype information, so it costs nothing under
`jit`, and fails with a `ValueError` that names the argument, the expected and the
given shape, before XLA ever sees a wrong input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when `x` holds values known now (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def float_array(name: str, x, rank: int | None = None, min_rank: int | None = None,
                layout: str = ""):
    """Check that `x` is a floating-point array of the given rank; return it as a jax array."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    shape = tuple(x.shape)
    where = f" {layout}" if layout else ""
    if rank is not None and len(shape) != rank:
        raise ValueError(f"{name} must have rank {rank}{where}, got shape {shape}")
    if min_rank is not None and len(shape) < min_rank:
        raise ValueError(f"{name} must have rank >= {min_rank}{where}, got shape {shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating-point array, got dtype {x.dtype} "
                         f"with shape {shape}")
    return x


def feature_size(name: str, x, expected: int):
    if x.shape[-1] != expected:
        raise ValueError(f"{name} must have {expected} features in its last axis "
                         f"(shape [..., {expected}]), got shape {tuple(x.shape)}")


def seq_lengths(lengths, batch: int, time: int):
    """Check a `[B]` integer array of lengths in `[0, T]` (values only when concrete)."""
    if not hasattr(lengths, "shape"):
        lengths = np.asarray(lengths)
    shape = tuple(lengths.shape)
    if shape != (batch,):
        raise ValueError(f"seq_lengths must have shape ({batch},) (one length per batch "
                         f"element), got shape {shape}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(f"seq_lengths must be an integer array, got dtype {lengths.dtype}")
    if is_concrete(lengths) and batch > 0:
        values = np.asarray(lengths)
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi > time:
            raise ValueError(f"seq_lengths must lie in [0, {time}] (T = {time}), "
                             f"got values in [{lo}, {hi}]")
    return jnp.asarray(lengths, jnp.int32)


def resets(mask, shape: tuple, layout: str):
    """Check a boolean reset mask of the given shape ([B, T], or [T, B] time-major)."""
    if not hasattr(mask, "shape"):
        mask = np.asarray(mask)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"resets must have shape {tuple(shape)} (one flag per step of xs "
                         f"{layout}), got shape {tuple(mask.shape)}")
    if mask.dtype != bool:
        raise ValueError(f"resets must be a bool array, got dtype {mask.dtype}")
    return jnp.asarray(mask)


def same_structure(name: str, given, expected):
    """Check that pytree `given` has the structure and leaf shapes of `expected`."""
    given_def = jax.tree_util.tree_structure(given)
    expected_def = jax.tree_util.tree_structure(expected)
    if given_def != expected_def:
        raise ValueError(f"{name} must have the structure {expected_def}, got {given_def}")
    for g, e in zip(jax.tree_util.tree_leaves(given), jax.tree_util.tree_leaves(expected)):
        if tuple(np.shape(g)) != tuple(e.shape):
            shapes = jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), given)
            want = jax.tree_util.tree_map(lambda a: tuple(a.shape), expected)
            raise ValueError(f"{name} must have leaf shapes {want}, got {shapes}")


def compute_dtype(params, xs):
    """The dtype a step computes in: xs's and the float params' promoted (bfloat16
    inputs with float32 params run in float32)."""
    floats = [leaf.dtype for leaf in jax.tree_util.tree_leaves(params)
              if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)]
    return jnp.result_type(xs.dtype, *floats)


def carry_or_initial(model, carry, batch: int, dtype):
    """`model.initial_carry((batch,), dtype)` when `carry` is None, else `carry` checked
    against it (structure, shapes, and the dtype of its float leaves)."""
    if carry is None:
        return model.initial_carry((batch,), dtype)
    expected = jax.eval_shape(lambda: model.initial_carry((batch,), dtype))
    same_structure("carry", carry, expected)
    for given, want in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(expected)):
        if jnp.issubdtype(want.dtype, jnp.floating) and jnp.result_type(given) != want.dtype:
            dtypes = jax.tree_util.tree_map(lambda a: str(jnp.result_type(a)), carry)
            raise ValueError(f"carry must be {want.dtype} (the dtype of xs and params "
                             f"promoted), got leaf dtypes {dtypes}")
    return carry


def batch_major_sequences(model, params, xs, carry):
    """Check xs [B, T, F] against the model's input size; return (xs, carry or the initial one)."""
    xs = float_array("xs", xs, rank=3, layout="[B, T, F]")
    feature_size("xs", xs, model.input_size_of(params))
    return xs, carry_or_initial(model, carry, xs.shape[0], compute_dtype(params, xs))
