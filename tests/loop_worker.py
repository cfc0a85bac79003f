"""The tiny training problem of tests/test_loop.py, and a script that trains it.

As a module it gives `problem()`; as a script (the kill-and-resume test runs it in a
subprocess) it trains with `fit` and saves the final params:

    python tests/loop_worker.py OUT_DIR NUM_STEPS CHECKPOINT_EVERY SLEEP PARAMS.npy
"""

import functools
import sys
import time

import jax
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import rnnjax as rj
from rnnjax.train import init_state, make_train_step, mse

CELL = rj.GRU(8)
BATCH, STEPS, FEATURES = 4, 5, 2


def batch_fn(step: int):
    """A regression batch that depends only on `step`: predict the sum of feature 0."""
    rng = np.random.default_rng(step)
    xs = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
    return xs, xs[:, :, :1].sum(axis=1)


def init_params(key):
    k_cell, k_out = jax.random.split(key)
    return {"cell": CELL.init(k_cell, input_size=FEATURES),
            "out": 0.1 * jax.random.normal(k_out, (CELL.hidden_size, 1))}


def loss_fn(params, batch, key):
    xs, ys = batch
    _, hs = rj.unroll(CELL, params["cell"], xs)
    return mse(hs[:, -1] @ params["out"], ys), {}


@functools.cache
def problem(seeds: int | None = None, batched_data: bool = False):
    """`(step_fn, initial_state)`; with `seeds`, both vmapped over a leading seeds axis.

    Cached, so the tests share one compiled step. `batched_data` vmaps the step over
    the batch too (the batch then needs a leading seeds axis).
    """
    optimizer = optax.adam(1e-2)
    step = make_train_step(loss_fn, optimizer)
    if seeds is None:
        return jax.jit(step), init_state(init_params(jax.random.key(0)), optimizer,
                                         jax.random.key(1))
    keys = jax.random.split(jax.random.key(0), seeds)
    state = jax.vmap(lambda k: init_state(init_params(k), optimizer,
                                          jax.random.fold_in(k, 1)))(keys)
    return jax.jit(jax.vmap(step, in_axes=(0, 0 if batched_data else None))), state


def flat_params(state) -> np.ndarray:
    return np.asarray(ravel_pytree(state.params)[0])


def main(out_dir, num_steps, checkpoint_every, sleep, params_path):
    from rnnjax.train import fit

    def slow_batch_fn(step):
        time.sleep(sleep)  # room for the test to kill the run mid-way
        return batch_fn(step)

    step_fn, state = problem()
    state, _ = fit(step_fn, state, slow_batch_fn, num_steps, out_dir,
                   checkpoint_every=checkpoint_every, log_every=1, progress=False)
    np.save(params_path, flat_params(state))


if __name__ == "__main__":
    out, n, every, pause, path = sys.argv[1:]
    main(out, int(n), int(every), float(pause), path)
