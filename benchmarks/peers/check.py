"""The peers compute what rnnjax computes: outputs and input gradients with copied weights.

Run before any timing, on a small case with random non-zero biases (so that a bias
mapped to the wrong place shows). d sum(ys) / d xs depends on every weight, so it
checks the parameter layouts without comparing parameter gradients directly.
"""

from __future__ import annotations

import jax
import numpy as np

from benchmarks.peers.builders import (
    CELLS,
    JAX_BUILDERS,
    PEER_VARIANT,
    build_rnnjax,
    build_torch,
    rj_cell,
    torch_device,
)


def _torch_outputs_and_dx(module, xs):
    import torch
    x = torch.from_numpy(np.array(xs)).to(torch_device()).requires_grad_(True)
    ys, _ = module(x)
    ys.sum().backward()
    return ys.detach().cpu().numpy(), x.grad.cpu().numpy()


def _test_params(cell, k_p, k_b, input_size):
    params = cell.init(k_p, input_size)
    return {**params, **{n: 0.5 * jax.random.normal(jax.random.fold_in(k_b, j), params[n].shape)
                         for j, n in enumerate(("b", "b_hn")) if n in params}}


def check_equivalence(cells, libs, key, tol=1e-4, shape=(3, 7, 5, 6)):
    """Each peer's ys and d sum(ys)/d xs equal rnnjax's at (B, T, I, H) = `shape`
    ("torch1" is torch's modules again: not checked twice). Returns {(lib, cell):
    description}; raises AssertionError on a mismatch."""
    b, t, i, h = shape
    results = {}
    for cell_name in cells:
        k_p, k_b, k_x = jax.random.split(jax.random.fold_in(key, CELLS.index(cell_name)), 3)
        xs = jax.random.normal(k_x, (b, t, i))
        for lib in libs:
            if lib in ("rnnjax", "torch1"):
                continue
            variant = PEER_VARIANT.get((lib, cell_name))
            cell = rj_cell(cell_name, h, variant)
            params = _test_params(cell, k_p, k_b, i)
            ref_fn, _ = build_rnnjax(cell_name, h, params, variant)
            ys_ref = ref_fn(params, xs)
            dx_ref = jax.grad(lambda x: ref_fn(params, x).sum())(xs)
            if lib == "torch":
                ys, dx = _torch_outputs_and_dx(build_torch(cell_name, h, params), xs)
            else:
                built = JAX_BUILDERS[lib](cell_name, h, params, xs)
                if built is None:
                    continue
                fn, weights = built
                ys = fn(weights, xs)
                dx = jax.grad(lambda x: fn(weights, x).sum())(xs)
            if np.shape(ys) != ys_ref.shape:
                raise AssertionError(f"{lib} {cell_name}: output shape {np.shape(ys)} != "
                                     f"rnnjax's {ys_ref.shape}")
            err_y = float(np.max(np.abs(np.asarray(ys) - np.asarray(ys_ref))))
            err_x = float(np.max(np.abs(np.asarray(dx) - np.asarray(dx_ref))))
            against = f"rj.{type(cell).__name__}" + (f" ({variant})" if variant else "")
            desc = (f"outputs and d sum(ys)/d xs equal {against} with copied weights: "
                    f"max abs err {err_y:.1e}, {err_x:.1e}")
            if not (err_y <= tol and err_x <= tol):
                raise AssertionError(f"{lib} {cell_name}: {desc} > {tol}")
            results[(lib, cell_name)] = desc
            print(f"check {cell_name:7s} {lib:8s} {desc}", flush=True)
    return results
