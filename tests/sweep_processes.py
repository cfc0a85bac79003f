"""One process of a multi-process sweep (jax.distributed on the CPU backend, gloo
collectives), run by tests/test_train_processes.py, once per process:

    python tests/sweep_processes.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR NUM_STEPS...

The processes join through a coordinator on localhost:PORT (process 0 serves it).
Each has DEVICES_PER_PROCESS CPU devices, every process builds the same sweep (the
one of tests/sweep_devices.py, 4 models) and `shard_models` spreads the models over
all processes' devices, one per device. For each NUM_STEPS in turn, `fit` trains
the initial sweep to that many steps in OUT_DIR/run, so every call after the first
resumes from the checkpoint the previous one left there (all processes save and
restore it together). After each call the state is gathered from all processes:
process 0 writes it to OUT_DIR/state_<NUM_STEPS>.npz. Every process writes
OUT_DIR/process_<PROCESS_ID>.json (the steps each call ran, the models it held).
"""

import json
import os
import sys

import jax
import numpy as np
import sweep_devices as sd
from jax.experimental.multihost_utils import process_allgather
from jax.sharding import NamedSharding, PartitionSpec

from rnnjax.train import fit, make_train_step
from rnnjax.train.checkpoints import _storable as storable  # typed keys as raw data
from rnnjax.train.sweep import models_mesh, shard_models, sweep_states, sweep_step

DEVICES_PER_PROCESS = 2


def batch_fn(step: int):
    """The shared batch of `step` (xs [B, T, F], ys [B, 1]): a pure function of step."""
    rng = np.random.default_rng(step)
    xs = rng.standard_normal((sd.BATCH, sd.TIME, sd.FEATURES)).astype(np.float32)
    return xs, xs[..., 0].mean(axis=-1, keepdims=True)


def main(process_id, num_processes, port, out_dir, targets):
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_num_cpu_devices", DEVICES_PER_PROCESS)
    jax.distributed.initialize(coordinator_address=f"localhost:{port}",
                               num_processes=num_processes, process_id=process_id,
                               initialization_timeout=120)
    step_fn = sweep_step(make_train_step(sd.loss_fn, sd.optimizer_fn(learning_rate=1.0)))
    expected = NamedSharding(models_mesh(), PartitionSpec("models"))
    report = {"process_index": jax.process_index(), "process_count": jax.process_count(),
              "device_count": jax.device_count(),
              "local_device_count": jax.local_device_count(), "calls": []}
    initial, grid = sweep_states(sd.init_params, sd.optimizer_fn, sd.SEEDS,
                                 {"learning_rate": sd.LEARNING_RATES})
    initial = shard_models(initial)
    for num_steps in targets:
        ran = []

        def logged_batch_fn(step):
            ran.append(step)
            return batch_fn(step)

        state, history = fit(step_fn, initial, logged_batch_fn, num_steps,
                             os.path.join(out_dir, "run"), checkpoint_every=2,
                             log_every=1, progress=False)
        leaves = jax.tree_util.tree_leaves(state)
        report["calls"].append({
            "num_steps": num_steps, "ran": ran, "history": history,
            # Every leaf, restored ones included, spread over all processes' devices.
            "all_sharded": all(leaf.sharding.is_equivalent_to(expected, leaf.ndim)
                               and not leaf.is_fully_addressable for leaf in leaves),
            # The models (rows) this process holds.
            "local_models": sorted(i for shard in leaves[0].addressable_shards
                                   for i in range(leaves[0].shape[0])[shard.index[0]]),
        })
        gathered = process_allgather(storable(state), tiled=True)
        if jax.process_index() == 0:
            np.savez(os.path.join(out_dir, f"state_{num_steps}.npz"), **sd.flat(gathered))
    report["grid"] = grid
    with open(os.path.join(out_dir, f"process_{process_id}.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    pid, count, port, out = sys.argv[1:5]
    main(int(pid), int(count), int(port), out, [int(n) for n in sys.argv[5:]])
