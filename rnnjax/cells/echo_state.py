"""The echo state network's reservoir (Jaeger 2001): a recurrent cell drawn once and
never trained, whose memory is set by its spectral radius."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from rnnjax import _checks, _linalg
from rnnjax.cells.base import Cell
from rnnjax.cells.simple import resolve_activation


@dataclasses.dataclass(frozen=True)
class EchoState(Cell):
    """h_t = (1 - leak) h_{t-1} + leak * act(h_{t-1} W_h + x_t W_x + b).

    The reservoir of an echo state network (Jaeger 2001; Lukosevicius 2012, "A
    practical guide to applying echo state networks"): its weights are drawn once and
    left as they are; only a linear readout of its states is fitted, in closed form
    (`rnnjax.train.ridge_readout`). Params: `W_x` [I, H] uniform in
    [-input_scale, input_scale], `W_h` [H, H] standard normal on a random fraction
    `density` of its entries (the rest zero), scaled so that its spectral radius (the
    largest |eigenvalue|) is `spectral_radius`, and `b` [H] uniform in
    [-bias_scale, bias_scale]. `leak` in (0, 1] is the leaking rate (1: no leak).
    With a spectral radius below 1 the reservoir contracts and forgets its initial
    state (the echo state property, for tanh units); its memory of past inputs grows
    as the radius nears 1 (`rnnjax.probe.memory_capacity`).

    It meets the cell protocol: `rj.unroll` (lengths, reverse, resets), `Stacked`,
    `Bidirectional` and the probe take it as they take any cell.

    >>> import jax, jax.numpy as jnp, rnnjax as rj
    >>> from rnnjax import _linalg
    >>> cell = rj.EchoState(hidden_size=50, spectral_radius=0.9, density=0.2)
    >>> params = cell.init(jax.random.key(0), input_size=1)
    >>> round(float(_linalg.spectral_radius(params["W_h"])), 4)
    0.9
    """

    hidden_size: int
    spectral_radius: float = 0.9
    input_scale: float = 1.0
    leak: float = 1.0
    density: float = 1.0
    bias_scale: float = 0.0
    activation: str | Callable = "tanh"

    def __post_init__(self):
        super().__post_init__()
        if not self.spectral_radius >= 0:
            raise ValueError(f"spectral_radius must be >= 0, got {self.spectral_radius}")
        if not 0 < self.leak <= 1:
            raise ValueError(f"leak must lie in (0, 1], got {self.leak}")
        if not 0 < self.density <= 1:
            raise ValueError(f"density must lie in (0, 1], got {self.density}")
        if not (self.input_scale >= 0 and self.bias_scale >= 0):
            raise ValueError(f"input_scale and bias_scale must be >= 0, got "
                             f"{self.input_scale} and {self.bias_scale}")
        resolve_activation(self.activation)

    def init(self, key, input_size: int, dtype=jnp.float32):
        """`W_x` [I, H], `W_h` [H, H] at the asked spectral radius, `b` [H]."""
        input_size = _checks.positive_int("input_size", input_size)
        k_x, k_h, k_mask, k_b = jax.random.split(_checks.prng_key("key", key), 4)
        h = self.hidden_size
        work = jnp.promote_types(dtype, jnp.float32)
        w = jax.random.normal(k_h, (h, h), work)
        if self.density < 1:
            w = jnp.where(jax.random.bernoulli(k_mask, self.density, (h, h)), w, 0.0)
        radius = _linalg.spectral_radius(w)
        w_h = jnp.where(radius > 0, w * (self.spectral_radius / radius), w)
        return {
            "W_x": jax.random.uniform(k_x, (input_size, h), dtype, -self.input_scale,
                                      self.input_scale),
            "W_h": w_h.astype(dtype),
            "b": jax.random.uniform(k_b, (h,), dtype, -self.bias_scale, self.bias_scale),
        }

    def step(self, params, h, xp):
        act = resolve_activation(self.activation)
        new = act(xp + h @ params["W_h"])
        if self.leak == 1:
            return new, new
        h = h + self.leak * (new - h)
        return h, h
