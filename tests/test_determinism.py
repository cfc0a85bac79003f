"""The same seed gives bitwise the same results on CPU across runs (fresh processes),
and results.json says how it was made (versions, devices, seeds, commit)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "loop_worker.py")


def run(args, **kw):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, **kw)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_training_is_bitwise_reproducible_across_processes(tmp_path):
    """Two fresh processes train the same model from the same seed: equal bits."""
    params = []
    for i in range(2):
        path = tmp_path / f"params{i}.npy"
        run([WORKER, str(tmp_path / f"run{i}"), "12", "5", "0", str(path)])
        params.append(np.load(path))
    assert params[0].size > 0
    np.testing.assert_array_equal(params[0], params[1])


def without(keys, tree):
    """`tree` (JSON) without the entries named in `keys`, at any depth."""
    if isinstance(tree, dict):
        return {k: without(keys, v) for k, v in tree.items() if k not in keys}
    if isinstance(tree, list):
        return [without(keys, v) for v in tree]
    return tree


@pytest.mark.slow  # training across fresh processes is bitwise in the default run
def test_study_results_are_bitwise_reproducible_and_record_their_making(tmp_path):
    """A study run twice in fresh processes writes the same numbers; results.json holds
    the versions, devices, seeds and the command."""
    results = []
    for i in range(2):
        out = tmp_path / f"echo{i}"
        run(["-m", "experiments.echo", "--quick", "--steps", "40", "--cells", "lstm",
             "--delays", "1,4", "--out", str(out)])
        results.append(json.loads((out / "results.json").read_text()))
    environment = results[0]["environment"]
    # what may differ: wall times, the output folder's name, the command that named it
    first, second = (without({"seconds", "out", "environment"}, r) for r in results)
    assert first == second
    assert first["seeds_used"] == list(range(first["config"]["seeds"]))
    assert environment["versions"]["jax"] and environment["devices"]
    assert environment["prng"] and "--quick" in environment["command"]
