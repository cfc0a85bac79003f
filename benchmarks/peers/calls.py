"""One timed call per library and mode: "fwd" (the outputs) or "fwd+bwd" (sum(ys) and
its gradients w.r.t. the weights and the inputs)."""

from __future__ import annotations

import numpy as np

from benchmarks.peers.builders import torch_device
from benchmarks.timing import block, compile_fn, fwd_bwd, memory

MODES = ["fwd", "fwd+bwd"]


def jax_call(fn, weights, xs, mode):
    """(call, compile_s, memory) of the jitted fwd or fwd+bwd program, compiled ahead."""
    compiled, compile_s = compile_fn(fn if mode == "fwd" else fwd_bwd(fn), weights, xs)
    return (lambda: block(compiled(weights, xs))), compile_s, memory(compiled)


def torch_call(module, xs, mode, threads=None):
    """A call of the module's fwd (under `torch.inference_mode()`, no autograd graph) or
    fwd+bwd, with `threads` torch threads while it runs (None: the default)."""
    import torch
    device = torch_device()
    x = torch.from_numpy(np.array(xs)).to(device)
    wait = torch.cuda.synchronize if device == "cuda" else (lambda: None)  # async on GPU
    if mode == "fwd":
        def run():
            with torch.inference_mode():
                module(x)
            wait()
    else:
        x.requires_grad_(True)

        def run():
            module.zero_grad(set_to_none=True)
            x.grad = None
            ys, _ = module(x)
            ys.sum().backward()
            wait()
    if threads is None:
        return run

    def call():
        default = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            run()
        finally:
            torch.set_num_threads(default)
    return call
