"""The settings guard of a study's run folder (`experiments.common.claim_run_dir`)."""

import json
import types

import pytest

from experiments import linear_recurrences
from experiments import memory_studies as mt
from experiments.common import claim_run_dir

LINEAR = {"task": "copy T=50", "cell": "lru", "hidden": 64,
          "options": {"parallel_scan": True}}


def saved_run(run_dir, settings, step=100):
    (run_dir / "checkpoints" / str(step)).mkdir(parents=True)
    (run_dir / "settings.json").write_text(json.dumps(settings))


def test_same_settings_resume_and_others_raise(tmp_path):
    saved_run(tmp_path, LINEAR)
    claim_run_dir(tmp_path, LINEAR, 200)
    with pytest.raises(ValueError, match=r"holds a run with other settings.*'hidden': \(64, 32\)"):
        claim_run_dir(tmp_path, {**LINEAR, "hidden": 32}, 200)
    with pytest.raises(ValueError, match="past --steps 50"):
        claim_run_dir(tmp_path, LINEAR, 50)


def test_a_run_saved_before_the_scan_was_recorded_used_the_associative_one(tmp_path):
    # Linear-recurrences runs saved before --scan existed hold "options": {} and
    # trained with the associative scan, the cells' default.
    saved_run(tmp_path, {**LINEAR, "options": {}})
    claim_run_dir(tmp_path, LINEAR, 200)
    assert json.loads((tmp_path / "settings.json").read_text()) == LINEAR  # now recorded
    saved_run(tmp_path / "old", {**LINEAR, "options": {}})
    sequential = {**LINEAR, "options": {"parallel_scan": False}}
    with pytest.raises(ValueError, match="other settings"):
        claim_run_dir(tmp_path / "old", sequential, 200)


def test_other_cells_options_stay_as_saved(tmp_path):
    # A cell that has no scan option keeps "options": {}, then and now.
    lstm = {**LINEAR, "cell": "lstm", "options": {}}
    saved_run(tmp_path, lstm)
    claim_run_dir(tmp_path, lstm, 200)
    with pytest.raises(ValueError, match="other settings"):
        claim_run_dir(tmp_path, {**lstm, "options": {"forget_bias": 2.0}}, 200)


def test_later_settings_fill_only_what_the_saved_run_lacks(tmp_path):
    later = {("clip",): None, ("optimizer", "decay"): 0.0}
    saved_run(tmp_path, {"lr": 0.1, "optimizer": {"name": "adam"}})
    now = {"lr": 0.1, "clip": None, "optimizer": {"name": "adam", "decay": 0.0}}
    claim_run_dir(tmp_path, now, 200, later=later)
    saved_run(tmp_path / "b", {"lr": 0.1, "optimizer": {"name": "adam"}})
    with pytest.raises(ValueError, match=r"'clip': \(None, 1\.0\)"):
        claim_run_dir(tmp_path / "b", {**now, "clip": 1.0}, 200, later=later)
    saved_run(tmp_path / "c", {**now, "clip": 1.0})  # recorded: compared as it is
    with pytest.raises(ValueError, match=r"'clip': \(1\.0, None\)"):
        claim_run_dir(tmp_path / "c", now, 200, later=later)


def test_a_linear_recurrences_run_saved_before_the_scan_flag_resumes(tmp_path):
    args = types.SimpleNamespace(seeds=1, steps=4, hidden=4, batch=8, lr=1e-2, clip=1.0,
                                 eval_every=2, checkpoint_every=4, scan="associative")
    first = mt.run(mt.adding(5), "lru", args, tmp_path, **linear_recurrences.run_options(
        "lru", args))
    path = tmp_path / "settings.json"
    settings = json.loads(path.read_text())
    assert settings["options"] == {"parallel_scan": True}
    path.write_text(json.dumps({**settings, "options": {}}))  # as saved before --scan
    again = mt.run(mt.adding(5), "lru", args, tmp_path,
                   **linear_recurrences.run_options("lru", args))
    assert again["final"] == first["final"]
    args.scan = "sequential"
    with pytest.raises(ValueError, match="other settings"):
        mt.run(mt.adding(5), "lru", args, tmp_path,
               **linear_recurrences.run_options("lru", args))
