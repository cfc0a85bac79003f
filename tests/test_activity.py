"""Clips of motion (rnnjax.tasks.clips): the pixels show the recorded objects, the
target moves as its label says, a single frame says nothing of the label; the three
video classifiers; and the activity study at a tiny size."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_usage_error

import rnnjax as rj
from experiments import activity
from rnnjax.tasks import clips as cl

SIDE = 5


#: one shape for every draw below: the clips compile once (the noise is not static)
BATCH, FRAMES, SIZE = 4000, 4, 16


@pytest.fixture(scope="module")
def clean():
    """The first 64 of a batch drawn without noise."""
    return cl.Clips(*(a[:64] for a in cl.clip_batch(jax.random.key(0), BATCH, FRAMES, SIZE,
                                                     noise=0.0)))


def drawn_by_hand(target, distractor, size):
    """bool [size, size]: the square at corner `target` and the cross at corner
    `distractor`, wrapping around the edges."""
    image = np.zeros((size, size), bool)
    box = lambda corner: ((corner[0] + np.arange(SIDE)) % size,
                          (corner[1] + np.arange(SIDE)) % size)
    rows, cols = box(target)
    image[np.ix_(rows, cols)] = True
    rows, cols = box(distractor)
    image[rows[SIDE // 2], cols] = True
    image[rows, cols[SIDE // 2]] = True
    return image


def test_pixels_show_the_square_and_the_cross_where_recorded(clean):
    videos = np.asarray(clean.videos)
    assert videos.shape == (64, FRAMES, 16, 16, 1) and videos.dtype == np.float32
    assert set(np.unique(videos).tolist()) == {0.0, 1.0}          # no noise asked
    target, distractor = np.asarray(clean.target), np.asarray(clean.distractor)
    for b in range(64):
        for t in range(FRAMES):
            np.testing.assert_array_equal(videos[b, t, ..., 0] == 1.0,
                                          drawn_by_hand(target[b, t], distractor[b, t], 16))


def circular(d, size):
    """Displacements on a ring of `size`, in [-size / 2, size / 2)."""
    return (d + size // 2) % size - size // 2


def test_the_square_moves_as_the_label_says_and_the_cross_wanders(clean):
    target, labels = np.asarray(clean.target), np.asarray(clean.labels)
    speeds = np.asarray(clean.speeds)
    steps = circular(np.diff(target, axis=1), 16)                      # [B, T-1, 2]
    expected = cl.VELOCITY[labels] * speeds[:, None]
    np.testing.assert_array_equal(steps, np.broadcast_to(expected[:, None], steps.shape))
    assert set(labels.tolist()) == {0, 1, 2, 3} and set(speeds.tolist()) == {1, 2}
    # "up" is towards row 0: the first row of the square's box decreases
    up = labels == cl.DIRECTIONS.index("up")
    assert (steps[up][..., 0] < 0).all() and (steps[up][..., 1] == 0).all()
    wander = circular(np.diff(np.asarray(clean.distractor), axis=1), 16)
    assert np.abs(wander).max() <= 2 and len(np.unique(wander.reshape(-1, 2), axis=0)) > 15


def test_a_single_frame_says_nothing_of_the_label_and_two_frames_do():
    """A linear classifier of one frame is at chance on held-out clips, and the mean
    frame of every label is the same; a motion detector on two frames finds the label
    (so these checks would see information if there were any)."""
    clips = cl.clip_batch(jax.random.key(1), BATCH, FRAMES, SIZE)
    videos, labels = np.asarray(clips.videos[..., 0], np.float64), np.asarray(clips.labels)
    # a ridge-regression classifier (one-hot targets) of one frame's pixels and a bias
    frame = np.concatenate([videos[:, 1].reshape(BATCH, -1), np.ones((BATCH, 1))], axis=1)
    train, held = slice(0, 3000), slice(3000, BATCH)
    weights = np.linalg.solve(frame[train].T @ frame[train] + np.eye(frame.shape[1]),
                              frame[train].T @ np.eye(4)[labels[train]])
    accuracy = np.mean((frame[held] @ weights).argmax(1) == labels[held])
    assert abs(accuracy - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 1000)
    # the mean row and column profiles of one frame per label agree within 5 standard errors
    for profile in (videos[:, 1].mean(axis=2), videos[:, 1].mean(axis=1)):
        means = np.stack([profile[labels == k].mean(0) for k in range(4)])
        errors = np.stack([profile[labels == k].std(0) / math.sqrt((labels == k).sum())
                           for k in range(4)])
        assert (np.abs(means - means.mean(0)) < 5 * errors).all()
    # two frames: the product of frame 1 with frame 0 shifted along each direction
    shifted = lambda v: [np.roll(videos[:, 0], tuple(s * v), axis=(1, 2)) for s in (1, 2)]
    energy = np.stack([np.max([np.sum(videos[:, 1] * f, axis=(1, 2)) for f in shifted(v)], 0)
                       for v in cl.VELOCITY], axis=1)
    assert np.mean(energy.argmax(1) == labels) > 0.95


def test_clips_are_deterministic_and_checked(clean):
    again = cl.clip_batch(jax.random.key(0), BATCH, FRAMES, SIZE, noise=0.0)
    for x, y in zip(clean, again):
        np.testing.assert_array_equal(x, y[:64])
    other = cl.clip_batch(jax.random.key(4), BATCH, FRAMES, SIZE, noise=0.0)
    assert not np.array_equal(other.videos[:64], clean.videos)
    with pytest.raises(ValueError, match="side must be odd and less than size"):
        cl.clip_batch(jax.random.key(0), 2, side=4)
    with pytest.raises(ValueError, match="speeds must be a non-empty sequence"):
        cl.clip_batch(jax.random.key(0), 2, speeds=())
    with pytest.raises(ValueError, match="wander must be an integer >= 0"):
        cl.clip_batch(jax.random.key(0), 2, wander=-1)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        cl.clip_batch(jax.random.key(0), 2, noise=-0.1)


def random_params(init):
    """Params of `init`'s structure, drawn by NumPy (the test is about the computation)."""
    rng = np.random.default_rng(0)
    return jax.tree_util.tree_map(lambda s: (0.3 * rng.standard_normal(s.shape)).astype(s.dtype),
                                  jax.eval_shape(init, jax.random.key(0)))


@pytest.mark.parametrize("kind", ["lrcn", "frames"])
def test_per_frame_models_equal_a_loop_over_frames(kind):
    """The LRCN is the frame CNN on each frame, then the LSTM step by step, then the
    head; frame by frame is the mean of the per-frame scores."""
    args = type("Args", (), dict(features=6, channels=[3], hidden=5, frames=4, size=8,
                                 flow_iterations=5))()
    model = activity.build(kind, "lstm", args)
    params = random_params(model.init)
    if kind == "frames":   # by hand: conv 3*3*1*3 + 3; 4 x 4 x 3 pooled to 4 scores
        assert sum(p.size for p in jax.tree_util.tree_leaves(params)) == 30 + (48 + 1) * 4
    videos = np.random.default_rng(1).standard_normal((2, 4, 8, 8, 1)).astype(np.float32)
    codes = [model.cnn.apply(params["cnn"], jnp.asarray(videos[:, t])) for t in range(4)]
    if kind == "frames":
        expected = sum(codes) / 4
    else:
        cell, carry = model.cell, model.cell.initial_carry((2,))
        for code in codes:
            carry, h = cell(params["cell"], carry, code)
        expected = rj.Dense(4)(params["head"], h)
    np.testing.assert_allclose(model.logits(params, videos), expected, rtol=1e-4, atol=1e-5)


def test_steps_to_a_level():
    curve = [(0, [0.2, 0.3]), (50, [0.96, 0.5]), (100, [0.9, 0.95])]
    assert activity.steps_to(curve, 0.95) == [50, 100]
    assert activity.steps_to(curve, 0.99) == [None, None]


def test_activity_study_at_a_tiny_size(tmp_path, capsys):
    """The LRCN, the 3D CNN and the two-stream network on a fixed set of 8 clips (frame
    by frame, whose numbers are checked above, would only add its compile time; an
    IRNN, whose identity init compiles in a fraction of the LSTM's orthogonal one)."""
    out = tmp_path / "act"
    activity.main(["--models", "lrcn,conv3d,two_stream", "--cells", "irnn", "--seeds", "2",
                   "--steps", "4", "--eval-every", "2", "--hidden", "4", "--features", "4",
                   "--channels", "2", "--batch", "4", "--frames", "3", "--size", "8",
                   "--test-size", "20", "--train-clips", "8", "--timing-batch", "5",
                   "--timing-repeats", "2", "--out", str(out)])
    for name in ("results.json", "report.md", "accuracy.png", "data.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    results = saved["results"]
    assert list(results) == ["lrcn/irnn/8 clips", "conv3d/8 clips", "two_stream/8 clips"]
    # parameter counts by hand: frame CNN 3*3*1*2 + 2 = 20, pooled 4 x 4 x 2 = 32 features
    # to 4; IRNN 4 x (4 + 4 + 1); head 5 x 4
    assert results["lrcn/irnn/8 clips"]["params"] == 20 + (32 + 1) * 4 + 4 * (4 + 4 + 1) + 5 * 4
    # 3D CNN: 27*1*2 + 2 = 56, pooled 3 x 4 x 4 x 2 = 96 features to 4 classes
    assert results["conv3d/8 clips"]["params"] == 56 + (96 + 1) * 4
    # two streams: the frame CNN to 4 classes (20 + 33 * 4), and one on 2 difference
    # channels: 3*3*2*2 + 2 = 38, then 33 * 4
    assert results["two_stream/8 clips"]["params"] == 2 * (33 * 4) + 20 + 38
    for r in results.values():
        assert r["train_clips"] == 8
        acc = np.asarray(r["final"]["test_accuracy"])
        assert acc.shape == (2,) and np.allclose(acc * 20, np.round(acc * 20))
        assert np.all(np.isfinite(r["final"]["test_loss"])) and not r["nonfinite"]
        assert [step for step, _ in r["curve"]] == [0, 2, 4]
        assert r["curve"][-1][1] == r["final"]["test_accuracy"]
        assert r["steps_to_learned"] == activity.steps_to(r["curve"], activity.LEARNED)
        assert 0 < r["seconds_per_clip"] < 1 and r["timing_batch"] == 5
    streams = results["two_stream/8 clips"]["final"]
    assert set(streams) >= {"test_spatial_accuracy", "test_temporal_accuracy"}
    report = (out / "report.md").read_text()
    assert "| LRCN (IRNN) |" in report and "| 3D CNN |" in report and "rough" in report
    assert "| two-stream (differences): temporal alone |" in report and "## 8 clips" in report
    assert_usage_error(capsys, activity.main, ["--models", "lrcn,rnn", "--out",
                                               str(tmp_path / "x")],
                       "argument --models: must be among")


def test_runs_per_training_set_size_and_fixed_sets_read_in_epochs():
    args = type("Args", (), dict(models=["lrcn", "frames"], cells=["lstm", "gru"],
                                 train_clips=[250, 0], frames=3, size=8, noise=0.1,
                                 batch=4))()
    assert activity.units(args) == [
        ("lrcn/lstm/250 clips", "lrcn", "lstm", 250), ("lrcn/gru/250 clips", "lrcn", "gru", 250),
        ("frames/250 clips", "frames", None, 250), ("lrcn/lstm/fresh clips", "lrcn", "lstm", 0),
        ("lrcn/gru/fresh clips", "lrcn", "gru", 0), ("frames/fresh clips", "frames", None, 0)]
    args.train_clips = [0]                     # the fresh clips alone keep the plain keys
    assert [key for key, *_ in activity.units(args)][-1] == "frames"
    args.train_clips = [8]
    batch_fn = activity.training_data(8, args)
    seen = np.concatenate([np.asarray(batch_fn(step)[0]).reshape(4, -1) for step in range(2)])
    fixed, _ = activity.clip_data(jax.random.key(activity.TRAIN_SET_KEY), 8, args)
    # one epoch is the 8 clips of the fixed set, each once
    rows = lambda a: sorted(row.tobytes() for row in np.asarray(a).reshape(8, -1))
    assert rows(seen) == rows(fixed)
