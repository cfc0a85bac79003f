"""Scenes to caption: two coloured shapes on a black image, and a sentence that says
which is where, e.g. "a red circle above a blue square".

An object is a colour (red, green, blue, yellow) and a shape (circle, square,
triangle): 12 objects. Every scene holds two different objects, side by side or one
over the other, and its caption names the first (the subject), its place relative to
the second (above, below, left of, right of) and the second. The same image is also
described by the converse ("a blue square below a red circle"), and the subject is
drawn at random, so an image has two correct captions: `reference_tokens` gives both.

Compositional held-out split: the objects in `HELD_OUT` (a red square, a green
triangle, a blue circle) never appear in "seen" scenes, the training data; every
colour and every shape still does, in other combinations. "unseen" scenes hold a
held-out object (as subject or as the other object, equally often) and any other
object (now and then a second held-out one); "all" scenes any two objects.

Scenes are a pure function of a PRNG key (jit-able with `batch`, `split`, `size` and
`radius` static; compiled already, once per batch, size and radius), so training can
draw a fresh batch at every step.

>>> import jax
>>> scenes = jax.eval_shape(lambda: scene_batch(jax.random.key(0), 3))   # shapes only
>>> scenes.images.shape, scenes.captions.shape
((3, 32, 32, 3), (3, 9))
>>> reference_texts(scene_batch(jax.random.key(0), 3))[0]    # doctest: +SKIP
['a yellow circle left of a green circle', 'a green circle right of a yellow circle']
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import _checks
from rnnjax.tasks.vocab import EOS, PAD, WordVocab

COLOURS = ("red", "green", "blue", "yellow")
#: the RGB value of each colour, in [0, 1]
RGB = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]],
               np.float32)
SHAPES = ("circle", "square", "triangle")
RELATIONS = ("above", "below", "left of", "right of")
#: the relation of the other object to the subject: above <-> below, left <-> right
CONVERSE = (1, 0, 3, 2)
#: (colour, shape) of every object; object id = colour * len(SHAPES) + shape
OBJECTS = tuple((c, s) for c in COLOURS for s in SHAPES)
#: objects that only "unseen" scenes hold
HELD_OUT = (("red", "square"), ("green", "triangle"), ("blue", "circle"))
SPLITS = ("seen", "unseen", "all")
#: pixels between two objects' outlines, at least
GAP = 2
#: the most the centres of two objects in a row (or column) differ across it
JITTER = 2

#: the words of every caption (rnnjax.tasks.vocab: ids 0-3 are PAD, SOS, EOS, UNK)
VOCAB = WordVocab(("a", *COLOURS, *SHAPES, "above", "below", "left", "right", "of"))
#: the longest caption, in words ("a red circle left of a blue square"), and in tokens
#: with its end of sentence
MAX_WORDS = 8
CAPTION_LEN = MAX_WORDS + 1


class Scenes(NamedTuple):
    """A batch of captioned scenes.

    images float32 [B, size, size, 3] in [0, 1]; captions int32 [B, CAPTION_LEN]:
    the words, end of sentence, then padding; lengths int32 [B]: words + 1.
    colours, shapes int32 [B, 2] and centres int32 [B, 2, 2] (row, column) of the
    subject (index 0) and the other object; relation int32 [B]: where the subject
    is, an index into RELATIONS.
    """

    images: jax.Array
    captions: jax.Array
    lengths: jax.Array
    colours: jax.Array
    shapes: jax.Array
    centres: jax.Array
    relation: jax.Array


def object_ids(names) -> np.ndarray:
    """Object ids of (colour, shape) pairs."""
    return np.asarray([OBJECTS.index(tuple(n)) for n in names], np.int32)


SEEN_IDS = np.setdiff1d(np.arange(len(OBJECTS)), object_ids(HELD_OUT)).astype(np.int32)
HELD_OUT_IDS = object_ids(HELD_OUT)


def _object_pairs(key, batch: int, split):
    """Ids [B, 2] of two different objects (subject, other) of the split (an index
    into SPLITS, possibly traced: every split is drawn, one is kept)."""
    k_first, k_second, k_swap = jax.random.split(key, 3)

    def distinct(pool):
        pool = jnp.asarray(pool)
        first = jax.random.randint(k_first, (batch,), 0, len(pool))
        second = (first + jax.random.randint(k_second, (batch,), 1, len(pool))) % len(pool)
        return jnp.stack([pool[first], pool[second]], axis=1)

    held = jnp.asarray(HELD_OUT_IDS)[jax.random.randint(k_first, (batch,), 0, len(HELD_OUT))]
    other = (held + jax.random.randint(k_second, (batch,), 1, len(OBJECTS))) % len(OBJECTS)
    pair = jnp.stack([held, other], axis=1)
    swap = jax.random.bernoulli(k_swap, 0.5, (batch,))
    unseen = jnp.where(swap[:, None], pair[:, ::-1], pair)
    return jnp.select([split == 0, split == 1],
                      [distinct(SEEN_IDS), unseen], distinct(np.arange(len(OBJECTS))))


def _centres(key, batch: int, relation, size: int, radius: int):
    """Centres [B, 2, 2] (row, column) of subject and other for each relation: along
    the relation's axis at least 2 radius + 1 + GAP apart; across it within JITTER."""
    k_gap, k_start, k_across, k_jitter = jax.random.split(key, 4)
    low, high = radius, size - 1 - radius                    # where a centre may lie
    separation = jax.random.randint(k_gap, (batch,), 2 * radius + 1 + GAP, high - low + 1)
    start = jax.random.randint(k_start, (batch,), low, high - separation + 1)
    across = jax.random.randint(k_across, (batch,), low, high + 1)
    across_other = jnp.clip(across + jax.random.randint(k_jitter, (batch,), -JITTER,
                                                        JITTER + 1), low, high)
    subject_first = (relation == 0) | (relation == 2)         # above, left of
    subject_along = jnp.where(subject_first, start, start + separation)
    other_along = jnp.where(subject_first, start + separation, start)
    vertical = relation < 2
    subject = jnp.where(vertical[:, None], jnp.stack([subject_along, across], -1),
                        jnp.stack([across, subject_along], -1))
    other = jnp.where(vertical[:, None], jnp.stack([other_along, across_other], -1),
                      jnp.stack([across_other, other_along], -1))
    return jnp.stack([subject, other], axis=1).astype(jnp.int32)


def shape_masks(shapes, centres, size: int, radius: int):
    """bool [..., size, size]: the pixels of each shape (ids [...]) at its centre
    [..., 2]. A disc reaching `radius` along the axes (not the corners of the square);
    a square of side 2 radius + 1; a triangle pointing up, one pixel at the top row
    and 2 radius + 1 at the bottom row."""
    dy = jnp.arange(size)[:, None] - centres[..., 0, None, None]
    dx = jnp.arange(size)[None, :] - centres[..., 1, None, None]
    circle = dy ** 2 + dx ** 2 <= radius * (radius + 1)      # rounder than radius ** 2
    square = (jnp.abs(dy) <= radius) & (jnp.abs(dx) <= radius)
    triangle = (jnp.abs(dy) <= radius) & (2 * jnp.abs(dx) <= dy + radius)
    shapes = shapes[..., None, None]
    return jnp.where(shapes == 0, circle, jnp.where(shapes == 1, square, triangle))


def caption_tokens(colours, shapes, relation):
    """Token ids [B, CAPTION_LEN] and lengths [B] (words + 1) of "a <subject> <relation>
    a <other>", end of sentence, padding; colours and shapes [B, 2]."""
    colour_ids = jnp.asarray(VOCAB.encode(COLOURS))[colours]          # [B, 2]
    shape_ids = jnp.asarray(VOCAB.encode(SHAPES))[shapes]
    relation_ids = jnp.asarray([[*VOCAB.encode(r.split()), PAD][:2]
                                for r in RELATIONS])[relation]        # [B, 2]
    two_words = relation >= 2
    column = lambda v: jnp.broadcast_to(jnp.int32(v), relation.shape)
    article = column(VOCAB.encode(["a"])[0])
    head = [article, colour_ids[:, 0], shape_ids[:, 0], relation_ids[:, 0]]
    tail = [article, colour_ids[:, 1], shape_ids[:, 1], column(EOS)]
    one = jnp.stack(head + tail + [column(PAD)], axis=1)
    two = jnp.stack(head + [relation_ids[:, 1]] + tail, axis=1)
    tokens = jnp.where(two_words[:, None], two, one).astype(jnp.int32)
    return tokens, jnp.where(two_words, MAX_WORDS + 1, MAX_WORDS).astype(jnp.int32)


def scene_batch(key, batch: int, split: str = "seen", size: int = 32,
                radius: int = 4) -> Scenes:
    """`batch` scenes of `split` ("seen": no held-out object; "unseen": one held-out
    object; "all": any two different objects) on size x size images: objects drawn
    uniformly from the split, the relation uniformly, then the positions."""
    batch = _checks.positive_int("batch", batch)
    size = _checks.positive_int("size", size)
    radius = _checks.positive_int("radius", radius)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if size < 4 * radius + 2 + GAP:
        raise ValueError(f"size must be at least 4 radius + 2 + {GAP} = {4 * radius + 2 + GAP} "
                         f"(two objects of radius {radius} in a row), got {size}")
    return _draw(key, batch, SPLITS.index(split), size, radius)


@functools.partial(jax.jit, static_argnums=(1, 3, 4))
def _draw(key, batch: int, split, size: int, radius: int) -> Scenes:
    """`scene_batch` after its checks, compiled once per batch, size and radius (the
    split is traced)."""
    k_objects, k_relation, k_place = jax.random.split(key, 3)
    pair = _object_pairs(k_objects, batch, split)
    colours, shapes = pair // len(SHAPES), pair % len(SHAPES)
    relation = jax.random.randint(k_relation, (batch,), 0, len(RELATIONS))
    centres = _centres(k_place, batch, relation, size, radius)
    masks = shape_masks(shapes, centres, size, radius)                    # [B, 2, S, S]
    paint = jnp.asarray(RGB)[colours]                                     # [B, 2, 3]
    images = jnp.einsum("bnhw,bnc->bhwc", masks.astype(jnp.float32), paint)
    captions, lengths = caption_tokens(colours, shapes, relation)
    return Scenes(jnp.minimum(images, 1.0), captions, lengths, colours.astype(jnp.int32),
                  shapes.astype(jnp.int32), centres, relation)


def reference_tokens(scenes: Scenes):
    """int32 [B, 2, CAPTION_LEN]: each scene's caption and its converse (the other
    object as subject, the converse relation), both correct descriptions."""
    converse = jnp.asarray(CONVERSE)[scenes.relation]
    tokens, _ = caption_tokens(scenes.colours[:, ::-1], scenes.shapes[:, ::-1], converse)
    return jnp.stack([scenes.captions, tokens], axis=1)


def reference_texts(scenes: Scenes) -> list[list[str]]:
    """Each scene's two correct captions as text."""
    return [[caption_text(t) for t in pair] for pair in np.asarray(reference_tokens(scenes))]


def caption_text(ids) -> str:
    """The words of caption ids [L] up to the first end of sentence, joined by spaces."""
    return " ".join(VOCAB.decode(np.asarray(ids)))


def holds_held_out(scenes: Scenes) -> np.ndarray:
    """bool [B]: whether a scene holds a held-out object."""
    ids = np.asarray(scenes.colours) * len(SHAPES) + np.asarray(scenes.shapes)
    return np.isin(ids, HELD_OUT_IDS).any(axis=1)
