"""Questions about scenes, for visual question answering (VQA): an image of 2-5
coloured shapes, a templated question about it and its answer, e.g. "how many
squares are there ?" -> "two".

The objects are those of `rnnjax.tasks.scenes` (4 colours x 3 shapes, drawn by its
`shape_masks`), at most one of each in a scene, each in its own cell of a 3 x 3
grid. Five kinds of question, drawn equally often:

| kind | template | answers |
|---|---|---|
| colour | what colour is the <shape> ? | a colour (the only object of that shape) |
| shape | what shape is the <colour> object ? | a shape (the only object of that colour) |
| count | how many <shape>s are there ? | zero, one, two, three |
| exist | is there a <colour> <shape> ? | yes, no (each half the time) |
| position | is the <object> <relation> the <object> ? | yes, no (each half the time) |

A relation is one of above, below, left of, right of and compares grid cells: "the
red circle left of the blue square" holds when the circle's column is left of the
square's; a position question is only asked of two objects in different columns
(rows for above and below), so "no" means the converse holds. Each scene is built
from its question and answer (the answer drawn first, as balanced as the split
allows), so a model that does not look at the image scores no more than the best
guess from the question: 1/2 on yes/no, 1/4 on counts, 1/3 on colours and 1/3 or 1/2
on shapes (some colour-shape pairs are held out).

Held-out split (compositional): "seen" scenes, the training data, never hold a red
square, a green triangle or a blue circle (`scenes.HELD_OUT`), so no question is
about one; "unseen" questions are each about a held-out pair (the pair asked about
for colour, shape and exist; one of the two objects compared for position; one of
the objects counted for count, so counts there are 1-3), and the rest of the scene
may hold any objects.

Questions are a pure function of a PRNG key (jit-able with the sizes static; compiled
already, once per batch, size, radius and object range), so training draws a fresh
batch at every step.

>>> import jax
>>> q = jax.eval_shape(lambda: question_batch(jax.random.key(0), 3))   # shapes only
>>> q.images.shape, q.questions.shape, q.answers.shape
((3, 32, 32, 3), (3, 10), (3,))
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import _checks
from rnnjax.tasks import scenes as sc
from rnnjax.tasks.vocab import PAD, WordVocab

KINDS = ("colour", "shape", "count", "exist", "position")
SPLITS = ("seen", "unseen")
#: one answer vocabulary for every kind: class ids are indices into it
NUMBERS = ("zero", "one", "two", "three")
ANSWERS = ("no", "yes", *sc.COLOURS, *sc.SHAPES, *NUMBERS)
PLURALS = tuple(s + "s" for s in sc.SHAPES)
#: the words of the questions: the scenes' words first (same ids), then the new ones
VOCAB = WordVocab((*sc.VOCAB.words, "what", "colour", "shape", "is", "the", "object", "how",
                   "many", *PLURALS, "are", "there", "?"))
#: the longest question, "is the red circle left of the blue square ?"
QUESTION_LEN = 10
#: objects lie on a GRID x GRID grid of cells, one per cell
GRID = 3
#: the fewest and most objects a scene may hold
OBJECT_RANGE = (2, 5)
#: the largest count asked
MAX_COUNT = len(NUMBERS) - 1

_OBJECT_COLOUR = np.arange(len(sc.OBJECTS)) // len(sc.SHAPES)
_OBJECT_SHAPE = np.arange(len(sc.OBJECTS)) % len(sc.SHAPES)
_HELD = np.isin(np.arange(len(sc.OBJECTS)), sc.HELD_OUT_IDS)


class Questions(NamedTuple):
    """A batch of questions about scenes.

    images float32 [B, size, size, 3] in [0, 1]; questions int32 [B, QUESTION_LEN]:
    the words (`VOCAB` ids), then padding; lengths int32 [B]: words; answers int32
    [B]: indices into ANSWERS; kinds int32 [B]: indices into KINDS. The scene:
    counts int32 [B] objects, then per object slot (max_objects of them) colours,
    shapes int32 [B, max_objects] and centres int32 [B, max_objects, 2] (row,
    column), -1 past the scene's count. Object 0 is the one asked about (colour,
    shape, exist when the answer is yes), objects 0 and 1 the two compared
    (position), the first `answer` objects those counted (count).
    """

    images: jax.Array
    questions: jax.Array
    lengths: jax.Array
    answers: jax.Array
    kinds: jax.Array
    counts: jax.Array
    colours: jax.Array
    shapes: jax.Array
    centres: jax.Array


def question_batch(key, batch: int, split: str = "seen", size: int = 32, radius: int = 4,
                   min_objects: int = OBJECT_RANGE[0],
                   max_objects: int = OBJECT_RANGE[1]) -> Questions:
    """`batch` questions of `split` ("seen" or "unseen", see the module) about scenes
    of `min_objects`-`max_objects` objects (within OBJECT_RANGE) on size x size
    images; the kind uniformly, then the answer, then a scene where it holds."""
    batch = _checks.positive_int("batch", batch)
    size = _checks.positive_int("size", size)
    radius = _checks.positive_int("radius", radius)
    min_objects = _checks.positive_int("min_objects", min_objects)
    max_objects = _checks.positive_int("max_objects", max_objects)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not OBJECT_RANGE[0] <= min_objects <= max_objects <= OBJECT_RANGE[1]:
        raise ValueError(f"min_objects and max_objects must satisfy {OBJECT_RANGE[0]} <= "
                         f"min_objects <= max_objects <= {OBJECT_RANGE[1]}, got "
                         f"{min_objects} and {max_objects}")
    if size // GRID < 2 * radius + 2:
        raise ValueError(f"size must be at least {GRID} x (2 radius + 2) = "
                         f"{GRID * (2 * radius + 2)} ({GRID} cells of objects of radius "
                         f"{radius} a row, a pixel apart), got {size}")
    return _draw(key, batch, SPLITS.index(split), size, radius, min_objects, max_objects)


def _pick(key, allowed, forced=None):
    """Indices [B, M] (of objects, or of grid cells) in a uniformly random order with
    the `allowed` ones [B, M] first (and the `forced` ones before those): the first m
    are m distinct allowed indices drawn uniformly, as long as m are allowed."""
    score = jnp.where(allowed, jax.random.uniform(key, allowed.shape), 2.0)
    if forced is not None:
        score = jnp.where(forced, -1.0, score)
    return jnp.argsort(score, axis=-1).astype(jnp.int32)


def _concat_rows(first, second, count):
    """Per row, the first `count` [B] entries of first [B, M] then second [B, N]: [B, N]."""
    j = jnp.arange(second.shape[1])
    head = jnp.take_along_axis(first, jnp.minimum(j, first.shape[1] - 1)[None].repeat(
        first.shape[0], 0), axis=1)
    tail = jnp.take_along_axis(second, jnp.maximum(j[None] - count[:, None], 0), axis=1)
    return jnp.where(j[None] < count[:, None], head, tail)


def _compact(tokens):
    """Tokens [B, L] with their PAD entries moved to the end (the words keep their
    order) and the number of words per row."""
    order = jnp.argsort(tokens == PAD, axis=1, stable=True)
    return jnp.take_along_axis(tokens, order, axis=1), jnp.sum(tokens != PAD, axis=1)


def _question_tokens(kind, colours, shapes, relation):
    """Token ids [B, QUESTION_LEN] and lengths [B] of each kind's question about
    objects (colours, shapes [B, 2]: the first one asked about; the second the other
    one compared) and the relation [B] (position)."""
    word = lambda w: jnp.full(kind.shape, VOCAB.encode([w])[0], jnp.int32)
    pad = jnp.full(kind.shape, PAD, jnp.int32)
    colour = jnp.asarray(VOCAB.encode(sc.COLOURS))[colours]
    shape = jnp.asarray(VOCAB.encode(sc.SHAPES))[shapes]
    plural = jnp.asarray(VOCAB.encode(PLURALS))[shapes[:, 0]]
    relation_words = jnp.asarray([[*VOCAB.encode(r.split()), PAD][:2]
                                  for r in sc.RELATIONS])[relation]             # [B, 2]
    templates = [
        [word("what"), word("colour"), word("is"), word("the"), shape[:, 0], word("?")],
        [word("what"), word("shape"), word("is"), word("the"), colour[:, 0], word("object"),
         word("?")],
        [word("how"), word("many"), plural, word("are"), word("there"), word("?")],
        [word("is"), word("there"), word("a"), colour[:, 0], shape[:, 0], word("?")],
        [word("is"), word("the"), colour[:, 0], shape[:, 0], relation_words[:, 0],
         relation_words[:, 1], word("the"), colour[:, 1], shape[:, 1], word("?")]]
    rows = jnp.stack([jnp.stack(t + [pad] * (QUESTION_LEN - len(t)), axis=1)
                      for t in templates])                                    # [K, B, L]
    return _compact(rows[kind, jnp.arange(kind.shape[0])])


def _answer(names, index):
    """Answer ids of `index` [B] into `names` (a slice of ANSWERS)."""
    return jnp.asarray([ANSWERS.index(n) for n in names], jnp.int32)[index]


@functools.partial(jax.jit, static_argnums=(1, 3, 4, 5, 6))
def _draw(key, batch: int, split, size: int, radius: int, min_objects: int,
          max_objects: int) -> Questions:
    """`question_batch` after its checks (the split, an index into SPLITS, is traced)."""
    keys = iter(jax.random.split(key, 24))   # one per draw below, in order
    n_max = max_objects
    unseen = split == 1
    kind = jax.random.randint(next(keys), (batch,), 0, len(KINDS))
    count = jax.random.randint(next(keys), (batch,), min_objects, max_objects + 1)
    yes = jax.random.bernoulli(next(keys), 0.5, (batch,))
    held = jnp.asarray(_HELD)
    pool = jnp.broadcast_to(~held | unseen, (batch, len(sc.OBJECTS)))   # the scene's objects
    obj_colour, obj_shape = jnp.asarray(_OBJECT_COLOUR), jnp.asarray(_OBJECT_SHAPE)
    ids = jnp.arange(len(sc.OBJECTS))

    # the object asked about (colour, shape, exist): a held-out one exactly when unseen
    seen_pick = jnp.asarray(sc.SEEN_IDS)[jax.random.randint(next(keys), (batch,), 0,
                                                             len(sc.SEEN_IDS))]
    held_pick = jnp.asarray(sc.HELD_OUT_IDS)[jax.random.randint(next(keys), (batch,), 0,
                                                                 len(sc.HELD_OUT_IDS))]
    target = jnp.where(unseen, held_pick, seen_pick)
    one = jnp.ones((batch,), jnp.int32)
    others = lambda allowed: _pick(next(keys), pool & allowed)
    t_colour, t_shape = obj_colour[target][:, None], obj_shape[target][:, None]
    colour_q = _concat_rows(target[:, None], others(obj_shape[None] != t_shape), one)
    shape_q = _concat_rows(target[:, None], others(obj_colour[None] != t_colour), one)
    absent = others(ids[None] != target[:, None])
    exist_q = jnp.where(yes[:, None], _concat_rows(target[:, None], absent, one), absent)

    # count: k objects of the shape counted (unseen: its held-out colour among them)
    counted_shape = jax.random.randint(next(keys), (batch,), 0, len(sc.SHAPES))
    k = jnp.where(unseen, jax.random.randint(next(keys), (batch,), 1, MAX_COUNT + 1),
                  jax.random.randint(next(keys), (batch,), 0, MAX_COUNT + 1))
    of_shape = obj_shape[None] == counted_shape[:, None]
    counted = _pick(next(keys), pool & of_shape, forced=of_shape & held[None] & unseen)
    count_q = _concat_rows(counted, others(~of_shape), k)

    # position: two different objects (scenes' pairs: unseen, one is held out), the rest
    pair = sc._object_pairs(next(keys), batch, split).astype(jnp.int32)
    in_pair = (ids[None] == pair[:, :1]) | (ids[None] == pair[:, 1:])
    position_q = _concat_rows(pair, others(~in_pair), 2 * one)

    objects = jnp.select([(kind == i)[:, None] for i in range(len(KINDS))],
                         [colour_q, shape_q, count_q, exist_q, position_q])[:, :n_max]
    count = jnp.where(kind == 2, jnp.maximum(count, k), count)

    # places: cells of the grid; for position, the two compared per relation and answer
    relation = jax.random.randint(next(keys), (batch,), 0, len(sc.RELATIONS))
    lines = jnp.sort(jnp.argsort(jax.random.uniform(next(keys), (batch, GRID)))[:, :2], axis=1)
    across = jax.random.randint(next(keys), (batch, 2), 0, GRID)
    subject_first = ((relation == 0) | (relation == 2)) == yes    # above / left of, yes
    along = jnp.where(subject_first[:, None], lines, lines[:, ::-1])            # [B, 2]
    vertical = (relation < 2)[:, None]
    compared = jnp.where(vertical, along * GRID + across, across * GRID + along)
    cells = jnp.arange(GRID * GRID)
    reserved = (kind == 4)[:, None] & ((cells[None] == compared[:, :1])
                                       | (cells[None] == compared[:, 1:]))
    free = _pick(next(keys), ~reserved)
    slots = jnp.where((kind == 4)[:, None], _concat_rows(compared, free, 2 * one),
                      free)[:, :n_max]

    present = jnp.arange(n_max)[None] < count[:, None]
    colours = jnp.where(present, obj_colour[objects], -1)
    shapes = jnp.where(present, obj_shape[objects], -1)
    pitch = size // GRID
    offset = (size - GRID * pitch) // 2 + pitch // 2
    centres = offset + pitch * jnp.stack([slots // GRID, slots % GRID], axis=-1)
    centres = jnp.where(present[..., None], centres, -1)
    masks = sc.shape_masks(jnp.maximum(shapes, 0), centres, size, radius) & present[..., None,
                                                                                      None]
    paint = jnp.asarray(sc.RGB)[jnp.maximum(colours, 0)]
    images = jnp.minimum(jnp.einsum("bnhw,bnc->bhwc", masks.astype(jnp.float32), paint), 1.0)

    asked_colours = jnp.where(kind[:, None] == 4, obj_colour[pair],
                              jnp.broadcast_to(obj_colour[target][:, None], (batch, 2)))
    asked_shapes = jnp.where(kind[:, None] == 4, obj_shape[pair],
                             jnp.broadcast_to(obj_shape[target][:, None], (batch, 2)))
    asked_shapes = jnp.where(kind[:, None] == 2, counted_shape[:, None], asked_shapes)
    questions, lengths = _question_tokens(kind, asked_colours, asked_shapes, relation)
    yes_no = _answer(("no", "yes"), yes.astype(jnp.int32))
    answers = jnp.select([kind == 0, kind == 1, kind == 2],
                         [_answer(sc.COLOURS, obj_colour[target]),
                          _answer(sc.SHAPES, obj_shape[target]), _answer(NUMBERS, k)], yes_no)
    i32 = lambda x: x.astype(jnp.int32)
    return Questions(images, i32(questions), i32(lengths), i32(answers), i32(kind),
                     i32(count), i32(colours), i32(shapes), i32(centres))


def question_text(tokens) -> str:
    """The words of question ids [L] (padding left out), joined by spaces."""
    return " ".join(w for w in VOCAB.decode(np.asarray(tokens)) if w != "<pad>")


def answer_text(answer) -> str:
    """The word of an answer id."""
    return ANSWERS[int(answer)]
