"""The UEA recordings loader on the data aeon ships, channel standardisation, the
many-to-one classifier read at each sequence's length, and the recordings study at a
tiny size."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_usage_error

from experiments import classify, recordings
from rnnjax.models import classifier
from rnnjax.tasks.labelled import LabelledSequences, channel_stats, standardise
from rnnjax.tasks.recordings import load_recordings

aeon_datasets = pytest.importorskip("aeon.datasets")

SIZES = {("JapaneseVowels", "train"): 270, ("JapaneseVowels", "test"): 370,
         ("BasicMotions", "train"): 40, ("BasicMotions", "test"): 40}


@pytest.fixture(scope="module")
def loaded():
    return {key: load_recordings(*key) for key in SIZES}


@pytest.mark.parametrize("key", list(SIZES))
def test_recordings_match_aeon_and_are_padded_with_zeros(loaded, key):
    name, split = key
    data = loaded[key]
    loader = {"JapaneseVowels": aeon_datasets.load_japanese_vowels,
              "BasicMotions": aeon_datasets.load_basic_motions}[name]
    series, labels = loader(split=split)
    channels = {"JapaneseVowels": 12, "BasicMotions": 6}[name]
    assert len(data.labels) == SIZES[key] == len(series)
    assert data.xs.dtype == np.float32 and data.lengths.dtype == data.labels.dtype == np.int32
    assert data.xs.shape == (SIZES[key], max(s.shape[1] for s in series), channels)
    for n, s in enumerate(series):
        length = data.lengths[n]
        assert length == s.shape[1]
        np.testing.assert_array_equal(data.xs[n, :length], np.asarray(s, np.float32).T)
        assert not data.xs[n, length:].any()
        assert data.classes[data.labels[n]] == str(labels[n])


def test_japanese_vowels_lengths_and_classes(loaded):
    train, test = loaded["JapaneseVowels", "train"], loaded["JapaneseVowels", "test"]
    lengths = np.concatenate([train.lengths, test.lengths])
    assert lengths.min() == 7 and lengths.max() == 29
    assert len(set(lengths.tolist())) > 10                     # really variable
    assert train.classes == test.classes and len(train.classes) == 9
    assert np.bincount(train.labels).tolist() == [30] * 9    # 30 utterances per speaker
    assert np.bincount(test.labels, minlength=9).sum() == 370 and test.labels.max() == 8


def test_basic_motions_lengths_and_classes(loaded):
    for split in ("train", "test"):
        data = loaded["BasicMotions", split]
        assert set(data.lengths.tolist()) == {100}
        assert data.classes == ("badminton", "running", "standing", "walking")
        assert np.bincount(data.labels).tolist() == [10, 10, 10, 10]


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="name must be one of"):
        load_recordings("Vowels", "train")
    with pytest.raises(ValueError, match="split must be one of"):
        load_recordings("BasicMotions", "validation")


def test_standardise_uses_the_valid_steps_and_keeps_padding_zero(loaded):
    train, test = loaded["JapaneseVowels", "train"], loaded["JapaneseVowels", "test"]
    values = np.concatenate([x[:n] for x, n in zip(train.xs, train.lengths)]).astype(np.float64)
    mean, std = channel_stats(train)
    np.testing.assert_allclose(mean, values.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, values.std(0), rtol=1e-5)
    scaled = standardise(test, mean, std)
    for x, raw, n in zip(scaled.xs, test.xs, test.lengths):
        np.testing.assert_allclose(x[:n], (raw[:n] - values.mean(0)) / values.std(0),
                                   rtol=1e-4, atol=1e-4)
        assert not x[n:].any()
    with pytest.raises(ValueError, match=r"mean and std must have shape \(12,\)"):
        standardise(test, mean[:3], std)


def random_params(init, key):
    """Gaussian params with the structure `init` gives (the test is about the reading,
    not the initialisation, whose orthogonal matrices take seconds to build eagerly)."""
    leaves, tree = jax.tree_util.tree_flatten(jax.eval_shape(init, key))
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [0.5 * jax.random.normal(k, leaf.shape, leaf.dtype) for k, leaf in zip(keys, leaves)])


@functools.partial(jax.jit, static_argnums=0)
def cell_step(cell, params, carry, x):
    return cell(params, carry, x)


def final_state_alone(cell, params, xs):
    """The hidden state after running `cell` over xs [T, F] step by step (batch of 1)."""
    carry = cell.initial_carry((1,))
    for x in xs:
        carry, _ = cell_step(cell, params, carry, x[None])
    return np.asarray(cell.hidden(carry)[0])


@pytest.mark.parametrize("cell, bidirectional", [("lstm", True), ("clockwork", False)])
def test_classifier_reads_each_sequence_at_its_own_length(cell, bidirectional):
    """Padded and batched logits equal those of each sequence run alone, unpadded, step
    by step; the backward direction equals the forward loop over the reversed sequence.
    (The clockwork cell also counts its steps in its carry.)"""
    model = classifier(cell, 8, 3, 5, bidirectional)
    params = random_params(model.init, jax.random.key(0))
    lengths = np.array([5, 2, 7])
    # garbage (not zeros) past each length: it must not reach the result
    xs = np.asarray(jax.random.normal(jax.random.key(1), (3, 7, 3)))
    logits = model.logits(params, xs, jnp.asarray(lengths, jnp.int32))
    enc, p_enc = model.encoder, params["encoder"]
    for n, length in enumerate(lengths):
        alone = xs[n, :length]
        if bidirectional:
            state = np.concatenate([final_state_alone(enc.fwd, p_enc["fwd"], alone),
                                     final_state_alone(enc.bwd, p_enc["bwd"], alone[::-1])])
        else:
            state = final_state_alone(enc, p_enc, alone)
        expected = state @ np.asarray(params["head"]["W"]) + np.asarray(params["head"]["b"])
        np.testing.assert_allclose(logits[n], expected, rtol=1e-5, atol=1e-5)


def test_epoch_batches_visit_every_example_once_per_epoch():
    data = LabelledSequences(np.arange(10, dtype=np.float32).reshape(10, 1, 1),
                             np.ones(10, np.int32), np.arange(10, dtype=np.int32), ("a",),
                             np.arange(10))
    batch_fn = jax.jit(classify.epoch_batches(data, 3))   # 3 batches of 3 an epoch, 1 out
    for epoch in range(2):
        seen = np.concatenate([np.asarray(batch_fn(3 * epoch + i)[2]) for i in range(3)])
        assert len(set(seen.tolist())) == 9
        np.testing.assert_array_equal(np.asarray(batch_fn(3 * epoch)[0])[:, 0, 0],
                                      np.asarray(batch_fn(3 * epoch)[2]))
    assert not np.array_equal(batch_fn(0)[2], batch_fn(3)[2])   # a fresh order each epoch
    with pytest.raises(ValueError, match=r"batch must lie in \[1, 10\]"):
        classify.epoch_batches(data, 11)


def test_recordings_study_at_a_tiny_size(tmp_path, capsys):
    out = tmp_path / "rec"
    recordings.main([
        "--cells", "tanh", "--datasets", "BasicMotions", "--directions", "uni",
        "--seeds", "2", "--steps", "4", "--eval-every", "2", "--hidden", "4",
        "--batch", "8", "--out", str(out)])
    for name in ("results.json", "report.md", "accuracy.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["results"]) == {"BasicMotions/tanh/uni"}
    for r in saved["results"].values():
        assert [step for step, _ in r["curve"]] == [0, 2, 4]
        assert r["curve"][-1][1] == r["final"]["test_accuracy"]
        assert set(r["final"]) == {"test_accuracy", "test_loss", "train_accuracy",
                                   "train_loss"}
        for values in r["final"].values():
            assert len(values) == 2 and np.all(np.isfinite(values))
        # accuracies are whole numbers of the 40 recordings
        assert np.allclose(np.asarray(r["final"]["test_accuracy"]) * 40,
                           np.round(np.asarray(r["final"]["test_accuracy"]) * 40))
        assert r["chance"] == 0.25 and not r["nonfinite"]
    assert saved["results"]["BasicMotions/tanh/uni"]["bidirectional"] is False
    report = (out / "report.md").read_text()
    assert "| BasicMotions | SimpleRNN (tanh) | uni |" in report
    assert_usage_error(capsys, recordings.main, ["--directions", "up", "--out",
                                                 str(tmp_path / "x")],
                       "argument --directions: must be among uni,bi")
