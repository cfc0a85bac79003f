import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))  # tests/helpers.py, tests/reference.py

# Many tests compile the same programs (a model's init and training step, in the test
# processes and in the study scripts' subprocesses): a compilation cache for this
# session lets the later ones load what the first one compiled. The main process
# makes it; pytest-xdist's workers inherit it through the environment and share it.
_WORKER = "PYTEST_XDIST_WORKER" in os.environ
_CACHE = None if _WORKER else tempfile.mkdtemp(prefix="rnnjax-tests-jax-cache-")
if _CACHE is not None:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")

# XLA:CPU spends most of a test's time compiling tiny programs; LLVM's optimisation
# level 1 compiles them about a third faster than the default. Results may differ
# from the default level in the last bits (no test compares bits across levels), so
# the tests' tolerances are those of float32 arithmetic either way.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=1").strip()

import jax  # noqa: E402  (after the environment it reads)

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


def pytest_unconfigure(config):
    if _CACHE is not None:
        shutil.rmtree(_CACHE, ignore_errors=True)
