"""Independent NumPy float64 references: each cell written gate by gate from its
equations, and a per-sequence Python loop in place of the scan."""

from __future__ import annotations

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _np(params):
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def simple_step(p, h, x, act=np.tanh):
    h = act(x @ p["W_x"] + h @ p["W_h"] + p["b"])
    return h, h


def lstm_step(p, carry, x, peephole=None):
    """peephole: None (a plain LSTM), "new" (the output gate reads c_t) or "previous"
    (it reads c_(t-1))."""
    h, c = carry
    H = h.shape[-1]
    gate = lambda k: x @ p["W_x"][:, k * H:(k + 1) * H] + h @ p["W_h"][:, k * H:(k + 1) * H] \
        + p["b"][k * H:(k + 1) * H]
    pi = p["p_i"] * c if peephole else 0.0
    pf = p["p_f"] * c if peephole else 0.0
    i, f, g = sigmoid(gate(0) + pi), sigmoid(gate(1) + pf), np.tanh(gate(2))
    c_new = f * c + i * g
    po = 0.0 if peephole is None else p["p_o"] * (c_new if peephole == "new" else c)
    h_new = sigmoid(gate(3) + po) * np.tanh(c_new)
    return (h_new, c_new), h_new


def gru_step(p, h, x, reset_after=False):
    H = h.shape[-1]
    Wx = [p["W_x"][:, k * H:(k + 1) * H] for k in range(3)]
    Wh = [p["W_h"][:, k * H:(k + 1) * H] for k in range(3)]
    b = [p["b"][k * H:(k + 1) * H] for k in range(3)]
    r = sigmoid(x @ Wx[0] + h @ Wh[0] + b[0])
    z = sigmoid(x @ Wx[1] + h @ Wh[1] + b[1])
    if reset_after:
        n = np.tanh(x @ Wx[2] + b[2] + r * (h @ Wh[2] + p["b_hn"]))
    else:
        n = np.tanh(x @ Wx[2] + (r * h) @ Wh[2] + b[2])
    h = (1 - z) * n + z * h
    return h, h


def clockwork_step(p, carry, x, periods, act=np.tanh):
    h, t = carry
    H = h.shape[-1]
    m = H // len(periods)
    unit_period = np.repeat(periods, m)
    w = np.array(p["W_h"])
    for j in range(H):            # source unit j feeds target unit i iff T_j >= T_i
        for i in range(H):
            if unit_period[j] < unit_period[i]:
                w[j, i] = 0.0
    a = act(x @ p["W_x"] + h @ w + p["b"])
    h_new = np.where(t % unit_period == 0, a, h)
    return (h_new, t + 1), h_new


def step_fn(cell):
    """The reference step and the initial carry of one sequence for an rnnjax cell."""
    import rnnjax as rj
    H = cell.hidden_size
    acts = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0), "identity": lambda a: a}
    if isinstance(cell, rj.ClockworkRNN):
        return (lambda p, c, x: clockwork_step(p, c, x, np.array(cell.periods),
                                               acts[cell.activation]),
                (np.zeros(H), 0))
    if isinstance(cell, rj.PeepholeLSTM):
        return (lambda p, c, x: lstm_step(p, c, x, peephole=cell.output_peephole),
                (np.zeros(H), np.zeros(H)))
    if isinstance(cell, rj.LSTM):
        return lstm_step, (np.zeros(H), np.zeros(H))
    if isinstance(cell, rj.GRU):
        return lambda p, c, x: gru_step(p, c, x, cell.reset_after), np.zeros(H)
    if isinstance(cell, rj.SimpleRNN):
        return lambda p, c, x: simple_step(p, c, x, acts[cell.activation]), np.zeros(H)
    raise TypeError(cell)


def run(cell, params, xs, lengths=None, reverse=False):
    """Outputs [B, T, H] (zero past each length) and final carries, one sequence at a time."""
    step, carry0 = step_fn(cell)
    return run_steps(step, carry0, (cell.hidden_size,), _np(params), xs, lengths, reverse)


def run_steps(step, carry0, output_shape, p, xs, lengths=None, reverse=False):
    """`step` over each sequence of xs [B, T, ...] from `carry0`, within its length
    (backwards with `reverse`): outputs [B, T, *output_shape] (zero past each length)
    and the final carries."""
    xs = np.asarray(xs, np.float64)
    B, T = xs.shape[:2]
    lengths = [T] * B if lengths is None else list(np.asarray(lengths))
    ys = np.zeros((B, T, *output_shape))
    finals = []
    for b in range(B):
        carry = carry0
        order = range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b])
        for t in order:
            carry, ys[b, t] = step(p, carry, xs[b, t])
        finals.append(carry)
    return ys, finals


def conv2d_same(x, kernel):
    """The "SAME" 2D cross-correlation of one map x [H, W, C_in] with kernel
    [k, k, C_in, C_out], odd k, zero padding, written as the sum over the kernel's
    offsets: out[i, j] = sum_{a, b} x[i + a - k // 2, j + b - k // 2] @ kernel[a, b]."""
    k = kernel.shape[0]
    height, width, _ = x.shape
    half = k // 2
    padded = np.zeros((height + 2 * half, width + 2 * half, x.shape[2]))
    padded[half:half + height, half:half + width] = x
    out = np.zeros((height, width, kernel.shape[3]))
    for i in range(height):
        for j in range(width):
            for a in range(k):
                for b in range(k):
                    out[i, j] += padded[i + a, j + b] @ kernel[a, b]
    return out


def convlstm_step(p, carry, x):
    """Shi et al. (2015) without peepholes, one map: gates i, f, g, o are each a
    convolution of x and of h plus a bias, taken gate by gate."""
    h, c = carry
    C = h.shape[-1]
    gate = lambda k: conv2d_same(x, p["W_x"][..., k * C:(k + 1) * C]) \
        + conv2d_same(h, p["W_h"][..., k * C:(k + 1) * C]) + p["b"][k * C:(k + 1) * C]
    i, f, g, o = sigmoid(gate(0)), sigmoid(gate(1)), np.tanh(gate(2)), sigmoid(gate(3))
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return (h_new, c_new), h_new


def convgru_step(p, h, x):
    """The GRU's equations (reset before the recurrent convolution) with convolutions."""
    C = h.shape[-1]
    wx = lambda k: conv2d_same(x, p["W_x"][..., k * C:(k + 1) * C]) + p["b"][k * C:(k + 1) * C]
    wh = lambda k, v: conv2d_same(v, p["W_h"][..., k * C:(k + 1) * C])
    r = sigmoid(wx(0) + wh(0, h))
    z = sigmoid(wx(1) + wh(1, h))
    n = np.tanh(wx(2) + wh(2, r * h))
    h = (1 - z) * n + z * h
    return h, h


def run_conv(cell, params, xs, lengths=None, reverse=False):
    """`run` for a convolutional cell: xs [B, T, H, W, C_in] -> outputs [B, T, H, W, C]
    (zero past each length) and final carries, one sequence and one step at a time."""
    import rnnjax as rj
    zeros = np.zeros((*cell.spatial_shape, cell.hidden_channels))
    step, carry0 = ((convlstm_step, (zeros, zeros)) if isinstance(cell, rj.ConvLSTM)
                    else (convgru_step, zeros))
    return run_steps(step, carry0, zeros.shape, _np(params), xs, lengths, reverse)
