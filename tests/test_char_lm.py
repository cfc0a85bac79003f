"""The Shakespeare loader on the shipped plays, the character vocabulary, bits per
character, a toy that learns "hello", and the character-level study end to end."""

import json
import math
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_usage_error

import rnnjax as rj
from experiments import char_lm
from rnnjax import decode
from rnnjax.models import CharLM
from rnnjax.tasks.shakespeare import (
    HELD_OUT,
    UNKNOWN,
    CharVocab,
    genre_of,
    play_text,
    shakespeare_plays,
    split_plays,
    split_text,
)
from rnnjax.train import init_state, make_train_step, softmax_cross_entropy
from rnnjax.train.losses import bits_per_char


# -- the loader -------------------------------------------------------------------------
def test_play_text_keeps_the_speech_and_drops_the_markdown():
    markdown = "\n".join([
        "# A Play", "", "## ACT I", "", "### SCENE I. A heath. Enter the", "", "first part.",
        "", "_Thunder. Enter two Witches, and", "a long direction_", "",
        "**First Witch**  ", "When shall we  ", "_\\[Aside]_  ", "meet again?  ",
        "Fair is foul, \\--and foul _\\[Exit]_ is fair.", "", "_Exit Second Witch_", "",
        "Hover through the fog.", "", "*Enter a king.*", "", "**KING: & QUEEN:**  ", "Anon.",
        "", "**Nobody**  ", "_\\[Silent]_", ""])
    assert play_text(markdown) == ("First Witch:\nWhen shall we\nmeet again?\n"
                                   "Fair is foul, --and foul  is fair.\n"
                                   "Hover through the fog.\n\n"
                                   "KING & QUEEN:\nAnon.")


def test_the_shipped_plays_are_plain_speech():
    plays = shakespeare_plays()
    assert len(plays) == 38 and "macbeth" in plays and "hamlet" in plays
    for name, text in plays.items():
        assert len(text) > 50_000, name
        assert not re.search(r"[#_*\\\[\]]", text), name      # no Markdown left
        assert "  \n" not in text and not text.startswith("\n"), name
        for speech in text.split("\n\n"):                      # every paragraph a speech
            speaker, _, lines = speech.partition("\n")
            assert speaker.endswith(":") and lines, (name, speech[:80])
    macbeth = plays["macbeth"]
    assert macbeth.startswith("First Witch:\nWhen shall we three meet again\n"
                              "In thunder, lightning, or in rain?\n\nSecond Witch:\n")
    assert "Thunder and lightning" not in macbeth and "Enter" not in macbeth[:2000]
    assert "Is this a dagger which I see before me," in macbeth


def test_the_split_holds_out_whole_plays():
    plays = shakespeare_plays()
    splits = split_plays(plays)
    names = [set(splits[s]) for s in ("train", "validation", "test")]
    assert set.union(*names) == set(plays) and sum(map(len, names)) == len(plays)
    total = sum(map(len, plays.values()))
    for split, held in HELD_OUT.items():
        assert set(splits[split]) == set(held)
        assert {genre_of(n) for n in held} == {"comedies", "tragedies"}
        assert 0.03 < sum(map(len, splits[split].values())) / total < 0.08
    # no speech of a held-out play is in the training text (its longer speeches)
    train = split_text("train", plays)
    speeches = [s for s in plays["othello"].split("\n\n") if len(s) > 400]
    assert speeches and not any(s in train for s in speeches[:20])
    with pytest.raises(ValueError, match="split must be one of"):
        split_text("dev", plays)


# -- the vocabulary ---------------------------------------------------------------------
def test_vocab_round_trip_and_unknown_characters():
    text = "To be, or not to be: that is the question.\nZ"
    vocab = CharVocab.from_text(text, min_count=2)
    kept = sorted(c for c in set(text) if text.count(c) >= 2)
    assert vocab.chars == "".join(kept) and vocab.size == len(kept) + 1
    ids = vocab.encode(text)
    assert ids.dtype == np.int32 and ids.shape == (len(text),)
    expected = [kept.index(c) + 1 if c in kept else 0 for c in text]
    np.testing.assert_array_equal(ids, expected)
    rare = {c for c in text if text.count(c) < 2}            # 'Z', ',', ':', '.', ...
    assert rare and vocab.decode(ids) == "".join(UNKNOWN if c in rare else c for c in text)
    assert vocab.encode("tx\u2014\U0001F600").tolist() == [kept.index("t") + 1, 0, 0, 0]
    full = CharVocab.from_text(text)
    assert full.decode(full.encode(text)) == text              # min_count 1: exact
    with pytest.raises(ValueError, match=r"ids must lie in \[0, \d+\]"):
        vocab.decode([vocab.size])
    with pytest.raises(ValueError, match="min_count must be a positive integer"):
        CharVocab.from_text(text, min_count=0)


# -- bits per character -----------------------------------------------------------------
@pytest.mark.parametrize("size", [2, 65])
def test_a_uniform_model_scores_log2_v_bits(size):
    logits = jnp.zeros((3, 7, size))
    labels = jnp.asarray(np.random.default_rng(size).integers(0, size, (3, 7)))
    nats = softmax_cross_entropy(logits, labels)
    assert float(bits_per_char(nats)) == pytest.approx(math.log2(size), rel=1e-6)


def test_bits_of_a_known_distribution_by_hand():
    # p = (1/2, 1/4, 1/4) scored on text with those frequencies: the entropy, 1.5 bits
    logits = jnp.log(jnp.array([0.5, 0.25, 0.25]))[None, None].repeat(4, axis=1)
    nats = softmax_cross_entropy(logits, jnp.array([[0, 0, 1, 2]]))
    assert float(nats) == pytest.approx(1.5 * math.log(2), rel=1e-6)
    assert float(bits_per_char(nats)) == pytest.approx(1.5, rel=1e-6)
    # a model q = (0.8, 0.1, 0.1) on the same text: -(2 log2 .8 + 2 log2 .1) / 4 bits
    q = jnp.log(jnp.array([0.8, 0.1, 0.1]))[None, None].repeat(4, axis=1)
    expected = -(2 * math.log2(0.8) + 2 * math.log2(0.1)) / 4
    assert float(bits_per_char(softmax_cross_entropy(q, jnp.array([[0, 0, 1, 2]])))) == \
        pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(bits_per_char(np.array([math.log(2), 0.0])), [1.0, 0.0])


# -- a toy: "hello" -----------------------------------------------------------------------
def test_a_small_rnn_learns_hello():
    vocab = CharVocab("ehlo")
    model = CharLM(rj.Embedding(vocab.size, 8), rj.Stacked([rj.SimpleRNN(16)]),
                   rj.Dense(vocab.size))
    word = jnp.asarray(vocab.encode("hello"))[None]          # [1, 5]
    inputs, targets = word[:, :-1], word[:, 1:]              # h e l l -> e l l o

    def loss_fn(params, batch, key):
        _, logits = model.logits(params, model.initial_carry(1), inputs)
        return softmax_cross_entropy(logits, targets), {}

    optimizer = optax.adam(0.05)
    step = jax.jit(make_train_step(loss_fn, optimizer))
    state = init_state(model.init(jax.random.key(0)), optimizer, jax.random.key(1))
    for _ in range(150):
        state, metrics = step(state, None)
    assert float(metrics["loss"]) < 0.05
    _, logits = model.logits(state.params, model.initial_carry(1), inputs)
    np.testing.assert_array_equal(jnp.argmax(logits, -1), targets)   # the two l's differ
    generated = decode.greedy(lambda c, t: model.step(state.params, c, t),
                              model.initial_carry(1), word[:, 0], max_len=4)
    assert "h" + vocab.decode(np.asarray(generated[0])) == "hello"


# -- the study --------------------------------------------------------------------------
def test_training_streams_continue_the_text_batch_after_batch():
    ids = np.arange(1000, dtype=np.int32)
    train = char_lm.streams(ids, 4, 10)                      # [4, 241]
    assert train.shape == (4, 241) and train[1, 0] == 241
    batch = char_lm.batch_fn(train, 10, lr=0.1, steps=50)
    tokens, reset, lr = batch(0)
    np.testing.assert_array_equal(tokens, train[:, :11])
    assert bool(reset) and float(lr) == pytest.approx(0.1)
    following, reset, _ = batch(1)
    np.testing.assert_array_equal(following[:, 0], tokens[:, -1])  # the next characters
    assert not bool(reset)
    again, reset, lr = batch(24)                              # 24 batches per epoch
    np.testing.assert_array_equal(again, tokens)
    assert bool(reset) and float(lr) == pytest.approx(0.01 + 0.09 * 0.5 * (1 + math.cos(
        math.pi * 24 / 50)), rel=1e-5)


TINY = ["--cells", "tanh", "--steps", "4", "--hidden", "8", "--layers", "1", "--embed", "4",
        "--batch", "4", "--seq-len", "8", "--eval-every", "2", "--checkpoint-every", "2",
        "--eval-streams", "512", "--eval-chunk", "100", "--sample-len", "20",
        "--temperatures", "0,1"]


def test_char_lm_study_at_a_tiny_size(tmp_path):
    out = tmp_path / "run"
    results = char_lm.main(TINY + ["--out", str(out)])
    for name in ("results.json", "report.md", "bits_per_char.png", "tanh/metrics.jsonl"):
        assert (out / name).stat().st_size > 0
    assert (out / "tanh" / "checkpoints" / "4").is_dir()
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["steps"] == 4 and saved["data"]["held_out"] == {
        k: list(v) for k, v in HELD_OUT.items()}
    r = saved["results"]["tanh"]
    assert r["steps"] == 4 and not r["nonfinite"]
    assert [s for s, _ in r["curve"]] == [0, 2, 4]
    assert r["curve"][-1][1] == r["final"]["validation_nats"]
    vocab_size = saved["data"]["vocab_size"]
    # at initialisation the model is near uniform over the symbols; finite throughout
    assert abs(r["curve"][0][1][0] - math.log(vocab_size)) < 1.0
    for key in ("validation", "test"):
        nats, bits = r["final"][f"{key}_nats"][0], r["final"][f"{key}_bpc"][0]
        assert math.isfinite(nats) and bits == pytest.approx(nats / math.log(2))
    assert set(r["samples"]) == {"0.0", "1.0"}
    for text in r["samples"].values():
        assert text.startswith("JULIET:\n") and len(text) == len("JULIET:\n") + 20
    report = (out / "report.md").read_text()
    assert "| SimpleRNN (tanh) |" in report and "1.47" in report
    assert results["tanh"]["final"] == r["final"]


def test_char_lm_resumes_exactly(tmp_path):
    """A run resumed from its checkpoint at step 2 (the carry restored with the params)
    ends with the numbers of the run that never stopped."""
    out = tmp_path / "run"
    first = char_lm.main(TINY + ["--layers", "2", "--out", str(out)])["tanh"]
    shutil.rmtree(out / "tanh" / "checkpoints" / "4")
    again = char_lm.main(TINY + ["--layers", "2", "--out", str(out)])["tanh"]
    assert again["final"] == first["final"] and again["samples"] == first["samples"]
    assert again["curve"] == first["curve"]
    with pytest.raises(ValueError, match="holds a run with other settings"):
        char_lm.main(TINY + ["--layers", "2", "--out", str(out), "--lr", "0.1"])


def test_bad_settings_fail_before_any_work(tmp_path, capsys):
    # the shared flags: tests/test_experiments.py; the study's own:
    for flags, message in ((["--seq-len", "0"], "argument --seq-len: must be a positive "
                                                 "integer, got '0'"),
                           (["--prompt", ""], "--prompt must hold at least one character")):
        assert_usage_error(capsys, char_lm.main, [*flags, "--out", str(tmp_path / "x")],
                           message)
    assert not (tmp_path / "x").exists()
