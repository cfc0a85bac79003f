"""rnnjax.models: the combinator that builds each model's init, and each model against
its parts called by hand (params, outputs, lengths, checks at the edge)."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import randomize

import rnnjax as rj
from rnnjax import crf
from rnnjax.models import (
    CellWithHead,
    CharLM,
    Part,
    char_lm,
    classifier,
    combine,
    fixed,
    param_count,
    part,
    tagger,
)
from rnnjax.seq2seq import final_state

KEY = jax.random.key(7)


def same(a, b):
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# -- combine ------------------------------------------------------------------------------
def test_combine_splits_one_key_among_the_keyed_parts_in_order():
    draw = lambda k: jax.random.normal(k, (3,))
    init = combine(part("a", draw), fixed("zeros", lambda: jnp.zeros(2)), part("b", draw))
    keys = jax.random.split(KEY, 2)
    params = init(KEY)
    assert list(params) == ["a", "zeros", "b"]
    same(params, {"a": draw(keys[0]), "zeros": jnp.zeros(2), "b": draw(keys[1])})


def test_a_part_left_out_keeps_its_key():
    draw = lambda k: jax.random.normal(k, (3,))
    full = combine(part("a", draw), part("b", draw), part("c", draw))(KEY)
    without_b = combine(part("a", draw), part("b", None), part("c", draw))(KEY)
    assert list(without_b) == ["a", "c"]
    same(without_b, {"a": full["a"], "c": full["c"]})
    # a fixed part left out changes nothing either
    same(combine(part("a", draw), fixed("z", None), part("b", draw), part("c", draw))(KEY), full)


def test_combine_rejects_bad_parts():
    with pytest.raises(ValueError, match="distinct names"):
        combine(part("a", jnp.zeros), part("a", jnp.zeros))
    with pytest.raises(TypeError, match="parts must be Part values"):
        combine(("a", jnp.zeros))
    assert Part("a", None).keyed and not fixed("a", None).keyed


def test_param_count():
    assert param_count({"W": jnp.zeros((3, 4)), "b": [jnp.zeros(4), jnp.zeros(())]}) == 17


# -- CellWithHead -------------------------------------------------------------------------
def test_cell_with_head_params_and_outputs_by_hand():
    model = CellWithHead(rj.LSTM(5), rj.Dense(3), input_size=2)
    params = model.init(KEY)
    k_cell, k_head = jax.random.split(KEY)         # the derivation the studies rely on
    same(params, {"cell": rj.LSTM(5).init(k_cell, 2), "head": rj.Dense(3).init(k_head, 5)})
    assert params["cell"]["W_x"].shape == (2, 20) and params["head"]["W"].shape == (5, 3)
    xs = jax.random.normal(jax.random.key(1), (4, 6, 2))
    carry, ys = rj.LSTM(5).initial_carry((4,)), []
    for t in range(6):
        carry, y = rj.LSTM(5)(params["cell"], carry, xs[:, t])
        ys.append(y @ params["head"]["W"] + params["head"]["b"])
    np.testing.assert_allclose(model.outputs(params, xs), jnp.stack(ys, 1), atol=1e-5)
    np.testing.assert_allclose(model.last(params, xs), ys[-1], atol=1e-5)
    norms = model.grad_flow(params, xs, lambda out: jnp.mean(out[:, -1] ** 2))
    assert norms.shape == (6,) and bool(jnp.all(norms[:-1] >= 0))


def test_cell_with_head_names_a_wrong_input():
    model = CellWithHead(rj.GRU(5), rj.Dense(3), input_size=2)
    params = model.init(KEY)
    with pytest.raises(ValueError, match="xs"):
        model.outputs(params, jnp.ones((4, 6, 3)))


# -- Classifier ---------------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifier_params_and_lengths(bidirectional):
    model = classifier("gru", 4, 3, 5, bidirectional)
    params = model.init(KEY)
    k_enc, k_head = jax.random.split(KEY)
    same(params, {"encoder": model.encoder.init(k_enc, 3),
                  "head": rj.Dense(5).init(k_head, 8 if bidirectional else 4)})
    xs = np.asarray(jax.random.normal(jax.random.key(1), (3, 7, 3)))
    lengths = jnp.asarray([7, 2, 5])
    logits = model.logits(params, xs, lengths)
    assert logits.shape == (3, 5)
    garbage = xs.copy()
    for row, n in enumerate([7, 2, 5]):
        garbage[row, n:] = 100.0
    np.testing.assert_allclose(model.logits(params, garbage, lengths), logits, atol=1e-6)
    carry, _ = rj.unroll(model.encoder, params["encoder"], xs, seq_lengths=lengths)
    np.testing.assert_allclose(logits, model.head(params["head"],
                                                  final_state(model.encoder, carry)), atol=1e-6)


def test_classifier_names_bad_lengths():
    model = classifier("gru", 4, 3, 5)
    with pytest.raises(ValueError, match="seq_lengths"):
        model.logits(model.init(KEY), jnp.ones((3, 7, 3)), jnp.ones((4,), jnp.int32))


# -- Tagger -------------------------------------------------------------------------------
def tiny_tagger(head="crf", words=11):
    return tagger("lstm", head, chars=9, char_dim=3, char_hidden=4, words=words, word_dim=5,
                  hidden=6, tags=4)


def test_tagger_params_from_five_keys_and_crf_zeros():
    model = tiny_tagger()
    params = model.init(KEY)
    keys = jax.random.split(KEY, 5)
    same({k: params[k] for k in ("chars", "char_rnn", "context", "head", "words")},
         {"chars": rj.Embedding(9, 3).init(keys[0]),
          "char_rnn": model.char_rnn.init(keys[1], 3),
          "context": model.context.init(keys[2], 8 + 5),
          "head": rj.Dense(4).init(keys[3], 12),
          "words": rj.Embedding(11, 5).init(keys[4])})
    same(params["crf"], {"transitions": jnp.zeros((4, 4)), "start": jnp.zeros(4),
                         "end": jnp.zeros(4)})
    # without word features or CRF the other parts keep their params
    plain = tiny_tagger("softmax", None).init(KEY)
    assert set(plain) == {"chars", "char_rnn", "context", "head"}
    same(plain["char_rnn"], params["char_rnn"])


def packed_sentences():
    """Two sentences of 3 and 2 words, words of up to 4 characters: xs [2, 3, 6]."""
    return jnp.asarray([[[2, 3, 1, 2, 3, 0], [4, 1, 5, 0, 0, 0], [5, 4, 1, 1, 1, 1]],
                        [[6, 2, 7, 8, 0, 0], [7, 4, 2, 2, 2, 2], [0, 0, 0, 0, 0, 0]]]), \
        jnp.asarray([3, 2])


def test_tagger_emissions_ignore_padding_and_the_crf_head_decodes_them():
    model = tiny_tagger()
    params = randomize(model.init(KEY), 0)
    xs, lengths = packed_sentences()
    scores = model.emissions(params, xs, lengths)
    assert scores.shape == (2, 3, 4)
    noisy = xs.at[1, 2].set(jnp.asarray([3, 4, 8, 8, 8, 8]))    # a word past the length
    noisy = noisy.at[0, 1, 4:].set(8)                             # characters past a word's
    np.testing.assert_allclose(model.emissions(params, noisy, lengths)[0, :3], scores[0],
                               atol=1e-6)
    np.testing.assert_allclose(model.emissions(params, noisy, lengths)[1, :2],
                               scores[1, :2], atol=1e-6)
    tags, _ = crf.viterbi(scores, params["crf"]["transitions"], lengths,
                          start=params["crf"]["start"], end=params["crf"]["end"])
    np.testing.assert_array_equal(model.predict(params, xs, lengths), tags)
    loss, _ = model.loss(params, (xs, lengths, tags), None)
    nll = crf.nll(scores, params["crf"]["transitions"], tags, lengths,
                  start=params["crf"]["start"], end=params["crf"]["end"])
    np.testing.assert_allclose(loss, jnp.sum(nll) / 5, rtol=1e-6)


def test_tagger_softmax_head_is_the_argmax_within_lengths():
    model = tiny_tagger("softmax")
    params = randomize(model.init(KEY), 0)
    xs, lengths = packed_sentences()
    best = jnp.argmax(model.emissions(params, xs, lengths), -1)
    predicted = model.predict(params, xs, lengths)
    np.testing.assert_array_equal(predicted[0], best[0])
    np.testing.assert_array_equal(predicted[1], best[1].at[2].set(0))


def test_tagger_names_bad_settings_and_inputs():
    with pytest.raises(ValueError, match="head must be one of"):
        tiny_tagger("hmm")
    with pytest.raises(ValueError, match="word_dropout must lie in"):
        tagger("lstm", "crf", chars=9, char_dim=3, char_hidden=4, words=None, word_dim=5,
               hidden=6, tags=4, word_dropout=1.5)
    model = tiny_tagger()
    with pytest.raises(ValueError, match=r"xs must be an integer array \[B, T, 2 \+ L\]"):
        model.emissions(model.init(KEY), jnp.zeros((2, 3)), jnp.asarray([3, 2]))


# -- CharLM -------------------------------------------------------------------------------
def test_char_lm_params_and_steps_by_hand():
    model = char_lm("gru", vocab_size=7, hidden=5, embed=3, layers=2)
    params = model.init(KEY)
    keys = jax.random.split(KEY, 3)
    same(params, {"embed": rj.Embedding(7, 3).init(keys[0]),
                  "rnn": model.rnn.init(keys[1], 3), "head": rj.Dense(7).init(keys[2], 5)})
    tokens = jnp.asarray([[1, 2, 3, 4], [6, 5, 0, 1]])
    carry, logits = model.logits(params, model.initial_carry(2), tokens)
    assert logits.shape == (2, 4, 7)
    step_carry = model.initial_carry(2)
    for t in range(4):
        step_carry, step_logits = model.step(params, step_carry, tokens[:, t])
        np.testing.assert_allclose(step_logits, logits[:, t], atol=1e-5)
    same(jax.tree_util.tree_map(lambda a: np.round(np.asarray(a), 5), step_carry),
         jax.tree_util.tree_map(lambda a: np.round(np.asarray(a), 5), carry))
    assert isinstance(model, CharLM)
    with pytest.raises(ValueError, match=r"tokens must be \[B, T\]"):
        model.logits(params, model.initial_carry(2), tokens[:, 0])


# -- Captioner ----------------------------------------------------------------------------
def test_captioner_params_from_six_keys_and_a_checked_image_shape():
    import rnnjax.models.image_captioner  # noqa: F401  (the module leaves the name alone)
    from rnnjax.models import captioner
    from rnnjax.vision import ImageEncoder
    make = lambda condition: captioner("gru", vocab_size=9, hidden=5, embed=3, features=4,
                                       channels=(2,), image_size=8, condition=condition,
                                       start_token=1, end_token=2, max_len=4)
    both = make("both").init(KEY)
    keys = jax.random.split(KEY, 6)
    same(both, {"encoder": ImageEncoder(4, (2,)).init(keys[0], (8, 8, 3)),
                "embed": rj.Embedding(9, 3).init(keys[1]), "cell": rj.GRU(5).init(keys[2], 3),
                "head": rj.Dense(9).init(keys[3], 5), "to_state": rj.Dense(5).init(keys[4], 4),
                "to_input": rj.Dense(3).init(keys[5], 4)})
    state = make("state").init(KEY)
    assert "to_input" not in state
    same(state["to_state"], both["to_state"])
    model = make("input")
    params = model.init(KEY)
    assert model.greedy(params, jnp.ones((2, 8, 8, 3))).shape == (2, 4)
    with pytest.raises(ValueError, match=r"images must be \[B, 8, 8, 3\]"):
        model.start(params, jnp.ones((2, 9, 9, 3)))
    with pytest.raises(ValueError, match="condition must be one of"):
        make("neither")


def test_importing_the_models_leaves_the_vision_models_unloaded():
    code = ("import sys, rnnjax; before = {m for m in sys.modules if m.startswith('flax')}; "
            "import rnnjax.models; "
            "after = {m for m in sys.modules if m.startswith('flax')}; "
            "assert 'rnnjax.models.image_captioner' not in sys.modules; "
            "assert after == before, sorted(after - before)")
    subprocess.run([sys.executable, "-c", code], check=True)
