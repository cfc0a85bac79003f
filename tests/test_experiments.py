"""The studies end to end at a tiny size: files written, numbers consistent, resume."""

import json

import numpy as np
import pytest

from experiments import common, compare_cells, copy_memory, gradient_flow
from rnnjax.tasks import ADDING_BASELINE_MSE

TINY = ["--cells", "tanh,lstm", "--seeds", "2", "--steps", "20", "--hidden", "8",
        "--length", "10", "--probe-length", "12", "--eval-every", "10"]


def test_compare_cells_writes_results_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "run"
    compare_cells.main(TINY + ["--out", str(out), "--steps", "10"])  # "interrupted" at 10
    assert (out / "lstm" / "checkpoints" / "10").is_dir()
    results = compare_cells.main(TINY + ["--out", str(out)])         # resumes at 10
    for name in ("results.json", "report.md", "grad_flow.png", "training.png",
                 "lstm/curves.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["steps"] == 20 and saved["baseline_mse"] == ADDING_BASELINE_MSE
    assert set(saved["results"]) == {"tanh", "lstm"}
    for r in saved["results"].values():
        assert np.asarray(r["grad_norms_init"]).shape == (2, 12)      # [seeds, T]
        assert np.all(np.asarray(r["grad_norms_init"]) > 0)
        assert np.all(np.isfinite(r["grad_norms_trained"]))
        assert [step for step, _ in r["test_mse_curve"]] == [0, 10, 20]
        assert np.all(np.isfinite([m for _, m in r["test_mse_curve"]]))
        assert r["final_test_mse"] == r["test_mse_curve"][-1][1]
        assert r["test_mse_curve"][0][1] != r["test_mse_curve"][-1][1]   # it trained
        assert r["learned"] == [m < 0.1 * ADDING_BASELINE_MSE for m in r["final_test_mse"]]
    report = (out / "report.md").read_text()
    assert "| tanh |" in report and "| lstm |" in report

    # a rerun of the same command does no training: every run is at its last checkpoint
    monkeypatch.setattr(common, "sweep_step",
                        lambda *a, **k: lambda *b: pytest.fail("a training step ran"))
    again = compare_cells.main(TINY + ["--out", str(out)])
    assert again["lstm"]["test_mse_curve"] == results["lstm"]["test_mse_curve"]
    # resuming with other settings is refused, not mixed into the saved run
    with pytest.raises(ValueError, match="holds a run with other settings"):
        compare_cells.main(TINY + ["--out", str(out), "--lr", "0.1"])
    with pytest.raises(ValueError, match="holds a run at step 20, past --steps 10"):
        compare_cells.main(TINY + ["--out", str(out), "--steps", "10"])


def test_unknown_cell_name_fails_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="cell name must be one of"):
        compare_cells.main(["--cells", "lstm,transformer", "--out", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="--steps must be a positive multiple of 100"):
        compare_cells.main(["--steps", "150", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_gradient_flow_study_at_a_tiny_size(tmp_path):
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
    for r in clipping.values():
        assert np.asarray(r["loss"]).shape == np.asarray(r["grad_norm"]).shape == (2, 5)
        assert np.all(np.isfinite(r["loss"])) and r["nonfinite_steps"] == [0, 0]
    assert (out / "clipping" / "clip_1.0" / "metrics.jsonl").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "| tanh rho=1.5 | 16 |" in report and "Gradient clipping" in report


def test_copy_memory_trains_checkpoints_and_resumes(tmp_path):
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


@pytest.mark.parametrize("study", [compare_cells, gradient_flow, copy_memory])
def test_every_default_has_a_flag(study):
    for key, value in study.DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        args = common.parse_args(study.NAME, "", study.DEFAULTS, study.QUICK,
                                 ["--quick", flag, text], study.add_arguments)
        assert getattr(args, key) == value, key
    with pytest.raises(ValueError, match=r"without a command-line flag: \['mystery'\]"):
        common.parse_args(study.NAME, "", {**study.DEFAULTS, "mystery": 1}, study.QUICK, [],
                          study.add_arguments)


def test_clipping_study_reports_a_diverging_run(tmp_path):
    import argparse
    args = argparse.Namespace(seeds=2, steps=6, hidden=4, clip_rho=2.0, clip_length=8, batch=4,
                              lr=1e25, clip=1.0, checkpoint_every=2, out=tmp_path)
    for r in gradient_flow.clipping_study(args).values():   # fit stops at the first NaN
        loss = np.asarray(r["loss"])
        assert loss.shape == (2, 6) and np.all(np.isfinite(loss[:, 0]))
        assert r["nonfinite_steps"] == [5, 5] and np.all(np.isnan(loss[:, 1:]))


def test_main_job_reports_a_diverging_cell(tmp_path):
    # a learning rate that overflows: the run stops at the first non-finite loss and
    # the report lists the cell as not learned, with NaN results, instead of failing
    results = compare_cells.main(TINY + ["--cells", "tanh", "--lr", "1e25", "--clip", "1e30",
                                         "--out", str(tmp_path)])
    r = results["tanh"]
    assert r["nonfinite"] == [True, True] and r["learned"] == [False, False]
    assert np.all(np.isnan(r["final_test_mse"])) and np.all(np.isnan(r["grad_norms_trained"]))
    assert np.all(np.isfinite(r["grad_norms_init"]))
    assert "tanh" in (tmp_path / "report.md").read_text()
