"""The peers' models with rnnjax's weights: each builder maps rnnjax params to a peer's layout.

A JAX builder returns (fn, weights) with fn(weights, xs [B, T, I]) -> ys [B, T, H], or
None where the peer has no such cell; `build_torch` returns the torch module.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import rnnjax as rj
from rnnjax import _checks

CELLS = ["lstm", "gru", "vanilla"]
JAX_PEERS = ["flax", "equinox", "haiku"]
# "torch1" is torch again with `torch.set_num_threads(1)` while it is timed: on a
# shared machine torch's OpenMP threads at the default count can stall on each other
# (see NOTES.md), and one thread shows what the kernels cost without that.
LIBRARIES = ["rnnjax", *JAX_PEERS, "torch", "torch1"]
MODULES = {"flax": "flax.linen", "equinox": "equinox", "haiku": "haiku", "torch": "torch",
           "torch1": "torch"}
# Which rnnjax cell a peer computes, where it is not the default one.
PEER_VARIANT = {("haiku", "gru"): "reset_before", ("haiku", "vanilla"): "relu"}


def rj_cell(cell, hidden, variant=None):
    """The rnnjax cell named `cell` ("lstm", "gru", "vanilla"), or the variant a peer
    computes ("reset_before" GRU, "relu" vanilla RNN)."""
    if cell == "lstm":
        return rj.LSTM(hidden)
    if cell == "gru":
        return rj.GRU(hidden, reset_after=variant != "reset_before")
    return rj.SimpleRNN(hidden, activation="relu" if variant == "relu" else "tanh")


def available_libraries(wanted):
    """{library: None if importable else the reason}."""
    notes = {}
    for lib in wanted:
        try:
            if lib != "rnnjax":
                __import__(MODULES[lib])
            notes[lib] = None
        except Exception as e:                          # ImportError or a broken install
            notes[lib] = f"{type(e).__name__}: {e}"
    return notes


def _gates(a, n):
    return jnp.split(a, n, axis=-1)


def build_rnnjax(cell_name, hidden, params, variant=None):
    cell = rj_cell(cell_name, hidden, variant)
    return (lambda p, xs: rj.unroll(cell, p, xs)[1]), params


def build_flax(cell_name, hidden, params, xs):
    """nn.RNN of flax's own cell; its params are `rnnjax.linen.from_linen_cell`'s layout
    in reverse, checked by mapping them back."""
    import flax.linen as nn

    from rnnjax.linen import from_linen_cell
    if cell_name == "lstm":
        linen_cell = nn.OptimizedLSTMCell(hidden)
        wx, wh, b = (_gates(params[n], 4) for n in ("W_x", "W_h", "b"))
        p = {}
        for k, g in enumerate("ifgo"):
            p[f"i{g}"] = {"kernel": wx[k]}
            p[f"h{g}"] = {"kernel": wh[k], "bias": b[k]}
    elif cell_name == "gru":
        linen_cell = nn.GRUCell(hidden)
        wx, wh, b = (_gates(params[n], 3) for n in ("W_x", "W_h", "b"))
        p = {f"i{g}": {"kernel": wx[k], "bias": b[k]} for k, g in enumerate("rzn")}
        p.update({f"h{g}": {"kernel": wh[k]} for k, g in enumerate("rzn")})
        p["hn"]["bias"] = params["b_hn"]
    else:
        linen_cell = nn.SimpleCell(hidden)
        p = {"i": {"kernel": params["W_x"], "bias": params["b"]},
             "h": {"kernel": params["W_h"]}}
    model = nn.RNN(linen_cell)
    variables = {"params": {"cell": p}}
    _checks.same_structure("flax params", variables,
                           jax.eval_shape(model.init, jax.random.key(0), xs))
    back = from_linen_cell(linen_cell, p)[1]
    if not all(np.array_equal(back[n], params[n]) for n in params):
        raise AssertionError(f"flax {cell_name}: params do not map back to rnnjax's")
    return model.apply, variables


def build_equinox(cell_name, hidden, params, xs):
    """eqx.nn.LSTMCell / GRUCell (transposed matrices) in `lax.scan`, `vmap` over the
    batch; None for the vanilla RNN (equinox has no such cell)."""
    import equinox as eqx
    input_size = params["W_x"].shape[0]
    key = jax.random.key(0)
    if cell_name == "lstm":
        cell = eqx.nn.LSTMCell(input_size, hidden, key=key)
        cell = eqx.tree_at(lambda c: (c.weight_ih, c.weight_hh, c.bias), cell,
                           (params["W_x"].T, params["W_h"].T, params["b"]))
        zeros = lambda: (jnp.zeros((hidden,)), jnp.zeros((hidden,)))
        out = lambda carry: carry[0]
    elif cell_name == "gru":
        cell = eqx.nn.GRUCell(input_size, hidden, key=key)
        cell = eqx.tree_at(lambda c: (c.weight_ih, c.weight_hh, c.bias, c.bias_n), cell,
                           (params["W_x"].T, params["W_h"].T, params["b"], params["b_hn"]))
        zeros = lambda: jnp.zeros((hidden,))
        out = lambda carry: carry
    else:
        return None
    weights, static = eqx.partition(cell, eqx.is_array)

    def fn(w, xs):
        c = eqx.combine(w, static)

        def one_sequence(seq):                          # [T, I] -> [T, H]
            def body(carry, x):
                carry = c(x, carry)
                return carry, out(carry)
            return lax.scan(body, zeros(), seq)[1]
        return jax.vmap(one_sequence)(xs)
    return fn, weights


def build_haiku(cell_name, hidden, params, xs):
    """hk.LSTM / hk.GRU / hk.VanillaRNN with hk.dynamic_unroll. hk.GRU is the
    reset-before GRU and hk.VanillaRNN a ReLU RNN: see PEER_VARIANT."""
    import haiku as hk
    h = hidden
    if cell_name == "lstm":
        make = lambda: hk.LSTM(h)
        i, f, g, o = _gates(jnp.concatenate([params["W_x"], params["W_h"]], 0), 4)
        bi, bf, bg, bo = _gates(params["b"], 4)
        p = {"lstm/linear": {"w": jnp.concatenate([i, g, f, o], -1),     # haiku: i, g, f, o
                             "b": jnp.concatenate([bi, bg, bf - 1.0, bo])}}  # and f + 1 inside
    elif cell_name == "gru":
        # hk.GRU is the reset-before GRU with h' = (1 - z) h + z a and gates z, r, a:
        # rnnjax's z negated gives the same function (rj.GRU(reset_after=False)).
        make = lambda: hk.GRU(h)
        xr, xz, xn = _gates(params["W_x"], 3)
        hr, hz, hn = _gates(params["W_h"], 3)
        br, bz, bn = _gates(params["b"], 3)
        p = {"gru": {"w_i": jnp.concatenate([-xz, xr, xn], -1),
                     "w_h": jnp.concatenate([-hz, hr, hn], -1),
                     "b": jnp.concatenate([-bz, br, bn])}}
    else:
        make = lambda: hk.VanillaRNN(h)                 # ReLU, a bias on both linears
        p = {"vanilla_rnn/linear": {"w": params["W_x"], "b": params["b"]},
             "vanilla_rnn/linear_1": {"w": params["W_h"], "b": jnp.zeros((h,))}}
    batch = xs.shape[0]

    def forward(xs):
        core = make()
        return hk.dynamic_unroll(core, xs, core.initial_state(batch), time_major=False)[0]
    transformed = hk.without_apply_rng(hk.transform(forward))
    _checks.same_structure("haiku params", p,
                           jax.eval_shape(transformed.init, jax.random.key(0), xs))
    return transformed.apply, p


JAX_BUILDERS = {"flax": build_flax, "equinox": build_equinox, "haiku": build_haiku}


def torch_device():
    """"cuda" when JAX runs on a GPU and torch sees one (torch.nn.LSTM then runs on
    cuDNN), else "cpu"."""
    import torch
    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def build_torch(cell_name, hidden, params):
    """torch.nn.LSTM / GRU / RNN(batch_first=True) from `rj.interop.to_torch`."""
    import torch
    module = rj.interop.to_torch(rj_cell(cell_name, hidden), params)
    assert module.batch_first
    return module.to(device=torch_device(), dtype=torch.float32)
