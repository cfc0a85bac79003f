"""The main job end to end at a tiny size: files written, numbers consistent, resume."""

import json

import numpy as np
import pytest

from experiments import compare_cells
from rnnjax.tasks import ADDING_BASELINE_MSE

TINY = ["--cells", "tanh,lstm", "--seeds", "2", "--steps", "20", "--hidden", "8",
        "--length", "10", "--probe-length", "12"]


def test_compare_cells_writes_results_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "run"
    results = compare_cells.main(TINY + ["--out", str(out)])
    for name in ("results.json", "report.md", "grad_flow.png", "training.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["steps"] == 20 and saved["baseline_mse"] == ADDING_BASELINE_MSE
    assert set(saved["results"]) == {"tanh", "lstm"}
    for r in saved["results"].values():
        assert np.asarray(r["grad_norms_init"]).shape == (2, 12)      # [seeds, T]
        assert np.all(np.asarray(r["grad_norms_init"]) > 0)
        assert [step for step, _ in r["test_mse_curve"]] == [0, 20]
        assert r["final_test_mse"] == r["test_mse_curve"][-1][1]
        assert r["learned"] == [m < 0.1 * ADDING_BASELINE_MSE for m in r["final_test_mse"]]
    report = (out / "report.md").read_text()
    assert "| tanh |" in report and "| lstm |" in report

    # a rerun of the same command does no training: every cell comes from parts/
    monkeypatch.setattr(compare_cells, "run_cell", lambda *a: pytest.fail("retrained"))
    again = compare_cells.main(TINY + ["--out", str(out)])
    assert again["lstm"]["final_test_mse"] == results["lstm"]["final_test_mse"]


def test_unknown_cell_name_fails_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="cell name must be one of"):
        compare_cells.main(["--cells", "lstm,transformer", "--out", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="--steps must be a positive multiple of 100"):
        compare_cells.main(["--steps", "150", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_gradient_flow_study_at_a_tiny_size(tmp_path):
    from experiments import gradient_flow
    out = tmp_path / "gf"
    probes, truncation, clipping = gradient_flow.main([
        "--cells", "tanh,lstm", "--rho-cells", "tanh", "--rhos", "0.5,1.5", "--seeds", "2",
        "--steps", "5", "--hidden", "4", "--lengths", "8,16", "--input-scales", "0.1",
        "--out", str(out)])
    for name in ("results.json", "report.md", "grad_flow_cells.png", "grad_flow_rho.png",
                 "lyapunov.png", "truncation.png", "clipping.png"):
        assert (out / name).stat().st_size > 0
    assert set(probes["0.1"]) == {"tanh", "lstm", "tanh rho=0.5", "tanh rho=1.5"}
    rows = {(r["T"]): r for r in probes["0.1"]["tanh rho=0.5"]["rows"]}
    # weak inputs keep tanh near its linear regime: the decay rate is close to ln(rho)
    assert abs(rows[16]["grad_rate"] - np.log(0.5)) < 0.05
    assert np.asarray(probes["0.1"]["lstm"]["arrays"]["16"]["lyapunov"]).shape == (2, 8)
    ks = truncation["lstm"]["truncations"]
    assert ks[0] == 1 and ks[-1] == 16 and truncation["lstm"]["relative"][-1] == 1.0
    assert set(clipping) == {"no clipping", "clip 1.0"}
    assert all(len(l) == 5 for l in clipping["clip 1.0"]["loss"])
    report = (out / "report.md").read_text()
    assert "| tanh rho=1.5 | 16 |" in report and "Gradient clipping" in report


def test_copy_memory_trains_checkpoints_and_resumes(tmp_path):
    from experiments import copy_memory
    from rnnjax.tasks import copy_memory_baseline
    out = tmp_path / "cm"
    argv = ["--cells", "gru", "--seeds", "2", "--steps", "6", "--hidden", "8", "--length", "3",
            "--out", str(out)]
    first = copy_memory.main(argv + ["--steps", "4"])   # an "interrupted" run: 4 of 6 steps
    assert (out / "gru" / "checkpoints").is_dir()
    results = copy_memory.main(argv)                   # resumes at step 4, ends at 6
    history = results["gru"]["history"]
    assert [h["step"] for h in history][:1] == [0] and history[-1]["step"] == 5
    assert len({h["step"] for h in history}) == len(history)  # each logged step once
    saved = json.loads((out / "results.json").read_text())
    assert saved["baseline"] == pytest.approx(copy_memory_baseline(3))
    r = saved["results"]["gru"]
    assert len(r["test_loss"]) == 2 and np.asarray(r["grad_norms_trained"]).shape == (2, 23)
    assert r["test_loss"] != first["gru"]["test_loss"]   # the two extra steps changed params
    for name in ("report.md", "training.png", "grad_flow.png", "gru/curves.png",
                 "gru/metrics.jsonl"):
        assert (out / name).stat().st_size > 0
