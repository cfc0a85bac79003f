"""The CNN encoders of rnnjax.vision: shapes, per-frame use, parameter counts, input
checks, and the same numbers as Flax's own layers (a 3D convolution and
reduce-window max pooling)."""

import itertools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import vision

RNG = np.random.default_rng(0)


def random_params(encoder, shape):
    """Params of `init`'s structure and shapes, drawn by NumPy (these tests are about
    the computation; drawing with jax.random compiles a sampler per shape)."""
    shapes = jax.eval_shape(lambda: encoder.init(jax.random.key(0), shape))
    return jax.tree_util.tree_map(
        lambda s: (0.5 * RNG.standard_normal(s.shape)).astype(np.float32), shapes)


def normal(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def reference_image_encoder(params, images, window):
    """conv -> relu -> flax.linen.max_pool per layer, flatten, dense: Flax's own layers
    with the encoder's params."""
    x = images
    layers = sorted(k for k in params if k.startswith("conv_"))
    for name in layers:
        p = params[name]
        conv = nn.Conv(p["kernel"].shape[-1], p["kernel"].shape[:2], padding="SAME")
        x = conv.apply({"params": p}, x)
        x = nn.max_pool(nn.relu(x), window, strides=window, padding="VALID")
    x = x.reshape(x.shape[0], -1)
    return x @ params["project"]["kernel"] + params["project"]["bias"]


def reference_video_encoder(encoder, params, videos):
    """flax.linen.Conv with a 3D kernel and flax.linen.max_pool over 3D windows."""
    x = videos
    for i in range(len(encoder.channels)):
        p = params[f"conv_{i}"]
        kernel = encoder.kernel_3d(p["kernel"])
        conv = nn.Conv(kernel.shape[-1], encoder.kernel_size, padding="SAME")
        x = conv.apply({"params": {"kernel": kernel, "bias": p["bias"]}}, x)
        x = nn.max_pool(nn.relu(x), encoder.pool, strides=encoder.pool, padding="VALID")
    x = x.reshape(x.shape[0], -1)
    return x @ params["project"]["kernel"] + params["project"]["bias"]


def test_image_encoder_shapes_and_flax_reference():
    # 15 x 13 images: the poolings drop a trailing row or column (floor)
    encoder = vision.ImageEncoder(features=6, channels=(3, 5), kernel_size=3, pool=2)
    params = random_params(encoder, (15, 13, 2))
    images = normal(4, 15, 13, 2)
    out = encoder.apply(params, images)
    assert out.shape == (4, 6) and out.dtype == jnp.float32
    assert params["project"]["kernel"].shape == ((15 // 4) * (13 // 4) * 5, 6)
    np.testing.assert_allclose(out, reference_image_encoder(params, images, (2, 2)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(encoder.apply)(params, images), out, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(encoder(params, images), out)


def test_video_encoder_equals_a_flax_3d_convolution():
    # an even time kernel (padded like "SAME": one more frame after than before), and
    # pooling over time too
    encoder = vision.VideoEncoder(features=3, channels=(4, 2), kernel_size=(2, 3, 1),
                                  pool=(2, 2, 1))
    params = random_params(encoder, (5, 8, 9, 2))
    videos = normal(2, 5, 8, 9, 2)
    out = encoder.apply(params, videos)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, reference_video_encoder(encoder, params, videos),
                               rtol=1e-5, atol=1e-5)


def test_max_pool_equals_reduce_window():
    x = normal(2, 7, 9, 5, 3)
    for window in [(2, 2, 2), (1, 3, 2), (7, 1, 5)]:
        np.testing.assert_array_equal(
            vision.max_pool(x, window), nn.max_pool(x, window, strides=window, padding="VALID"))


def test_time_windows_stack_neighbouring_frames():
    x = jnp.arange(4.0).reshape(1, 4, 1, 1, 1) + 1.0       # frame t holds t + 1
    assert vision.time_windows(x, 3)[0, :, 0, 0].tolist() == [
        [0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 4.0], [3.0, 4.0, 0.0]]
    # even lengths: one more frame after than before, as "SAME" padding
    assert vision.time_windows(x, 2)[0, :, 0, 0].tolist() == [[1.0, 2.0], [2.0, 3.0],
                                                             [3.0, 4.0], [4.0, 0.0]]


def test_frames_equal_a_loop_over_time():
    encoder = vision.ImageEncoder(features=5, channels=(4,))
    params = random_params(encoder, (8, 8, 1))
    videos = normal(3, 6, 8, 8, 1)
    codes = encoder.frames(params, videos)
    assert codes.shape == (3, 6, 5)
    loop = np.stack([encoder.apply(params, videos[:, t]) for t in range(6)], axis=1)
    np.testing.assert_allclose(codes, loop, rtol=1e-5, atol=1e-6)


def count(params) -> int:
    return sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))


@pytest.mark.parametrize("channels, kernel, pool, shape", [
    ((16, 32), 3, 2, (32, 32, 3)), ((8,), 5, 3, (20, 17, 1)), ((2, 3, 4), 1, 2, (16, 16, 2))])
def test_image_encoder_parameter_count(channels, kernel, pool, shape):
    encoder = vision.ImageEncoder(features=10, channels=channels, kernel_size=kernel, pool=pool)
    params = jax.eval_shape(lambda: encoder.init(jax.random.key(0), shape))
    widths = (shape[-1], *channels)
    convs = sum(kernel * kernel * c_in * c_out + c_out
                for c_in, c_out in itertools.pairwise(widths))
    grid = [s // pool ** len(channels) for s in shape[:2]]
    flat = math.prod(grid) * channels[-1]
    assert count(params) == convs + (flat + 1) * 10


@pytest.mark.parametrize("channels, kernel, pool, shape", [
    ((8, 16), (3, 3, 3), (1, 2, 2), (12, 24, 24, 1)), ((4,), (2, 3, 5), (2, 2, 2), (6, 9, 9, 3))])
def test_video_encoder_parameter_count(channels, kernel, pool, shape):
    encoder = vision.VideoEncoder(features=4, channels=channels, kernel_size=kernel, pool=pool)
    params = jax.eval_shape(lambda: encoder.init(jax.random.key(0), shape))
    widths = (shape[-1], *channels)
    convs = sum(math.prod(kernel) * c_in * c_out + c_out
                for c_in, c_out in itertools.pairwise(widths))
    grid = [s // p ** len(channels) for s, p in zip(shape[:3], pool)]
    assert count(params) == convs + (math.prod(grid) * channels[-1] + 1) * 4


def test_bad_configs_and_shapes_are_refused():
    with pytest.raises(ValueError, match="features must be a positive integer"):
        vision.ImageEncoder(features=0)
    with pytest.raises(ValueError, match="channels must be positive integers"):
        vision.ImageEncoder(features=3, channels=())
    with pytest.raises(ValueError, match="kernel_size must be 3 positive integers"):
        vision.VideoEncoder(features=3, kernel_size=(3, 3))
    with pytest.raises(ValueError, match="pool must be a positive integer"):
        vision.VideoEncoder(features=3, pool=(1, 0, 2))
    encoder = vision.ImageEncoder(features=3, channels=(2, 2))
    with pytest.raises(ValueError, match=r"shape must be one example's shape \[H, W, C\]"):
        encoder.init(jax.random.key(0), (1, 8, 8, 3))
    with pytest.raises(ValueError, match=r"too small for 2 poolings .* shrink to \(0, 2\)"):
        encoder.init(jax.random.key(0), (3, 8, 1))
    with pytest.raises(ValueError, match=r"shape must be one example's shape \[T, H, W, C\]"):
        vision.VideoEncoder(features=3).init(jax.random.key(0), (8, 8, 1))


def test_bad_inputs_are_refused_before_xla():
    encoder = vision.ImageEncoder(features=3, channels=(2,))
    params = random_params(encoder, (8, 8, 3))
    with pytest.raises(ValueError, match=r"x must have rank 4 \[B, H, W, C\], got shape "
                                         r"\(8, 8, 3\)"):
        encoder.apply(params, jnp.ones((8, 8, 3)))
    with pytest.raises(ValueError, match="x must be a floating-point array"):
        encoder.apply(params, jnp.ones((1, 8, 8, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"x must have 3 features in its last axis"):
        encoder.apply(params, jnp.ones((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="leaves 16 features after the convolutions, but the "
                                         "params' projection takes 32"):
        encoder.apply(params, jnp.ones((1, 8, 4, 3)))
    with pytest.raises(ValueError, match=r"videos must have rank 5 \[B, T, H, W, C\]"):
        encoder.frames(params, jnp.ones((1, 8, 8, 3)))
    video = vision.VideoEncoder(features=2, channels=(2,))
    video_params = jax.eval_shape(lambda: video.init(jax.random.key(0), (4, 8, 8, 2)))
    with pytest.raises(ValueError, match=r"x must have 2 features in its last axis"):
        jax.eval_shape(video.apply, video_params, jnp.ones((1, 4, 8, 8, 3)))
    with pytest.raises(ValueError, match="params were made for another frame size"):
        jax.eval_shape(video.apply, video_params, jnp.ones((1, 2, 8, 8, 2)))


def test_init_draws_he_and_glorot_uniform_kernels_and_zero_biases():
    encoder = vision.ImageEncoder(features=10, channels=(16, 32))
    params = encoder.init(jax.random.key(0), (32, 32, 3))
    # He: variance 2 / fan_in, bound sqrt(6 / fan_in); Glorot: sqrt(6 / (fan_in + fan_out))
    for name, fan in (("conv_0", 3 * 3 * 3), ("conv_1", 3 * 3 * 16), ("project", 2048 + 10)):
        kernel = np.asarray(params[name]["kernel"], np.float64)
        bound = math.sqrt(6.0 / fan)
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.95 * bound
        # the variance of U(-a, a) is a^2 / 3, within 5 standard errors
        assert abs(kernel.var() / (bound ** 2 / 3) - 1) < 5 * math.sqrt(0.8 / kernel.size)
        assert not np.asarray(params[name]["bias"]).any()
    same = encoder.init(jax.random.key(0), (32, 32, 3))
    other = encoder.init(jax.random.key(1), (32, 32, 3))
    np.testing.assert_array_equal(same["project"]["kernel"], params["project"]["kernel"])
    assert not np.allclose(other["conv_0"]["kernel"], params["conv_0"]["kernel"])
