"""Orthogonal recurrences: expRNN (Lezcano-Casado and Martinez-Rubio 2019) and scoRNN
(Helfrich, Willmott and Ye 2018).

The recurrent matrix is a function of a trained skew-symmetric A (params["A"], whose
strict upper triangle is read): W = expm(A) (expRNN) or the scaled Cayley transform
W = (I + A)^-1 (I - A) D with a fixed diagonal D of +-1 (scoRNN). W is orthogonal to
rounding for every A, so after every optimiser step too, and every singular value of
the recurrent Jacobian's linear part is 1: gradients neither vanish nor explode
through it. The matrix exponential is a Taylor polynomial with scaling and squaring
and the inverse a QR (`rnnjax._linalg.inverse`): matmuls and unbatched kernels only, which
cannot hang XLA:CPU (docs/troubleshooting.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks, _linalg
from rnnjax.cells.base import Cell
from rnnjax.cells.simple import ACTIVATIONS

#: Taylor terms of expm at norm <= 1/2 (error below 1e-20), and the most squarings
#: (norms up to 2^23: far beyond what training reaches)
_TAYLOR_TERMS, _MAX_SQUARINGS = 18, 24
PARAMETRIZATIONS = ("exp", "cayley")
INITS = ("henaff", "cayley")


def modrelu(z, bias):
    """modReLU (Arjovsky, Shah and Bengio 2016) of real z: sign(z) relu(|z| + bias)."""
    return jnp.sign(z) * jax.nn.relu(jnp.abs(z) + bias)


def skew(a):
    """The skew-symmetric matrix of [..., n, n]'s strict upper triangle: U - U^T."""
    upper = jnp.triu(a, 1)
    return upper - jnp.swapaxes(upper, -1, -2)


def expm(a):
    """exp(a) of square [n, n] by scaling and squaring: a Taylor polynomial of
    a / 2^s (1-norm <= 1/2) squared s times. Differentiable; matmuls only."""
    norm = jnp.max(jnp.sum(jnp.abs(a), axis=-2))
    s = jnp.clip(jnp.ceil(jnp.log2(jnp.maximum(norm, 1e-30) / 0.5)), 0, _MAX_SQUARINGS)
    s = lax.stop_gradient(s)
    scaled = a / 2.0 ** s
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    result = eye
    for k in range(_TAYLOR_TERMS, 0, -1):   # Horner: I + X/1 (I + X/2 (I + ...))
        result = eye + (scaled @ result) / k

    def square(i, m):
        return jnp.where(i < s, m @ m, m)

    return lax.fori_loop(0, _MAX_SQUARINGS, square, result)


def cayley(a):
    """(I + a)^-1 (I - a) of skew-symmetric [n, n]: orthogonal, without eigenvalue -1."""
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    return _linalg.inverse(eye + a) @ (eye - a)


def block_skew_init(key, hidden: int, kind: str, dtype=jnp.float32):
    """A skew-symmetric [H, H] of 2x2 blocks [[0, s], [-s, 0]] on the diagonal (a zero
    last unit when H is odd): "henaff" draws s ~ U[-pi, pi] (Henaff, Szlam and LeCun
    2016: expm gives rotations by uniform angles); "cayley" s = -sqrt((1 - cos t) /
    (1 + cos t)), t ~ U[0, pi/2] (Helfrich et al. 2018)."""
    n = hidden // 2
    if kind == "henaff":
        s = jax.random.uniform(key, (n,), dtype, -math.pi, math.pi)
    else:
        t = jax.random.uniform(key, (n,), dtype, 0.0, math.pi / 2)
        s = -jnp.sqrt((1 - jnp.cos(t)) / (1 + jnp.cos(t)))
    a = jnp.zeros((hidden, hidden), dtype)
    rows = jnp.arange(n) * 2
    return a.at[rows, rows + 1].set(s).at[rows + 1, rows].set(-s)


@dataclasses.dataclass(frozen=True)
class OrthogonalRNN(Cell):
    """h_t = act(x_t W_x + h_{t-1} W + b) with W orthogonal by construction.

    `parametrization="exp"`: W = expm(A) (expRNN); `"cayley"`: W = (I + A)^-1 (I - A) D
    (scoRNN), D = diag(-1 x `negatives`, +1 x the rest), fixed. A = skew(params["A"]),
    the trained parameter. `activation="modrelu"` (default): h = sign(z) relu(|z| + b)
    with z = x_t W_x + h_{t-1} W and b the modReLU bias; any other activation of
    `SimpleRNN` ("tanh", "relu", "identity") adds b inside it.

    Params: `W_x` [I, H] (He normal, as expRNN), `A` [H, H], `b` [H] (U[-0.01, 0.01]).
    `init` sets A: "henaff" (default with "exp") or "cayley" (default with "cayley"),
    see `block_skew_init`. `recurrent_matrix(params)` is the W the step uses; the loop
    computes it once per unroll (`step_params`).

    >>> import jax, jax.numpy as jnp, rnnjax as rj
    >>> cell = rj.OrthogonalRNN(4)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> w = cell.recurrent_matrix(params)
    >>> bool(jnp.allclose(w.T @ w, jnp.eye(4), atol=1e-5))
    True
    """

    hidden_size: int
    parametrization: str = "exp"
    activation: str | Callable = "modrelu"
    init_scheme: str | None = None
    negatives: int | None = None
    recurrent_init: str = "skew"      # the base class's field: A is set by init_scheme
    recurrent_scale: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got "
                             f"{self.parametrization!r}")
        if self.init_scheme is not None and self.init_scheme not in INITS:
            raise ValueError(f"init_scheme must be one of {INITS} or None, got "
                             f"{self.init_scheme!r}")
        if not (callable(self.activation) or self.activation == "modrelu"
                or self.activation in ACTIVATIONS):
            raise ValueError(f"activation must be 'modrelu', one of {sorted(ACTIVATIONS)} "
                             f"or a callable, got {self.activation!r}")
        if self.negatives is not None and not (
                isinstance(self.negatives, int) and 0 <= self.negatives <= self.hidden_size):
            raise ValueError(f"negatives must be an int in [0, hidden_size="
                             f"{self.hidden_size}], got {self.negatives!r}")

    @property
    def scheme(self) -> str:
        return self.init_scheme or ("henaff" if self.parametrization == "exp" else "cayley")

    def init(self, key, input_size: int, dtype=jnp.float32):
        input_size = _checks.positive_int("input_size", input_size)
        k_x, k_a, k_b = jax.random.split(_checks.prng_key("key", key), 3)
        h = self.hidden_size
        return {
            "W_x": jax.random.normal(k_x, (input_size, h), dtype) * math.sqrt(2 / input_size),
            "A": block_skew_init(k_a, h, self.scheme, dtype),
            "b": jax.random.uniform(k_b, (h,), dtype, -0.01, 0.01),
        }

    def recurrent_matrix(self, params):
        """The orthogonal W [H, H] of params["A"]."""
        a = skew(params["A"])
        if self.parametrization == "exp":
            return expm(a)
        h = self.hidden_size
        negatives = h // 2 if self.negatives is None else self.negatives
        signs = jnp.where(jnp.arange(h) < negatives, -1.0, 1.0).astype(a.dtype)
        return cayley(a) * signs   # (.) D: column j times D_jj

    def step_params(self, params):
        return {**params, "W_h": self.recurrent_matrix(params)}

    def project_inputs(self, params, x):
        return x @ params["W_x"]

    def step(self, params, carry, xp):
        w = params["W_h"] if "W_h" in params else self.recurrent_matrix(params)
        z = xp + carry @ w
        if self.activation == "modrelu":
            h = modrelu(z, params["b"])
        else:
            act = self.activation if callable(self.activation) else ACTIVATIONS[self.activation]
            h = act(z + params["b"])
        return h, h
