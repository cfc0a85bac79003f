"""Training: a jit-compiled optax step, masked losses, truncated BPTT, a loop that
checkpoints, resumes, evaluates and logs, and sweeps over seeds and hyperparameters
with vmap; `ridge_readout` (from `rnnjax/readout.py`), the closed-form readout of an
echo state network.

    step.py         TrainState and the optax step
    losses.py       masked losses and metrics
    tbptt.py        truncated BPTT
    flossing.py     gradient flossing: flossing_loss, and Flossing for make_train_step
    fitting.py      fit: the loop over steps (evaluation every n steps, loggers, NaN stop)
    checkpoints.py  saving, resuming and restoring a state, damaged checkpoints set aside
    metrics.py      records, the Logger protocol, metrics.jsonl, read_metrics, plot_metrics
    loggers.py      Loggers to experiment trackers: TensorBoardLogger, WandbLogger,
                    MLflowLogger (each package imported on construction; extra `tracking`)
    sweep.py        many models (seeds x hyperparameters) in one step, over devices
    provenance.py   versions, devices, git commit and command of a run
"""

from rnnjax.readout import ridge_readout
from rnnjax.train.checkpoints import restore
from rnnjax.train.fitting import fit
from rnnjax.train.flossing import Flossing, flossing_loss
from rnnjax.train.loggers import MLflowLogger, TensorBoardLogger, WandbLogger
from rnnjax.train.losses import (
    accuracy,
    bits_per_char,
    masked_mean,
    mse,
    softmax_cross_entropy,
    step_mask,
)
from rnnjax.train.metrics import Logger, plot_metrics, read_metrics
from rnnjax.train.provenance import environment
from rnnjax.train.step import TrainState, init_state, make_train_step
from rnnjax.train.sweep import models_mesh, shard_models, sweep_states, sweep_step
from rnnjax.train.tbptt import SubParams, tbptt_loss, tbptt_value_and_grad

__all__ = [
    "Flossing",
    "Logger",
    "MLflowLogger",
    "SubParams",
    "TensorBoardLogger",
    "TrainState",
    "WandbLogger",
    "accuracy",
    "bits_per_char",
    "environment",
    "fit",
    "flossing_loss",
    "init_state",
    "make_train_step",
    "masked_mean",
    "models_mesh",
    "mse",
    "plot_metrics",
    "read_metrics",
    "restore",
    "ridge_readout",
    "shard_models",
    "softmax_cross_entropy",
    "step_mask",
    "sweep_states",
    "sweep_step",
    "tbptt_loss",
    "tbptt_value_and_grad",
]
