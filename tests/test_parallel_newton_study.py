"""The parallel Newton study end to end, at a tiny size."""

import json

import numpy as np
from helpers import assert_usage_error

from experiments import parallel_newton


def test_tiny_study_writes_its_report_and_trains_alike(tmp_path):
    out = tmp_path / "pn"
    parallel_newton.main(["--quick", "--cells", "gru", "--lengths", "20", "--scales", "0.5",
                          "--sweep-length", "20", "--sweep-hidden", "3", "--hidden", "2",
                          "--steps", "3", "--batch", "2", "--train-length", "8",
                          "--max-iter", "20", "--out", str(out)])
    for name in ("results.json", "report.md", "iterations.png"):
        assert (out / name).stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    assert {(r["T"], r["jacobian"]) for r in results["against_length"]} == \
        {(20, "full"), (20, "diagonal")}
    for row in results["against_length"] + results["against_exponent"]:
        assert row["converged"] and row["max_abs_error"] < 1e-5 and row["lyapunov"] < 0
    losses = np.array([[h["sequential"], h["newton"]] for h in results["training"]])
    np.testing.assert_allclose(losses[:, 1], losses[:, 0], atol=1e-5)
    assert "## Training a GRU" in (out / "report.md").read_text()


def test_a_cell_outside_the_sweep_is_a_usage_error(capsys, tmp_path):
    assert_usage_error(capsys, parallel_newton.main,
                       ["--cells", "lstm", "--out", str(tmp_path / "x")],
                       r"--cells: this study sweeps gru,tanh, got \['lstm'\]")
