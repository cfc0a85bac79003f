"""The motion inputs of a two-stream network (frame differences, Horn-Schunck flow on a
translation of known size) and the video classifiers' fusion, vote and lengths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax as rj
from rnnjax import vision
from rnnjax.models import video_classifier

SIZE = 32


def blobs(shift):
    """A periodic image of four Gaussian blobs, all moved by `shift` (rows, columns)."""
    rows, cols = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    image = np.zeros((SIZE, SIZE))
    for r, c, sigma in [(10, 12, 2.5), (20, 22, 3.0), (8, 25, 2.0), (24, 8, 2.5)]:
        dr = (rows - r - shift[0] + SIZE / 2) % SIZE - SIZE / 2
        dc = (cols - c - shift[1] + SIZE / 2) % SIZE - SIZE / 2
        image += np.exp(-(dr**2 + dc**2) / (2 * sigma**2))
    return image.astype(np.float32)


@pytest.mark.parametrize("shift", [(0.4, -0.3), (-0.25, 0.5)])
def test_horn_schunck_recovers_a_known_translation(shift):
    flow = np.asarray(vision.horn_schunck(blobs((0, 0)), blobs(shift), smoothness=0.1,
                                          iterations=200))
    assert flow.shape == (SIZE, SIZE, 2)
    textured = np.hypot(*np.gradient(blobs((0, 0)))) > 0.1       # where the image shows it
    np.testing.assert_allclose(np.median(flow[textured], axis=0), shift, rtol=0.06)
    # no motion, no flow; a batch of pairs is the pairs one by one
    still = vision.horn_schunck(blobs((0, 0)), blobs((0, 0)), iterations=10)
    np.testing.assert_allclose(still, 0.0, atol=1e-6)
    pair = jnp.stack([blobs((0, 0)), blobs(shift)])
    batched = vision.horn_schunck(pair[None, :1], pair[None, 1:], iterations=7)
    np.testing.assert_allclose(batched[0, 0], vision.horn_schunck(pair[0], pair[1],
                                                                  iterations=7), rtol=1e-6)
    with pytest.raises(ValueError, match="previous and following must be images"):
        vision.horn_schunck(pair[0], pair[1, :5])


def test_motion_stacks_by_hand_and_masked_past_lengths():
    videos = jax.random.normal(jax.random.key(0), (2, 4, 5, 6, 3))
    diffs = vision.frame_differences(videos, lengths=jnp.array([4, 2]))
    assert diffs.shape == (2, 5, 6, 9)
    for t in range(3):
        np.testing.assert_allclose(diffs[0, ..., 3 * t:3 * t + 3], videos[0, t + 1] - videos[0, t],
                                   rtol=1e-6)
    np.testing.assert_allclose(diffs[1, ..., :3], videos[1, 1] - videos[1, 0], rtol=1e-6)
    np.testing.assert_array_equal(diffs[1, ..., 3:], 0.0)           # pairs past length 2
    flows = vision.flow_stack(videos, lengths=jnp.array([4, 2]), iterations=3)
    assert flows.shape == (2, 5, 6, 6)
    np.testing.assert_allclose(flows[0, ..., 2:4], vision.horn_schunck(
        videos[0, 1].mean(-1), videos[0, 2].mean(-1), iterations=3), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(flows[1, ..., 2:], 0.0)
    with pytest.raises(ValueError, match="seq_lengths must lie in"):
        vision.frame_differences(videos, lengths=jnp.array([5, 2]))


def random_params(model):
    rng = np.random.default_rng(0)
    return jax.tree_util.tree_map(lambda s: (0.3 * rng.standard_normal(s.shape)).astype(s.dtype),
                                  jax.eval_shape(model.init, jax.random.key(0)))


@pytest.mark.parametrize("motion", ["differences", "flow"])
def test_two_streams_fuse_their_log_probabilities(motion):
    model = video_classifier("two_stream", (4, 8, 8, 1), 3, channels=(2,), motion=motion,
                             flow_iterations=4)
    params = random_params(model)
    assert set(params) == {"cnn", "motion"}
    videos = jax.random.normal(jax.random.key(1), (5, 4, 8, 8, 1))
    spatial = np.mean([model.cnn.apply(params["cnn"], videos[:, t]) for t in range(4)], axis=0)
    temporal = model.motion_cnn.apply(params["motion"], model.motion_input(videos))
    log_p = lambda x: x - jax.scipy.special.logsumexp(x, axis=-1, keepdims=True)
    fused = model.logits(params, videos)
    assert fused.shape == (5, 3)
    np.testing.assert_allclose(fused, 0.5 * (log_p(spatial) + log_p(temporal)), rtol=1e-4,
                               atol=1e-5)
    labels = jnp.array([0, 1, 2, 0, 1])
    expected = (np.mean(-np.take_along_axis(log_p(spatial), labels[:, None], 1))
                + np.mean(-np.take_along_axis(log_p(temporal), labels[:, None], 1)))
    np.testing.assert_allclose(model.loss(params, videos, labels), expected, rtol=1e-5)


@pytest.mark.parametrize("kind", ["frames", "two_stream", "lrcn"])
def test_frames_past_a_clips_length_change_nothing(kind):
    model = video_classifier(kind, (5, 8, 8, 1), 3, channels=(2,), features=4,
                             cell=rj.GRU(3))
    params = random_params(model)
    videos = jax.random.normal(jax.random.key(2), (2, 5, 8, 8, 1))
    lengths = jnp.array([5, 3])
    changed = videos.at[1, 3:].set(7.0)
    np.testing.assert_allclose(model.logits(params, videos, lengths),
                               model.logits(params, changed, lengths), rtol=1e-6)
    # the clip cut to its length scores the same alone
    np.testing.assert_allclose(model.logits(params, videos, lengths)[1],
                               _cut(model, kind).logits(params, videos[1:, :3])[0], rtol=1e-5,
                               atol=1e-6)


def _cut(model, kind):
    """The same model for clips of 3 frames (the motion CNN's input has fewer channels,
    so two_stream is compared on its spatial stream and the pairs kept)."""
    if kind != "two_stream":
        return model
    return _TwoStreamCut(model)


class _TwoStreamCut:
    """two_stream on a 3-frame clip: the motion input of the full model with the pairs
    past the length zeroed is what a cut clip gives, padded with zero channels."""

    def __init__(self, model):
        self.model = model

    def logits(self, params, videos):
        m = self.model
        spatial = m.cnn.frames(params["cnn"], videos).mean(1)
        diffs = vision.frame_differences(videos)                          # 2 pairs
        padded = jnp.pad(diffs, ((0, 0), (0, 0), (0, 0), (0, m.motion_channels - 2)))
        temporal = m.motion_cnn.apply(params["motion"], padded)
        return 0.5 * (jax.nn.log_softmax(spatial) + jax.nn.log_softmax(temporal))


def test_majority_vote_counts_frames_and_breaks_ties_by_the_mean_score():
    model = video_classifier("frames", (4, 8, 8, 1), 3, channels=(2,))
    params = random_params(model)
    videos = jax.random.normal(jax.random.key(3), (64, 4, 8, 8, 1))
    frame_logits = np.asarray(model.frame_logits(params, videos))       # [B, T, 3]
    labels = frame_logits.argmax(-1)
    expected = []
    for b in range(64):
        counts = np.bincount(labels[b], minlength=3)
        tied = np.flatnonzero(counts == counts.max())
        expected.append(tied[np.argmax(frame_logits[b].mean(0)[tied])])
    np.testing.assert_array_equal(model.vote(params, videos), expected)
    lengths = jnp.full((64,), 2)
    short = [np.bincount(labels[b, :2], minlength=3) for b in range(64)]
    vote = np.asarray(model.vote(params, videos, lengths))
    assert all(short[b][vote[b]] == short[b].max() for b in range(64))


def test_bad_models_are_named():
    with pytest.raises(ValueError, match="kind must be one of"):
        video_classifier("rnn", (4, 8, 8, 1), 3)
    with pytest.raises(ValueError, match="kind 'lrcn' needs a cell"):
        video_classifier("lrcn", (4, 8, 8, 1), 3)
    with pytest.raises(ValueError, match="motion must be one of"):
        video_classifier("two_stream", (4, 8, 8, 1), 3, motion="optical")
    with pytest.raises(ValueError, match="needs at least 2 frames"):
        video_classifier("two_stream", (1, 8, 8, 1), 3)
