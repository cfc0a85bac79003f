"""A tiny sweep shared by tests/test_train_sweep.py and, run as a script, the check
that the sweep trains the same sharded over 4 CPU devices (run in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu):

    python tests/sweep_devices.py OUT_DIR   # writes OUT_DIR/params_*.npz, result.json
"""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rnnjax as rj
from rnnjax.train import make_train_step
from rnnjax.train.sweep import shard_models, sweep_states, sweep_step

SEEDS = [0, 1]
LEARNING_RATES = [0.05, 0.2]
STEPS = 4
BATCH, TIME, FEATURES = 4, 6, 3

# Glorot recurrent weights: the default orthogonal init adds a compile (about 0.5 s on CPU).
GRU, HEAD = rj.GRU(hidden_size=8, recurrent_init="glorot"), rj.Dense(1)
MOMENTUM = 0.9


def optimizer_fn(learning_rate):
    """SGD with momentum, its hyperparameters in the optimizer state."""
    return optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate, momentum=MOMENTUM)


def plain_optimizer(learning_rate):
    """The same optimizer as a single run builds it (no inject_hyperparams)."""
    return optax.sgd(learning_rate, momentum=MOMENTUM)


def init_params(key):
    k_gru, k_head = jax.random.split(key)
    return {"gru": GRU.init(k_gru, input_size=FEATURES), "head": HEAD.init(k_head, 8)}


def loss_fn(params, batch, key):
    """Regress the time-mean of the first input feature from the final hidden state."""
    xs, ys = batch
    h, _ = rj.unroll(GRU, params["gru"], xs)
    pred = HEAD(params["head"], h)
    return jnp.mean((pred - ys) ** 2), {}


def batches(models=None, steps=STEPS, seed=123):
    """`steps` batches (xs [B, T, F], ys [B, 1]); with `models`, a leading models axis."""
    lead = () if models is None else (models,)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        xs = rng.standard_normal(lead + (BATCH, TIME, FEATURES)).astype(np.float32)
        ys = xs[..., 0].mean(axis=-1, keepdims=True)
        out.append((xs, ys))
    return out


def train_sweep(shared_batch=True, shard=False, check=None):
    """Train the sweep SEEDS x LEARNING_RATES for STEPS steps; return (state, grid)."""
    state, grid = sweep_states(init_params, optimizer_fn, SEEDS,
                               {"learning_rate": LEARNING_RATES})
    step = sweep_step(make_train_step(loss_fn, optimizer_fn(learning_rate=1.0)),
                      shared_batch=shared_batch)
    data = batches(None if shared_batch else len(grid))
    if shard:
        state = shard_models(state)
        if not shared_batch:
            data = [shard_models(b) for b in data]
    for batch in data:
        state, metrics = step(state, batch)
        if check is not None:
            check(state, metrics)
    return state, grid


def flat(tree):
    """{path string: numpy array} of a pytree (for np.savez and comparisons)."""
    return {jax.tree_util.keystr(path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def main(out_dir):
    from jax.sharding import NamedSharding, PartitionSpec

    from rnnjax.train.sweep import models_mesh

    assert jax.device_count() == 4, jax.devices()
    expected = NamedSharding(models_mesh(), PartitionSpec("models"))
    result = {"device_count": jax.device_count(), "checked_leaves": 0}

    def check(state, metrics):
        for leaf in jax.tree_util.tree_leaves((state, metrics)):
            assert len(leaf.sharding.device_set) == 4, leaf.sharding
            assert leaf.sharding.is_equivalent_to(expected, leaf.ndim), leaf.sharding
            assert len(leaf.addressable_shards) == 4
            assert leaf.addressable_shards[0].data.shape[0] == leaf.shape[0] // 4
            result["checked_leaves"] += 1

    for shared in (True, False):
        state, _ = train_sweep(shared_batch=shared, shard=True, check=check)
        np.savez(os.path.join(out_dir, f"params_shared{int(shared)}.npz"), **flat(state.params))

    try:   # M = 3 models over 4 devices
        shard_models(jax.tree_util.tree_map(lambda x: x[:3], state))
        result["indivisible_error"] = None
    except ValueError as e:
        result["indivisible_error"] = str(e)
    with open(os.path.join(out_dir, "result.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
