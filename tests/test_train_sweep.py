"""Sweeps (rnnjax.train.sweep): many models in one compiled step, on 1 device and on 4.

The tiny sweep (a GRU(8) + Dense(1) regressor, 2 seeds x 2 learning rates) lives in
tests/sweep_devices.py, which also runs, in a subprocess with 4 forced CPU devices,
the same sweep sharded over the devices. That subprocess starts with the first test
here and runs while the single-device tests do.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sweep_devices as sd
from jax.sharding import Mesh

import rnnjax as rj
from rnnjax.train import init_state, make_train_step
from rnnjax.train.sweep import models_mesh, shard_models, sweep_states, sweep_step

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


@pytest.fixture(scope="module", autouse=True)
def four_devices(tmp_path_factory):
    """The 4-device run, started in the background; `wait()` returns its results."""
    out = tmp_path_factory.mktemp("sweep4")
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "")
                          + " --xla_force_host_platform_device_count=4").strip())
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "sweep_devices.py"), str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)

    def wait():
        log, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"4-device run failed:\n{log}"
        with open(out / "result.json") as f:
            result = json.load(f)
        params = {shared: dict(np.load(out / f"params_shared{int(shared)}.npz"))
                  for shared in (True, False)}
        return result, params

    yield wait
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def sweeps():
    """The sweep trained on this process's single device, through `shard_models` (a
    plain device_put here), with a shared batch and with one batch per model."""
    return {shared: sd.train_sweep(shared_batch=shared, shard=True) for shared in (True, False)}


def single_runs(grid, per_model_batch):
    """Each model of the grid trained on its own: make_train_step + a plain optax.sgd."""
    steps = {}
    finals = []
    shared_data, model_data = sd.batches(), sd.batches(len(grid))
    for m, g in enumerate(grid):
        lr = g["learning_rate"]
        optimizer = sd.plain_optimizer(lr)
        if lr not in steps:
            steps[lr] = jax.jit(make_train_step(sd.loss_fn, optimizer))
        k_params, k_state = jax.random.split(jax.random.key(g["seed"]))
        state = init_state(sd.init_params(k_params), optimizer, k_state)
        for shared, per_model in zip(shared_data, model_data):
            batch = jax.tree_util.tree_map(lambda x: x[m], per_model) if per_model_batch else shared
            state, _ = steps[lr](state, batch)
        finals.append(state)
    return finals


def model(tree, m):
    return jax.tree_util.tree_map(lambda x: x[m], tree)


def test_grid_order_and_stacked_state(sweeps):
    state, grid = sweeps[True]
    assert grid == [{"seed": s, "learning_rate": lr}
                    for s in sd.SEEDS for lr in sd.LEARNING_RATES]
    models = len(grid)
    for leaf in jax.tree_util.tree_leaves(state):
        assert leaf.shape[0] == models
    np.testing.assert_array_equal(state.step, [sd.STEPS] * models)
    np.testing.assert_allclose(state.opt_state.hyperparams["learning_rate"],
                               [g["learning_rate"] for g in grid], rtol=1e-7)

    # Two hyperparameters: seeds outermost, then the dict's order, the last fastest.
    dense = rj.Dense(2)
    state, grid = sweep_states(lambda k: dense.init(k, 3), optax.inject_hyperparams(optax.adam),
                               seeds=[7], hyperparams={"learning_rate": [0.1, 0.2], "b1": 0.5})
    assert grid == [{"seed": 7, "learning_rate": 0.1, "b1": 0.5},
                    {"seed": 7, "learning_rate": 0.2, "b1": 0.5}]
    np.testing.assert_array_equal(state.opt_state.hyperparams["b1"], [0.5, 0.5])
    assert state.params["W"].shape == (2, 3, 2) and state.step.shape == (2,)
    k_params, _ = jax.random.split(jax.random.key(7))
    np.testing.assert_array_equal(state.params["W"][1], dense.init(k_params, 3)["W"])


@pytest.mark.parametrize("shared_batch", [True, False], ids=["shared_batch", "per_model_batch"])
def test_sweep_equals_separate_runs(sweeps, shared_batch):
    state, grid = sweeps[shared_batch]
    singles = single_runs(grid, per_model_batch=not shared_batch)
    for m, single in enumerate(singles):
        for a, b in zip(jax.tree_util.tree_leaves(model(state.params, m)),
                        jax.tree_util.tree_leaves(single.params)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        assert int(state.step[m]) == int(single.step) == sd.STEPS
        np.testing.assert_array_equal(jax.random.key_data(state.key[m]),
                                      jax.random.key_data(single.key))
    # The models differ: the sweep is not one model copied M times.
    w = np.asarray(state.params["head"]["W"])
    assert all(np.abs(w[i] - w[j]).max() > 1e-4 for i in range(len(w)) for j in range(i))


@pytest.mark.parametrize("shared_batch", [True, False], ids=["shared_batch", "per_model_batch"])
def test_four_devices_same_as_one(four_devices, sweeps, shared_batch):
    result, params4 = four_devices()
    assert result["device_count"] == 4
    assert result["checked_leaves"] > 0   # every output leaf sharded over the 4 devices
    params1 = sd.flat(sweeps[shared_batch][0].params)
    assert params1.keys() == params4[shared_batch].keys()
    for name, a in params1.items():
        np.testing.assert_allclose(params4[shared_batch][name], a, rtol=0, atol=1e-6,
                                   err_msg=name)


def test_models_must_divide_device_count(four_devices):
    result, _ = four_devices()
    message = result["indivisible_error"]
    assert message is not None, "3 models over 4 devices did not raise"
    assert "M=3" in message and "4" in message


def test_bad_sweep_arguments_are_value_errors():
    dense = rj.Dense(1)
    init = lambda k: dense.init(k, 2)
    with pytest.raises(ValueError, match="inject_hyperparams"):
        sweep_states(init, lambda learning_rate: optax.sgd(learning_rate), [0, 1],
                     {"learning_rate": [0.1, 0.2]})
    with pytest.raises(ValueError, match="seeds"):
        sweep_states(init, optax.inject_hyperparams(optax.sgd), [])
    with pytest.raises(ValueError, match="numbers"):
        sweep_states(init, optax.inject_hyperparams(optax.sgd), 1, {"nesterov": [True, False]})
    with pytest.raises(ValueError, match="axis named 'models'"):
        shard_models({"w": jnp.zeros((2, 3))}, Mesh(np.array(jax.devices()), ("x",)))
    with pytest.raises(ValueError, match="same leading"):
        shard_models({"w": jnp.zeros((2, 3)), "v": jnp.zeros((3,))})
    assert models_mesh().shape["models"] == jax.device_count()
    with pytest.raises(ValueError, match="step_fn"):
        sweep_step(None)


def test_an_int_of_seeds_is_a_count_as_in_the_probe_and_the_studies():
    dense = rj.Dense(1)
    init = lambda k: dense.init(k, 2)
    state, grid = sweep_states(init, optax.inject_hyperparams(optax.sgd), seeds=3,
                               hyperparams={"learning_rate": 0.1})
    assert [g["seed"] for g in grid] == [0, 1, 2]
    listed, _ = sweep_states(init, optax.inject_hyperparams(optax.sgd), seeds=[0, 1, 2],
                             hyperparams={"learning_rate": 0.1})
    np.testing.assert_array_equal(state.params["W"], listed.params["W"])
    with pytest.raises(ValueError, match="count >= 1"):
        sweep_states(init, optax.inject_hyperparams(optax.sgd), seeds=0,
                     hyperparams={"learning_rate": 0.1})


def test_seeds_alone_name_the_missing_hyperparameter():
    dense = rj.Dense(1)
    with pytest.raises(ValueError, match=r"learning_rate.*hyperparams=\{'learning_rate'"):
        sweep_states(lambda k: dense.init(k, 2), optax.inject_hyperparams(optax.adam),
                     seeds=[0, 1, 2])
    # an optimizer whose every argument has a default needs no hyperparams
    state, grid = sweep_states(lambda k: dense.init(k, 2),
                               lambda: optax.sgd(0.1), seeds=2)
    assert grid == [{"seed": 0}, {"seed": 1}] and state.step.shape == (2,)
