"""Weights to and from `torch.nn.RNN`, `torch.nn.LSTM` and `torch.nn.GRU`.

PyTorch stores each layer and direction as column-vector weights
`weight_ih_l{k}[_reverse]` [G*H, I], `weight_hh_l{k}[_reverse]` [G*H, H] and two
biases `bias_ih`, `bias_hh` [G*H]; rnnjax uses the row-vector form x W_x + h W_h + b.
The gate orders already agree (LSTM i, f, g, o; GRU r, z, n), so the mapping is

    W_x = weight_ih.T                      [I, G*H]
    W_h = weight_hh.T                      [H, G*H]
    RNN, LSTM:  b = bias_ih + bias_hh      (the two biases are always summed)
    GRU:        b = bias_ih + [bias_hh[:2H], 0],   b_hn = bias_hh[2H:]

GRU keeps `b_hn` apart because PyTorch's candidate is tanh(x W_xn + b_in +
r * (h W_hn + b_hn)): the reset gate multiplies that bias (`rj.GRU(reset_after=True)`).

torch is an optional dependency: it is imported only when these functions run.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rnnjax.cells.clockwork import ClockworkRNN
from rnnjax.cells.gru import GRU
from rnnjax.cells.lstm import LSTM, PeepholeLSTM
from rnnjax.cells.simple import IRNN, SimpleRNN, resolve_activation
from rnnjax.layers import Bidirectional, Stacked

_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def _import_torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("rnnjax.interop needs PyTorch: pip install 'rnnjax[torch]'") from e
    return torch


# -- torch -> rnnjax ---------------------------------------------------------------

def from_torch(module):
    """Convert a `torch.nn.RNN` / `LSTM` / `GRU` into `(model, params)` for `rj.unroll`.

    `model` is always `rj.Stacked(layers, dropout=module.dropout,
    time_major=not module.batch_first)`, so `rj.unroll(model, params, xs)` takes `xs`
    in the module's own layout and returns the module's output (padded with zeros
    past each length, like `pad_packed_sequence`, when `seq_lengths` is given).
    Each layer is `rj.SimpleRNN(H, activation=nonlinearity)`, `rj.LSTM(H)` or
    `rj.GRU(H, reset_after=True)`, or `rj.Bidirectional(cell, cell)` (concat) for a
    bidirectional module; `params` is a tuple with one entry per layer
    (`{"fwd": ..., "bwd": ...}` for a bidirectional layer). See the module
    docstring for the weight mapping; with `bias=False` the biases are zeros.

    Dropout between layers is carried over as `Stacked.dropout`, which acts only
    when `rj.unroll` gets a `key`: without one the model matches `module.eval()`.
    Weights become float32 arrays, or float64 for a float64 module (which stays
    float64 only when jax runs with `jax_enable_x64`). An LSTM with `proj_size > 0`
    or any other module type raises `ValueError`.
    """
    torch = _import_torch()
    nn = torch.nn
    if isinstance(module, nn.LSTM):
        kind = "LSTM"
        if getattr(module, "proj_size", 0):
            raise ValueError(f"proj_size={module.proj_size} is not supported: rnnjax's LSTM "
                             f"has no output projection (use proj_size=0)")
    elif isinstance(module, nn.GRU):
        kind = "GRU"
    elif isinstance(module, nn.RNN):
        kind = "RNN"
        if module.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', "
                             f"got {module.nonlinearity!r}")
    else:
        raise ValueError(f"module must be a torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU, "
                         f"got {type(module).__module__}.{type(module).__qualname__}")

    hidden = module.hidden_size
    if kind == "LSTM":
        cell = LSTM(hidden)
    elif kind == "GRU":
        cell = GRU(hidden, reset_after=True)
    else:
        cell = SimpleRNN(hidden, activation=module.nonlinearity)
    # float64 stays float64; any other dtype (half, bfloat16) becomes float32.
    dtype = torch.float64 if module.weight_ih_l0.dtype == torch.float64 else torch.float32

    layers, params = [], []
    for k in range(module.num_layers):
        fwd = _direction_params(module, kind, k, "", dtype)
        if module.bidirectional:
            layers.append(Bidirectional(cell, cell))
            params.append({"fwd": fwd,
                           "bwd": _direction_params(module, kind, k, "_reverse", dtype)})
        else:
            layers.append(cell)
            params.append(fwd)
    model = Stacked(tuple(layers), dropout=float(module.dropout),
                    time_major=not module.batch_first)
    return model, tuple(params)


def _direction_params(module, kind, layer, suffix, dtype):
    """One layer and direction of `module` as rnnjax params (see the module docstring)."""
    def get(name):
        return getattr(module, f"{name}_l{layer}{suffix}").detach().cpu().to(dtype).numpy()

    w_ih, w_hh = get("weight_ih"), get("weight_hh")
    hidden = module.hidden_size
    if module.bias:
        b_ih, b_hh = get("bias_ih"), get("bias_hh")
    else:
        b_ih = b_hh = np.zeros((_GATES[kind] * hidden,), w_ih.dtype)
    params = {"W_x": w_ih.T, "W_h": w_hh.T}
    if kind == "GRU":
        params["b"] = b_ih + np.concatenate([b_hh[:2 * hidden], np.zeros((hidden,), b_hh.dtype)])
        params["b_hn"] = b_hh[2 * hidden:]
    else:
        params["b"] = b_ih + b_hh
    return {name: jnp.asarray(value) for name, value in params.items()}


# -- rnnjax -> torch ---------------------------------------------------------------

def to_torch(model, params):
    """Build the `torch.nn.RNN` / `LSTM` / `GRU` that computes what `model` computes.

    The inverse of `from_torch`. `model` is a cell (`rj.SimpleRNN` with tanh or relu,
    `rj.LSTM`, `rj.GRU(reset_after=True)`), a `rj.Bidirectional` of two such cells
    (merge="concat"), or a `rj.Stacked` of either. Each layer and direction gets
    `weight_ih = W_x.T`, `weight_hh = W_h.T`, `bias_ih = b` and `bias_hh = 0`
    (GRU: `bias_hh = [0, 0, b_hn]`); the sum, the only thing PyTorch's equations
    see, is unchanged. `batch_first = not model.time_major` (True when it is unset
    or `model` is not a `Stacked`), `dropout = Stacked.dropout`; the dtype is that
    of `W_x` (float64 stays float64, anything else becomes float32). The module is
    returned in PyTorch's default (training) mode: call `.eval()` when dropout > 0.

    Raises `ValueError` for what PyTorch cannot represent: `GRU(reset_after=False)`,
    `PeepholeLSTM`, `ClockworkRNN`, activations other than tanh/relu, layers of
    different hidden sizes or cell types, bidirectional layers mixed with
    unidirectional ones, merge="sum", and params whose shapes do not fit.
    """
    torch = _import_torch()
    if isinstance(model, Stacked):
        layers = model.layers
        if not isinstance(params, (tuple, list)) or len(params) != len(layers):
            raise ValueError(f"params must be a tuple with one entry per layer "
                             f"({len(layers)}), got {type(params).__name__}"
                             + (f" of length {len(params)}"
                                if isinstance(params, (tuple, list)) else ""))
        layer_params = tuple(params)
        batch_first = not model.time_major
        dropout = float(model.dropout)
    else:
        layers, layer_params = (model,), (params,)
        batch_first, dropout = True, 0.0

    # Each layer as (cells, params): one entry per direction.
    directions = []
    for i, (layer, p) in enumerate(zip(layers, layer_params)):
        where = f"layer {i}" if isinstance(model, Stacked) else "model"
        if isinstance(layer, Bidirectional):
            if layer.merge != "concat":
                raise ValueError(f"{where}: Bidirectional merge={layer.merge!r} is not "
                                 f"supported: PyTorch concatenates the two directions")
            if not isinstance(p, dict) or set(p) != {"fwd", "bwd"}:
                raise ValueError(f"{where}: params of a Bidirectional must be a dict with "
                                 f"keys 'fwd' and 'bwd'")
            directions.append(((layer.fwd, p["fwd"]), (layer.bwd, p["bwd"])))
        else:
            directions.append(((layer, p),))

    kinds = {_torch_kind(cell, f"layer {i}" + (" (bwd)" if d else ""))
             for i, layer in enumerate(directions) for d, (cell, _) in enumerate(layer)}
    if len(kinds) > 1:
        raise ValueError(f"all layers and directions must be the same cell type for one "
                         f"PyTorch module, got {sorted(kinds, key=str)}")
    (kind, nonlinearity), = kinds
    sizes = {cell.hidden_size for layer in directions for cell, _ in layer}
    if len(sizes) > 1:
        raise ValueError(f"all layers must have the same hidden size for one PyTorch "
                         f"module, got hidden sizes {sorted(sizes)}")
    n_dirs = {len(layer) for layer in directions}
    if len(n_dirs) > 1:
        raise ValueError("layers must be all bidirectional or all unidirectional for one "
                         "PyTorch module, got a mix")
    (hidden,), (n_dirs,) = sizes, n_dirs

    first = directions[0][0][1]
    if not isinstance(first, dict) or "W_x" not in first:
        raise ValueError("params of a cell must be a dict with 'W_x', 'W_h' and 'b'")
    input_size = int(np.shape(first["W_x"])[0])
    double = np.asarray(first["W_x"]).dtype == np.float64
    dtype = torch.float64 if double else torch.float32

    kwargs = dict(input_size=input_size, hidden_size=hidden, num_layers=len(directions),
                  bias=True, batch_first=batch_first,
                  dropout=dropout if len(directions) > 1 else 0.0,
                  bidirectional=n_dirs == 2, dtype=dtype)
    if kind == "RNN":
        module = torch.nn.RNN(nonlinearity=nonlinearity, **kwargs)
    else:
        module = getattr(torch.nn, kind)(**kwargs)

    gates = _GATES[kind]
    with torch.no_grad():
        for k, layer in enumerate(directions):
            in_size = input_size if k == 0 else hidden * n_dirs
            for d, (_, p) in enumerate(layer):
                where = f"params of layer {k}" + (" (bwd)" if d else "")
                p = _checked_params(where, p, kind, in_size, hidden, gates)
                suffix = "_reverse" if d else ""
                b_hh = np.zeros_like(p["b"])
                if kind == "GRU":
                    b_hh[2 * hidden:] = p["b_hn"]
                for name, value in (("weight_ih", p["W_x"].T), ("weight_hh", p["W_h"].T),
                                    ("bias_ih", p["b"]), ("bias_hh", b_hh)):
                    target = getattr(module, f"{name}_l{k}{suffix}")
                    target.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(dtype))
    return module


def _torch_kind(cell, where):
    """("RNN", nonlinearity) / ("LSTM", None) / ("GRU", None), or ValueError."""
    if type(cell) is LSTM:
        return "LSTM", None
    if type(cell) is GRU:
        if not cell.reset_after:
            raise ValueError(f"{where}: GRU(reset_after=False) has no PyTorch equivalent "
                             f"(torch.nn.GRU is the reset_after=True form)")
        return "GRU", None
    if type(cell) in (SimpleRNN, IRNN):
        act = resolve_activation(cell.activation)
        for name in ("tanh", "relu"):
            if act is resolve_activation(name):
                return "RNN", name
        raise ValueError(f"{where}: SimpleRNN activation={cell.activation!r} has no PyTorch "
                         f"equivalent (torch.nn.RNN supports 'tanh' and 'relu')")
    if isinstance(cell, PeepholeLSTM):
        raise ValueError(f"{where}: PeepholeLSTM has no PyTorch equivalent "
                         f"(torch.nn.LSTM has no peephole connections)")
    if isinstance(cell, ClockworkRNN):
        raise ValueError(f"{where}: ClockworkRNN has no PyTorch equivalent")
    raise ValueError(f"{where}: {type(cell).__name__} has no PyTorch equivalent; supported: "
                     f"SimpleRNN (tanh/relu), LSTM, GRU(reset_after=True), Bidirectional "
                     f"of these, and a Stacked of them")


def _checked_params(where, p, kind, in_size, hidden, gates):
    """The params of one direction as float64-safe NumPy arrays, shapes checked."""
    names = ("W_x", "W_h", "b") + (("b_hn",) if kind == "GRU" else ())
    if not isinstance(p, dict) or any(name not in p for name in names):
        raise ValueError(f"{where} must be a dict with keys {list(names)}, got "
                         f"{sorted(p) if isinstance(p, dict) else type(p).__name__}")
    expected = {"W_x": (in_size, gates * hidden), "W_h": (hidden, gates * hidden),
                "b": (gates * hidden,), "b_hn": (hidden,)}
    out = {}
    for name in names:
        value = np.array(p[name])
        if value.shape != expected[name]:
            raise ValueError(f"{where}: {name} must have shape {expected[name]}, "
                             f"got {value.shape}")
        out[name] = value
    return out
