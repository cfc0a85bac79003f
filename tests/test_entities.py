"""The CoNLL reader (IOB1 and BIO2 in, BIO2 out), the BIO helpers against seqeval, the
generated corpus (valid tags, seen and unseen parts, determinism), the vocabularies
and the padded arrays."""

import numpy as np
import pytest

from rnnjax.tasks.entities import (
    AMBIGUOUS,
    TAGS,
    TEMPLATES,
    char_vocab,
    encode_sentences,
    entity_spans,
    generated_entities,
    is_bio2,
    read_conll,
    tag_names,
    to_bio2,
)
from rnnjax.tasks.vocab import UNK, WordVocab

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O
. . O O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
I-PER-next NNP I-NP B-PER

-DOCSTART- -X- -X- O


Bank NNP B-NP B-ORG
of IN B-PP I-ORG
Rome NNP B-NP I-ORG
in IN B-PP O
New NNP B-NP B-LOC
York NNP I-NP I-LOC"""


def test_read_conll_skips_docstart_and_converts_iob1_to_bio2(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text(CONLL)
    assert read_conll(path) == [
        (("EU", "rejects", "German", "call", "."), ("B-ORG", "O", "B-MISC", "O", "O")),
        # IOB1: B- only where an entity follows one of the same type
        (("Peter", "Blackburn", "I-PER-next"), ("B-PER", "I-PER", "B-PER")),
        # BIO2 input (no blank line at the end of the file) stays as it is
        (("Bank", "of", "Rome", "in", "New", "York"),
         ("B-ORG", "I-ORG", "I-ORG", "O", "B-LOC", "I-LOC")),
    ]


def test_read_conll_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("EU B-ORG\nrejects\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: a token line must be"):
        read_conll(path)
    path.write_text("EU NNP E-ORG\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: .*got 'EU NNP E-ORG'"):
        read_conll(path)


def random_tags(rng, n):
    return list(rng.choice(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], n))


def test_bio_helpers_agree_with_seqeval():
    """entity_spans reads tags as seqeval does (a stray I- begins an entity); to_bio2
    keeps those entities and gives valid BIO2; is_bio2 spots every invalid I-."""
    get_entities = pytest.importorskip("seqeval.metrics.sequence_labeling").get_entities
    rng = np.random.default_rng(0)
    for _ in range(200):
        tags = random_tags(rng, int(rng.integers(1, 9)))
        assert entity_spans(tags) == get_entities(tags)
        bio2 = to_bio2(tags)
        assert is_bio2(bio2) and entity_spans(bio2) == entity_spans(tags)
        stray = any(t.startswith("I-") and (i == 0 or tags[i - 1][2:] != t[2:])
                    for i, t in enumerate(tags))
        assert is_bio2(tags) == (not stray)
    assert not is_bio2(["B-PER", "X"])


@pytest.fixture(scope="module")
def corpus():
    return generated_entities(3, train=400, validation=60, test=120)


def spans_of(sentences):
    return {(kind, tokens[a:b + 1]) for tokens, tags in sentences
            for kind, a, b in entity_spans(tags)}


def test_generated_corpus_sizes_and_valid_tags(corpus):
    parts = [corpus.train, *corpus.validation.values(), *corpus.test.values()]
    assert [len(p) for p in parts] == [400, 60, 60, 120, 120]
    for tokens, tags in (s for p in parts for s in p):
        assert len(tokens) == len(tags) and is_bio2(tags) and set(tags) <= set(TAGS)
    kinds = {kind for kind, _ in spans_of(corpus.train)}
    assert kinds == {"PER", "LOC", "ORG", "MISC"}
    # multi-token entities, so B- and I- both matter, also among the unseen ones
    assert max(len(t) for _, t in spans_of(corpus.test["unseen"])) >= 3
    assert len(TEMPLATES) >= 25


def test_seen_and_unseen_parts(corpus):
    train = spans_of(corpus.train)
    for name, split in (("validation", corpus.validation), ("test", corpus.test)):
        assert spans_of(split["seen"]) <= train           # every entity, with its type
        assert not set(split["seen"]) & set(corpus.train)  # but new sentences
        unseen = spans_of(split["unseen"])
        assert not {t for _, t in unseen} & {t for _, t in train}, name
    assert not ({t for _, t in spans_of(corpus.validation["unseen"])}
                & {t for _, t in spans_of(corpus.test["unseen"])})


def test_ambiguous_names_take_their_types_from_context(corpus):
    types = {}
    for kind, tokens in spans_of(corpus.train):
        types.setdefault(tokens, set()).add(kind)
    several = {t[0] for t, kinds in types.items() if len(kinds) > 1}
    assert len(several) >= 8 and several <= set(AMBIGUOUS)
    # "May" is a first name (PER) and a month (O)
    tagged = [tag for tokens, tags in corpus.train for w, tag in zip(tokens, tags) if w == "May"]
    assert {"O", "B-PER"} <= set(tagged)


def test_generated_corpus_is_deterministic_by_seed():
    a, b = generated_entities(5, 50, 5, 5), generated_entities(5, 50, 5, 5)
    assert a == b
    assert generated_entities(6, 50, 5, 5).train != a.train
    with pytest.raises(ValueError, match="train must be a positive integer"):
        generated_entities(0, train=0)
    with pytest.raises(ValueError, match=r"held_out must lie in \(0, 1\)"):
        generated_entities(0, held_out=1.0)


def test_vocabularies_and_padded_arrays():
    sentences = [(("Ann", "met", "Bob"), ("B-PER", "O", "B-PER")),
                 (("Ann", "left"), ("B-PER", "O"))]
    words = WordVocab.from_sentences([tokens for tokens, _ in sentences], min_count=2)
    assert words.words == ("Ann",) and words.size == 5
    np.testing.assert_array_equal(words.encode(["Ann", "Zed"]), [4, UNK])
    sentences.append((("Christopher",), ("B-PER",)))
    chars = char_vocab(sentences)
    tags = tag_names(sentences)
    assert tags == ("O", "B-PER", "I-PER")
    arrays = encode_sentences(sentences, words, chars, tags, max_chars=4)
    assert arrays.chars.shape == (3, 3, 4)
    np.testing.assert_array_equal(arrays.lengths, [3, 2, 1])
    np.testing.assert_array_equal(arrays.tags, [[1, 0, 1], [1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(arrays.word_lengths, [[3, 3, 3], [3, 4, 0], [4, 0, 0]])
    assert chars.decode(arrays.chars[2, 0]) == "Chri"
    assert chars.decode(arrays.chars[1, 1]) == "left"
    assert not arrays.chars[1, 2].any() and not arrays.words[1, 2:].any()
    with pytest.raises(ValueError, match=r"tags \['B-LOC'\] that are not in tags"):
        encode_sentences([(("Rome",), ("B-LOC",))], words, chars, tags)
