"""Questions about scenes (rnnjax.tasks.questions): each answer recomputed in plain
Python from the question's words and the scene's object list, the objects read back
from the pixels, the held-out pairs kept out of training, the answers balanced so
that the question alone tells little, shapes, lengths, determinism and checks."""

import collections
import re

import jax
import numpy as np
import pytest
from test_scenes import objects_in

from rnnjax.tasks import questions as qs
from rnnjax.tasks import scenes as sc
from rnnjax.tasks.vocab import PAD

BATCH = 600


@pytest.fixture(scope="module")
def batches():
    return {split: qs.question_batch(jax.random.key(i), BATCH, split)
            for i, split in enumerate(qs.SPLITS)}


def scene_objects(q, n):
    """The n-th scene's objects as (colour name, shape name, row, column)."""
    return [(sc.COLOURS[q.colours[n, j]], sc.SHAPES[q.shapes[n, j]], *q.centres[n, j])
            for j in range(q.counts[n])]


def parse(text: str):
    """(kind, the (colour, shape) pairs the question names, its relation) from its words
    alone; None for a colour or shape it leaves open."""
    patterns = [("colour", r"what colour is the (\w+) \?", lambda m: [(None, m[1])]),
                ("shape", r"what shape is the (\w+) object \?", lambda m: [(m[1], None)]),
                ("count", r"how many (\w+)s are there \?", lambda m: [(None, m[1])]),
                ("exist", r"is there a (\w+) (\w+) \?", lambda m: [(m[1], m[2])]),
                ("position", r"is the (\w+) (\w+) (above|below|left of|right of) "
                             r"the (\w+) (\w+) \?", lambda m: [(m[1], m[2]), (m[4], m[5])])]
    for kind, pattern, named in patterns:
        match = re.fullmatch(pattern, text)
        if match:
            return kind, named(match), match[3] if kind == "position" else None
    raise AssertionError(f"no template fits {text!r}")


def answer_of(kind, named, relation, objects):
    """The answer computed from the object list (and checks that the question is
    well posed: the object it refers to is the only one that fits)."""
    fits = lambda o, c, s: (c is None or o[0] == c) and (s is None or o[1] == s)
    if kind in ("colour", "shape"):
        (c, s), = named
        (found,) = [o for o in objects if fits(o, c, s)]      # exactly one fits
        return found[0] if kind == "colour" else found[1]
    if kind == "count":
        return qs.NUMBERS[sum(fits(o, None, named[0][1]) for o in objects)]
    if kind == "exist":
        return "yes" if any(fits(o, *named[0]) for o in objects) else "no"
    (a,), (b,) = ([o for o in objects if fits(o, *pair)] for pair in named)
    axis = 0 if relation in ("above", "below") else 1
    assert a[2 + axis] != b[2 + axis]                          # never on one line
    first = a[2 + axis] < b[2 + axis]
    return "yes" if first == (relation in ("above", "left of")) else "no"


@pytest.mark.parametrize("split", qs.SPLITS)
def test_answers_recomputed_from_the_object_list(batches, split):
    q = jax.tree_util.tree_map(np.asarray, batches[split])
    kinds = collections.Counter()
    for n in range(BATCH):
        text = qs.question_text(q.questions[n])
        kind, named, relation = parse(text)
        assert qs.KINDS[q.kinds[n]] == kind
        objects = scene_objects(q, n)
        assert len({o[:2] for o in objects}) == len(objects)      # no object twice
        assert len({o[2:] for o in objects}) == len(objects)      # one per grid cell
        assert qs.answer_text(q.answers[n]) == answer_of(kind, named, relation, objects)
        kinds[kind] += 1
    assert set(kinds) == set(qs.KINDS) and min(kinds.values()) > BATCH / 5 - 50
    assert set(q.counts.tolist()) == {2, 3, 4, 5}


@pytest.mark.parametrize("split", qs.SPLITS)
def test_pixels_show_the_objects_listed(batches, split):
    q = jax.tree_util.tree_map(np.asarray, batches[split])
    for n in range(60):
        found = {(o["colour"], o["shape"], *o["centre"]) for o in objects_in(q.images[n])}
        assert found == set(scene_objects(q, n))
    assert (q.colours[np.arange(q.colours.shape[1]) >= q.counts[:, None]] == -1).all()


def pairs_asked(kind, named, objects):
    """The (colour, shape) pairs a question is about: the one it names (colour, shape:
    the only object that fits), the two compared, the objects counted."""
    if kind in ("colour", "shape"):
        c, s = named[0]
        return [o[:2] for o in objects if (c is None or o[0] == c) and (s is None or o[1] == s)]
    if kind == "count":
        return [o[:2] for o in objects if o[1] == named[0][1]]
    return list(named)


def test_held_out_pairs_never_in_training_and_in_every_unseen_question(batches):
    held = set(sc.HELD_OUT)
    for split, q in batches.items():
        q = jax.tree_util.tree_map(np.asarray, q)
        for n in range(BATCH):
            kind, named, _ = parse(qs.question_text(q.questions[n]))
            objects = scene_objects(q, n)
            asked = set(pairs_asked(kind, named, objects))
            if split == "seen":
                assert not ({o[:2] for o in objects} | asked) & held
            else:
                assert asked & held, (kind, named, objects)
    unseen = batches["unseen"]
    counts = np.asarray(unseen.answers)[np.asarray(unseen.kinds) == qs.KINDS.index("count")]
    assert set(counts.tolist()) == {qs.ANSWERS.index(w) for w in ("one", "two", "three")}


def test_answers_balanced_so_the_question_alone_tells_little(batches):
    """The best guess from the question's words alone (the most frequent answer of
    each question text: an upper bound of a blind model) is near the analytic
    figures: 1/2 for yes/no, 1/4 for counts, 1/3 for colours, 1/2 or 1/3 for shapes
    (yellow has three seen shapes, the others two). Position questions have too many
    texts (288) for that count: there yes is half of the answers for every relation
    and every object named first."""
    answers = collections.defaultdict(collections.Counter)
    for key in range(10, 15):   # 3000 questions, at the fixture's (compiled) batch size
        q = jax.tree_util.tree_map(np.asarray, qs.question_batch(jax.random.key(key), BATCH))
        for tokens, answer in zip(q.questions, q.answers):
            answers[qs.question_text(tokens)][qs.answer_text(answer)] += 1
    best, total = collections.Counter(), collections.Counter()
    yes = collections.defaultdict(list)
    for text, counter in answers.items():
        kind, named, relation = parse(text)
        best[kind] += max(counter.values())
        total[kind] += sum(counter.values())
        if kind == "position":
            for group in (relation, named[0]):
                yes[group] += [1] * counter["yes"] + [0] * counter["no"]
    prior = {k: best[k] / total[k] for k in qs.KINDS}
    expected = {"colour": 1 / 3, "shape": (3 * 1 / 2 + 1 / 3) / 4, "count": 1 / 4,
                "exist": 1 / 2}
    for kind, level in expected.items():   # 4 standard errors, plus the bias of a max
        assert abs(prior[kind] - level) < 4 * np.sqrt(0.25 / total[kind]) + 0.03, prior
    assert len(yes) == 4 + len(sc.SEEN_IDS)
    for group, values in yes.items():
        assert abs(np.mean(values) - 0.5) < 4 * np.sqrt(0.25 / len(values)), group


def test_tokens_lengths_and_padding(batches):
    q = batches["seen"]
    tokens, lengths = np.asarray(q.questions), np.asarray(q.lengths)
    assert tokens.shape == (BATCH, qs.QUESTION_LEN) and tokens.dtype == np.int32
    assert q.images.shape == (BATCH, 32, 32, 3) and q.answers.shape == (BATCH,)
    for row, length in zip(tokens, lengths):
        assert (row[:length] != PAD).all() and (row[length:] == PAD).all()
        assert length == len(qs.question_text(row).split())
    assert lengths.max() == qs.QUESTION_LEN and set(lengths.tolist()) == {6, 7, 9, 10}
    # the scenes' words keep their ids
    assert qs.VOCAB.encode(list(sc.VOCAB.words)).tolist() == sc.VOCAB.encode(
        list(sc.VOCAB.words)).tolist()
    assert len(qs.ANSWERS) == len(set(qs.ANSWERS)) == 13


def test_deterministic_by_key_and_checked(batches):
    again = qs.question_batch(jax.random.key(0), BATCH, "seen")
    for x, y in zip(batches["seen"], again):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(qs.question_batch(jax.random.key(3), BATCH).questions,
                              again.questions)
    with pytest.raises(ValueError, match="split must be one of"):
        qs.question_batch(jax.random.key(0), 2, "all")
    with pytest.raises(ValueError, match="min_objects and max_objects must satisfy"):
        qs.question_batch(jax.random.key(0), 2, max_objects=6)
    with pytest.raises(ValueError, match=r"size must be at least 3 x \(2 radius \+ 2\) = 30"):
        qs.question_batch(jax.random.key(0), 2, size=29)
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        qs.question_batch(jax.random.key(0), 0)
