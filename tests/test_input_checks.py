"""Every bad input gets a ValueError or TypeError from rnnjax naming the argument.

A table of bad inputs across the public API (each with the error and the words the
message must hold), hypothesis fuzzing of `rj.unroll`, a cell step and the probe with
random shapes, dtypes and params (nothing may end in an XLA, tracer, KeyError or
IndexError: an error must be raised by rnnjax's own checks), and `rj.checked` for the
values `jit` hides (lengths out of range, non-finite inputs, token ids).
"""

import os
import re
import traceback
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_usage_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax.experimental import checkify

import rnnjax as rj
from rnnjax import probe
from rnnjax.train import make_train_step, tbptt_value_and_grad

KEY = jax.random.key(0)
LSTM = rj.LSTM(8)
P = LSTM.init(KEY, 3)
XS = jnp.ones((2, 5, 3))
STACK = rj.Stacked([rj.LSTM(8), rj.GRU(4)])
SP = STACK.init(KEY, 3)
BI = rj.Bidirectional(rj.GRU(4), rj.GRU(4))
BP = BI.init(KEY, 3)
LOSS = lambda ys: ys.sum()


def drop(params, key):
    return {k: v for k, v in params.items() if k != key}


# (what is wrong, the call, the error type, a regex the message must match)
CASES = [
    # params that do not match the model
    ("params missing a key", lambda: rj.unroll(LSTM, drop(P, "W_h"), XS),
     ValueError, r"params do not match the model LSTM: missing params\['W_h'\]"),
    ("params missing W_x", lambda: rj.unroll(LSTM, drop(P, "W_x"), XS),
     ValueError, r"missing params\['W_x'\]"),
    ("params with an extra key", lambda: rj.unroll(LSTM, {**P, "W_y": P["b"]}, XS),
     ValueError, r"unexpected params\['W_y'\]"),
    ("W_h of the wrong shape", lambda: rj.unroll(LSTM, {**P, "W_h": jnp.ones((8, 8))}, XS),
     ValueError, r"params\['W_h'\] must have shape \(8, 32\) for LSTM, got shape \(8, 8\)"),
    ("integer params", lambda: rj.unroll(LSTM, {**P, "b": jnp.ones(32, jnp.int32)}, XS),
     TypeError, r"params\['b'\] must be a floating-point array, got dtype int32"),
    ("params not a dict", lambda: rj.unroll(LSTM, [P["W_x"], P["W_h"]], XS),
     TypeError, r"params must be what LSTM.init returns \(a dict of arrays\), got list"),
    ("params of another cell", lambda: rj.unroll(rj.GRU(8), P, XS),
     ValueError, r"params\['W_h'\] must have shape \(8, 24\) for GRU, got shape \(8, 32\)"),
    ("Stacked layers in the wrong order", lambda: rj.unroll(STACK, SP[::-1], XS),
     ValueError, r"params\[0\]\['W_h'\] must have shape \(8, 32\) for Stacked\(\[LSTM, GRU\]\)"
                 r".*in the order of its layers"),
    ("Stacked params missing a layer", lambda: rj.unroll(STACK, SP[:1], XS),
     ValueError, r"missing params\[1\]\['W_h'\]"),
    ("Bidirectional params misnamed", lambda: rj.unroll(BI, {"forward": BP["fwd"],
                                                             "bwd": BP["bwd"]}, XS),
     ValueError, r"missing params\['fwd'\]\['W_h'\].*unexpected params\['forward'\]"),
    ("step with params missing a key", lambda: LSTM(drop(P, "b"), LSTM.initial_carry((2,)),
                                                    XS[:, 0]),
     ValueError, r"missing params\['b'\]"),
    ("Dense params misnamed", lambda: rj.Dense(2)({"w": jnp.ones((3, 2)), "b": jnp.ones(2)},
                                                  XS),
     ValueError, r"missing params\['W'\]"),
    # the model itself
    ("a model that is not one", lambda: rj.unroll("lstm", P, XS),
     TypeError, r"model must be a cell, a Stacked or a Bidirectional .* got str"),
    ("hidden_size a float", lambda: rj.LSTM(8.0), TypeError,
     r"hidden_size must be a positive integer, got 8.0 \(float\)"),
    ("hidden_size zero", lambda: rj.GRU(0), ValueError,
     r"hidden_size must be a positive integer, got 0"),
    ("input_size negative", lambda: LSTM.init(KEY, -2), ValueError,
     r"input_size must be a positive integer, got -2"),
    ("init with an int for a key", lambda: LSTM.init(3, 3), TypeError,
     r"key must be a PRNG key \(jax.random.key\(seed\)\), got int"),
    ("init with a batch of keys", lambda: rj.LRU(4).init(jax.random.split(KEY, 2), 3),
     ValueError, r"key must be a single PRNG key, got a key array of shape \(2,\)"),
    ("clockwork period zero", lambda: rj.ClockworkRNN(8, periods=(1, 0)), ValueError,
     r"periods must be a non-empty tuple of positive integers, got \(1, 0\)"),
    ("clockwork modules not dividing H", lambda: rj.ClockworkRNN(8, periods=(1, 2, 4)),
     ValueError, r"hidden_size \(8\) must be a multiple of the number of modules"),
    ("Stacked of nothing", lambda: rj.Stacked([]), ValueError,
     "layers must hold at least one layer"),
    ("Stacked of Bidirectional stepped", lambda: rj.Stacked([BI])(
        (BP,), rj.Stacked([BI]).initial_carry((2,)), XS[:, 0]),
     ValueError, "has no single step"),
    # xs
    ("xs of rank 2", lambda: rj.unroll(LSTM, P, jnp.ones((5, 3))), ValueError,
     r"xs must have rank 3 \[B, T, F\], got shape \(5, 3\)"),
    ("xs of integers", lambda: rj.unroll(LSTM, P, jnp.ones((2, 5, 3), jnp.int32)),
     TypeError, r"xs must be a floating-point array, got dtype int32"),
    ("xs with the wrong features", lambda: rj.unroll(LSTM, P, jnp.ones((2, 5, 4))),
     ValueError, r"xs must have 3 features .* got shape \(2, 5, 4\)"),
    ("step x with the wrong features", lambda: LSTM(P, LSTM.initial_carry((2,)),
                                                    jnp.ones((2, 4))),
     ValueError, r"x must have 3 features .* got shape \(2, 4\)"),
    # seq_lengths and resets
    ("seq_lengths beyond T", lambda: rj.unroll(LSTM, P, XS, seq_lengths=np.array([5, 6])),
     ValueError, r"seq_lengths must lie in \[0, 5\] \(T = 5\), got values in \[5, 6\]"),
    ("seq_lengths negative", lambda: rj.unroll(LSTM, P, XS, seq_lengths=np.array([-1, 2])),
     ValueError, r"seq_lengths must lie in \[0, 5\]"),
    ("seq_lengths floats", lambda: rj.unroll(LSTM, P, XS, seq_lengths=np.array([1., 2.])),
     TypeError, r"seq_lengths must be an integer array, got dtype float"),
    ("seq_lengths of the wrong shape", lambda: rj.unroll(LSTM, P, XS,
                                                         seq_lengths=np.array([1, 2, 3])),
     ValueError, r"seq_lengths must have shape \(2,\) .* got shape \(3,\)"),
    ("resets of ints", lambda: rj.unroll(LSTM, P, XS, resets=np.zeros((2, 5), int)),
     TypeError, "resets must be a bool array"),
    ("resets of the wrong shape", lambda: rj.unroll(LSTM, P, XS, resets=np.zeros((5, 2), bool)),
     ValueError, r"resets must have shape \(2, 5\)"),
    # carries
    ("carry of the wrong structure", lambda: rj.unroll(LSTM, P, XS, carry=jnp.zeros((2, 8))),
     ValueError, r"carry must have the structure LSTMCarry\(h=\(2, 8\), c=\(2, 8\)\)"),
    ("carry of the wrong batch", lambda: rj.unroll(LSTM, P, XS, carry=LSTM.initial_carry((3,))),
     ValueError, r"carry must have leaf shapes LSTMCarry\(h=\(2, 8\), c=\(2, 8\)\), got"),
    ("carry in bfloat16", lambda: rj.unroll(LSTM, P, XS,
                                            carry=LSTM.initial_carry((2,), jnp.bfloat16)),
     ValueError, "carry must be float32"),
    ("step carry of the wrong structure", lambda: LSTM(P, jnp.zeros((2, 8)), XS[:, 0]),
     ValueError, r"carry must have the structure LSTMCarry"),
    ("Stacked carry of one layer", lambda: rj.unroll(STACK, SP, XS,
                                                     carry=(LSTM.initial_carry((2,)),)),
     ValueError, "carry must have the structure"),
    ("unroll factor zero", lambda: rj.unroll(LSTM, P, XS, unroll=0), ValueError,
     "unroll must be a positive integer"),
    # the probe
    ("probe on T = 0", lambda: probe.hidden_grad_norms(LSTM, P, jnp.ones((2, 0, 3)), LOSS),
     ValueError, r"xs must hold at least one sequence \(B >= 1\) of at least one step "
                 r"\(T >= 1\) \[B, T, F\], got shape \(2, 0, 3\)"),
    ("probe on an empty batch", lambda: probe.jacobian_norms(LSTM, P, jnp.ones((0, 4, 3))),
     ValueError, r"at least one sequence \(B >= 1\).*got shape \(0, 4, 3\)"),
    ("Lyapunov spectrum on T = 0", lambda: probe.lyapunov_spectrum(LSTM, P,
                                                                  jnp.ones((1, 0, 3))),
     ValueError, r"at least one step \(T >= 1\)"),
    ("log-norm probe on wrong params", lambda: probe.hidden_grad_log_norms(
        LSTM, drop(P, "W_h"), XS, LOSS), ValueError, r"missing params\['W_h'\]"),
    ("decay fit of one norm", lambda: probe.decay_rate(jnp.ones((1,))), ValueError,
     r"norms must have shape \[T\] with T >= 2"),
    ("probe of a string", lambda: probe.jacobian_norms("gru", P, XS), TypeError,
     r"cell must be a cell, a Stacked or a Bidirectional"),
    # training
    ("TBPTT with k1 = 0", lambda: tbptt_value_and_grad(LSTM, P, XS, XS, lambda p, y, t: 0.,
                                                       k1=0, k2=2),
     ValueError, "k1 must be a positive integer"),
    ("train step with a negative clip", lambda: make_train_step(lambda p, b, k: (0., {}),
                                                                optax.sgd(0.1), clip_norm=-1),
     ValueError, "clip_norm must be a positive number or None, got -1"),
    ("train step with an optimizer class", lambda: make_train_step(lambda p, b, k: (0., {}),
                                                                   optax.sgd),
     TypeError, "optimizer must be an optax.GradientTransformation, got function"),
    # layers
    ("embedding ids as floats", lambda: rj.Embedding(5, 2)(rj.Embedding(5, 2).init(KEY),
                                                           jnp.ones(3)),
     TypeError, "ids must be an integer array, got dtype float32"),
    ("embedding ids out of range", lambda: rj.Embedding(5, 2)(rj.Embedding(5, 2).init(KEY),
                                                              jnp.array([0, 5])),
     ValueError, r"ids must lie in \[0, 4\] \(vocab_size = 5\), got values in \[0, 5\]"),
]


PACKAGE = os.path.dirname(os.path.abspath(rj.__file__)) + os.sep


def raised_by_rnnjax(error: BaseException) -> bool:
    """True when the innermost frame that raised `error` is in the rnnjax package."""
    frames = traceback.extract_tb(error.__traceback__)
    return os.path.abspath(frames[-1].filename).startswith(PACKAGE)


@pytest.mark.parametrize("call, error, message", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert raised_by_rnnjax(info.value), "".join(traceback.format_tb(info.tb)[-3:])


def test_type_errors_are_also_value_errors():
    """A wrong type raises InputTypeError: a TypeError, and a ValueError for code that
    caught ValueError for every bad input before."""
    with pytest.raises(ValueError):
        rj.unroll(LSTM, P, jnp.ones((2, 5, 3), jnp.int32))
    assert issubclass(rj.InputTypeError, TypeError)


def test_params_checks_do_not_reject_good_params():
    """Every model's own init passes its check, also in bfloat16 (a few) and under vmap (traced
    with eval_shape: the checks run at trace time, nothing needs compiling)."""
    models = [rj.SimpleRNN(4), rj.IRNN(4), LSTM, rj.PeepholeLSTM(4), rj.GRU(4),
              rj.GRU(4, reset_after=True), rj.ClockworkRNN(4, periods=(1, 2)), rj.LRU(4),
              rj.MinGRU(4), rj.MinLSTM(4), STACK, BI, rj.Stacked([BI, rj.GRU(3)])]
    for model in models:
        params = jax.eval_shape(lambda m=model: m.init(KEY, 3))  # shapes and dtypes only
        ys = jax.eval_shape(lambda p, xs, m=model: rj.unroll(m, p, xs)[1], params, XS)
        assert ys.shape == (2, 5, model.output_size)
        if model in (LSTM, STACK, BI):
            half = jax.tree_util.tree_map(
                lambda a: jax.ShapeDtypeStruct(a.shape, jnp.bfloat16), params)
            ys = jax.eval_shape(lambda p, xs, m=model: rj.unroll(m, p, xs)[1], half,
                                XS.astype(jnp.bfloat16))
            assert ys.dtype == jnp.bfloat16
    seeds = jax.eval_shape(jax.vmap(lambda k: LSTM.init(k, 3)), jax.random.split(KEY, 3))
    ys = jax.eval_shape(jax.vmap(lambda p: rj.unroll(LSTM, p, XS)[1]), seeds)
    assert ys.shape == (3, 2, 5, 8)


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "argument --steps: must be a positive integer, got '0'"),
    (["--lr", "-0.1"], "argument --lr: must be a positive number, got '-0.1'"),
    (["--checkpoint-every", "0"], "argument --checkpoint-every: must be a positive integer"),
])
def test_study_flags_fail_before_any_work(tmp_path, capsys, argv, message):
    """A bad flag is a usage error (exit status 2) before anything is written."""
    from experiments import common, compare_cells
    out = tmp_path / "never"
    parse = lambda argv: common.parse_args(compare_cells.NAME, "", compare_cells.DEFAULTS,
                                           compare_cells.QUICK, argv,
                                           compare_cells.add_arguments)
    assert_usage_error(capsys, parse, [*argv, "--out", str(out)], re.escape(message))
    assert not out.exists()


def test_study_out_folder_that_cannot_be_written(tmp_path, capsys):
    from experiments import common, compare_cells
    a_file = tmp_path / "file"
    a_file.write_text("")
    parse = lambda argv: common.parse_args(compare_cells.NAME, "", compare_cells.DEFAULTS,
                                           compare_cells.QUICK, argv,
                                           compare_cells.add_arguments)
    assert_usage_error(capsys, parse, ["--out", str(a_file / "run")],
                       r"--out .*file/run cannot be created: .*file is not a folder")


# -- fuzzing ---------------------------------------------------------------------
FUZZ_MODELS = {"lstm": LSTM, "gru": rj.GRU(8), "lru": rj.LRU(8), "stack": STACK, "bi": BI}
FUZZ_PARAMS = {name: model.init(KEY, 3) for name, model in FUZZ_MODELS.items()}
DTYPES = [jnp.float32, jnp.float16, jnp.int32, jnp.bool_, jnp.uint8]


def mutated(params, how: str, rng):
    """`params` with one thing wrong: a leaf dropped, added, reshaped or retyped."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    i = int(rng.integers(len(leaves)))
    _, leaf = leaves[i]
    if how == "reshape":
        new = jnp.ones(tuple(int(d) + int(rng.integers(1, 3)) for d in leaf.shape) or (2,))
    elif how == "retype":
        new = leaf.astype(jnp.int32)
    elif how == "transpose" and leaf.ndim == 2 and leaf.shape[0] != leaf.shape[1]:
        new = leaf.T
    else:
        new = leaf
    flat = [new if j == i else v for j, (_, v) in enumerate(leaves)]
    tree = jax.tree_util.tree_unflatten(treedef, flat)
    if how == "drop" and isinstance(tree, dict):
        tree = {k: v for k, v in tree.items() if k != sorted(tree)[0]}
    if how == "extra" and isinstance(tree, dict):
        tree = {**tree, "extra": jnp.ones(2)}
    return tree


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(sorted(FUZZ_MODELS)),
       shape=st.lists(st.integers(0, 4), min_size=0, max_size=4),
       dtype=st.sampled_from(DTYPES),
       params_change=st.sampled_from(["none", "drop", "extra", "reshape", "retype",
                                      "transpose"]),
       lengths=st.one_of(st.none(), st.lists(st.integers(-2, 6), min_size=1, max_size=4)),
       use_probe=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_fuzzed_inputs_never_reach_xla(model, shape, dtype, params_change, lengths,
                                       use_probe, seed):
    """Random shapes, dtypes, params and lengths: either a result, or a ValueError /
    TypeError raised by rnnjax's checks (never a KeyError, IndexError, or an error from
    inside JAX)."""
    rng = np.random.default_rng(seed)
    cell = FUZZ_MODELS[model]
    params = mutated(FUZZ_PARAMS[model], params_change, rng)
    xs = jnp.zeros(tuple(shape), dtype)
    if use_probe and model != "bi":
        call = lambda: probe.jacobian_norms(cell, params, xs)
    else:
        n = None if lengths is None else np.array(lengths)
        call = lambda: rj.unroll(cell, params, xs, seq_lengths=n)
    try:
        call()
    except (ValueError, TypeError) as e:
        assert raised_by_rnnjax(e), "".join(traceback.format_exception(e)[-4:])
        assert not isinstance(e, (KeyError, IndexError))


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(st.integers(0, 3), min_size=0, max_size=2),
       features=st.integers(1, 4), dtype=st.sampled_from(DTYPES),
       carry_batch=st.lists(st.integers(1, 3), min_size=0, max_size=2))
def test_fuzzed_steps_never_reach_xla(batch, features, dtype, carry_batch):
    """One step of a cell with random input and carry shapes."""
    x = jnp.zeros((*batch, features), dtype)
    carry = LSTM.initial_carry(tuple(carry_batch))
    try:
        LSTM(P, carry, x)
    except (ValueError, TypeError) as e:
        assert raised_by_rnnjax(e), "".join(traceback.format_exception(e)[-4:])
    else:
        assert tuple(batch) == tuple(carry_batch) and features == 3


# -- checked mode: the values jit hides -----------------------------------------
def test_checked_catches_lengths_out_of_range_under_jit():
    run = rj.checked(lambda xs, n: rj.unroll(LSTM, P, xs, seq_lengths=n)[1])
    ys = run(XS, jnp.array([5, 2]))
    np.testing.assert_array_equal(ys, rj.unroll(LSTM, P, XS, seq_lengths=jnp.array([5, 2]))[1])
    with pytest.raises(checkify.JaxRuntimeError,
                       match=r"seq_lengths must lie in \[0, 5\] \(T = 5\), got values in "
                             r"\[-1, 2\]"):
        run(XS, jnp.array([-1, 2]))
    # unchecked, the same jitted call clamps silently: the reason checked mode exists
    plain = jax.jit(lambda xs, n: rj.unroll(LSTM, P, xs, seq_lengths=n)[1])
    assert np.isfinite(plain(XS, jnp.array([9, 2]))).all()


def test_checked_catches_non_finite_inputs_and_carries():
    run = rj.checked(lambda xs, c: probe.hidden_grad_norms(LSTM, P, xs, LOSS, carry=c))
    carry = LSTM.initial_carry((2,))
    assert np.isfinite(run(XS, carry)).all()
    with pytest.raises(checkify.JaxRuntimeError, match=r"xs must be finite, got 1 "
                                                       r"non-finite values"):
        run(XS.at[1, 3, 0].set(jnp.nan), carry)
    with pytest.raises(checkify.JaxRuntimeError, match=r"carry must be finite, got 2"):
        run(XS, carry._replace(c=carry.c.at[0, :2].set(jnp.inf)))


def test_checked_catches_token_ids_and_works_under_grad():
    emb = rj.Embedding(5, 3)
    pe = emb.init(KEY)

    def loss(p, ids, n):
        _, ys = rj.unroll(LSTM, P, emb(p, ids), seq_lengths=n)
        return ys.sum()

    grad = rj.checked(jax.grad(loss))
    ids, lengths = jnp.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]), jnp.array([5, 3])
    g = grad(pe, ids, lengths)
    # jit (checked) against eager: the same sums, fused differently
    np.testing.assert_allclose(g["E"], jax.grad(loss)(pe, ids, lengths)["E"], rtol=1e-6)
    with pytest.raises(checkify.JaxRuntimeError, match=r"ids must lie in \[0, 4\] .* "
                                                       r"got values in \[0, 7\]"):
        grad(pe, jnp.array([[0, 1, 2, 3, 7], [0, 0, 0, 0, 0]]), jnp.array([5, 3]))


def test_checked_refuses_to_be_traced_and_says_it_compiles_itself():
    run = rj.checked(lambda xs: rj.unroll(LSTM, P, xs)[1])
    for outer in (jax.jit, jax.vmap, jax.grad):
        with pytest.raises(TypeError, match=r"in place of jax.jit\(fn\)"):
            outer(lambda xs: run(xs).sum())(XS)
    # the advertised order works: transformations inside, checked outside
    grad = rj.checked(jax.grad(lambda xs: rj.unroll(LSTM, P, xs)[1].sum()))
    assert grad(XS).shape == XS.shape


def test_checked_messages_use_the_layout_the_user_gave():
    xs = jnp.ones((4, 10, 3)).at[1, 3, 0].set(jnp.nan)
    run = rj.checked(lambda xs: rj.unroll(LSTM, P, xs)[1])
    with pytest.raises(checkify.JaxRuntimeError, match=r"in shape \(4, 10, 3\)"):
        run(xs)
    run_tm = rj.checked(lambda xs: rj.unroll(LSTM, P, xs, time_major=True)[1])
    with pytest.raises(checkify.JaxRuntimeError, match=r"in shape \(10, 4, 3\)"):
        run_tm(jnp.swapaxes(xs, 0, 1))


def test_eager_calls_check_values_as_the_readme_says():
    """Eager: lengths, NaN inputs and carries raise at once, naming where; under jit
    without `checked` nothing is read (the README's statement, both halves)."""
    bad = XS.at[1, 3, 0].set(jnp.nan)
    with pytest.raises(ValueError, match=r"xs must be finite, got 1 non-finite values .*"
                                         r"shape \(2, 5, 3\), the first at index \(1, 3, 0\)"):
        rj.unroll(LSTM, P, bad)
    carry = LSTM.initial_carry(2)
    with pytest.raises(ValueError, match="carry must be finite, got 1"):
        rj.unroll(LSTM, P, XS, carry._replace(h=carry.h.at[0, 0].set(jnp.inf)))
    with pytest.raises(ValueError, match="seq_lengths must lie in"):
        rj.unroll(LSTM, P, XS, seq_lengths=jnp.array([6, 1]))
    with pytest.raises(ValueError, match="xs must be finite"):
        probe.hidden_grad_norms(LSTM, P, bad, LOSS)
    ys = jax.jit(lambda xs: rj.unroll(LSTM, P, xs)[1])(bad)   # not read under jit
    assert np.isnan(ys[1, 3:]).all() and np.isfinite(ys[0]).all()
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "values whenever they are concrete" in " ".join(readme.split())


def test_initial_carry_takes_an_int_batch_size():
    for cell in (rj.LSTM(3), rj.GRU(3), rj.ClockworkRNN(4, periods=(1, 2)), rj.LRU(3),
                 rj.Stacked([rj.GRU(2), rj.LSTM(3)]), rj.Bidirectional(rj.GRU(2), rj.GRU(2))):
        by_int = jax.tree_util.tree_map(jnp.shape, cell.initial_carry(batch_shape=4))
        assert by_int == jax.tree_util.tree_map(jnp.shape, cell.initial_carry((4,)))
    with pytest.raises(TypeError, match=r"batch_shape must be a tuple of ints, e.g. \(B,\), "
                                        r"or an int B, got 4.0"):
        rj.GRU(3).initial_carry(4.0)
