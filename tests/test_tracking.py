"""The tracking study end to end at a tiny size: files written, results consistent."""

import json

import numpy as np
import pytest

from experiments import tracking


def test_tracking_study_at_a_tiny_size(tmp_path):
    out = tmp_path / "tracking"
    tracking.main(["--cells", "gru", "--seeds", "2", "--steps", "4", "--eval-every", "2",
                   "--hidden", "4", "--batch", "4", "--length", "6", "--test-size", "8",
                   "--particles", "16", "--checkpoint-every", "4", "--systems", "pendulum",
                   "--out", str(out)])
    for name in ("results.json", "report.md", "trajectory.png", "mse_per_step.png",
                 "training.png", "pendulum/gru/metrics.jsonl"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["steps"] == 4 and list(saved["results"]) == ["pendulum"]
    for system, refs in [("pendulum", ["EKF", "UKF", "particle"])]:
        r = saved["results"][system]
        assert list(r["references"]) == refs and r["primary"] == refs[0]
        for ref in r["references"].values():
            per_step = np.asarray(ref["mse_per_step"])               # [T, n]
            assert per_step.shape == (6, 2) and np.all(np.isfinite(per_step))
            assert ref["mse"] == pytest.approx(per_step.mean(0).sum(), rel=1e-6)
        for cell in ("gru",):
            c = r["cells"][cell]
            mse = np.asarray(c["mse"])
            assert mse.shape == (2,) and np.all(np.isfinite(mse)) and not c["nonfinite"]
            assert np.asarray(c["mse_per_component"]).sum(1) == pytest.approx(mse, rel=1e-5)
            for ref, value in r["references"].items():
                assert c["relative"][ref] == pytest.approx(mse / value["mse"], rel=1e-6)
            assert [step for step, _ in c["curve"]] == [0, 2, 4]
            assert c["curve"][-1][1] == pytest.approx(c["relative"][refs[0]], rel=1e-5)
            best = np.asarray(c["mse_per_step_best"])                  # [T, n]
            assert best.mean(0).sum() == pytest.approx(mse[c["best_seed"]], rel=1e-5)
            assert mse[c["best_seed"]] == mse.min()
            assert np.asarray(r["example"]["estimates"][cell]).shape == (6, 2)
    report = (out / "report.md").read_text()
    assert "| EKF | " in report and "| GRU | " in report and "/ particle" in report


def test_the_linear_system_is_scored_against_the_kalman_filter():
    system = tracking.make_system("linear", None)
    assert system.primary == "Kalman" and system.observed == 0
    with pytest.raises(ValueError, match="--systems must be among linear, pendulum"):
        tracking.make_system("lorenz", None)
