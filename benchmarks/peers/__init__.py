"""rnnjax against its peers: flax.linen, equinox, haiku and PyTorch, timed in one run.

For each configuration (B, T, I, H), cell (LSTM, GRU, vanilla tanh RNN) and mode it
times, on batch-major inputs xs [B, T, I]:

  fwd       the outputs ys [B, T, H] of the whole sequence (torch: under
            `torch.inference_mode()`, i.e. without building the autograd graph)
  fwd+bwd   loss = sum(ys) and its gradients w.r.t. the params AND the inputs (what
            torch's `backward()` computes): `jax.grad(loss, argnums=(0, 1))`

with these implementations (a peer that does not import is skipped with a note):

  rnnjax    rj.unroll(rj.LSTM(H) | rj.GRU(H, reset_after=True) | rj.SimpleRNN(H), params, xs)
  flax      nn.RNN(nn.OptimizedLSTMCell(H) | nn.GRUCell(H) | nn.SimpleCell(H))
  equinox   eqx.nn.LSTMCell | eqx.nn.GRUCell, `lax.scan` over time, `vmap` over the
            batch (equinox has no vanilla RNN cell: skipped)
  haiku     hk.LSTM | hk.GRU | hk.VanillaRNN with hk.dynamic_unroll(time_major=False)
  torch     torch.nn.LSTM | GRU | RNN(batch_first=True), CPU at the default thread
            count, or CUDA (cuDNN) when JAX runs on a GPU and torch sees one
  torch1    the same modules timed with torch.set_num_threads(1) (then restored)

Every library gets the SAME weights, copied from the rnnjax params, and before any
timing a small case (B=3, T=7, I=5, H=6, random non-zero biases) checks that each
peer's outputs and d sum(ys) / d xs equal rnnjax's to 1e-4. Two peers compute a
different variant, checked against the matching rnnjax cell and timed as they are:
hk.GRU is the reset-before GRU (rj.GRU(reset_after=False), update gate negated and
gate order z, r, a) and hk.VanillaRNN is a ReLU RNN with two biases
(rj.SimpleRNN(activation="relu")); the tables compare them with the rnnjax cells
above all the same (same shapes and matmuls, a different elementwise tail).

Timing (`benchmarks.timing`): each JAX function is compiled ahead (compile time
recorded separately); every library's call is warmed up (JAX once, torch twice),
then the libraries are timed in rounds, one call each per round, so that a change in
machine load hits all alike; each stops after `--repeats` calls, or after 3 once its
calls add up to `--budget-s`; the median is reported. Memory (JAX only): the compiled
program's `memory_analysis()` (XLA's buffer assignment, not a measured RSS); the
tables use its temp bytes (XLA's `peak_memory_in_bytes` came out below temp for these
scans on CPU). Torch memory is not measured (null in the JSON).

`--long`: backpropagation through T = 10,000 and 100,000 steps with
`rj.unroll(..., remat=True)` against plain autodiff (`long_sequences`).

    python -m benchmarks.peers            # 4 default configs x 3 cells x 2 modes, all libraries
    python -m benchmarks.peers --quick    # first config, LSTM, fwd+bwd
    python -m benchmarks.peers --sweep    # T, B and H sweeps instead of the default configs
    python -m benchmarks.peers --long     # the long-sequence remat study only

JSON lines are appended to benchmarks/results/peers.jsonl (one object per
measurement; `run_id` tells the runs apart); a table per configuration is printed
with each library's median ms and the ratios rnnjax / peer (< 1: rnnjax faster).

Modules: `builders` (each peer's model with rnnjax's weights), `check` (the
equivalence check), `calls` (the timed fwd and fwd+bwd calls), `run` (flags,
configurations, JSON lines), `tables` (the printed tables), `long_sequences`.
"""

from benchmarks.peers.run import main

__all__ = ["main"]
