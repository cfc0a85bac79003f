"""The study's --scan flag: both scans train the linear recurrences to the same numbers."""

import types

import numpy as np

from experiments import linear_recurrences
from experiments import memory_studies as ms


def test_scan_flag_reaches_only_the_linear_recurrences():
    sequential = types.SimpleNamespace(scan="sequential")
    assert linear_recurrences.run_options("lru", sequential) == {
        "cell_options": {"parallel_scan": False}}
    assert linear_recurrences.run_options("mingru", types.SimpleNamespace(
        scan="associative")) == {"cell_options": {"parallel_scan": True}}
    assert linear_recurrences.run_options("lstm", sequential) == {}


def test_both_scans_train_the_same_model(tmp_path):
    args = types.SimpleNamespace(seeds=1, steps=6, hidden=4, batch=8, lr=1e-2, clip=1.0,
                                 eval_every=3, checkpoint_every=6)
    runs = {}
    for scan in ("associative", "sequential"):
        args.scan = scan
        runs[scan] = ms.run(ms.adding(5), "minlstm", args, tmp_path / scan,
                            **linear_recurrences.run_options("minlstm", args))
    a, s = runs["associative"], runs["sequential"]
    assert a["options"] == {"parallel_scan": True} and s["options"] == {"parallel_scan": False}
    np.testing.assert_allclose(s["final"]["mse"], a["final"]["mse"], rtol=1e-4)
    np.testing.assert_allclose(s["grad_norms_trained"], a["grad_norms_trained"], rtol=1e-3)
