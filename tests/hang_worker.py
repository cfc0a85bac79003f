"""Programs that hung XLA:CPU with jaxlib 0.10 (batched LAPACK kernels in flight at once).

Run as a script by tests/test_no_hang.py, in a subprocess with a timeout, pinned
to two CPUs so that XLA's intra-op pool has two workers on any machine (the
deadlock needs every worker blocked):

    python tests/hang_worker.py CASE CALLS

Prints "done CASE" when all calls finished.
"""

import os
import sys
import threading

if hasattr(os, "sched_setaffinity"):  # before jax starts its thread pools
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cpus[:2])

import jax

import rnnjax as rj
from rnnjax import probe

HIDDEN, INPUT, SEEDS = 64, 10, 2


def vmapped_init(model):
    return jax.jit(jax.vmap(lambda k: model.init(k, INPUT)))


def run_init(model, calls):
    init = vmapped_init(model)
    for i in range(calls):
        jax.block_until_ready(init(jax.random.split(jax.random.key(i), SEEDS)))


def probe_program():
    """Lyapunov spectra and exact Jacobian norms over seeds, for two cells, in one program."""
    cells = (rj.LSTM(8), rj.GRU(8))
    params = [jax.vmap(lambda k, c=cell: c.init(k, 4))(jax.random.split(jax.random.key(0), SEEDS))
              for cell in cells]

    def measure(xs):
        out = []
        for cell, p in zip(cells, params):
            out.append(jax.vmap(lambda q, c=cell: probe.lyapunov_spectrum(c, q, xs))(p))
            out.append(jax.vmap(
                lambda q, c=cell: probe.jacobian_norms(c, q, xs, method="exact"))(p))
        return out

    return jax.jit(measure)


def run_probe(calls, threads):
    """The probe program run from `threads` Python threads at once."""
    measure = probe_program()
    inputs = lambda i: jax.random.normal(jax.random.key(i), (3, 12, 4))
    jax.block_until_ready(measure(inputs(0)))  # compile once

    def work(offset):
        for i in range(calls):
            jax.block_until_ready(measure(inputs(offset + i)))

    workers = [threading.Thread(target=work, args=(1000 * t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


CASES = {
    "init_lstm": lambda calls: run_init(rj.LSTM(HIDDEN), calls),
    "init_gru": lambda calls: run_init(rj.GRU(HIDDEN), calls),
    "init_stacked": lambda calls: run_init(
        rj.Stacked([rj.SimpleRNN(HIDDEN), rj.SimpleRNN(HIDDEN)]), calls),
    "probe_threads": lambda calls: run_probe(calls, threads=3),
}

if __name__ == "__main__":
    case, calls = sys.argv[1], int(sys.argv[2])
    CASES[case](calls)
    print("done", case, flush=True)
