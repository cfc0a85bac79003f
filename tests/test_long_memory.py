"""The long-memory study end to end at a tiny size, and its bookkeeping."""

import json

import numpy as np
from helpers import assert_usage_error

from experiments import long_memory as study
from experiments import memory_studies as ms

TINY = ["--methods", "exprnn,chrono,tanh+floss", "--copy-lengths", "3",
        "--xor-delays", "2", "--steps", "4", "--eval-every", "2", "--hidden", "6",
        "--seeds", "1", "--floss-k", "2", "--floss-before", "2", "--lyapunov-k", "2",
        "--batch", "4"]


def test_long_memory_study_writes_every_method_and_the_probe(tmp_path):
    results = study.main(TINY + ["--out", str(tmp_path)])
    assert set(results) == {f"{task}/{m}" for task in ("copy T=3", "delayed XOR d=2")
                            for m in ("exprnn", "chrono", "tanh+floss")}
    for r in results.values():
        assert np.asarray(r["lyapunov_init"]).shape == (1, 2)
        assert np.asarray(r["lyapunov_trained"]).shape == (1, 2)
    assert results["copy T=3/chrono"]["options"] == {"chrono": 13.0}   # the span, 3 + 10
    assert results["delayed XOR d=2/chrono"]["options"] == {"chrono": 3.0}
    assert results["copy T=3/tanh+floss"]["flossing"] == {"k": 2, "weight": 0.1, "every": 1,
                                                          "before": 2}
    assert results["copy T=3/exprnn"]["flossing"] is None
    assert results["copy T=3/exprnn"]["cell_class"] == "OrthogonalRNN (exp)"
    report = (tmp_path / "report.md").read_text()
    assert "| SimpleRNN (tanh) + flossing |" in report and "| LSTM, chrono init |" in report
    for name in ("success.png", "lyapunov.png", "training.png", "grad_flow.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["methods"] == ["exprnn", "chrono", "tanh+floss"]
    # the flossed run logged its flossing loss: every step after the first two
    rows = [json.loads(line) for line in
            (tmp_path / "delayed_XOR_d2" / "tanh_floss" / "metrics.jsonl").read_text().split("\n")
            if line]
    assert any("flossing" in row for row in rows)


def test_largest_learned_reads_every_seed():
    problems = [ms.copy_memory(t) for t in (10, 20, 40)]
    learned = {10: [True, True], 20: [True, False], 40: [True, True]}
    results = {f"{p.label}/gru": {"learned": learned[p.span - 10]} for p in problems}
    assert study.largest_learned(results, "gru", problems, "copy") == 50   # T = 40
    results["copy T=40/gru"]["learned"] = [False, False]
    assert study.largest_learned(results, "gru", problems, "copy") == 20   # T = 10
    assert study.largest_learned(results, "gru", problems, "delayed XOR") is None


def test_bad_flags(tmp_path, capsys):
    out = ["--out", str(tmp_path / "x")]
    assert_usage_error(capsys, study.main, ["--floss-k", "9", "--hidden", "8"] + out,
                       "--floss-k and --lyapunov-k must not exceed --hidden 8")
    assert_usage_error(capsys, study.main, ["--floss-before", "10", "--steps", "10",
                                            "--eval-every", "10"] + out,
                       "--floss-before must be smaller than --steps 10")
    assert_usage_error(capsys, study.main, ["--methods", "lstm,svd"] + out, "--methods")
    assert not (tmp_path / "x").exists()
