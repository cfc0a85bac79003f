"""Bouncing shapes (rnnjax.tasks.bouncing) against a hand simulation, the frame
predictors' teacher forcing and rollout against stepping by hand, the copy baseline,
and the frame-prediction study at a tiny size."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_usage_error

import rnnjax as rj
from experiments import frame_prediction
from rnnjax.models import FramePredictor, copy_last
from rnnjax.tasks import bouncing
from rnnjax.tasks.scenes import shape_masks

SIZE, RADIUS, FRAMES = 12, 2, 9


def simulate(start, velocity, steps, low, high):
    """Positions of a point moving by `velocity` per step and reversing its velocity
    at low and high, one step at a time (brute force: no closed form)."""
    p, v, out = int(start), int(velocity), []
    for _ in range(steps):
        out.append(p)
        for _ in range(abs(v)):          # one pixel at a time, turning at the walls
            step = 1 if v > 0 else -1
            if not low <= p + step <= high:
                v = -v
                step = -step
            p += step
    return out


def test_bouncing_paths_and_pixels_match_a_step_by_step_simulation():
    clips = bouncing.bouncing_batch(jax.random.key(3), 6, FRAMES, SIZE, objects=2,
                                    radius=RADIUS, speeds=(1, 2, 3))
    low, high = RADIUS, SIZE - 1 - RADIUS
    centres, velocity = np.asarray(clips.centres), np.asarray(clips.velocity)
    for b in range(6):
        for n in range(2):
            for axis in range(2):
                path = simulate(centres[b, 0, n, axis], velocity[b, n, axis], FRAMES, low,
                                high)
                np.testing.assert_array_equal(centres[b, :, n, axis], path)
    assert (np.abs(velocity) >= 1).all() and (np.abs(velocity) <= 3).all()
    videos = np.asarray(clips.videos)
    assert videos.shape == (6, FRAMES, SIZE, SIZE, 1) and set(np.unique(videos)) <= {0.0, 1.0}
    masks = np.asarray(shape_masks(clips.shapes[:, None, :], clips.centres, SIZE, RADIUS))
    np.testing.assert_array_equal(videos[..., 0], masks.any(axis=2))
    pixels = np.argwhere(videos[0, 0, :, :, 0])   # each shape lies within its box
    assert (pixels.min(axis=0) >= 0).all() and (pixels.max(axis=0) < SIZE).all()


def test_bouncing_rejects_bad_sizes():
    with pytest.raises(ValueError, match="size must be at least"):
        bouncing.bouncing_batch(jax.random.key(0), 2, size=6, radius=2)
    with pytest.raises(ValueError, match="speeds"):
        bouncing.bouncing_batch(jax.random.key(0), 2, speeds=())


@pytest.fixture(scope="module")
def videos():
    return bouncing.bouncing_batch(jax.random.key(1), 2, 6, SIZE, radius=RADIUS).videos


@pytest.mark.parametrize("kind", ["conv", "latent"])
def test_teacher_forcing_and_rollout_match_stepping_by_hand(kind, videos):
    """Teacher forcing: frame t+1's logits from the true frames up to t; the rollout
    reads 3 frames, then its own sigmoid outputs, and frame 3's prediction equals the
    teacher-forced one (the same frames read)."""
    model = (FramePredictor.conv("convgru", 3, (SIZE, SIZE, 1)) if kind == "conv" else
             FramePredictor.latent("gru", 8, (SIZE, SIZE, 1), features=6, channels=(4,)))
    params = model.init(jax.random.key(2))
    logits = model.teacher_forced(params, videos)
    assert logits.shape == (2, 5, SIZE, SIZE, 1)
    frames = model.rollout(params, videos, 3, 3)
    assert frames.shape == (2, 3, SIZE, SIZE, 1)
    np.testing.assert_allclose(frames[:, 0], jax.nn.sigmoid(logits[:, 2]), atol=1e-5)
    # by hand: observed frames, then the model's own frames fed back
    inputs = videos[:, :3] if kind == "conv" else model.encoder.frames(params["encoder"],
                                                                       videos[:, :3])
    carry = model.cell.initial_carry(2)
    for t in range(3):
        carry, y = model.cell(params["cell"], carry, inputs[:, t])
    for h in range(1, 3):
        frame = frames[:, h - 1]
        x = frame if kind == "conv" else model.encoder(params["encoder"], frame)
        carry, y = model.cell(params["cell"], carry, x)
        want = jax.nn.sigmoid(model.head(params["head"], y)).reshape(2, SIZE, SIZE, 1)
        np.testing.assert_allclose(frames[:, h], want, atol=1e-5)


def test_copy_last_and_model_errors(videos):
    copies = copy_last(videos, 4, 2)
    np.testing.assert_array_equal(copies, jnp.stack([videos[:, 3]] * 2, axis=1))
    model = FramePredictor.conv("convlstm", 2, (SIZE, SIZE, 1))
    params = model.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"videos must have frames of shape"):
        model.teacher_forced(params, videos[:, :, :8])
    with pytest.raises(ValueError, match="observed must be at most"):
        model.rollout(params, videos, 7, 2)
    with pytest.raises(ValueError, match="frame_shape"):
        FramePredictor.conv("convlstm", 2, (SIZE, SIZE))
    stacked = FramePredictor.conv("convlstm", 2, (SIZE, SIZE, 1), layers=2)
    assert isinstance(stacked.cell, rj.Stacked)


def test_horizon_errors_by_hand():
    truth = jnp.asarray([[[[[1.0]], [[0.0]]]]]).reshape(1, 1, 1, 2, 1)
    predicted = jnp.asarray([0.75, 0.25]).reshape(1, 1, 1, 2, 1)
    errors = frame_prediction.horizon_errors(predicted, truth)
    np.testing.assert_allclose(errors["mse"], [0.0625])
    np.testing.assert_allclose(errors["bce"], [-np.log(0.75)], rtol=1e-6)
    np.testing.assert_allclose(errors["pixel_error"], [0.0])


def test_study_tiny(tmp_path, capsys):
    out = tmp_path / "fp"
    argv = ["--seeds", "2", "--steps", "4", "--eval-every", "2", "--checkpoint-every", "4",
            "--frames", "5", "--observed", "3", "--size", "10", "--objects", "1",
            "--conv-hidden", "2", "--kernel-size", "3", "--batch", "2", "--test-size", "4",
            "--timing-batch", "2", "--timing-repeats", "1", "--models", "conv,copy_last",
            "--out", str(out)]
    results = frame_prediction.main(argv)   # the latent model: tested above, not here
    assert set(results) == {"conv/convlstm", "copy_last"}
    for r in results.values():
        assert np.asarray(r["horizon"]["mse"]).shape[1] == 2
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["observed"] == 3 and saved["horizon"] == 2
    assert set(saved["beats_copy"]) == {"conv/convlstm"}
    rho = np.mean(np.asarray(bouncing.bouncing_batch(
        jax.random.key(frame_prediction.TEST_KEY), 4, 5, 10, objects=1,
        radius=frame_prediction.DEFAULTS["radius"]).videos[:, :3]))
    np.testing.assert_allclose(saved["constant_frame_mse"], rho * (1 - rho), rtol=1e-6)
    report = (out / "report.md").read_text()
    assert "copy last frame" in report and "| ConvLSTM | 1 |" in report
    assert (out / "horizon.png").stat().st_size > 0 and (out / "frames.png").stat().st_size > 0
    # the copy's errors are those of the last observed frame, computed here by hand
    test = bouncing.bouncing_batch(jax.random.key(frame_prediction.TEST_KEY), 4, 5, 10,
                                   objects=1, radius=frame_prediction.DEFAULTS["radius"]).videos
    mse = np.mean((np.asarray(test[:, 2:3]) - np.asarray(test[:, 3:])) ** 2, axis=(0, 2, 3, 4))
    np.testing.assert_allclose(results["copy_last"]["horizon"]["mse"][0], mse, atol=1e-7)
    assert_usage_error(capsys, frame_prediction.main, [*argv, "--observed", "5"],
                       "--observed must be less than --frames")
    assert_usage_error(capsys, frame_prediction.main, [*argv, "--conv-cells", "lstm"],
                       "must be among")


def test_every_default_has_a_flag():
    common = frame_prediction.common
    for key, value in frame_prediction.DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        args = common.parse_args(frame_prediction.NAME, "", frame_prediction.DEFAULTS,
                                 frame_prediction.QUICK, ["--quick", flag, text],
                                 frame_prediction.add_arguments)
        assert getattr(args, key) == value, key
