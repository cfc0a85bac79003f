"""The linear-recurrences study end to end, at a tiny size."""

import json

import numpy as np

from experiments import linear_recurrences


def test_tiny_study_writes_its_report_and_measures_memory_analytically(tmp_path):
    out = tmp_path / "lr"
    linear_recurrences.main(["--quick", "--cells", "lru", "--seeds", "1",
                             "--steps", "20", "--eval-every", "10", "--copy-lengths", "",
                             "--adding-lengths", "6", "--hidden", "6", "--radii", "0.5,0.9",
                             "--probe-length", "6", "--workers", "1", "--out", str(out)])
    for name in ("results.json", "report.md", "training.png", "grad_flow.png",
                 "sensitivity.png"):
        assert (out / name).stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    # every |lambda| = r: ||dh_T-1/dh_0|| = r^(T-1), for the LRU and the linear RNN
    for r in (0.5, 0.9):
        for model in ("LRU", "linear RNN"):
            np.testing.assert_allclose(results["sensitivity"][f"{model}/{r}"]["memory"],
                                       r ** 5, rtol=1e-4)
    assert set(results["results"]) == {"adding T=6/lru"}
    assert "| LRU |" in (out / "report.md").read_text()
