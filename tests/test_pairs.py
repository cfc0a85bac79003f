"""Sentence pairs: the TSV reader, the number pairs against num2words, the splits, the
tokens and the word vocabulary, the padded arrays, and the translation scores against
hand-computed values."""

import math

import numpy as np
import pytest

from rnnjax.tasks import pairs

num2words = pytest.importorskip("num2words").num2words


def test_read_pairs_reads_the_anki_format(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\n"
                    "\n"
                    "  I'm home. \t Je suis chez moi.\n"
                    "Ça va?\tHow are you?\textra\tfields\n", encoding="utf-8")
    assert pairs.read_pairs(path) == [("Go.", "Va !"), ("I'm home.", "Je suis chez moi."),
                                      ("Ça va?", "How are you?")]
    path.write_text("Go.\tVa !\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 must be 'source<TAB>target"):
        pairs.read_pairs(path)
    path.write_text("Go.\t \n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1 must be"):
        pairs.read_pairs(path)


def test_number_pairs_are_num2words_own_outputs():
    known = {97: ("ninety-seven", "quatre-vingt-dix-sept"),
             71: ("seventy-one", "soixante et onze"),
             80: ("eighty", "quatre-vingts"),
             80_000: ("eighty thousand", "quatre-vingt mille"),
             201: ("two hundred and one", "deux cent un"),
             2_000_000_000: ("two billion", "deux milliards")}
    assert pairs.number_pairs(list(known)) == list(known.values())
    numbers = pairs.number_splits({"test": 50}, seed=3)["test"]
    assert pairs.number_pairs(numbers) == [(num2words(int(n)), num2words(int(n), lang="fr"))
                                           for n in numbers]
    assert pairs.number_pairs([21], "fr", "en") == [("vingt et un", "twenty-one")]


def test_splits_are_disjoint_deterministic_and_spread_over_the_digits():
    sizes = {"train": 3000, "validation": 300, "test": 600}
    splits = pairs.number_splits(sizes, high=10**9, seed=0)
    assert {k: len(v) for k, v in splits.items()} == sizes
    every = np.concatenate(list(splits.values()))
    assert len(np.unique(every)) == len(every) and every.min() >= 0 and every.max() < 10**9
    again = pairs.number_splits(sizes, high=10**9, seed=0)
    assert all(np.array_equal(splits[k], again[k]) for k in sizes)
    other = pairs.number_splits(sizes, high=10**9, seed=1)
    assert not np.array_equal(splits["test"], other["test"])
    # 3900 numbers over 9 digit groups: the 10 one-digit and 90 two-digit numbers are all
    # taken, the other seven groups share the rest evenly (3800 / 7 = 542.9)
    digits = np.bincount([len(str(n)) for n in every.tolist()])[1:]
    assert digits.tolist()[:2] == [10, 90] and digits[2:].max() - digits[2:].min() <= 2
    # each split gets its share of every group (the draw is shuffled before it is dealt)
    test_digits = np.bincount([len(str(n)) for n in splits["test"].tolist()], minlength=10)
    assert np.all(np.abs(test_digits[3:] - 542 * 600 / 3900) < 30)
    assert sorted(pairs.number_splits({"a": 10}, high=10)["a"].tolist()) == list(range(10))
    with pytest.raises(ValueError, match="sizes must add up to at most high = 10"):
        pairs.number_splits({"a": 6, "b": 5}, high=10)
    with pytest.raises(ValueError, match=r"sizes\['a'\] must be a positive integer"):
        pairs.number_splits({"a": 0})


def test_tokens_round_trip_on_num2words():
    numbers = pairs.number_splits({"a": 400}, high=10**12, seed=5)["a"]
    for source, target in pairs.number_pairs(numbers):
        for text in (source, target):
            tokens = pairs.tokenize(text)
            assert pairs.detokenize(tokens) == text
            assert all(" " not in t and t for t in tokens)
    assert pairs.tokenize("Quatre-vingt-dix-sept mille, un") == [
        "quatre", "-", "vingt", "-", "dix", "-", "sept", "mille", ",", "un"]
    assert pairs.tokenize("I'm home. Ça va?") == ["i", "'", "m", "home", ".", "ça", "va", "?"]
    assert pairs.detokenize(["i", "'", "m", "home", "."]) == "i'm home."


def test_word_vocab_round_trip_and_unknown_words():
    sentences = [["deux", "cent", "un"], ["cent", "un"], ["cent"], ["rare"]]
    vocab = pairs.WordVocab.from_sentences(sentences)
    assert vocab.words == ("cent", "un", "deux", "rare")     # by count, ties alphabetical
    assert vocab.size == 8 and pairs.SPECIALS[pairs.UNK] == "<unk>"
    ids = vocab.encode(["deux", "cent", "un"])
    assert ids.dtype == np.int32 and ids.tolist() == [6, 4, 5]
    assert vocab.decode(ids) == ["deux", "cent", "un"]
    assert vocab.encode(["mille", "cent"]).tolist() == [pairs.UNK, 4]
    # decoding stops at the first end mark; other special ids keep their names
    assert vocab.decode([4, pairs.UNK, pairs.SOS, pairs.EOS, 5]) == ["cent", "<unk>", "<s>"]
    frequent = pairs.WordVocab.from_sentences(sentences, min_count=2)
    assert frequent.words == ("cent", "un") and frequent.encode(["deux"]).tolist() == [3]
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 7\]"):
        vocab.decode([8])
    with pytest.raises(ValueError, match="words must be distinct"):
        pairs.WordVocab(("a", "a"))
    with pytest.raises(ValueError, match="min_count must be a positive integer"):
        pairs.WordVocab.from_sentences(sentences, min_count=0)


def test_encode_pairs_pads_and_frames_the_targets():
    source_vocab = pairs.WordVocab(("two", "hundred"))
    target_vocab = pairs.WordVocab(("deux", "cents"))
    data = pairs.encode_pairs([(["two", "hundred"], ["deux", "cents"]), (["two"], ["deux"])],
                              source_vocab, target_vocab)
    np.testing.assert_array_equal(data.source, [[4, 5], [4, pairs.PAD]])
    np.testing.assert_array_equal(data.source_lengths, [2, 1])
    np.testing.assert_array_equal(data.target_in, [[pairs.SOS, 4, 5], [pairs.SOS, 4, 0]])
    np.testing.assert_array_equal(data.target_out, [[4, 5, pairs.EOS], [4, pairs.EOS, 0]])
    np.testing.assert_array_equal(data.target_lengths, [3, 2])
    assert all(a.dtype == np.int32 for a in data)
    with pytest.raises(ValueError, match="every source must hold a token"):
        pairs.encode_pairs([([], ["deux"])], source_vocab, target_vocab)


def test_scores_against_hand_computed_values():
    references = [["a", "b", "c"], ["d"], ["e", "f"]]
    hypotheses = [["a", "b", "c"], ["d", "d"], ["f"]]
    assert pairs.exact_match(hypotheses, references) == pytest.approx(1 / 3)
    # positions with the end mark: a b c </s> (4 right), d </s> vs d d (1 of 2),
    # e f </s> vs f </s> (0 of 3)
    assert pairs.token_accuracy(hypotheses, references) == pytest.approx(5 / 9)
    # one sentence, 4 of 5 unigrams, 3 of 4 bigrams, 2 of 3 trigrams, 1 of 2 4-grams,
    # equal lengths: BLEU = (4/5 * 3/4 * 2/3 * 1/2) ** (1/4)
    bleu, signature = pairs.corpus_bleu([list("abcde")], [list("abcdf")])
    assert bleu == pytest.approx(100 * 0.2 ** 0.25, rel=1e-9)
    assert "tok:13a" in signature
    # a hypothesis half as long: brevity penalty exp(1 - 4/2) with every n-gram right
    bleu, _ = pairs.corpus_bleu([["w", "x", "y", "z"]], [["w", "x", "y", "z"] * 2])
    assert bleu == pytest.approx(100 * math.exp(1 - 8 / 4), rel=1e-9)
    long = [list("abcdef"), list("ghijk")]
    assert pairs.corpus_bleu(long, long)[0] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="equally many token lists"):
        pairs.exact_match(hypotheses, references[:2])
