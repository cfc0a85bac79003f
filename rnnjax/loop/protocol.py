"""`check_cell`: a model checked against the protocol `rj.unroll` runs, in plain words.

A cell written outside the package meets the loop only through its methods; a slip
there (a step that returns only the carry, a config that is not a frozen dataclass, a
step that splits its input into more gate blocks than `gates` says) would otherwise
surface as an error deep inside the loop or XLA. `check_cell` traces the cell once
on abstract shapes (nothing is computed) and says which method broke which rule.
`rj.unroll` calls it on every model of a type from outside the package, once per
(model, input size).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from rnnjax import _checks
from rnnjax.cells.base import Cell, StepRule, Strategy

#: what every model `unroll` takes has, and what a cell (not a composite) adds
MODEL_METHODS = ("init", "input_size_of", "initial_carry", "output_size", "strategy")
CELL_METHODS = ("project_inputs", "step", "hidden", "replace_hidden")


class CellProtocolError(_checks.InputTypeError):
    """A model that does not meet the cell protocol (a `TypeError`, also a `ValueError`)."""


def check_cell(cell, input_size: int, batch_shape=(2,)) -> None:
    """Check a cell (or a `Stacked` / `Bidirectional` of cells) against the protocol
    `rj.unroll` and the probe rely on; raise `CellProtocolError` saying what is wrong.

    Checked, on abstract shapes (`jax.eval_shape`: nothing is computed):
      - the config is hashable (a frozen dataclass of hashable fields), as `jit` needs;
      - it has the protocol's methods (`init`, `input_size_of`, `initial_carry`,
        `output_size`, `strategy`; a cell also `project_inputs`, `step`, `hidden`,
        `replace_hidden`: subclass `rj.Cell` for the defaults) and a `Strategy`;
      - `init(key, input_size)` gives float arrays and `input_size_of` reads
        `input_size` back from them;
      - `initial_carry(batch_shape)` leads with `batch_shape`;
      - `step(params, carry, project_inputs(params, x))` returns `(carry, y)`: a carry
        of the initial carry's structure, shapes and dtypes, and y [*batch, output_size];
        when it fails, the message gives the shapes it got and the cell's `gates`;
      - `hidden(carry)` (the state the probe perturbs) is an array [*batch, n].
    A composite (`Stacked`, `Bidirectional`) is checked by running it abstractly over
    two steps, which checks each of its cells.

    Args:
      cell: the model to check.
      input_size: the feature size of its inputs.
      batch_shape: the batch shape to try (an int B means (B,)).
    """
    input_size = _checks.positive_int("input_size", input_size)
    batch_shape = _checks.batch_shape(batch_shape)
    name = type(cell).__name__
    _hashable(cell, name)
    wanted = MODEL_METHODS + (() if _composite(cell) else CELL_METHODS)
    missing = [m for m in wanted if not hasattr(cell, m)]
    if missing:
        raise CellProtocolError(
            f"{name} lacks {', '.join(missing)} of the cell protocol: subclass rj.Cell "
            f"(it gives init, initial_carry, project_inputs, hidden and the rest) and "
            f"define step(params, carry, xp) -> (carry, y)")
    if not isinstance(cell.strategy, Strategy):
        raise CellProtocolError(f"{name}.strategy must be a rnnjax.cells.Strategy, got "
                                f"{cell.strategy!r}")
    params = _traced(f"{name}.init(key, {input_size})",
                     lambda: cell.init(jax.random.key(0), input_size))
    _float_leaves(params, f"{name}.init")
    found = cell.input_size_of(params)
    if found != input_size:
        raise CellProtocolError(f"{name}.input_size_of(params) gives {found!r} for params "
                                f"from init(key, {input_size}); it must give {input_size}")
    carry = _traced(f"{name}.initial_carry({batch_shape})",
                    lambda: cell.initial_carry(batch_shape, jnp.float32))
    for leaf in jax.tree_util.tree_leaves(carry):
        if tuple(leaf.shape[:len(batch_shape)]) != batch_shape:
            raise CellProtocolError(
                f"{name}.initial_carry({batch_shape}) must give leaves that lead with the "
                f"batch shape {batch_shape}, got {_shapes(carry)}")
    if _composite(cell):
        _check_composite(cell, params, carry, input_size, batch_shape)
    else:
        _check_step(cell, params, carry, input_size, batch_shape)


def check_once(model, input_size: int) -> None:
    """`check_cell(model, input_size)` for a model of a type from outside rnnjax, once
    per (model, input size). The package's own models are checked by its tests (only
    their hashability here: a composite holding a user's cell is hashable only when
    that cell is); a composite's parts are checked when the loop runs them."""
    _hashable(model, type(model).__name__)
    if type(model).__module__.split(".")[0] != "rnnjax":
        _check_cached(model, int(input_size))


@functools.lru_cache(maxsize=1024)
def _check_cached(model, input_size: int) -> None:
    check_cell(model, input_size)


def _composite(model) -> bool:
    return getattr(model, "strategy", None) is Strategy.COMPOSITE


def _hashable(cell, name: str) -> None:
    """A `jit` static argument must be hashable (and compare by value). For a model
    that holds others (a `Stacked`'s layers), the message names the part at fault."""
    if (dataclasses.is_dataclass(cell) and not isinstance(cell, type)
            and not cell.__dataclass_params__.frozen):
        raise CellProtocolError(
            f"{name} must be a frozen dataclass, @dataclasses.dataclass(frozen=True): its "
            f"config is a static argument of jit, which must be hashable")
    if _can_hash(cell):
        return
    fields = dataclasses.fields(cell) if dataclasses.is_dataclass(cell) else ()
    values = {f.name: getattr(cell, f.name) for f in fields}
    for value in values.values():   # a part at fault says so itself
        for part in (value if isinstance(value, tuple) else (value,)):
            if dataclasses.is_dataclass(part) and not _can_hash(part):
                _hashable(part, type(part).__name__)
    bad = [field for field, value in values.items() if not _can_hash(value)]
    where = (f": its field {', '.join(bad)} holds an unhashable value (a list or a "
             f"dict? use a tuple)") if bad else ""
    raise CellProtocolError(f"{name} must be hashable (jit takes it as a static "
                            f"argument){where}")


def _can_hash(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _traced(call: str, fn, *args):
    """`jax.eval_shape(fn, *args)`, its failure reported as the user's call that failed."""
    try:
        return jax.eval_shape(fn, *args)
    except Exception as e:
        raise CellProtocolError(f"{call} failed: {type(e).__name__}: {e}") from e


def _float_leaves(tree, what: str) -> None:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves or not all(jnp.issubdtype(leaf.dtype, jnp.floating) for leaf in leaves):
        raise CellProtocolError(f"{what} must return a pytree of float arrays (the params), "
                                f"got {_shapes(tree)}")


def _shapes(tree):
    """The tree with each array leaf shown as dtype[shape]."""
    return jax.tree_util.tree_map(lambda a: _checks.spec(a) if hasattr(a, "shape") else a,
                                  tree)


def _gates_hint(cell, xp) -> str:
    gates, hidden = getattr(cell, "gates", None), getattr(cell, "hidden_size", None)
    if not isinstance(gates, int) or not isinstance(hidden, int):
        return ""
    return (f" The projected input xp has {xp.shape[-1]} columns (gates = {gates} times "
            f"hidden_size = {hidden}): a step that splits xp into n gate blocks needs "
            f"`gates: ClassVar[int] = n` on the class.")


def _check_step(cell, params, carry, input_size, batch_shape) -> None:
    name = type(cell).__name__
    if type(cell).step is Cell.step:
        raise CellProtocolError(f"{name} must define step(params, carry, xp) -> (carry, y), "
                                f"one recurrent step on the projected input xp")
    x = jax.ShapeDtypeStruct((*batch_shape, *_checks.input_shape(cell, params)), jnp.float32)
    xp = _traced(f"{name}.project_inputs(params, x) with x {list(x.shape)}",
                 cell.project_inputs, params, x)
    try:
        out = jax.eval_shape(cell.step, params, carry, xp)
    except Exception as e:
        raise CellProtocolError(
            f"{name}.step(params, carry, xp) failed with carry {_shapes(carry)} and xp "
            f"float32{list(xp.shape)}: {type(e).__name__}: {e}.{_gates_hint(cell, xp)}") from e
    carry_def = jax.tree_util.tree_structure(carry)
    if jax.tree_util.tree_structure(out) == carry_def:
        raise CellProtocolError(f"{name}.step must return (carry, y), a pair; it returned "
                                f"only the carry {_shapes(out)}")
    if not isinstance(out, tuple) or len(out) != 2:
        raise CellProtocolError(f"{name}.step must return (carry, y), a pair; it returned "
                                f"{_shapes(out)}")
    new, y = out
    if jax.tree_util.tree_structure(new) != carry_def or any(
            (a.shape, a.dtype) != (b.shape, b.dtype)
            for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(carry))):
        raise CellProtocolError(
            f"{name}.step must return a carry like the one it was given, "
            f"{_shapes(carry)} (from initial_carry), got {_shapes(new)}."
            f"{_gates_hint(cell, xp)}")
    want = (*batch_shape, *_checks.output_shape(cell))
    if not hasattr(y, "shape") or tuple(y.shape) != want:
        raise CellProtocolError(f"{name}.step's output y must have shape {want} ([*batch, "
                                f"output_size]), got {_shapes(y)}")
    h = _traced(f"{name}.hidden(carry)", cell.hidden, carry)
    if (not hasattr(h, "shape") or len(h.shape) <= len(batch_shape)
            or tuple(h.shape[:len(batch_shape)]) != batch_shape):
        raise CellProtocolError(f"{name}.hidden(carry) must be the hidden state, an array "
                                f"[*batch, n] (or a map [*batch, H, W, C]) with batch "
                                f"{batch_shape}, got {_shapes(h)}")
    if cell.strategy is Strategy.LOOP_RULE and not isinstance(cell.loop_rule, StepRule):
        raise CellProtocolError(f"{name}.strategy is LOOP_RULE, so its loop_rule must be a "
                                f"rnnjax.cells.StepRule, got {type(cell.loop_rule).__name__}")


def _check_composite(model, params, carry, input_size, batch_shape) -> None:
    """Run the composite over two steps abstractly: its parts go through the loop, which
    checks each of them."""
    name = type(model).__name__
    if len(batch_shape) != 1:
        raise CellProtocolError(f"a {name} runs over whole sequences: check it with a "
                                f"batch shape (B,), got {batch_shape}")
    xs = jax.ShapeDtypeStruct((2, *batch_shape, *_checks.input_shape(model, params)),
                              jnp.float32)

    def run(params, xs, carry):
        return model.unroll_time_major(params, xs, carry, lengths=None, reverse=False,
                                       unroll=1, remat=False, key=None, resets=None)
    try:
        _, ys = jax.eval_shape(run, params, xs, carry)
    except CellProtocolError:
        raise
    except Exception as e:
        raise CellProtocolError(f"{name} failed to run over two steps: "
                                f"{type(e).__name__}: {e}") from e
    want = (2, *batch_shape, *_checks.output_shape(model))
    if tuple(ys.shape) != want:
        raise CellProtocolError(f"{name} gives outputs of shape {tuple(ys.shape)} over xs "
                                f"{list(xs.shape)} (time-major); expected {want}")
