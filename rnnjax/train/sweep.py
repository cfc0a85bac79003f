"""Sweeps: many models (seeds x hyperparameters) trained at once in one compiled step.

A sweep stacks M independent `TrainState`s along a leading "models" axis, one per
point of the grid seeds x hyperparameter values. The hyperparameters live in the
optimizer state (built with `optax.inject_hyperparams`), so one step function, one
`jax.vmap` and one compilation train every model, each with its own values. The
models axis can be sharded over devices with `shard_models`; the same code runs on
one device, on several, or on many hosts (see the README).

>>> import jax, jax.numpy as jnp, optax, rnnjax as rj
>>> from rnnjax.train import make_train_step
>>> from rnnjax.train.sweep import sweep_states, sweep_step, shard_models
>>> dense = rj.Dense(1)
>>> def loss_fn(params, batch, key):
...     x, y = batch
...     return jnp.mean((dense(params, x) - y) ** 2), {}
>>> optimizer_fn = optax.inject_hyperparams(optax.sgd)
>>> state, grid = sweep_states(lambda k: dense.init(k, 3), optimizer_fn, seeds=[0, 1],
...                            hyperparams={"learning_rate": [0.1, 0.01]})
>>> grid[1], state.params["W"].shape, state.opt_state.hyperparams["learning_rate"]
({'seed': 0, 'learning_rate': 0.01}, (4, 3, 1), Array([0.1 , 0.01, 0.1 , 0.01], dtype=float32))
>>> step = sweep_step(make_train_step(loss_fn, optimizer_fn(learning_rate=0.1)))
>>> state = shard_models(state)            # the models axis over all devices
>>> state, metrics = step(state, (jnp.ones((5, 3)), jnp.zeros((5, 1))))
>>> metrics["loss"].shape, state.step
((4,), Array([1, 1, 1, 1], dtype=int32))
"""

from __future__ import annotations

import functools
import itertools
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rnnjax import _checks
from rnnjax.train.step import TrainState

AXIS = "models"


def sweep_states(init_params_fn: Callable, optimizer_fn: Callable, seeds,
                 hyperparams: dict | None = None) -> tuple[TrainState, list[dict]]:
    """Initial `TrainState`s of a whole sweep, stacked on a leading models axis.

    Args:
      init_params_fn: `init_params_fn(key) -> params` for one model.
      optimizer_fn: `optimizer_fn(**hyper) -> optax.GradientTransformation` built with
        `optax.inject_hyperparams` (e.g. `optax.inject_hyperparams(optax.adam)`), so
        that every swept hyperparameter is stored in the optimizer state's
        `hyperparams` and may differ per model. It is called inside `jax.vmap` with
        each swept value as a traced scalar.
      seeds: how many seeds (an int n: seeds 0, 1, ..., n-1), or a list of seeds.
      hyperparams: None, or a dict name -> list of values (a single number counts as
        a one-value list), e.g. `{"learning_rate": [1e-3, 3e-3]}`. Values must be
        numbers: a static (bool, string, callable) argument cannot differ between
        models compiled as one; pass it through `optimizer_fn` instead.

    Returns:
      `(state, grid)`: `grid` lists the M models in order, one dict per model
      `{"seed": s, name: value, ...}`, the cartesian product of seeds (outer) and the
      hyperparameter values (in the dict's order, the last one fastest); `state` is a
      `TrainState` whose every leaf has the leading axis M (`step` is int32 [M]).

    Model m is exactly the state a single run builds with
    `k_params, k_state = jax.random.split(jax.random.key(seed))` and
    `init_state(init_params_fn(k_params), optimizer_fn(**hyper), k_state)`; its
    optimizer state holds its own hyperparameter values. Train all models with
    `sweep_step(make_train_step(loss_fn, optimizer_fn(**hyper)))` for any one set of
    values `hyper` (e.g. the first model's): an inject_hyperparams optimizer reads
    the values from the state, not from the arguments it was built with.
    """
    if not callable(init_params_fn):
        raise ValueError(f"init_params_fn must be callable, got {type(init_params_fn).__name__}")
    if not callable(optimizer_fn):
        raise ValueError(f"optimizer_fn must be callable, got {type(optimizer_fn).__name__}")
    seeds = _checks.seeds(seeds)
    names, values = _hyperparams(hyperparams)
    grid = [{"seed": seed, **dict(zip(names, point))}
            for seed in seeds for point in itertools.product(*values)]

    keys = jnp.stack([jax.random.key(g["seed"]) for g in grid])
    hyper = {name: jnp.asarray([g[name] for g in grid]) for name in names}

    def init_one(key, hyper):
        k_params, k_state = jax.random.split(key)
        params = init_params_fn(k_params)
        opt_state = optimizer_fn(**hyper).init(params)
        return TrainState(params, opt_state, jnp.zeros((), jnp.int32), k_state)

    init = jax.vmap(init_one)
    try:
        shapes = jax.eval_shape(init, keys, hyper)   # checks before compiling
    except TypeError as e:
        if not _missing_argument(e):
            raise
        given = f"only {names}" if names else "none"
        raise ValueError(
            f"optimizer_fn needs an argument the sweep does not give ({e}); every "
            f"argument of optimizer_fn comes from hyperparams (given: {given}): pass "
            f"e.g. hyperparams={{'learning_rate': [1e-3]}}, one value for all models or "
            f"several to sweep") from e
    missing = [n for n in names if not _injected(shapes.opt_state, n)]
    if missing:
        raise ValueError(
            f"hyperparameters {missing} are not in the optimizer state: build "
            f"optimizer_fn with optax.inject_hyperparams (e.g. "
            f"optax.inject_hyperparams(optax.adam)) so that each model keeps its own "
            f"values")
    # Eager vmap, not one jit of the whole init: each random draw and initialiser is a
    # small compiled program of its own (jax.random's, `initializers.orthogonal`),
    # reused by every later sweep of the same shapes, where a jit of the whole init
    # compiles them afresh for each model (seconds per run of a study). The numbers
    # are bitwise the same.
    return init(keys, hyper), grid


def sweep_step(step_fn: Callable, shared_batch: bool = True, donate: bool = False):
    """`jax.jit(jax.vmap(step_fn))`: one compiled step that trains every model.

    `step_fn(state, batch) -> (state, metrics)` trains one model (e.g.
    `make_train_step`). The returned `step(states, batch) -> (states, metrics)` maps
    it over the leading models axis of `states` (from `sweep_states`); every metric
    gains that leading axis M.

    Args:
      shared_batch: True: all models see the same `batch` (no models axis,
        `in_axes=(0, None)`; on several devices it is replicated). False: `batch`
        carries a leading models axis M, one batch per model (shard it with
        `shard_models` alongside the states).
      donate: donate the input states' buffers to the output (saves memory; the
        states passed in must not be used again).

    With states from `shard_models`, the step runs sharded: each device trains its
    own models, and the output states keep the input's sharding.
    """
    if not callable(step_fn):
        raise ValueError(f"step_fn must be callable, got {type(step_fn).__name__}")
    vmapped = jax.vmap(step_fn, in_axes=(0, None) if shared_batch else (0, 0))
    donate_argnums = (0,) if donate else ()
    plain = jax.jit(vmapped, donate_argnums=donate_argnums)

    @functools.cache
    def sharded(sharding):
        # Every output (states and metrics alike) has the leading models axis: pin it
        # to the input's sharding, so that even a constant metric comes out sharded.
        return jax.jit(vmapped, out_shardings=sharding, donate_argnums=donate_argnums)

    @functools.wraps(step_fn)
    def step(states, batch):
        sharding = _models_sharding(states)
        return (plain if sharding is None else sharded(sharding))(states, batch)

    return step


def _models_sharding(tree):
    """NamedSharding(mesh, P("models")) when `tree`'s first leaf is sharded so over
    several devices, else None."""
    leaves = jax.tree_util.tree_leaves(tree)
    sharding = getattr(leaves[0], "sharding", None) if leaves else None
    if (isinstance(sharding, NamedSharding) and len(sharding.device_set) > 1
            and tuple(sharding.spec)[:1] == (AXIS,)):
        return NamedSharding(sharding.mesh, PartitionSpec(AXIS))
    return None


def models_mesh(devices=None) -> Mesh:
    """A 1-D mesh named "models" over `devices` (default: `jax.devices()`, all
    devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.array(devices), (AXIS,))


def shard_models(tree: Any, mesh: Mesh | None = None):
    """Place the leading models axis of every leaf of `tree` over the mesh's devices.

    `tree` is any pytree whose leaves all have the same leading size M: the states of
    `sweep_states`, or a per-model batch. `mesh`: a 1-D `jax.sharding.Mesh` whose
    axis is named "models" (default: `models_mesh()`, over all devices). Each device
    holds M / n consecutive models; raises ValueError when M does not divide by the
    device count n. On one device this is a plain `jax.device_put`. Over several
    processes (`jax.distributed`) every process passes the same `tree` (jax checks
    that, raising AssertionError) and keeps only its own devices' models.
    """
    mesh = models_mesh() if mesh is None else mesh
    if not isinstance(mesh, Mesh):
        raise ValueError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if tuple(mesh.axis_names) != (AXIS,):
        raise ValueError(f"mesh must be 1-D with its axis named {AXIS!r}, got axis names "
                         f"{tuple(mesh.axis_names)} (build one with models_mesh())")
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError("tree has no array leaves to shard")
    sizes = {tuple(np.shape(x))[:1] for x in leaves}
    if len(sizes) != 1 or () in sizes:
        raise ValueError(f"every leaf must have the same leading models axis, got leading "
                         f"sizes {sorted(s[0] if s else 'scalar' for s in sizes)}")
    (models,), = sizes
    devices = mesh.shape[AXIS]
    if models % devices:
        raise ValueError(f"the number of models M={models} does not divide by the "
                         f"device count {devices}: choose M a multiple of {devices}")
    sharding = NamedSharding(mesh, PartitionSpec(AXIS))
    return jax.tree_util.tree_map(lambda x: _put(x, sharding), tree)


def _put(x, sharding):
    """`jax.device_put(x, sharding)`. A typed PRNG key goes as its raw uint32 data and
    is wrapped again: device_put refuses key arrays onto a sharding that spans other
    processes' devices (multi-host), and accepts their data."""
    if _checks.is_typed_key(x):
        data = jax.device_put(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jax.device_put(x, sharding)


def _hyperparams(hyperparams) -> tuple[list[str], list[list]]:
    if hyperparams is None:
        return [], []
    if not isinstance(hyperparams, dict):
        raise ValueError(f"hyperparams must be a dict name -> list of values, got "
                         f"{type(hyperparams).__name__}")
    names, values = [], []
    for name, vals in hyperparams.items():
        if name == "seed":
            raise ValueError("'seed' is not a hyperparameter: pass seeds=... instead")
        vals = [vals] if isinstance(vals, numbers.Number) else list(vals)
        if not vals:
            raise ValueError(f"hyperparams[{name!r}] is empty")
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, numbers.Number):
                raise ValueError(
                    f"hyperparams[{name!r}] must hold numbers, got {v!r}: static "
                    f"arguments cannot differ between models compiled as one step")
        names.append(name)
        values.append(vals)
    return names, values


def _missing_argument(error: TypeError) -> bool:
    """Whether `error` says a function was called without a required argument."""
    text = str(error)
    return "missing" in text and "argument" in text


def _injected(opt_state, name) -> bool:
    """Whether some `hyperparams` dict in the optimizer state (at any depth) holds `name`."""
    found = []

    def look(node):
        hp = getattr(node, "hyperparams", None)
        if isinstance(hp, dict) and name in hp:
            found.append(node)
        return False   # keep descending

    jax.tree_util.tree_leaves(opt_state, is_leaf=look)
    return bool(found)
