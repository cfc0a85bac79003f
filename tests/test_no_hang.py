"""Programs that hung for good on XLA:CPU with jaxlib 0.10 finish.

Batched LAPACK kernels in flight at once could block every worker of XLA's CPU
thread pool (docs/troubleshooting.md). Each case runs tests/hang_worker.py in a
subprocess pinned to two CPUs, with a timeout, so that a hang fails here in
minutes instead of stalling the suite. Before the fix every case hung within
its first few hundred calls on a 2-core machine (vmapped inits within seconds).
"""

import os
import subprocess
import sys

import pytest

WORKER = os.path.join(os.path.dirname(__file__), "hang_worker.py")


@pytest.mark.parametrize("case, calls", [("init_lstm", 300), ("init_gru", 300),
                                         ("init_stacked", 300), ("probe_threads", 60)])
def test_finishes(case, calls):
    try:
        out = subprocess.run([sys.executable, WORKER, case, str(calls)], capture_output=True,
                             text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: {calls} calls did not finish in 180 s (XLA:CPU hang?)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"done {case}" in out.stdout
