"""Single-object tracking: IoU against counting pixels, NCC against NumPy float64,
the tracking clips against drawing by hand, template matching and the Kalman tracker
on clips with a known answer, the recurrent tracker against its parts run by hand,
and the study at a tiny size."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_usage_error, randomize

import rnnjax as rj
from experiments import object_tracking as study
from rnnjax import object_tracking as ot
from rnnjax.tasks import tracking_clips as tc


# -- boxes -----------------------------------------------------------------------------------
def pixel_iou(a, b, resolution=1):
    """IoU by counting the cells of a grid of 1 / resolution pixels inside each box."""
    grid = (np.arange(40 * resolution) + 0.5) / resolution
    inside = lambda box: ((grid[:, None] >= box[0]) & (grid[:, None] < box[2])
                          & (grid[None, :] >= box[1]) & (grid[None, :] < box[3]))
    ia, ib = inside(a), inside(b)
    union = (ia | ib).sum()
    return (ia & ib).sum() / union if union else 0.0


@pytest.mark.parametrize("resolution", [1, 8])
def test_iou_equals_counting_pixels(resolution):
    rng = np.random.default_rng(resolution)
    corners = rng.integers(0, 12 * resolution, (300, 2, 2)) / resolution
    sizes = rng.integers(0, 10 * resolution, (300, 2, 2)) / resolution   # some empty
    boxes = np.concatenate([corners, corners + sizes], axis=-1)         # [300, 2, 4]
    boxes[:10, 1] = boxes[:10, 0]                                         # identical pairs
    got = np.asarray(ot.iou(jnp.asarray(boxes[:, 0], jnp.float32),
                            jnp.asarray(boxes[:, 1], jnp.float32)))
    expected = [pixel_iou(a, b, resolution) for a, b in boxes]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert (got[:10][sizes[:10, 0].min(-1) > 0] == 1).all()
    assert 0.1 < np.mean(got == 0) < 0.9      # disjoint pairs are among them, not all
    assert np.mean((got > 0) & (got < 1)) > 0.1


def test_success_rate_and_box_checks():
    ious = jnp.asarray([[0.2, 0.5, 0.7], [0.49, 1.0, 0.0]])
    assert float(ot.success_rate(ious)) == pytest.approx(3 / 6)
    np.testing.assert_allclose(ot.success_rate(ious, axis=0), [0.0, 1.0, 0.5])
    assert float(ot.success_rate(ious, threshold=0.1)) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match=r"a must have shape \[..., 4\].*got shape \(2, 3\)"):
        ot.iou(jnp.zeros((2, 3)), jnp.zeros((2, 4)))


# -- normalised cross-correlation ---------------------------------------------------------------
def test_ncc_map_equals_the_correlation_coefficient_of_every_window():
    rng = np.random.default_rng(0)
    image, template = rng.standard_normal((12, 10, 2)), rng.standard_normal((4, 4, 2))
    got = np.asarray(ot.ncc_map(jnp.asarray(image, jnp.float32),
                                jnp.asarray(template, jnp.float32)))
    expected = np.array([[np.corrcoef(image[i:i + 4, j:j + 4].ravel(), template.ravel())[0, 1]
                          for j in range(7)] for i in range(9)])
    np.testing.assert_allclose(got, expected, atol=2e-5)
    # a window equal to 2 * template + 3 scores 1; a constant window 0
    image[2:6, 3:7] = 2 * template + 3
    image[8:12, 0:4] = 0.7
    got = np.asarray(ot.ncc_map(jnp.asarray(image, jnp.float32),
                                jnp.asarray(template, jnp.float32)))
    assert got[2, 3] == pytest.approx(1, abs=1e-5) and got[8, 0] == 0
    found = np.asarray(ot.candidates(jnp.asarray(got), 0.99))
    assert found.sum() == 1 and found[2, 3]


# -- the clips ------------------------------------------------------------------------------------
SIZE, FRAMES, SIDE, BAND = 20, 9, 5, 6


@pytest.fixture(scope="module")
def clean():
    return tc.tracking_clip_batch(jax.random.key(0), 64, FRAMES, SIZE, SIDE, distractors=2,
                                  band=BAND, noise=0.0)


def test_clips_show_the_target_the_hollow_squares_and_the_band(clean):
    videos, corners = np.asarray(clean.videos[..., 0]), np.asarray(clean.corners)
    band, boxes = np.asarray(clean.band), np.asarray(clean.boxes)
    visible = np.asarray(clean.visible)
    assert videos.shape == (64, FRAMES, SIZE, SIZE) and corners.shape == (64, FRAMES, 3, 2)
    assert corners.min() >= 0 and corners.max() <= SIZE - SIDE
    for b in range(64):
        for t in range(FRAMES):
            image = np.zeros((SIZE, SIZE))
            for k, (r, c) in enumerate(corners[b, t]):
                if k:   # outline only
                    image[r:r + SIDE, [c, c + SIDE - 1]] = 1
                    image[[r, r + SIDE - 1], c:c + SIDE] = 1
            r, c = corners[b, t, 0]
            image[r:r + SIDE, c:c + SIDE] = 1
            image[:, band[b]:band[b] + BAND] = 0.5
            np.testing.assert_array_equal(videos[b, t], image)
            np.testing.assert_array_equal(boxes[b, t], [r, c, r + SIDE, c + SIDE])
            outside = np.sum((np.arange(c, c + SIDE) < band[b])
                             | (np.arange(c, c + SIDE) >= band[b] + BAND))
            assert visible[b, t] == (2 * outside >= SIDE)
    assert visible[:, 0].all()                           # frame 0 always shows the target
    assert (~visible).any(axis=1).mean() > 0.7           # most clips hide it for a while


def test_objects_move_smoothly_and_bounce(clean):
    steps = np.diff(np.asarray(clean.corners), axis=1)                # [B, T-1, K, 2]
    assert np.abs(steps).max() <= 4                                    # 2 + kicks + rounding
    across = np.abs(steps[..., 1]).mean()
    assert 1.0 < across < 2.2                                          # speed (1, 2) across
    turns = np.sign(steps[:, 1:]) * np.sign(steps[:, :-1]) < 0
    assert 0 < turns.mean() < 0.2                                      # bounces, seldom


def test_clips_are_deterministic_and_checked(clean):
    again = tc.tracking_clip_batch(jax.random.key(0), 64, FRAMES, SIZE, SIDE, distractors=2,
                                   band=BAND, noise=0.0)
    for x, y in zip(clean, again):
        np.testing.assert_array_equal(x, y)
    for kwargs, message in (({"side": 2}, "side must be at least 3"),
                            ({"band": 30}, "band must be narrower than size - side"),
                            ({"distractors": -1}, "distractors must be an integer >= 0"),
                            ({"speed": (2, 1)}, r"speed must be \(low, high\)"),
                            ({"noise": -1.0}, "noise must be a finite number >= 0"),
                            ({"frames": 2}, "frames must be at least 3")):
        with pytest.raises(ValueError, match=message):
            tc.tracking_clip_batch(jax.random.key(0), 2, **kwargs)


# -- the trackers on a clip with a known answer ---------------------------------------------------
def lone_target(frames=9, size=24, hidden=()):
    """One clip: a 5 x 5 square from corner (3, 2) at (1, 2) pixels per frame, no noise,
    erased in the frames `hidden`. Returns (videos [1, T, S, S, 1], boxes [1, T, 4])."""
    videos = np.zeros((1, frames, size, size, 1), np.float32)
    boxes = np.zeros((1, frames, 4), np.float32)
    for t in range(frames):
        r, c = 3 + t, 2 + 2 * t
        boxes[0, t] = [r, c, r + 5, c + 5]
        if t not in hidden:
            videos[0, t, r:r + 5, c:c + 5] = 1
    return jnp.asarray(videos), jnp.asarray(boxes)


def test_template_matching_and_the_kalman_tracker_find_a_lone_target():
    videos, boxes = lone_target()
    np.testing.assert_array_equal(ot.template_match(videos, boxes[:, 0], 9), boxes)
    found, detected = ot.kalman_track(videos, boxes[:, 0], 9, obs_std=0.01, velocity_std=3.0)
    assert bool(detected.all())
    np.testing.assert_allclose(found, boxes, atol=0.02)


def test_the_kalman_tracker_coasts_through_an_occlusion_and_template_matching_does_not():
    hidden = (5, 6, 7)
    videos, boxes = lone_target(hidden=hidden)
    found, detected = ot.kalman_track(videos, boxes[:, 0], 9, obs_std=0.01, velocity_std=3.0)
    np.testing.assert_array_equal(np.asarray(detected[0]), [t not in hidden for t in range(9)])
    np.testing.assert_allclose(found, boxes, atol=0.05)      # on the line while hidden
    matched = ot.template_match(videos, boxes[:, 0], 9)
    assert float(ot.iou(matched, boxes)[0, 6]) < 0.5


def test_the_kalman_tracker_keeps_to_its_target_beside_a_look_alike():
    """A second square moving the other way passes 6 rows away: the detector proposes
    both, the filter keeps the one its prediction points to."""
    videos, boxes = lone_target()
    other = np.array(videos)
    for t in range(9):
        r, c = 9 + t, 20 - 2 * t
        other[0, t, r:r + 5, c:c + 5] = 1
    found, _ = ot.kalman_track(jnp.asarray(other), boxes[:, 0], 9, obs_std=0.01,
                               velocity_std=3.0)
    assert float(ot.iou(found, boxes).min()) > 0.9


def test_tracker_inputs_are_checked():
    videos, boxes = lone_target()
    with pytest.raises(ValueError, match=r"first_boxes must have shape \(B, 4\) = \(1, 4\)"):
        ot.template_match(videos, boxes[0], 9)
    with pytest.raises(ValueError, match="videos must have rank 5"):
        ot.kalman_track(videos[0], boxes[:, 0], 9)
    with pytest.raises(ValueError, match="template_size must be at most"):
        ot.template_match(videos, boxes[:, 0], 25)
    with pytest.raises(ValueError, match=r"threshold must lie in \[-1, 1\]"):
        ot.kalman_track(videos, boxes[:, 0], 9, threshold=1.5)
    with pytest.raises(ValueError, match="gate must be positive"):
        ot.kalman_track(videos, boxes[:, 0], 9, gate=0.0)


# -- the recurrent tracker ---------------------------------------------------------------
def test_box_tracker_equals_its_parts_run_by_hand():
    model = rj.models.box_tracker("gru", hidden=5, features=6, template_features=3,
                                  channels=(2,), frame_size=12, template_size=5)
    params = randomize(jax.eval_shape(model.init, jax.random.key(0)), 0, 0.3)
    rng = np.random.default_rng(1)
    videos = jnp.asarray(rng.standard_normal((2, 4, 12, 12, 1)), jnp.float32)
    first = jnp.asarray([[2.0, 3, 7, 8], [0, 0, 4, 3]])
    got = model.boxes(params, videos, first)
    # the windows at corners round(centre - 2.5): (2, 3) and (0, -1), zeros past the edge
    template = np.zeros((2, 5, 5, 1), np.float32)
    template[0] = videos[0, 0, 2:7, 3:8]
    template[1, :, 1:] = videos[1, 0, 0:5, 0:4]
    code = model.template_encoder(params["template"], jnp.asarray(template))
    scale = jnp.asarray([12.0, 12, 12, 12])
    carry = model.cell.initial_carry((2,))
    for t in range(4):
        frame_code = model.frame_encoder(params["frames"], videos[:, t])
        carry, h = model.cell(params["cell"], carry,
                              jnp.concatenate([frame_code, code, first / scale], axis=-1))
        expected = (first / scale + rj.Dense(4)(params["head"], h)) * scale
        np.testing.assert_allclose(got[:, t], expected, rtol=1e-4, atol=1e-4)
    boxes = jnp.broadcast_to(first[:, None], (2, 4, 4))
    loss = float(model.loss(params, videos, boxes))
    assert loss == pytest.approx(float(jnp.mean(jnp.abs(got[:, 1:] - boxes[:, 1:]))) / 12,
                                 rel=1e-5)
    with pytest.raises(ValueError, match=r"videos must be \[B, T, 12, 12, 1\]"):
        model.boxes(params, videos[..., :8, :], first)
    with pytest.raises(ValueError, match=r"first_boxes must have shape \(B, 4\) = \(2, 4\)"):
        model.boxes(params, videos, first[:1])


def test_box_tracker_frame_inputs_add_the_ncc_and_the_coordinates():
    model = rj.models.box_tracker("gru", hidden=3, features=4, template_features=3,
                                  channels=(2,), frame_size=10, template_size=5,
                                  extras=("ncc", "coords"))
    rng = np.random.default_rng(2)
    videos = rng.standard_normal((1, 2, 10, 10, 1))
    first = np.array([[1.0, 2, 4, 5]])                 # centre (2.5, 3.5): window at (0, 1)
    got = np.asarray(model.frame_inputs(jnp.asarray(videos, jnp.float32),
                                        jnp.asarray(first, jnp.float32)))
    assert got.shape == (1, 2, 10, 10, 4)
    np.testing.assert_array_equal(got[..., 0], videos[..., 0].astype(np.float32))
    template = videos[0, 0, 0:5, 1:6, 0]
    padded = np.pad(videos[0, :, :, :, 0], ((0, 0), (2, 2), (2, 2)))   # zeros past the edges
    for t in range(2):
        for i in range(10):
            for j in range(10):
                window = padded[t, i:i + 5, j:j + 5]     # centred on pixel (i, j)
                expected = np.corrcoef(window.ravel(), template.ravel())[0, 1]
                assert got[0, t, i, j, 1] == pytest.approx(expected, abs=2e-5)
    np.testing.assert_allclose(got[0, 0, :, 0, 2], np.linspace(-1, 1, 10), atol=1e-6)
    np.testing.assert_allclose(got[0, 1, 0, :, 3], np.linspace(-1, 1, 10), atol=1e-6)
    params = jax.eval_shape(model.init, jax.random.key(0))
    assert params["frames"]["conv_0"]["kernel"].shape == (3, 3, 4, 2)
    with pytest.raises(ValueError, match="extras must be distinct names among"):
        rj.models.box_tracker("gru", hidden=3, features=4, template_features=3, channels=(2,),
                              frame_size=10, template_size=5, extras=("edges",))


# -- the study --------------------------------------------------------------------------------
def test_phases_and_offsets_from_the_occlusion():
    visible = np.array([[1, 1, 0, 0, 1, 1], [1, 1, 1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(study.phases(visible), [[0, 0, 1, 1, 2, 2], [0] * 6])
    ious = np.arange(12, dtype=float).reshape(2, 6) / 10
    values = study.around_occlusion(ious, visible)
    offsets = list(range(study.AROUND[0], study.AROUND[1] + 1))
    assert values[offsets.index(0)] == pytest.approx(0.2)
    assert values[offsets.index(-1)] == pytest.approx(0.1)
    assert np.isnan(values[offsets.index(-2)])       # frame 0 is given, never scored
    assert values[offsets.index(3)] == pytest.approx(0.5)


def test_object_tracking_study_at_a_tiny_size(tmp_path, capsys):
    """One chunk of test clips (each chunk size compiles every tracker again); the
    coordinate channels are left to the frame-inputs test."""
    out = tmp_path / "objtrack"
    study.main(["--cells", "irnn", "--seeds", "2", "--steps", "4", "--eval-every", "2",
                "--hidden", "4", "--features", "4", "--template-features", "3",
                "--channels", "2", "--batch", "3", "--frames", "5", "--size", "16",
                "--band", "5", "--test-size", "4", "--eval-chunk", "4", "--examples", "2",
                "--extras", "ncc",
                "--out", str(out)])
    for name in ("results.json", "report.md", "iou.png", "tracks.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    results = saved["results"]
    assert list(results) == ["rnn/irnn", study.TEMPLATE, study.KALMAN]
    rnn = results["rnn/irnn"]
    assert [step for step, _ in rnn["curve"]] == [0, 2, 4] and not rnn["nonfinite"]
    assert len(rnn["scores"]["per_seed"]) == 2 and len(results[study.KALMAN]["scores"]
                                                       ["per_seed"]) == 1
    for r in results.values():
        for s in r["scores"]["per_seed"]:
            assert 0 <= s["success"] <= 1 and len(s["iou_per_frame"]) == 5
    assert saved["target_met"]["rnn/irnn"] == [
        s["success_through"] > results[study.KALMAN]["scores"]["per_seed"][0]["success_through"]
        for s in rnn["scores"]["per_seed"]]
    report = (out / "report.md").read_text()
    assert "| RNN tracker (IRNN) | 1 |" in report and "| Kalman + NCC detector | - |" in report
    assert_usage_error(capsys, study.main, ["--threshold", "2", "--out", str(tmp_path / "x")],
                       r"--threshold must lie in \[-1, 1\]")
