"""The encoder-decoder against a float64 NumPy reference of its equations run one
sentence at a time, unpadded; teacher forcing against step-by-step decoding; padding;
the attention weights; a tiny reversal task learned; input checks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import randomize
from jax import lax

import rnnjax as rj
from rnnjax import decode, seq2seq
from rnnjax.train import init_state, make_train_step, softmax_cross_entropy

SOURCE_VOCAB, TARGET_VOCAB = 9, 7
LENGTHS = np.array([5, 1, 3])

MODELS = {
    # Cho et al.'s fixed context
    "gru": seq2seq.encoder_decoder(SOURCE_VOCAB, TARGET_VOCAB, hidden=5, embed=3),
    # attention over a Bidirectional encoder whose forward side is a Stacked of two cells;
    # an LSTM decoder, whose carry is (h, c): h_0 goes into h, h is the attention's query
    "bi_attention_lstm": seq2seq.EncoderDecoder(
        SOURCE_VOCAB, TARGET_VOCAB,
        rj.Bidirectional(rj.Stacked([rj.GRU(4), rj.SimpleRNN(3)]), rj.GRU(2)), rj.LSTM(4),
        embed_size=3, attention_size=3),
}


@functools.cache
def random_params(model, seed=0):
    """N(0, 0.5^2) params of the model's structure (biases non-zero)."""
    return randomize(jax.eval_shape(model.init, jax.random.key(0)), seed)


@functools.cache
def teacher_forced(name):
    """`(params, source, lengths, target_in) -> (logits, attention weights or None)` of
    MODELS[name], compiled once and shared by the tests."""
    model = MODELS[name]
    with_attention = model.attention_size is not None
    return jax.jit(lambda *args: (model.logits(*args),
                                  model.alignments(*args) if with_attention else None))


def tokens(seed, shape, vocab):
    return np.random.default_rng(seed).integers(0, vocab, shape).astype(np.int32)


def run_alone(cell, params, xs):
    """A cell over xs [T, F] one step at a time (batch of 1): (final carry, outputs [T, H])."""
    if isinstance(cell, rj.Stacked):       # layer by layer, as a deep RNN reads
        carries = []
        for layer, p in zip(cell.layers, params):
            carry, xs = run_alone(layer, p, xs)
            carries.append(carry)
        return tuple(carries), xs
    carry, outputs = cell.initial_carry((1,)), []
    for x in xs:
        carry, y = cell(params, carry, jnp.asarray(x[None], jnp.float32))
        outputs.append(np.asarray(y[0], np.float64))
    return carry, np.stack(outputs)


def reference_logits(model, params, source, length, target_in):
    """The module's equations for one sentence, unpadded (source [length]); the cells
    step by step, everything else in float64 NumPy. Returns (logits [L, V],
    attention weights [L, length] or None)."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    xs = p["source_embed"]["E"][source[:length]]
    enc = model.encoder
    if isinstance(enc, rj.Bidirectional):
        carry_f, out_f = run_alone(enc.fwd, params["encoder"]["fwd"], xs)
        carry_b, out_b = run_alone(enc.bwd, params["encoder"]["bwd"], xs[::-1])
        context = np.concatenate([np.asarray(enc.fwd.hidden(carry_f)[0]),
                                  np.asarray(enc.bwd.hidden(carry_b)[0])])
        annotations = np.concatenate([out_f, out_b[::-1]], axis=-1)
    else:
        carry, annotations = run_alone(enc, params["encoder"], xs)
        context = np.asarray(seq2seq.final_state(enc, carry)[0], np.float64)
    dec = model.decoder_cell
    h0 = np.tanh(context @ p["bridge"]["W"] + p["bridge"]["b"])
    state = dec.replace_hidden(dec.initial_carry((1,)), jnp.asarray(h0[None], jnp.float32))
    logits, alphas = [], []
    for token in target_in:
        e = p["target_embed"]["E"][token]
        c = context
        if model.attention_size is not None:
            a = p["attention"]
            s = np.asarray(dec.hidden(state)[0], np.float64)
            scores = np.array([a["v"] @ np.tanh(s @ a["W_query"] + annotations[j] @ a["W_key"]
                                                + a["b"]) for j in range(length)])
            alpha = np.exp(scores - scores.max())
            alpha /= alpha.sum()
            c = alpha @ annotations
            alphas.append(alpha)
        state, h = dec(params["decoder"], state,
                             jnp.asarray(np.concatenate([e, c])[None], jnp.float32))
        features = np.concatenate([np.asarray(h[0], np.float64), c, e])
        logits.append(features @ p["readout"]["W"] + p["readout"]["b"])
    return np.stack(logits), (np.stack(alphas) if alphas else None)


@pytest.mark.parametrize("name", list(MODELS))
def test_logits_match_the_equations_and_step_by_step_decoding(name):
    """Teacher-forced logits of a padded batch equal (a) the float64 reference run on
    each sentence alone, unpadded, and (b) the decoder's step_fn fed the same tokens;
    its carry has the batch axis first in every leaf, as beam search needs."""
    model = MODELS[name]
    params = random_params(model)
    source = tokens(1, (3, 6), SOURCE_VOCAB)             # garbage past each length
    target_in = tokens(2, (3, 4), TARGET_VOCAB)
    logits = np.asarray(teacher_forced(name)(params, source, LENGTHS, target_in)[0])
    assert logits.shape == (3, 4, TARGET_VOCAB)
    for b, length in enumerate(LENGTHS):
        expected, _ = reference_logits(model, params, source[b], length, target_in[b])
        np.testing.assert_allclose(logits[b], expected, rtol=1e-4, atol=1e-5)

    @jax.jit
    def stepped(params, source, lengths, target_in):   # what rnnjax.decode runs
        step_fn, carry = model.decoder(params, source, lengths)
        return lax.scan(step_fn, carry, target_in.T)[1].swapaxes(0, 1)

    np.testing.assert_allclose(stepped(params, source, LENGTHS, target_in), logits,
                               rtol=1e-5, atol=1e-6)
    carry = jax.eval_shape(lambda: model.decoder(params, source, LENGTHS)[1])
    assert {leaf.shape[0] for leaf in jax.tree_util.tree_leaves(carry)} == {3}


@pytest.mark.parametrize("name", list(MODELS))
def test_padding_the_source_changes_nothing(name):
    """A longer source array, with other tokens past the same lengths: the same logits."""
    model = MODELS[name]
    params = random_params(model)
    source, target_in = tokens(1, (3, 6), SOURCE_VOCAB), tokens(2, (3, 4), TARGET_VOCAB)
    longer = np.concatenate([source, tokens(5, (3, 4), SOURCE_VOCAB)], axis=1)
    longer[:, :6] = np.where(np.arange(6) < LENGTHS[:, None], source,
                             tokens(6, (3, 6), SOURCE_VOCAB))
    padded, unpadded = (teacher_forced(name)(params, s, LENGTHS, target_in)
                        for s in (longer, source))
    np.testing.assert_allclose(padded[0], unpadded[0], rtol=1e-6, atol=1e-6)
    if model.attention_size is not None:    # the weights past T = 6 are zero
        np.testing.assert_array_equal(padded[1][..., 6:], 0.0)
        np.testing.assert_allclose(padded[1][..., :6], unpadded[1], rtol=1e-6, atol=1e-7)


def test_attention_weights_sum_to_one_and_vanish_past_the_length():
    model = MODELS["bi_attention_lstm"]
    params = random_params(model)
    source, target_in = tokens(1, (3, 6), SOURCE_VOCAB), tokens(2, (3, 4), TARGET_VOCAB)
    weights = np.asarray(teacher_forced("bi_attention_lstm")(params, source, LENGTHS,
                                                             target_in)[1])
    assert weights.shape == (3, 4, 6)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    past = np.arange(6)[None, None, :] >= LENGTHS[:, None, None]
    assert np.all(weights[np.broadcast_to(past, weights.shape)] == 0.0)
    assert np.all(weights[np.broadcast_to(~past, weights.shape)] > 0.0)
    np.testing.assert_array_equal(weights[1, :, 0], 1.0)     # one source word: all on it
    for b, length in enumerate(LENGTHS):                   # the reference's weights
        _, alphas = reference_logits(model, params, source[b], length, target_in[b])
        np.testing.assert_allclose(weights[b, :, :length], alphas, rtol=1e-4, atol=1e-6)


def test_a_tiny_reversal_task_is_learned():
    """Reverse 1-5 words over 6 symbols: with attention, a few hundred steps of teacher
    forcing reach exact greedy reversals of held-out sequences (about 30 s)."""
    pad, sos, eos, vocab, longest = 0, 1, 2, 9, 5
    model = seq2seq.encoder_decoder(vocab, vocab, hidden=32, embed=8, attention=True)

    def batch(key, size):
        k_words, k_lengths = jax.random.split(key)
        words = jax.random.randint(k_words, (size, longest), 3, vocab)
        lengths = jax.random.randint(k_lengths, (size,), 1, longest + 1)
        valid = jnp.arange(longest) < lengths[:, None]
        source = jnp.where(valid, words, pad)
        flipped = jax.vmap(lambda w, n: jnp.roll(w[::-1], n - longest))(words, lengths)
        reversed_ = jnp.where(valid, flipped, pad)
        target_out = jnp.concatenate([reversed_, jnp.zeros((size, 1), jnp.int32)], 1)
        target_out = target_out.at[jnp.arange(size), lengths].set(eos)
        target_in = jnp.concatenate([jnp.full((size, 1), sos), target_out[:, :-1]], 1)
        return source, lengths, target_in, target_out

    def loss_fn(params, key, _):
        source, lengths, target_in, target_out = batch(key, 64)
        logits = model.logits(params, source, lengths, target_in)
        return softmax_cross_entropy(logits, target_out, lengths + 1), {}

    optimizer = optax.adam(1e-2)
    step = jax.jit(make_train_step(loss_fn, optimizer))
    state = init_state(model.init(jax.random.key(0)), optimizer, jax.random.key(1))
    for i in range(600):
        state, _ = step(state, jax.random.fold_in(jax.random.key(2), i))

    source, lengths, _, target_out = batch(jax.random.key(99), 200)
    step_fn, carry = model.decoder(state.params, source, lengths)
    out = np.asarray(decode.greedy(step_fn, carry, jnp.full(200, sos), longest + 1, eos=eos))
    expected = np.asarray(target_out)
    # the row is right up to and including its eos (later columns: eos padding)
    right = [np.array_equal(out[b, :n + 1], expected[b, :n + 1])
             for b, n in enumerate(np.asarray(lengths))]
    assert np.mean(right) >= 0.98


def test_input_checks():
    model = MODELS["bi_attention_lstm"]
    params = random_params(model)
    source, target_in = tokens(0, (3, 6), SOURCE_VOCAB), tokens(0, (3, 4), TARGET_VOCAB)
    with pytest.raises(ValueError, match=r"source must be a rank-2 integer array \[B, T\]"):
        model.logits(params, source.astype(np.float32), LENGTHS, target_in)
    with pytest.raises(ValueError, match=r"source must hold token ids in \[0, 8\]"):
        model.logits(params, source + 9, LENGTHS, target_in)
    with pytest.raises(ValueError, match=r"seq_lengths must lie in \[0, 6\]"):
        model.logits(params, source, np.array([7, 1, 1]), target_in)
    with pytest.raises(ValueError, match="source_lengths must be >= 1"):
        model.decoder(params, source, np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"seq_lengths must have shape \(3,\)"):
        model.logits(params, source, LENGTHS[:2], target_in)
    with pytest.raises(ValueError, match=r"target_in must have the batch size of source \(3\)"):
        model.logits(params, source, LENGTHS, target_in[:2])
    with pytest.raises(ValueError, match=r"target_in must hold token ids in \[0, 6\]"):
        model.logits(params, source, LENGTHS, target_in - 1)
    with pytest.raises(ValueError, match="alignments needs a model with attention"):
        MODELS["gru"].alignments(random_params(MODELS["gru"]), source, LENGTHS, target_in)
    with pytest.raises(TypeError, match="decoder_cell must be a cell"):
        seq2seq.EncoderDecoder(5, 5, rj.GRU(4), rj.Bidirectional(rj.GRU(4), rj.GRU(4)))
    with pytest.raises(TypeError, match="encoder must be a cell"):
        seq2seq.EncoderDecoder(5, 5, "gru", rj.GRU(4))
    with pytest.raises(ValueError, match="attention_size must be a positive integer"):
        seq2seq.EncoderDecoder(5, 5, rj.GRU(4), rj.GRU(4), attention_size=0)
    with pytest.raises(ValueError, match="cell name must be one of"):
        seq2seq.encoder_decoder(5, 5, cell="transformer")
