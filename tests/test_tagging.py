"""The tagging study: the lookup baseline, the tagger's reading of padded words and
sentences, the CoNLL files, and one tiny end-to-end run."""

import json
import types

import jax
import numpy as np
import pytest
from helpers import assert_usage_error, randomize

from experiments import tagging
from rnnjax.models import LookupTagger
from rnnjax.tasks.entities import AMBIGUOUS, MONTH_NAMES, generated_entities

seqeval_metrics = pytest.importorskip("seqeval.metrics")

TRICKY = [  # nested and adjacent entities: the longest span seen wins
    (("Bank", "of", "Rome", "left", "Rome"), ("B-ORG", "I-ORG", "I-ORG", "O", "B-LOC")),
    (("The", "New", "York", "Times", "in", "New", "York"),
     ("O", "B-ORG", "I-ORG", "I-ORG", "O", "B-LOC", "I-LOC")),
    (("Peter", "Blackburn", "Smith", "spoke"), ("B-PER", "I-PER", "B-PER", "O")),
]


def f1(gold, predicted):
    return seqeval_metrics.f1_score([list(t) for _, t in gold], predicted)


def test_lookup_is_exact_on_its_training_sentences():
    lookup = LookupTagger.fit(TRICKY)
    assert [lookup.tag(tokens) for tokens, _ in TRICKY] == [list(t) for _, t in TRICKY]
    # on the generated training sentences it errs only where a name has two types
    train = generated_entities(1, train=300, validation=5, test=5).train
    lookup = LookupTagger.fit(train)
    plain = [s for s in train if not set(s[0]) & (set(AMBIGUOUS) | set(MONTH_NAMES))]
    assert 0.5 * len(train) < len(plain) < len(train)
    assert f1(plain, [lookup.tag(tokens) for tokens, _ in plain]) == 1.0
    assert f1(train, [lookup.tag(tokens) for tokens, _ in train]) < 1.0


def test_lookup_picks_the_most_frequent_type():
    lookup = LookupTagger.fit([(("Jordan",), ("B-PER",)), (("Jordan",), ("B-LOC",)),
                                 (("Jordan", "won"), ("B-LOC", "O"))])
    assert lookup.tag(["Jordan", "Jordan", "x"]) == ["B-LOC", "B-LOC", "O"]


def tiny_args(**changes):
    values = dict(char_dim=3, char_hidden=4, word_dim=3, hidden=5, word_dropout=0.0,
                  max_chars=6, corpus_seed=0, train_size=40, eval_size=8, conll_dir=None)
    return types.SimpleNamespace(**{**values, **changes})


def test_padding_never_reaches_the_tag_scores():
    """Garbage characters past each word's length and garbage words past each sentence's
    length leave the scores of the real words as they are (the garbage characters do
    change them when the words are read to their full width)."""
    data = tagging.load_data(tiny_args())
    model = tagging.build("lstm", "crf", "chars+words", data, tiny_args())
    params = randomize(jax.eval_shape(model.init, jax.random.key(0)), 0)
    arrays = data.arrays["train"]
    batch = tagging.packed(arrays)
    xs, lengths = batch.xs[:6], batch.lengths[:6]
    valid_words = np.arange(xs.shape[1])[None, :] < lengths[:, None]
    valid_chars = np.arange(xs.shape[2] - 2)[None, None] < xs[..., 1:2]
    rng = np.random.default_rng(0)
    noisy = xs.copy()
    noisy[..., 2:] = np.where(valid_chars, xs[..., 2:],
                              rng.integers(1, data.chars_size, xs[..., 2:].shape))
    noisy[~valid_words] = rng.integers(1, 5, noisy[~valid_words].shape)
    emissions = jax.jit(model.emissions)
    clean, dirty = emissions(params, xs, lengths), emissions(params, noisy, lengths)
    np.testing.assert_allclose(np.asarray(dirty)[valid_words], np.asarray(clean)[valid_words],
                               rtol=1e-5, atol=1e-6)
    full_width = noisy.copy()
    full_width[..., 1] = np.where(valid_words, xs.shape[2] - 2, 0)
    changed = np.asarray(emissions(params, full_width, lengths))[valid_words]
    assert not np.allclose(changed, np.asarray(clean)[valid_words], atol=1e-3)


def test_conll_files_by_their_usual_names(tmp_path):
    for name in ("eng.train", "dev.txt", "test.txt"):
        (tmp_path / name).write_text("-DOCSTART- O\n\nEU I-ORG\nsaid O\n\nKohl I-PER\n")
    data = tagging.load_data(tiny_args(conll_dir=tmp_path))
    assert data.parts("test") == ["all"] and data.parts("validation") == ["all"]
    assert data.tags == ("O", "B-ORG", "I-ORG", "B-PER", "I-PER")
    assert data.sentences["test/all"][1] == (("Kohl",), ("B-PER",))
    np.testing.assert_array_equal(data.arrays["test/all"].tags, [[1, 0], [3, 0]])
    (tmp_path / "test.txt").unlink()
    with pytest.raises(ValueError, match=r"must hold a test file, one of test\.txt"):
        tagging.load_data(tiny_args(conll_dir=tmp_path))


@pytest.mark.parametrize("heads", [
    "crf",
    # each head costs a compile of its own (about 10 s on 2 cores); the softmax head's
    # model is tested in the default run, the study with both heads with -m slow
    pytest.param("softmax,crf", marks=pytest.mark.slow),
])
def test_tagging_study_at_a_tiny_size(tmp_path, heads, capsys):
    out = tmp_path / "tag"
    tagging.main(["--heads", heads, "--features", "chars", "--seeds", "1", "--steps", "60",
                  "--eval-every", "30", "--train-size", "150", "--eval-size", "40",
                  "--hidden", "8", "--char-hidden", "4", "--char-dim", "4", "--lr", "0.03",
                  "--batch", "16", "--examples", "2", "--out", str(out)])
    for name in ("results.json", "report.md", "f1.png", "training.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["sizes"] == {"train": 150, "validation/seen": 20, "validation/unseen": 20,
                              "test/seen": 40, "test/unseen": 40}
    base = saved["baselines"]
    assert base["lookup"]["unseen"]["f1"] == 0.0           # no unseen entity is in its table
    assert base["lookup"]["seen"]["f1"] > 0.8
    assert set(saved["results"]) == {f"lstm/{head}/chars" for head in heads.split(",")}
    for result in saved["results"].values():
        assert not result["nonfinite"]
        for part in ("seen", "unseen"):
            scores = result["final"][part]
            assert all(0.0 <= v[0] <= 1.0 for v in scores.values())
            assert [step for step, _ in result["curves"][part]] == [0, 30, 60]
        # every head beats chance on the seen part
        assert result["final"]["seen"]["f1"][0] > base["chance"]["seen"]["f1"] + 0.1
        assert len(result["predicted_seed0"]["seen"]) == 2
    report = (out / "report.md").read_text()
    assert "| crf (chars, LSTM) |" in report and "| lookup |" in report
    assert report.count("- gold: ") == 4
    assert_usage_error(capsys, tagging.main, ["--heads", "hmm", "--out", str(tmp_path / "x")],
                       "argument --heads: must be among softmax,crf")
