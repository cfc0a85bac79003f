"""The hidden-state models (the pet, the cycle) against their rules and against sampling,
and the hidden-state study end to end at a tiny size."""

import json

import jax
import numpy as np
import pytest

from experiments import hidden_state as study
from rnnjax import filters
from rnnjax.tasks import cycle_model, hidden_state, pet_model


def test_pet_model_follows_the_materials_rules():
    model = pet_model()
    states, actions = hidden_state.PET_STATES, hidden_state.PET_ACTIONS
    s, a = states.index, actions.index
    p = hidden_state.PET_RULE_PROBABILITY
    # Hungry x Go to kitchen -> Full; Sleepy x pillow -> Relieving; Full x playful -> Hungry
    for state, action, following in [("hungry", "go to kitchen", "full"),
                                     ("sleepy", "lie down on pillow", "relieving"),
                                     ("full", "be playful", "hungry")]:
        row = model.transition[a(action), s(state)]
        expected = (1 - p) * hidden_state.PET_DRIFT[s(state)]
        expected[s(following)] += p
        np.testing.assert_allclose(row, expected, rtol=1e-6)
    # where no rule applies the drift holds: Full -> Sleepy or Relieving
    np.testing.assert_allclose(model.transition[a("go to potty"), s("full")],
                               hidden_state.PET_DRIFT[s("full")], rtol=1e-6)
    assert filters.discrete_sizes(model) == (4, 4)           # every row a distribution
    np.testing.assert_allclose(pet_model(1.0).emission, 0.25, rtol=1e-6)
    with pytest.raises(ValueError, match=r"noise must lie in \[0, 1\], got 1.5"):
        pet_model(1.5)


def test_marginal_matches_sampled_state_frequencies():
    model = pet_model(0.3)
    states, _ = filters.simulate(model, jax.random.key(0), 8, 20000)
    freq = np.stack([np.bincount(np.asarray(states[:, t]), minlength=4) / 20000
                     for t in range(8)])
    np.testing.assert_allclose(np.exp(hidden_state.marginal_log_probs(model, 8)), freq,
                               atol=0.015)


def test_a_clean_cycle_is_known_exactly_after_its_landmark():
    model = cycle_model(5, slip=0.0, landmark=1.0, false_alarm=0.0)
    actions = np.array([[0, 0, 1, 0, 0, 0, 0, 1, 0]])      # the landmark: phase 0 at t = 2
    probs = np.exp(np.asarray(filters.discrete_filter(model, actions)[0]))
    np.testing.assert_allclose(probs[2:], np.eye(5)[[0, 1, 2, 3, 4, 0, 1]], atol=1e-6)
    # before it: two steps without a landmark rule out the phases that would have shown it
    np.testing.assert_allclose(probs[1], [0, 0, 1 / 3, 1 / 3, 1 / 3], atol=1e-6)
    with pytest.raises(ValueError, match="states must be at least 2"):
        cycle_model(1)


def test_hidden_state_study_at_a_tiny_size(tmp_path):
    out = tmp_path / "hidden_state"
    results = study.main([
        "--cells", "gru", "--seeds", "2", "--steps", "60", "--eval-every", "30",
        "--hidden", "8", "--batch", "16", "--length", "10", "--test-size", "200",
        "--noises", "0,1", "--cycle-states", "3,7", "--checkpoint-every", "60", "--lr", "0.01",
        "--out", str(out)])
    for name in ("results.json", "report.md", "noise.png", "cycle.png", "posterior.png",
                 "training.png", "pet_noise_0/gru/metrics.jsonl", "cycle_of_7/gru/metrics.jsonl"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())["results"]
    assert list(saved) == ["pet, noise 0", "pet, noise 1", "cycle of 3", "cycle of 7"]
    for r in saved.values():
        refs = r["references"]
        # the exact filter beats the model without actions, and a trained cell lies
        # between the two (above the optimum up to the test set's sampling noise)
        assert refs["filter"]["cross_entropy"] < refs["marginal"]["cross_entropy"]
        assert refs["filter"]["accuracy"] >= refs["marginal"]["accuracy"]
        assert refs["filter"]["kl"] == pytest.approx(0.0, abs=1e-6)
        c = r["cells"]["gru"]
        relative = np.asarray(c["relative"])
        assert relative.shape == (2,) and not c["nonfinite"]
        assert np.all(relative > 0.97)
        assert np.all(np.asarray(c["cross_entropy"]) < refs["marginal"]["cross_entropy"])
        np.testing.assert_allclose(relative, np.asarray(c["cross_entropy"])
                                   / refs["filter"]["cross_entropy"], rtol=1e-6)
        assert [s for s, _ in c["curve"]] == [0, 30, 60]
        np.testing.assert_allclose(c["curve"][-1][1], relative, rtol=1e-5)
        posterior = np.asarray(r["example"]["posteriors"]["gru"])
        np.testing.assert_allclose(posterior.sum(-1), 1.0, atol=1e-5)
        assert posterior.shape == (10, len(r["states"]))
    # at noise 1 the actions say nothing of the state, so the filter knows less
    assert (saved["pet, noise 1"]["references"]["filter"]["cross_entropy"]
            > saved["pet, noise 0"]["references"]["filter"]["cross_entropy"])
    report = (out / "report.md").read_text()
    assert "hungry x go to kitchen -> full" in report and "| pet, noise 1 |" in report
    assert results["cycle of 3"]["system"] == "cycle"


def test_bad_noise_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        study.main(["--noises", "0,2", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
