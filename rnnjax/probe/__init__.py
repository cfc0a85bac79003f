"""Gradient-flow probe: how gradients vanish or explode through BPTT.

- `hidden_grad_norms`: ||dL/dh_k|| for every step k from one backward pass.
- `hidden_grad_log_norms`: their logs, exact over 10^4 steps and more, where the
  norms themselves would underflow or overflow.
- `jacobian_norms`: spectral norm of dh_{T-1}/dh_k for every k (exact or power iteration).
- `step_jacobians`: the per-step state Jacobians (their singular values on demand).
- `lyapunov_spectrum`: Lyapunov exponents by the QR method.
- `decay_rate`, `decay_fit`: fitted exponent per step, its error, half-life, explosion.
- `truncated_param_grad_norms`: ||dL/dparams|| when BPTT is cut k steps back.
- `param_sensitivity`: ||dh_T/dtheta|| per parameter (Zucchet & Orvieto 2024).
- `memory_capacity`: how much of its past input a state holds (Jaeger 2002).
- `sweep`: all of these across cell types, lengths and seeds, as a table and arrays.

>>> import jax, jax.numpy as jnp, rnnjax as rj
>>> from rnnjax import probe
>>> cell = rj.SimpleRNN(hidden_size=8, activation="identity", recurrent_scale=0.5)
>>> params = cell.init(jax.random.key(0), input_size=2)
>>> norms = probe.hidden_grad_norms(cell, params, jnp.ones((1, 6, 2)),
...                                 loss_fn=lambda ys: ys[:, -1].sum())
>>> [round(float(n / norms[-1]), 4) for n in norms]   # ||dL/dh_k|| = 0.5^(T-1-k) ||dL/dh_T||
[0.0312, 0.0625, 0.125, 0.25, 0.5, 1.0]
>>> round(probe.decay_rate(norms), 4)                  # ln 0.5
-0.6931
"""

from rnnjax.probe.decay import DecayFit, decay_fit, decay_rate
from rnnjax.probe.grad_norms import (
    hidden_grad_log_norms,
    hidden_grad_norms,
    naive_hidden_grad_norms,
    param_sensitivity,
    truncated_param_grad_norms,
)
from rnnjax.probe.jacobians import hidden_mask, jacobian_norms, lyapunov_spectrum, step_jacobians
from rnnjax.probe.memory import memory_capacity
from rnnjax.probe.sweep import sweep

__all__ = [
    "DecayFit",
    "decay_fit",
    "decay_rate",
    "hidden_grad_log_norms",
    "hidden_grad_norms",
    "hidden_mask",
    "jacobian_norms",
    "lyapunov_spectrum",
    "memory_capacity",
    "naive_hidden_grad_norms",
    "param_sensitivity",
    "step_jacobians",
    "sweep",
    "truncated_param_grad_norms",
]
