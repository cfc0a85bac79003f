"""Training: a jit-compiled optax step, masked losses, truncated BPTT, checkpointed
loops that resume, and sweeps over seeds and hyperparameters with vmap."""

from rnnjax.train.loop import fit, plot_metrics, read_metrics
from rnnjax.train.losses import accuracy, masked_mean, mse, softmax_cross_entropy, step_mask
from rnnjax.train.step import TrainState, init_state, make_train_step
from rnnjax.train.sweep import models_mesh, shard_models, sweep_states, sweep_step
from rnnjax.train.tbptt import SubParams, tbptt_value_and_grad

__all__ = ["TrainState", "init_state", "make_train_step", "softmax_cross_entropy", "mse",
           "accuracy", "masked_mean", "step_mask", "sweep_states", "sweep_step",
           "shard_models", "models_mesh", "tbptt_value_and_grad", "SubParams",
           "fit", "plot_metrics", "read_metrics"]
