"""The studies end to end at a tiny size: files written, numbers consistent, resume."""

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_usage_error

from experiments import (
    adding,
    common,
    compare_cells,
    copy_memory,
    double_dependency,
    echo,
    gradient_flow,
)
from rnnjax.tasks import ADDING_BASELINE_MSE

TINY = ["--cells", "tanh,lstm", "--seeds", "2", "--steps", "20", "--hidden", "8",
        "--tasks", "adding", "--adding-length", "10", "--eval-every", "10"]
RESULT_KEYS = {"task", "cell", "cell_class", "options", "truncation", "flossing", "metric",
               "baseline",
               "optimum", "threshold", "span", "curve", "final", "learned", "nonfinite",
               "grad_rate_init",
               "half_life_init", "grad_rate_trained", "half_life_trained", "grad_norms_init",
               "grad_norms_trained", "seconds"}


def check_result(r, seeds, steps, length, eval_every):
    """The schema of one run's result, and the numbers' consistency."""
    assert set(r) == RESULT_KEYS
    assert np.asarray(r["grad_norms_init"]).shape == (seeds, length)    # [seeds, T]
    assert np.all(np.asarray(r["grad_norms_init"]) > 0)
    assert len(r["grad_rate_init"]) == len(r["half_life_trained"]) == seeds
    logged, expected = [step for step, _ in r["curve"]], list(range(0, steps + 1, eval_every))
    if r["nonfinite"]:   # the evaluations before the loss went non-finite, then the end
        assert logged[-1] == steps and set(logged) <= set(expected)
    else:
        assert logged == expected
    assert r["final"][r["metric"]] == r["curve"][-1][1]
    assert all(len(v) == seeds for v in r["final"].values())
    for rate, half in zip(r["grad_rate_init"], r["half_life_init"]):
        assert half == pytest.approx(np.log(2) / -rate) if rate < 0 else half == np.inf
    if not r["nonfinite"]:
        assert np.all(np.isfinite(r["grad_norms_trained"]))
        assert r["curve"][0][1] != r["curve"][-1][1]                   # it trained


def test_compare_cells_writes_results_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "run"
    compare_cells.main(TINY + ["--out", str(out), "--steps", "10"])  # "interrupted" at 10
    assert (out / "adding_T10" / "lstm" / "checkpoints" / "10").is_dir()
    results = compare_cells.main(TINY + ["--out", str(out)])         # resumes at 10
    for name in ("results.json", "report.md", "grad_flow.png", "training.png",
                 "adding_T10/lstm/metrics.jsonl"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["steps"] == 20 and saved["tasks"] == ["adding T=10"]
    assert set(saved["results"]) == {"adding T=10/tanh", "adding T=10/lstm"}
    for r in saved["results"].values():
        check_result(r, 2, 20, 10, 10)
    adding = saved["results"]["adding T=10/lstm"]
    assert adding["baseline"] == ADDING_BASELINE_MSE and adding["metric"] == "mse"
    assert adding["learned"] == [m < 0.1 * ADDING_BASELINE_MSE for m in adding["final"]["mse"]]
    assert adding["span"] == 9 and adding["threshold"] == 0.1 * ADDING_BASELINE_MSE
    report = (out / "report.md").read_text()
    assert "## What this run shows\n\n" + "\n".join(compare_cells.summary(saved)) in report
    assert "| SimpleRNN (tanh) | LSTM |" in report
    assert "| adding T=10 | mse | 0.1667 | 0 |" in report

    # a rerun of the same command does no training: every run is at its last checkpoint
    monkeypatch.setattr(common, "sweep_step",
                        lambda *a, **k: lambda *b: pytest.fail("a training step ran"))
    again = compare_cells.main(TINY + ["--out", str(out)])
    assert again["adding T=10/lstm"]["curve"] == results["adding T=10/lstm"]["curve"]
    # resuming with other settings is refused, not mixed into the saved run
    with pytest.raises(ValueError, match="holds a run with other settings"):
        compare_cells.main(TINY + ["--out", str(out), "--lr", "0.1"])
    with pytest.raises(ValueError, match="holds a run at step 20, past --steps 10"):
        compare_cells.main(TINY + ["--out", str(out), "--steps", "10"])


@pytest.mark.slow  # each task's own study test runs it in the default run
def test_compare_cells_runs_every_task(tmp_path):
    results = compare_cells.main([
        "--cells", "gru", "--seeds", "1", "--steps", "2", "--eval-every", "2", "--hidden", "4",
        "--echo-delay", "3", "--dependency-length", "12", "--copy-length", "3",
        "--adding-length", "6", "--out", str(tmp_path)])
    lengths = {"echo k=3/gru": 53, "double dependency/gru": 12, "copy T=3/gru": 23,
               "copy 40 symbols, T=20/gru": 100, "adding T=6/gru": 6}
    assert set(results) == set(lengths)
    for key, length in lengths.items():
        check_result(results[key], 1, 2, length, 2)
    assert results["double dependency/gru"]["optimum"] == pytest.approx(0.45445, abs=1e-5)
    assert set(results["copy T=3/gru"]["final"]) == {"loss", "accuracy", "recall"}
    report = (tmp_path / "report.md").read_text()
    assert report.count("| GRU |") == 6 and "## copy 40 symbols, T=20" in report


def test_unknown_cell_name_fails_before_any_work(tmp_path, capsys):
    out = ["--out", str(tmp_path / "x")]
    assert_usage_error(capsys, compare_cells.main, ["--cells", "lstm,transformer", *out],
                       "argument --cells: unknown cell 'transformer'")
    assert_usage_error(capsys, compare_cells.main, ["--steps", "300", *out],
                       "--steps must be a positive multiple of 250")
    assert_usage_error(capsys, compare_cells.main, ["--tasks", "echo,parity", *out],
                       "argument --tasks: must be among")
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


def test_double_dependency_study_full_and_truncated(tmp_path, capsys):
    results = double_dependency.main([
        "--cells", "lstm", "--seeds", "2", "--steps", "4", "--eval-every", "2", "--hidden", "4",
        "--length", "12", "--truncations", "0,3", "--out", str(tmp_path)])
    assert set(results) == {"full BPTT/lstm", "TBPTT 3/lstm"}
    for r in results.values():
        check_result(r, 2, 4, 12, 2)
    assert results["TBPTT 3/lstm"]["truncation"] == 3
    assert results["full BPTT/lstm"]["truncation"] is None
    # the truncation changes the training: the two runs part after the first update
    assert results["TBPTT 3/lstm"]["curve"][0] == results["full BPTT/lstm"]["curve"][0]
    assert results["TBPTT 3/lstm"]["curve"][-1] != results["full BPTT/lstm"]["curve"][-1]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["reference_cross_entropies"]["first"] == pytest.approx(0.51917, abs=1e-5)
    report = (tmp_path / "report.md").read_text()
    assert "| TBPTT 3 | LSTM |" in report and "only t-3 0.5192" in report
    assert_usage_error(capsys, double_dependency.main,
                       ["--length", "12", "--truncations", "5", "--out", str(tmp_path / "x")],
                       "--truncations must be 0")


def test_copy_memory_study_both_forms_with_chrono(tmp_path):
    results = copy_memory.main([
        "--cells", "tanh,lstm", "--seeds", "2", "--steps", "4", "--eval-every", "2",
        "--hidden", "4", "--lengths", "3", "--long-copy", "1", "--chrono", "20",
        "--out", str(tmp_path)])
    assert set(results) == {"copy T=3/tanh", "copy T=3/lstm", "copy 40 symbols, T=20/tanh",
                            "copy 40 symbols, T=20/lstm"}
    for key, r in results.items():
        check_result(r, 2, 4, 100 if "40 symbols" in key else 23, 2)
    assert results["copy T=3/lstm"]["options"] == {"chrono": 20.0}
    assert results["copy T=3/tanh"]["options"] == {}
    assert results["copy T=3/lstm"]["baseline"] == pytest.approx(10 * np.log(8) / 23)
    report = (tmp_path / "report.md").read_text()
    assert "| copy 40 symbols, T=20 | LSTM | 0.8318 |" in report
    assert (tmp_path / "copy_40_symbols_T20" / "lstm" / "metrics.jsonl").stat().st_size > 0


def test_adding_and_echo_studies(tmp_path):
    results = adding.main(["--cells", "irnn", "--seeds", "2", "--steps", "4", "--eval-every",
                           "2", "--hidden", "4", "--lengths", "6,8", "--out",
                           str(tmp_path / "a")])
    for key, length in (("adding T=6/irnn", 6), ("adding T=8/irnn", 8)):
        check_result(results[key], 2, 4, length, 2)
    assert "| adding T=8 | IRNN |" in (tmp_path / "a" / "report.md").read_text()
    results = echo.main(["--cells", "gru", "--seeds", "2", "--steps", "4", "--eval-every", "2",
                         "--hidden", "4", "--delays", "1,3", "--scored", "5", "--esn-sizes", "6",
                         "--esn-radii", "0.5,0.9", "--esn-train", "20", "--out",
                         str(tmp_path / "e")])
    for k in (1, 3):
        check_result(results[f"echo k={k}/gru"], 2, 4, k + 5, 2)
    assert (tmp_path / "e" / "accuracy.png").stat().st_size > 0
    assert (tmp_path / "e" / "memory_capacity.png").stat().st_size > 0
    report = (tmp_path / "e" / "report.md").read_text()
    assert "| GRU |" in report and "| esn N=6 rho=0.9 |" in report
    esn = json.loads((tmp_path / "e" / "results.json").read_text())["echo_state"]
    reservoir = esn["esn N=6 rho=0.5"]
    assert np.asarray(reservoir["accuracy"]).shape == (2, 2)      # seeds x delays
    assert 0 < min(reservoir["memory_capacity"]) <= max(reservoir["memory_capacity"]) <= 6.5
    # the delay-1 echo is a function of the current state: a readout finds it
    assert min(np.asarray(reservoir["accuracy"])[:, 0]) > 0.9


def test_echo_state_networks_alone_train_no_cell(tmp_path):
    out = tmp_path / "esn"
    assert echo.main(["--esn-only", "--seeds", "1", "--delays", "1", "--scored", "5",
                      "--esn-sizes", "4", "--esn-radii", "0.9", "--esn-train", "10",
                      "--out", str(out)]) == {}
    report = (out / "report.md").read_text()
    assert report.startswith("# Echo: echo state networks") and "| esn N=4 rho=0.9 |" in report
    assert not (out / "echo_k1").exists()     # no run folder: nothing trained


@pytest.mark.parametrize("study", [compare_cells, gradient_flow, copy_memory, adding, echo,
                                   double_dependency])
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


def test_the_quick_start_study_reports_a_diverging_cell(tmp_path):
    # a learning rate that overflows: the run stops at the first non-finite loss and
    # the report lists the cell as not learned, with NaN results, instead of failing
    results = compare_cells.main(TINY + ["--cells", "tanh", "--tasks", "adding", "--lr", "1e25",
                                         "--clip", "1e30", "--out", str(tmp_path)])
    r = results["adding T=10/tanh"]
    check_result(r, 2, 20, 10, 10)
    assert r["nonfinite"] and r["learned"] == [False, False]
    assert np.all(np.isnan(r["final"]["mse"])) and np.all(np.isnan(r["grad_norms_trained"]))
    assert np.all(np.isfinite(r["grad_norms_init"]))
    assert "| adding T=10 | mse | 0.1667 | 0 | nan (0/2) |" in (tmp_path / "report.md").read_text()


def _summary_run(task, cell, learned, half_lives, span=20):
    return {"task": task, "cell_class": cell, "learned": learned,
            "half_life_trained": half_lives, "span": span}


def test_compare_cells_summary_follows_the_numbers():
    runs = [_summary_run("copy", "tanh", [False, False], [1.0, 3.0]),
            _summary_run("copy", "GRU", [True, True], [math.inf, 50.0]),
            _summary_run("copy", "LSTM", [True, False], [9.0, 9.0]),
            _summary_run("echo", "tanh", [True, True], [7.0, 7.0], span=5),
            _summary_run("echo", "GRU", [True, True], [4.0, 6.0], span=5),
            _summary_run("echo", "LSTM", [False, False], [30.0, 30.0], span=5)]
    saved = {"tasks": ["copy", "echo"],
             "results": {f"{r['task']}/{r['cell_class']}": r for r in runs}}
    opening, blank, copy, echo = compare_cells.summary(saved)
    assert opening == ("Every task separated the cells: on each, at least one cell learned in "
                       "every seed and at least one failed in every seed. GRU learned every "
                       "task in every seed, the most of any cell.") and blank == ""
    # medians over seeds: tanh 2, GRU inf; 2 ** (-20 / 2) of the gradient is left
    assert copy == ("- **copy** (an input needed up to 20 steps later): learned by GRU in "
                    "every seed; failed by tanh in every seed; learned by LSTM in 1 of 2 "
                    "seeds. Gradient half-life after training: GRU no decay where learned; "
                    "tanh 2 steps where failed. tanh's gradient from 20 steps back is 0.001 "
                    "of the last step's. Every cell that learned kept a longer half-life "
                    "than every cell that failed.")
    assert echo.endswith("LSTM 30 steps where failed. LSTM failed with a half-life as long "
                         "as a learner's: a slow decay was not enough.")
    assert "tanh 7 steps and GRU 5 steps where learned" in echo

    # other numbers, other sentences
    saved["results"]["copy/tanh"]["half_life_trained"] = [math.inf, 80.0]
    saved["results"]["echo/LSTM"]["learned"] = [True, True]
    opening, _, copy, echo = compare_cells.summary(saved)
    assert opening == ("Not every task separated the cells: on echo, no cell learned in every "
                       "seed while another failed in every seed. GRU learned every task in "
                       "every seed, the most of any cell.")
    assert "tanh no decay where failed. tanh failed with a half-life as long" in copy
    assert "gradient from" not in copy
    assert echo == ("- **echo** (an input needed up to 5 steps later): learned by tanh, GRU "
                    "and LSTM in every seed.")
    saved["results"]["copy/GRU"]["learned"] = [True, False]
    assert compare_cells.summary(saved)[0].endswith(
        "tanh, GRU and LSTM learned 1 of the 2 tasks in every seed, the most of any cell.")


def test_learned_criteria_and_dependency_levels():
    from experiments import memory_studies as ms
    dd = ms.double_dependency(20)
    assert dd.learned(0.459) and not dd.learned(0.46)          # optimum 0.4545 + 0.005
    assert [ms.double_dependency_level(v) for v in (0.455, 0.52, 0.53, 0.66)] == [
        "both", "t-3", "none", "none"]
    copy = ms.copy_memory(100)                                   # baseline 0.1733
    assert copy.learned(0.0173) and not copy.learned(0.0174)
    echo = ms.echo(4)
    assert echo.learned(0.95) and not echo.learned(0.949) and echo.higher_is_better
    assert ms.adding(200).learned(0.0166) and not ms.adding(200).learned(0.0167)
    assert [p.threshold for p in (dd, echo, ms.adding(200))] == pytest.approx(
        [0.45945, 0.95, ADDING_BASELINE_MSE / 10], abs=1e-5)
    assert [p.span for p in (dd, copy, echo, ms.adding(200))] == [8, 110, 4, 199]
    assert common.folder("copy 40 symbols, T=20/lstm") == "copy_40_symbols_T20/lstm"


def test_reports_name_cells_by_their_class():
    from rnnjax.cells import CELL_TYPES
    labels = {name: common.cell_label(name) for name in CELL_TYPES}
    assert labels == {"tanh": "SimpleRNN (tanh)", "relu": "SimpleRNN (relu)", "irnn": "IRNN",
                      "lstm": "LSTM", "peephole": "PeepholeLSTM (peephole)", "gru": "GRU",
                      "clockwork": "ClockworkRNN (clockwork)", "lru": "LRU", "mingru": "MinGRU",
                      "minlstm": "MinLSTM", "exprnn": "OrthogonalRNN (exprnn)",
                      "scornn": "OrthogonalRNN (scornn)"}


# -- bad flags end as usage errors ---------------------------------------------------------
BAD_FLAGS = [
    (["--steps", "0"], r"argument --steps: must be a positive integer, got '0'"),
    (["--hidden", "-1"], r"argument --hidden: must be a positive integer, got '-1'"),
    (["--batch", "0"], r"argument --batch: must be a positive integer, got '0'"),
    (["--lr", "-0.01"], r"argument --lr: must be a positive number, got '-0.01'"),
    (["--lr", "0"], r"argument --lr: must be a positive number, got '0'"),
    (["--cells", "lstm,transformer"], r"argument --cells: unknown cell 'transformer'"),
    (["--seeds", "1.5"], r"argument --seeds: must be a positive integer, got '1.5'"),
    (["--seeds", "x"], r"argument --seeds: must be a positive integer, got 'x'"),
]


@pytest.mark.parametrize("study", ["compare_cells", "char_lm", "tagging", "translation",
                                   "forecasting"])
@pytest.mark.parametrize("flags, message", BAD_FLAGS)
def test_a_bad_flag_is_a_usage_error(study, flags, message, tmp_path, capsys):
    main = importlib.import_module(f"experiments.{study}").main
    out = tmp_path / "out"
    assert_usage_error(capsys, main, [*flags, "--out", str(out)], message)
    assert not out.exists()


@pytest.mark.parametrize("study", ["compare_cells", "char_lm", "tagging"])
def test_an_unusable_out_is_a_usage_error(study, tmp_path, capsys, monkeypatch):
    main = importlib.import_module(f"experiments.{study}").main
    (tmp_path / "file").write_text("")
    assert_usage_error(capsys, main, ["--out", str(tmp_path / "file" / "run")],
                       r"--out .*file/run cannot be created: .*file is not a folder")
    with monkeypatch.context() as patch:   # a folder no one may write in (read-only mount)
        def refuse(**_):
            raise PermissionError(1, "Operation not permitted")
        patch.setattr(common.tempfile, "mkdtemp", refuse)
        assert_usage_error(capsys, main, ["--out", str(tmp_path / "run")],
                           r"--out .*/run cannot be written: no permission to write in "
                           r".*\(Operation not permitted\)")
    assert not (tmp_path / "run").exists()
    if os.geteuid() == 0:
        return   # root writes in any folder of a writable mount
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert_usage_error(capsys, main, ["--out", str(locked / "run")],
                       r"--out .*locked/run cannot be written: no permission to write in "
                       r".*locked")
    assert not (locked / "run").exists()


def test_a_bad_flag_from_the_shell(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "experiments.compare_cells", "--steps", "0",
                           "--out", str(out)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2
    assert done.stderr.startswith("usage: python -m experiments.compare_cells")
    assert "argument --steps: must be a positive integer, got '0'" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()
