"""Gradient-flow probe: how gradients vanish or explode through BPTT.

>>> import jax, jax.numpy as jnp, rnnjax as rj
>>> from rnnjax import probe
>>> cell = rj.SimpleRNN(hidden_size=8, activation="identity", recurrent_scale=0.5)
>>> params = cell.init(jax.random.key(0), input_size=2)
>>> norms = probe.hidden_grad_norms(cell, params, jnp.ones((1, 6, 2)),
...                                 loss_fn=lambda ys: ys[:, -1].sum())
>>> [round(float(n / norms[-1]), 4) for n in norms]   # ||dL/dh_k|| = 0.5^(T-1-k) ||dL/dh_T||
[0.0312, 0.0625, 0.125, 0.25, 0.5, 1.0]
"""

from rnnjax.probe.grad_norms import hidden_grad_norms, naive_hidden_grad_norms

__all__ = ["hidden_grad_norms", "naive_hidden_grad_norms"]
