"""The convolutional cells (ConvLSTM, ConvGRU): against a NumPy float64 reference of
the paper's equations, against the vector cells at 1 x 1, through every option of the
loop, the combinators, the protocol check and the probe, and their input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from helpers import random_params
from jax.test_util import check_grads

import rnnjax as rj
from rnnjax import probe

B, T, H, W, C_IN = 3, 5, 5, 4, 2   # a non-square map: rows and columns kept apart
CELLS = {
    "convlstm": rj.ConvLSTM(hidden_channels=3, spatial_shape=(H, W), kernel_size=3),
    "convgru": rj.ConvGRU(hidden_channels=3, spatial_shape=(H, W), kernel_size=3),
}


def setup(cell, seed=0, dtype=jnp.float32, steps=T):
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype),
                                    random_params(cell, C_IN, seed))
    xs = jnp.asarray(np.random.default_rng(seed + 100).standard_normal((B, steps, H, W, C_IN)),
                     dtype)
    return params, xs


@pytest.mark.parametrize("name", CELLS)
def test_one_step_matches_float64_reference(name):
    cell = CELLS[name]
    with jax.enable_x64(True):
        params, xs = setup(cell, dtype=jnp.float64)
        carry = jax.tree_util.tree_map(
            lambda z: jnp.asarray(np.random.default_rng(7).standard_normal(z.shape)),
            cell.initial_carry((B,), jnp.float64))
        new, y = cell(params, carry, xs[:, 0])
        assert y.dtype == jnp.float64 and y.shape == (B, H, W, 3)
        p = reference._np(params)
        for b in range(B):
            c_b = jax.tree_util.tree_map(lambda a: np.asarray(a[b]), carry)
            ref_carry, ref_y = (reference.convlstm_step if name == "convlstm"
                                else reference.convgru_step)(p, c_b, np.asarray(xs[b, 0]))
            np.testing.assert_allclose(y[b], ref_y, rtol=0, atol=1e-10)
            for got, want in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(
                    ref_carry)):
                np.testing.assert_allclose(got[b], want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_unroll_with_lengths_and_reverse_matches_reference(name, reverse):
    cell = CELLS[name]
    with jax.enable_x64(True):
        params, xs = setup(cell, seed=1, dtype=jnp.float64)
        lengths = np.array([T, 3, 0])
        carry, ys = rj.unroll(cell, params, xs, seq_lengths=lengths, reverse=reverse)
        ref_ys, ref_finals = reference.run_conv(cell, params, xs, lengths, reverse)
        np.testing.assert_allclose(ys, ref_ys, rtol=0, atol=1e-10)
        ref_h = [f[0] if isinstance(f, tuple) else f for f in ref_finals]
        np.testing.assert_allclose(cell.hidden(carry), np.stack(ref_h), rtol=0, atol=1e-10)


def test_resets_restart_from_the_initial_carry():
    """A row with a reset at step 3 gives, from there on, what a fresh run of its last
    two steps gives."""
    cell = CELLS["convlstm"]
    params, xs = setup(cell, seed=2)
    resets = np.zeros((B, T), bool)
    resets[0, 3] = True
    _, ys = rj.unroll(cell, params, xs, resets=jnp.asarray(resets))
    _, fresh = rj.unroll(cell, params, xs[:, 3:])
    np.testing.assert_allclose(ys[0, 3:], fresh[0], atol=1e-6)
    _, plain = rj.unroll(cell, params, xs)
    np.testing.assert_allclose(ys[1:], plain[1:], atol=1e-6)
    assert np.abs(np.asarray(ys[0, 3:] - plain[0, 3:])).max() > 1e-3


@pytest.mark.parametrize("conv_name, vector", [("convlstm", rj.LSTM(3, use_loop_rule=False)),
                                               ("convgru", rj.GRU(3, use_loop_rule=False))])
def test_one_by_one_kernel_on_one_pixel_is_the_vector_cell(conv_name, vector):
    """A 1 x 1 kernel on a 1 x 1 map: W_x[0, 0] and W_h[0, 0] are the vector cell's
    W_x and W_h, gate blocks in the same order."""
    cell = type(CELLS[conv_name])(3, (1, 1), kernel_size=1)
    params = random_params(cell, C_IN, seed=3)
    flat = {k: (v[0, 0] if v.ndim == 4 else v) for k, v in params.items()}
    xs = jnp.asarray(np.random.default_rng(4).standard_normal((B, T, C_IN)), jnp.float32)
    lengths = jnp.array([T, 2, 4])
    carry, ys = rj.unroll(cell, params, xs[:, :, None, None, :], seq_lengths=lengths)
    v_carry, v_ys = rj.unroll(vector, flat, xs, seq_lengths=lengths)
    np.testing.assert_allclose(ys[:, :, 0, 0], v_ys, rtol=0, atol=1e-6)
    for got, want in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(v_carry)):
        np.testing.assert_allclose(got[:, 0, 0], want, rtol=0, atol=1e-6)


def test_stacked_and_bidirectional_convlstm():
    """A Stacked ConvLSTM -> ConvGRU is its layers run in turn; a Bidirectional joins a
    forward run and a run on the sequences reversed within their lengths along channels."""
    first, second = CELLS["convlstm"], rj.ConvGRU(2, (H, W), kernel_size=1)
    stack = rj.Stacked([first, second])
    params = random_params(stack, C_IN, seed=5)
    _, xs = setup(first, seed=5)
    lengths = jnp.array([T, 2, 4])
    _, ys = rj.unroll(stack, params, xs, seq_lengths=lengths)
    _, y1 = rj.unroll(first, params[0], xs, seq_lengths=lengths)
    _, y2 = rj.unroll(second, params[1], y1, seq_lengths=lengths)
    assert ys.shape == (B, T, H, W, 2)
    np.testing.assert_allclose(ys, y2, atol=1e-6)

    bi = rj.Bidirectional(first, rj.ConvLSTM(2, (H, W)))
    p_bi = random_params(bi, C_IN, seed=6)
    _, ys = rj.unroll(bi, p_bi, xs, seq_lengths=lengths)
    _, fwd = rj.unroll(bi.fwd, p_bi["fwd"], xs, seq_lengths=lengths)
    _, bwd = rj.unroll(bi.bwd, p_bi["bwd"], xs, seq_lengths=lengths, reverse=True)
    assert ys.shape == (B, T, H, W, 5)
    np.testing.assert_allclose(ys, jnp.concatenate([fwd, bwd], axis=-1), atol=1e-6)
    rj.check_cell(stack, C_IN)
    rj.check_cell(bi, C_IN)


@pytest.mark.parametrize("name", CELLS)
def test_protocol_and_gradients(name):
    cell = CELLS[name]
    rj.check_cell(cell, C_IN, batch_shape=(2,))
    with jax.enable_x64(True):
        params, xs = setup(cell, seed=8, dtype=jnp.float64, steps=3)
        loss = lambda p: jnp.sum(rj.unroll(cell, p, xs[:2])[1] ** 2)
        check_grads(loss, (params,), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_init_config_and_forget_bias():
    cell = rj.ConvLSTM(4, (6, 6), kernel_size=5, forget_bias=2.0)
    params = cell.init(jax.random.key(0), input_size=3)
    assert params["W_x"].shape == (5, 5, 3, 16) and params["W_h"].shape == (5, 5, 4, 16)
    np.testing.assert_array_equal(params["b"], np.r_[np.zeros(4), 2 * np.ones(4),
                                                      np.zeros(8)])
    limit = np.sqrt(6 / (25 * (3 + 4)))
    assert np.abs(params["W_x"]).max() <= limit and np.abs(params["W_x"]).max() > 0.8 * limit
    assert cell.input_shape_of(params) == (6, 6, 3) and cell.output_shape == (6, 6, 4)
    assert rj.cells.make_conv("convgru", 4, (6, 6)) == rj.ConvGRU(4, (6, 6))
    assert hash(cell) == hash(rj.ConvLSTM(4, [6, 6], kernel_size=5, forget_bias=2.0))


@pytest.mark.parametrize("name", CELLS)
def test_probe_on_the_flattened_state(name):
    """With the loss sum(y_{T-1}^2), dL/dh_{T-1} is 2 y_{T-1} exactly (nothing after
    it): the last norm is its mean over the batch; dh_{T-1}/dh_{T-1} is the identity."""
    cell = CELLS[name]
    params, xs = setup(cell, seed=9, steps=4)
    norms = probe.hidden_grad_norms(cell, params, xs, lambda ys: jnp.sum(ys[:, -1] ** 2))
    _, ys = rj.unroll(cell, params, xs)
    last = np.linalg.norm(2 * np.asarray(ys[:, -1], np.float64).reshape(B, -1), axis=1)
    assert norms.shape == (4,) and np.isfinite(norms).all() and (norms > 0).all()
    np.testing.assert_allclose(norms[-1], last.mean(), rtol=1e-5)
    jac = probe.jacobian_norms(cell, params, xs[:1], method="exact")
    assert jac.shape == (4,) and np.isfinite(jac).all() and (jac > 0).all()
    np.testing.assert_allclose(jac[-1], 1.0, atol=1e-5)


def test_bad_inputs_name_the_argument_and_shapes():
    cell = CELLS["convlstm"]
    params, xs = setup(cell)
    with pytest.raises(ValueError, match=r"xs must have rank 5 \[B, T, H, W, C\]"):
        rj.unroll(cell, params, xs[..., 0])
    with pytest.raises(ValueError, match=r"xs must have shape .*\(5, 4, 2\), got shape "
                                         r"\(3, 5, 4, 5, 2\)"):
        rj.unroll(cell, params, jnp.swapaxes(xs, 2, 3))
    with pytest.raises(ValueError, match=r"x must have shape \[\*batch, H, W, C\]"):
        cell(params, cell.initial_carry(B), xs[:, 0, :, :, :1])
    with pytest.raises(ValueError, match="carry"):
        cell(params, rj.ConvLSTM(3, (H, H)).initial_carry(B), xs[:, 0])
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        rj.ConvLSTM(3, (H, W), kernel_size=2)
    with pytest.raises(ValueError, match="spatial_shape"):
        rj.ConvGRU(3, (H,))
    with pytest.raises(ValueError, match="hidden_channels"):
        rj.ConvGRU(0, (H, W))
    with pytest.raises(ValueError, match="xs"):
        probe.hidden_grad_norms(cell, params, xs[:, :, :3], lambda ys: ys.sum())


def test_conv2d_equals_the_lax_convolution():
    """The im2col convolution gives lax.conv_general_dilated's "SAME" values, with any
    leading axes and an odd kernel of unequal sides."""
    from rnnjax.cells.conv import conv2d
    rng = np.random.default_rng(11)
    x = jnp.asarray(rng.standard_normal((2, 3, 6, 5, 2)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((3, 5, 2, 4)), jnp.float32)
    want = jax.lax.conv_general_dilated(x.reshape(6, 6, 5, 2), kernel, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(conv2d(x, kernel), want.reshape(2, 3, 6, 5, 4), atol=1e-5)
