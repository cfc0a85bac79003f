"""Captioned scenes (rnnjax.tasks.scenes): each caption is read back from the pixels
alone, the held-out objects stay out of the seen split, the vocabulary, determinism
and input checks."""

import jax
import numpy as np
import pytest
from scipy import ndimage

from rnnjax.tasks import scenes as sc
from rnnjax.tasks.vocab import EOS, PAD, UNK

RADIUS = 4
#: pixels of each shape of radius 4, counted by hand: a 9 x 9 square; a triangle of
#: rows 1, 1, 3, 3, 5, 5, 7, 7, 9 wide; a disc of dx^2 + dy^2 <= 20
AREAS = {"square": 81, "triangle": 41,
         "circle": sum(dx * dx + dy * dy <= 20 for dx in range(-4, 5) for dy in range(-4, 5))}


draw = sc.scene_batch   # compiled inside, once for every split


@pytest.fixture(scope="module")
def batches():
    return {split: draw(jax.random.key(i), 200, split) for i, split in enumerate(sc.SPLITS)}


def objects_in(image: np.ndarray) -> list[dict]:
    """The objects of an image found from its pixels alone: each connected blob of one
    colour, its colour name, its shape (from its area), its centre (the middle of its
    bounding box)."""
    found = []
    for colour, rgb in zip(sc.COLOURS, sc.RGB):
        blobs, count = ndimage.label(np.all(image == rgb, axis=-1))
        for index in range(1, count + 1):
            rows, cols = np.nonzero(blobs == index)
            shape = {area: name for name, area in AREAS.items()}[len(rows)]
            found.append({"colour": colour, "shape": shape,
                          "centre": ((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2)})
    return found


def described(a: dict, b: dict) -> str:
    """The caption of a scene with subject a and other object b, read from their centres."""
    d_row, d_col = np.subtract(a["centre"], b["centre"])
    if abs(d_row) > abs(d_col):
        relation = "above" if d_row < 0 else "below"
    else:
        relation = "left of" if d_col < 0 else "right of"
    return f"a {a['colour']} {a['shape']} {relation} a {b['colour']} {b['shape']}"


@pytest.mark.parametrize("split", sc.SPLITS)
def test_captions_describe_the_pixels(batches, split):
    scenes = batches[split]
    images = np.asarray(scenes.images)
    assert images.shape == (200, 32, 32, 3) and images.dtype == np.float32
    texts = sc.reference_texts(scenes)
    for n, image in enumerate(images):
        objects = objects_in(image)
        assert len(objects) == 2                            # two separate shapes
        lit = np.any(image > 0, axis=-1).sum()
        assert lit == sum(AREAS[o["shape"]] for o in objects)   # nothing else is drawn
        expected = {described(objects[0], objects[1]), described(objects[1], objects[0])}
        assert set(texts[n]) == expected
        assert sc.caption_text(scenes.captions[n]) == texts[n][0]
        # the relation is clear: the centres lie far apart along its axis, close across it
        gaps = sorted(np.abs(np.subtract(objects[0]["centre"], objects[1]["centre"])))
        assert gaps[0] <= sc.JITTER and gaps[1] >= 2 * RADIUS + 1 + sc.GAP


def test_every_relation_and_subject_choice_occurs(batches):
    scenes = batches["all"]
    assert set(np.asarray(scenes.relation).tolist()) == {0, 1, 2, 3}
    first_words = {sc.caption_text(c).split()[3] for c in np.asarray(scenes.captions)}
    assert first_words == {"above", "below", "left", "right"}


def test_held_out_objects_only_in_the_unseen_split(batches):
    def objects(scenes):
        ids = np.asarray(scenes.colours) * len(sc.SHAPES) + np.asarray(scenes.shapes)
        return [{sc.OBJECTS[i] for i in row} for row in ids]

    held = set(sc.HELD_OUT)
    seen = objects(batches["seen"])
    assert all(not (pair & held) for pair in seen)
    assert set().union(*seen) == set(sc.OBJECTS) - held       # every other object occurs
    unseen = objects(batches["unseen"])
    assert all(len(pair) == 2 and pair & held for pair in unseen)
    assert set().union(*unseen) == set(sc.OBJECTS)
    # a held-out object is the subject about as often as the other object
    subject_held = [sc.OBJECTS[i] in held for i in
                    np.asarray(batches["unseen"].colours[:, 0]) * len(sc.SHAPES)
                    + np.asarray(batches["unseen"].shapes[:, 0])]
    assert 60 < sum(subject_held) < 140
    assert sc.holds_held_out(batches["unseen"]).all()
    assert not sc.holds_held_out(batches["seen"]).any()


def test_tokens_lengths_and_padding(batches):
    scenes = batches["all"]
    captions, lengths = np.asarray(scenes.captions), np.asarray(scenes.lengths)
    assert captions.shape == (200, sc.CAPTION_LEN) and captions.dtype == np.int32
    for row, length in zip(captions, lengths):
        assert row[length - 1] == EOS
        assert (row[:length - 1] > UNK).all()                  # words, no specials
        assert (row[length:] == PAD).all()
        assert length == len(sc.caption_text(row).split()) + 1
    references = np.asarray(sc.reference_tokens(scenes))
    np.testing.assert_array_equal(references[:, 0], captions)


def test_vocabulary_and_caption_text():
    vocab = sc.VOCAB
    assert vocab.size == 17 and vocab.encode(["a"]).tolist() == [4]   # after 4 specials
    words = "a red circle left of a blue square"
    assert sc.caption_text([*vocab.encode(words.split()), EOS, PAD]) == words
    assert sc.caption_text([*vocab.encode(["a", "red"]), EOS, *vocab.encode(["blue"])]) \
        == "a red"                                            # up to the end of sentence
    assert vocab.encode(["a", "purple", "circle"]).tolist() == [4, UNK, 9]


def test_scenes_are_deterministic_by_key(batches):
    again = draw(jax.random.key(0), 200, "seen")          # the fixture's key for "seen"
    for x, y in zip(batches["seen"], again):
        np.testing.assert_array_equal(x, y)
    other = draw(jax.random.key(9), 200, "seen")
    assert not np.array_equal(other.images, again.images)
    assert not np.array_equal(other.captions, again.captions)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="split must be one of"):
        sc.scene_batch(jax.random.key(0), 2, "test")
    with pytest.raises(ValueError, match=r"size must be at least 4 radius \+ 2 \+ 2 = 20"):
        sc.scene_batch(jax.random.key(0), 2, size=19)
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        sc.scene_batch(jax.random.key(0), 0)
    smallest = jax.eval_shape(lambda: sc.scene_batch(jax.random.key(0), 1, size=20))
    assert smallest.images.shape == (1, 20, 20, 3)
