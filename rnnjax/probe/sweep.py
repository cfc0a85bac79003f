"""The probe's measures across cell types, BPTT lengths and seeds, in one call."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import _checks
from rnnjax.probe.decay import decay_fit
from rnnjax.probe.grad_norms import hidden_grad_norms
from rnnjax.probe.jacobians import jacobian_norms, lyapunov_spectrum


class SweepResult(NamedTuple):
    rows: list      # one dict per (cell, T): fitted rates, half-lives, exponents
    arrays: dict    # (name, T) -> {"grad_norms": [seeds, T], "jacobian_norms": [seeds, T],
                    #               "lyapunov": [seeds, k]}

    def table(self, columns=("cell", "T", "grad_rate", "grad_half_life", "exploding",
                             "jacobian_rate", "lyapunov_max")) -> str:
        """The rows as a markdown table (columns no row has, such as a measure not
        taken, are left out)."""
        columns = [c for c in columns if any(c in row for row in self.rows)]

        def fmt(v):
            return f"{v:.4g}" if isinstance(v, float) else str(v)
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |"
                  for row in self.rows]
        return "\n".join(lines)


def sweep(cells: dict, lengths, *, seeds=3, batch=8, input_size=4, input_scale=1.0, key=None,
          params=None,
          measures=("grad", "jacobian", "lyapunov"), lyapunov_k=None, jacobian_batch=2):
    """Measure gradient flow for every cell in `cells` (name -> cell) and T in `lengths`.

    `seeds`: how many seeds (an int n: seeds 0, 1, ..., n-1), or a list of seeds; seed
    s initialises from the s-th of the keys split from `key`, so `seeds=[2]` repeats
    the third model of `seeds=3`. Each seed is a different initialisation (a `vmap`
    over init keys), or, when
    `params` (name -> params stacked over a leading seeds axis, e.g. checkpoints of a
    training run) is given, those params. The inputs are `input_scale` times standard
    normal [batch, T, input_size], shared by the seeds (strong inputs saturate tanh
    units and hide the recurrent dynamics; weak ones expose them). Measures:
      "grad": `hidden_grad_norms` for the loss sum(h_{T-1} . u) (u a fixed unit
        vector), so dL/dh_k is the signal sent back T-1-k steps;
      "jacobian": `jacobian_norms` (exact) on the first `jacobian_batch` sequences;
      "lyapunov": the `lyapunov_k` largest Lyapunov exponents.
    Each row holds the mean and spread over seeds of the fitted decay rate per step,
    half-life and the fraction of seeds whose norms explode.
    """
    key = jax.random.key(0) if key is None else key
    k_init, k_x, k_u = jax.random.split(key, 3)
    seed_list = _checks.seeds(seeds)
    init_keys = jax.random.split(k_init, max(seed_list) + 1)[jnp.asarray(seed_list)]
    rows, arrays = [], {}
    for name, cell in cells.items():
        if params is not None and name in params:
            p = params[name]
        else:
            p = jax.vmap(lambda k: cell.init(k, input_size))(init_keys)
        u = jax.random.normal(k_u, (cell.hidden_size,))
        u = u / jnp.linalg.norm(u)
        loss_fn = lambda ys: jnp.sum(ys[:, -1] @ u) / ys.shape[0]
        for steps in lengths:
            xs = input_scale * jax.random.normal(jax.random.fold_in(k_x, steps),
                                               (batch, steps, input_size))
            out = {}
            if "grad" in measures:
                out["grad_norms"] = jax.jit(jax.vmap(
                    lambda q: hidden_grad_norms(cell, q, xs, loss_fn)))(p)
            if "jacobian" in measures:
                out["jacobian_norms"] = jax.jit(jax.vmap(
                    lambda q: jacobian_norms(cell, q, xs[:jacobian_batch], method="exact")))(p)
            if "lyapunov" in measures:
                out["lyapunov"] = jax.jit(jax.vmap(
                    lambda q: lyapunov_spectrum(cell, q, xs, k=lyapunov_k)))(p)
            out = {m: np.asarray(a) for m, a in out.items()}
            arrays[(name, steps)] = out
            rows.append(_row(name, steps, out))
    return SweepResult(rows, arrays)


def _row(name, steps, out):
    with np.errstate(invalid="ignore", divide="ignore"):  # -inf exponents: singular products
        return _row_values(name, steps, out)


def _row_values(name, steps, out):
    row = {"cell": name, "T": steps}
    for measure, prefix in (("grad_norms", "grad"), ("jacobian_norms", "jacobian")):
        if measure in out:
            fits = [decay_fit(n) for n in out[measure]]
            rates = np.array([f.rate for f in fits])
            row[f"{prefix}_rate"] = float(np.nanmean(rates))
            row[f"{prefix}_rate_std"] = float(np.nanstd(rates))
            row[f"{prefix}_half_life"] = float(np.median([f.half_life for f in fits]))
            if prefix == "grad":
                row["exploding"] = float(np.mean([f.exploding for f in fits]))
                row["grad_log10_ratio"] = float(np.mean(
                    np.log10(out[measure][:, 0] / out[measure][:, -1])))
    if "lyapunov" in out:
        row["lyapunov_max"] = float(out["lyapunov"][:, 0].mean())
        row["lyapunov_max_std"] = float(out["lyapunov"][:, 0].std())
    return row
