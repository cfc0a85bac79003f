"""Input checks at the API edge.

Every check runs on static shape and dtype information, so it costs nothing under
`jit`, and fails before XLA ever sees a wrong input, with a message that names the
argument, what was expected and what was given: `ValueError` for a wrong value
(shape, range, structure), `InputTypeError` (a `TypeError`) for a wrong type or dtype.
Values (lengths in range, finite inputs, token ids) are checked where they are
concrete (eager calls); under `jit` use `rnnjax.checked` for them.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

#: True while a function wrapped by `checked` is traced: the edges then add
#: checkify checks on the values they cannot read under jit.
_value_checks = contextvars.ContextVar("rnnjax_value_checks", default=False)


class InputTypeError(TypeError, ValueError):
    """An argument of the wrong type or dtype. A `TypeError`; also a `ValueError`, so
    code that catches `ValueError` for every bad input (as rnnjax raised before this
    class existed) still catches it."""


def is_concrete(x) -> bool:
    """True when `x` holds values known now (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def checked(fn: Callable, *, jit: bool = True) -> Callable:
    """`fn`, compiled, with rnnjax's value checks enforced where `jit` hides the values.

    Use `rj.checked(fn)` in place of `jax.jit(fn)`, not inside it: it compiles `fn`
    itself (unless `jit=False`) and raises on the host after the call, so it refuses
    to be traced by `jax.jit`, `jax.vmap` or `jax.grad` (wrap those inside it:
    `rj.checked(jax.grad(loss))`).

    Shapes, dtypes and structures are always checked, under `jit` too, and values
    whenever they are concrete (eager calls). Under `jit`, `vmap` or `grad` values
    cannot be read: `seq_lengths` outside [0, T] would silently clamp and a NaN in `xs`
    would spread. Inside `checked(fn)` the public functions add
    `jax.experimental.checkify` checks for those (lengths in range, finite `xs` and
    initial carries, token ids in range), and a failing check raises
    `checkify.JaxRuntimeError` naming the argument (in the layout it was given) and the
    values. The function is traced afresh; functions that `fn` jit-compiled earlier
    without checks keep their old trace, so pass the unjitted function. The checks
    cost one pass over the inputs.

    >>> import jax.numpy as jnp, rnnjax as rj, jax
    >>> cell = rj.GRU(hidden_size=4)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> run = rj.checked(lambda xs, n: rj.unroll(cell, params, xs, seq_lengths=n)[1])
    >>> run(jnp.ones((2, 5, 2)), jnp.array([5, 9]))
    Traceback (most recent call last):
    ...
    jax._src.checkify.JaxRuntimeError: seq_lengths must lie in [0, 5] (T = 5), got values...
    """
    def flagged(*args, **kwargs):
        token = _value_checks.set(True)
        try:
            return fn(*args, **kwargs)
        finally:
            _value_checks.reset(token)

    checkified = checkify.checkify(flagged, errors=checkify.user_checks)
    if jit:
        checkified = jax.jit(checkified)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if not all(is_concrete(leaf) for leaf in jax.tree_util.tree_leaves((args, kwargs))):
            raise TypeError(
                "rj.checked(fn) was called inside jax.jit, jax.vmap or jax.grad (its "
                "arguments are traced); it compiles fn itself and raises after the call, "
                "so use rj.checked(fn) in place of jax.jit(fn), and put vmap or grad "
                "inside it: rj.checked(jax.grad(fn))")
        error, out = checkified(*args, **kwargs)
        error.throw()
        return out

    return run


def finite(name: str, tree):
    """Check that every float leaf of `tree` is finite: a ValueError now when the values
    are concrete (naming the first bad index), a checkify check inside `checked` when
    they are traced (elsewhere nothing)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            continue
        shape = tuple(np.shape(leaf))
        if _value_checks.get():
            bad = jnp.sum(~jnp.isfinite(leaf))
            checkify.check(bad == 0, f"{name} must be finite, got {{bad}} non-finite "
                                     f"values (NaN or Inf) in shape {shape}", bad=bad)
        elif is_concrete(leaf) and not _all_finite(leaf):
            bad = ~np.isfinite(np.asarray(leaf))
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} must be finite, got {int(bad.sum())} non-finite "
                             f"values (NaN or Inf) in shape {shape}, the first at index "
                             f"{first}")


def _all_finite(x) -> bool:
    """Whether a concrete array is finite, reduced where it lives (also while a jit
    traces the function it is a constant of)."""
    with jax.ensure_compile_time_eval():
        return bool(jnp.isfinite(x).all())


def values_in_range(values, low, high, message: str):
    """Check low <= values <= high: a ValueError now when the values are concrete, a
    checkify check inside `checked` when they are traced (elsewhere nothing).
    `message` is the text the range found ("[lo, hi]") completes, e.g.
    "x must lie in [0, 5], got values in "."""
    if not np.size(values):
        return
    if is_concrete(values):
        found = np.asarray(values)
        lo, hi = int(found.min()), int(found.max())
        if lo < low or hi > high:
            raise ValueError(message + f"[{lo}, {hi}]")
    elif _value_checks.get():
        lo, hi = jnp.min(values), jnp.max(values)
        checkify.check((lo >= low) & (hi <= high), message + "[{lo}, {hi}]", lo=lo, hi=hi)


def is_int(value) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def spec(x) -> str:
    """`float32[8, 24]`: the dtype and shape of an array (or of anything with both)."""
    return f"{np.dtype(x.dtype)}{list(x.shape)}"


def positive_int(name: str, value) -> int:
    if not is_int(value):
        raise InputTypeError(f"{name} must be a positive integer, got {value!r} "
                             f"({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def positive_ints(name: str, values) -> tuple[int, ...]:
    """A non-empty sequence of positive integers, as a tuple of ints."""
    if isinstance(values, (int, str)) or not len(values):
        raise ValueError(f"{name} must be a non-empty sequence of positive integers, "
                         f"got {values!r}")
    return tuple(positive_int(name, v) for v in values)


def batch_shape(value) -> tuple:
    """A batch shape as a tuple of ints: an int B means (B,)."""
    if is_int(value):
        value = (value,)
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if shape is None or not all(is_int(d) for d in shape):
        raise InputTypeError(f"batch_shape must be a tuple of ints, e.g. (B,), or an int B, "
                             f"got {value!r} ({type(value).__name__})")
    if any(d < 0 for d in shape):
        raise ValueError(f"batch_shape must hold sizes >= 0, got {shape}")
    return tuple(int(d) for d in shape)


def seeds(value, name: str = "seeds") -> list[int]:
    """Seeds as a list: an int n means n seeds, 0, 1, ..., n-1 (the meaning of
    `--seeds n` in every study); a list of ints is those seeds."""
    if is_int(value):
        if value < 1:
            raise ValueError(f"{name} must be a count >= 1 or a non-empty list of ints, "
                             f"got {value!r}")
        return list(range(int(value)))
    try:
        found = list(value)
    except TypeError:
        raise InputTypeError(f"{name} must be an int (how many seeds) or a list of ints, "
                             f"got {type(value).__name__}") from None
    if not found or not all(is_int(s) for s in found):
        raise ValueError(f"{name} must be an int (how many seeds) or a non-empty list of "
                         f"ints, got {value!r}")
    return [int(s) for s in found]


def is_typed_key(x) -> bool:
    """True for a typed PRNG key array (`jax.random.key`), not raw uint32 key data."""
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def prng_key(name: str, key):
    """Check a PRNG key: a typed key (`jax.random.key`) or raw uint32[2] data."""
    if is_typed_key(key):
        if key.shape:
            raise ValueError(f"{name} must be a single PRNG key, got a key array of shape "
                             f"{key.shape}")
        return key
    if not hasattr(key, "dtype") or key.dtype != np.uint32 or tuple(key.shape) != (2,):
        given = (f"{key.dtype}{list(key.shape)}" if hasattr(key, "dtype")
                 else type(key).__name__)
        raise InputTypeError(f"{name} must be a PRNG key (jax.random.key(seed)), got {given}")
    return key


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
        raise InputTypeError(f"{name} must be a floating-point array, got dtype {x.dtype} "
                             f"with shape {shape}")
    return x


def feature_size(name: str, x, expected: int):
    if x.shape[-1] != expected:
        raise ValueError(f"{name} must have {expected} features in its last axis "
                         f"(shape [..., {expected}]), got shape {tuple(x.shape)}")


def input_shape(model, params) -> tuple[int, ...]:
    """The shape of one step's input without its batch axes: `model.input_shape_of(params)`
    where the model declares it (the convolutional cells: (H, W, C_in)), else
    (input_size,) for a model that reads vectors (a user's cell need not declare it)."""
    shape_of = getattr(model, "input_shape_of", None)
    if shape_of is None:
        return (model.input_size_of(params),)
    return tuple(int(d) for d in shape_of(params))


def output_shape(model) -> tuple[int, ...]:
    """The shape of one step's output without its batch axes (see `input_shape`)."""
    return tuple(getattr(model, "output_shape", (model.output_size,)))


#: the names of the feature axes of a step's input, by their number, for the messages
_FEATURE_AXES = {1: "F", 3: "H, W, C"}


def _feature_layout(rank: int) -> str:
    return _FEATURE_AXES.get(rank, ", ".join(f"D{i}" for i in range(rank)))


def features(name: str, x, expected: tuple[int, ...], layout: str):
    """Check that x [..., *expected] ends with one step's input shape `expected`: the
    last axis alone for vector inputs (the message of `feature_size`), the whole map
    for the convolutional cells' [..., H, W, C]."""
    if len(expected) == 1:
        feature_size(name, x, expected[0])
    elif tuple(x.shape[x.ndim - len(expected):]) != tuple(expected):
        raise ValueError(f"{name} must have shape {layout} with "
                         f"({_feature_layout(len(expected))}) = {tuple(expected)}, got shape "
                         f"{tuple(x.shape)}")


def sequence_input(name: str, xs, expected: tuple[int, ...], time_major: bool = False):
    """Check sequences xs [B, T, *expected] ([T, B, *expected] with `time_major`): float,
    of rank 2 + len(expected), ending with one step's input shape. Vector inputs keep
    the layout [B, T, F]; return xs as a jax array."""
    lead = "T, B" if time_major else "B, T"
    layout = f"[{lead}, {_feature_layout(len(expected))}]" + \
        (" (time_major=True)" if time_major else "")
    xs = float_array(name, xs, rank=2 + len(expected), layout=layout)
    features(name, xs, expected, layout)
    return xs


def step_input(name: str, x, expected: tuple[int, ...]):
    """Check one step's input x [*batch, *expected]; return it as a jax array."""
    layout = ("[*batch, input_size]" if len(expected) == 1
              else f"[*batch, {_feature_layout(len(expected))}]")
    x = float_array(name, x, min_rank=len(expected), layout=layout)
    features(name, x, expected, layout)
    return x


def seq_lengths(lengths, batch: int, time: int):
    """Check a `[B]` integer array of lengths in `[0, T]` (values only when concrete)."""
    if not hasattr(lengths, "shape"):
        lengths = np.asarray(lengths)
    shape = tuple(lengths.shape)
    if shape != (batch,):
        raise ValueError(f"seq_lengths must have shape ({batch},) (one length per batch "
                         f"element), got shape {shape}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise InputTypeError(f"seq_lengths must be an integer array, got dtype "
                             f"{lengths.dtype}")
    values_in_range(lengths, 0, time,
                    f"seq_lengths must lie in [0, {time}] (T = {time}), got values in ")
    return jnp.asarray(lengths, jnp.int32)


def resets(mask, shape: tuple, layout: str):
    """Check a boolean reset mask of the given shape ([B, T], or [T, B] time-major)."""
    if not hasattr(mask, "shape"):
        mask = np.asarray(mask)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"resets must have shape {tuple(shape)} (one flag per step of xs "
                         f"{layout}), got shape {tuple(mask.shape)}")
    if mask.dtype != bool:
        raise InputTypeError(f"resets must be a bool array, got dtype {mask.dtype}")
    return jnp.asarray(mask)


def _shapes(tree):
    return jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), tree)


def same_structure(name: str, given, expected):
    """Check that pytree `given` has the structure and leaf shapes of `expected`."""
    given_def = jax.tree_util.tree_structure(given)
    expected_def = jax.tree_util.tree_structure(expected)
    if given_def != expected_def:
        raise ValueError(f"{name} must have the structure {_shapes(expected)} (leaf "
                         f"shapes shown), got {_shapes(given)}")
    for g, e in zip(jax.tree_util.tree_leaves(given), jax.tree_util.tree_leaves(expected)):
        if tuple(np.shape(g)) != tuple(e.shape):
            raise ValueError(f"{name} must have leaf shapes {_shapes(expected)}, "
                             f"got {_shapes(given)}")


def sequence_model(name: str, model):
    """Check that `model` meets the `SequenceModel` protocol (a cell, Stacked, Bidirectional):
    it declares a `strategy`, and a composite one runs its parts (`unroll_time_major`)."""
    needed = ("input_size_of", "initial_carry", "strategy")
    missing = [m for m in needed if not hasattr(model, m)]
    if not missing and model.strategy.value == "composite" \
            and not hasattr(model, "unroll_time_major"):
        missing = ["unroll_time_major"]
    if missing:
        raise InputTypeError(f"{name} must be a cell, a Stacked or a Bidirectional (an "
                             f"object with {', '.join(needed)}), got {type(model).__name__} "
                             f"without {', '.join(missing)}")
    return model


def _leaf_paths(tree) -> dict:
    return {jax.tree_util.keystr(path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _init_shapes(model, input_size):
    """(the type of the top container, {path: ShapeDtypeStruct}) of
    `model.init(key, input_size)` (or `init(key)` when `input_size` is None), traced
    abstractly: nothing is computed."""
    key = jax.random.key(0)
    args = (key,) if input_size is None else (key, input_size)
    tree = jax.eval_shape(lambda: model.init(*args))
    return (Mapping if isinstance(tree, Mapping) else tuple), _leaf_paths(tree)


_init_shapes_cached = functools.lru_cache(maxsize=512)(_init_shapes)


def _expected_params(model, input_size):
    try:
        return _init_shapes_cached(model, input_size)
    except TypeError as e:  # an unhashable model (e.g. a list field): no cache
        if "unhashable" not in str(e):
            raise
        return _init_shapes(model, input_size)


def _model_name(model) -> str:
    layers = getattr(model, "layers", None)
    if isinstance(layers, tuple):
        return f"Stacked([{', '.join(type(layer).__name__ for layer in layers)}])"
    return type(model).__name__


def model_params(model, params, name: str = "params"):
    """Check `params` against what `model.init` returns: the same keys (none missing,
    none extra), every leaf of the same shape, and floating point where init's is.

    A `Stacked`'s params are one entry per layer, in the order of its layers; a mix-up
    shows as a shape mismatch, and the message says so. Models without `init` (thin
    wrappers) are not checked.
    """
    if not hasattr(model, "init"):
        return params
    has_input = hasattr(model, "input_size_of")
    top, want = _expected_params(model, 1 if has_input else None)
    if not isinstance(params, (list, tuple) if top is tuple else Mapping):
        kind = "a tuple with one entry per layer" if top is tuple else "a dict of arrays"
        raise InputTypeError(f"{name} must be what {_model_name(model)}.init returns "
                             f"({kind}), got {type(params).__name__}")
    given = _leaf_paths(params)
    missing = sorted(set(want) - set(given))
    extra = sorted(set(given) - set(want))
    if missing or extra:
        parts = ([f"missing {', '.join(name + p for p in missing)}"] if missing else []) + \
                ([f"unexpected {', '.join(name + p for p in extra)}"] if extra else [])
        raise ValueError(f"{name} do not match the model {_model_name(model)}: "
                         f"{'; '.join(parts)} (expected the keys of its init: "
                         f"{', '.join(name + p for p in want)})")
    if has_input:
        input_size = model.input_size_of(params)
        if not isinstance(input_size, (int, np.integer)) or input_size < 1:
            raise ValueError(f"{name} of {_model_name(model)} give an input size of "
                             f"{input_size!r}; expected a positive integer")
        want = _expected_params(model, int(input_size))[1]
    for path, leaf in given.items():
        expected = want[path]
        shape = tuple(np.shape(leaf))
        if shape != tuple(expected.shape):
            hint = (" (a Stacked's params hold one entry per layer, in the order of its "
                    "layers)" if isinstance(getattr(model, "layers", None), tuple) else "")
            raise ValueError(f"{name}{path} must have shape {tuple(expected.shape)} for "
                             f"{_model_name(model)}, got shape {shape}{hint}")
        dtype = jnp.result_type(leaf)
        if (jnp.issubdtype(expected.dtype, jnp.floating)
                and not jnp.issubdtype(dtype, jnp.floating)):
            raise InputTypeError(f"{name}{path} must be a floating-point array, got dtype "
                                 f"{dtype} with shape {shape}")
    return params


def compute_dtype(params, xs):
    """The dtype a step computes in: xs's and the float params' promoted (bfloat16
    inputs with float32 params run in float32)."""
    floats = [leaf.dtype for leaf in jax.tree_util.tree_leaves(params)
              if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)]
    return jnp.result_type(xs.dtype, *floats)


def carry_or_initial(model, carry, batch_shape: tuple, dtype):
    """`model.initial_carry(batch_shape, dtype)` when `carry` is None, else `carry`
    checked against it (structure, shapes, and the dtype of its float leaves)."""
    if carry is None:
        return model.initial_carry(batch_shape, dtype)
    expected = jax.eval_shape(lambda: model.initial_carry(batch_shape, dtype))
    same_structure("carry", carry, expected)
    for given, want in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(expected)):
        if jnp.issubdtype(want.dtype, jnp.floating) and jnp.result_type(given) != want.dtype:
            dtypes = jax.tree_util.tree_map(lambda a: str(jnp.result_type(a)), carry)
            raise ValueError(f"carry must be {want.dtype} (the dtype of xs and params "
                             f"promoted), got leaf dtypes {dtypes}")
    return carry


def one_step_map(model):
    """Check that `model` has one step map h_t = f(h_{t-1}, x_t), which the probe
    differentiates: a cell, or a `Stacked` of cells (not a `Bidirectional`)."""
    layers = getattr(model, "layers", None)
    inner = [layer for layer in layers if not hasattr(layer, "step")] \
        if isinstance(layers, tuple) else []
    if hasattr(model, "step") and hasattr(model, "project_inputs") and not inner:
        return model
    if inner:
        kind, instead = (f"a Stacked holding {type(inner[0]).__name__} layers",
                         "probe a Stacked of cells, or one of its cell layers "
                         "(model.layers[i] with params[i])")
    elif hasattr(model, "fwd") and hasattr(model, "bwd"):
        kind, instead = ("a Bidirectional", "probe each direction as a cell: model.fwd "
                         "with params['fwd'] on xs, and model.bwd with params['bwd'] on "
                         "xs reversed in time (xs[:, ::-1])")
    else:
        kind, instead = (f"a {type(model).__name__} without step and project_inputs",
                         "give it the cell protocol (see rj.check_cell)")
    raise InputTypeError(f"the probe follows one step map forward in time, so cell must "
                         f"be a cell or a Stacked of cells; got {kind}: {instead}")


def batch_major_sequences(model, params, xs, carry):
    """Check the model, its params, and xs [B, T, F] (or [B, T, H, W, C] for the
    convolutional cells; B, T >= 1: a probe of nothing is an error, not an empty
    answer) against the model's input size; return
    (xs, carry or the initial one)."""
    sequence_model("cell", model)
    one_step_map(model)
    model_params(model, params)
    xs = sequence_input("xs", xs, input_shape(model, params))
    if xs.shape[0] < 1 or xs.shape[1] < 1:
        raise ValueError(f"xs must hold at least one sequence (B >= 1) of at least one "
                         f"step (T >= 1) [B, T, F], got shape {tuple(xs.shape)}")
    finite("xs", xs)
    finite("carry", carry)
    return xs, carry_or_initial(model, carry, (xs.shape[0],), compute_dtype(params, xs))
