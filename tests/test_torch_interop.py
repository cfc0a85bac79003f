"""rnnjax.interop against PyTorch itself: outputs, packed lengths, final states,
round trips both ways, input gradients, and the errors for what cannot convert."""

import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from helpers import max_diff, random_params  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import rnnjax as rj  # noqa: E402
from rnnjax.interop import from_torch, to_torch  # noqa: E402

B, T, I, H = 3, 7, 4, 5
LENGTHS = [7, 3, 1]  # one full length, two short ones (torch forbids 0)
TOL = 1e-5

KINDS = {
    "rnn_tanh": lambda **kw: torch.nn.RNN(I, H, nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(I, H, nonlinearity="relu", **kw),
    "lstm": lambda **kw: torch.nn.LSTM(I, H, **kw),
    "gru": lambda **kw: torch.nn.GRU(I, H, **kw),
}


# Every cell type x num_layers x bidirectional; batch_first alternates so that each
# cell type meets both layouts in each test, and each configuration meets the other
# layout in the other test (the layout is a transpose at the edge, independent of
# the rest: the full product would double the compile time for no new coverage).
def configs(flip):
    return [(kind, layers, bidir, (layers + bidir + flip) % 2 == 0)
            for kind in KINDS for layers in (1, 2) for bidir in (False, True)]


def config_ids(cfgs):
    return [f"{k}-L{n}-{'bi' if b else 'uni'}-{'bf' if f else 'tm'}" for k, n, b, f in cfgs]


# One compile per model, instead of a scan compiled anew at every eager call.
unroll = jax.jit(rj.unroll, static_argnums=0, static_argnames="time_major")


def make_module(kind, num_layers=1, bidirectional=False, batch_first=False, seed=0, **kw):
    torch.manual_seed(seed)
    module = KINDS[kind](num_layers=num_layers, bidirectional=bidirectional,
                         batch_first=batch_first, **kw)
    return module.eval()


def make_inputs(batch_first, seed=1, dtype=torch.float32):
    x = torch.randn(B, T, I, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return x if batch_first else x.transpose(0, 1).contiguous()


def to_np(t):
    return t.detach().cpu().numpy()


def torch_packed(module, x, lengths):
    """The module run on a packed batch: padded outputs [like x], h_n (and c_n)."""
    packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=module.batch_first,
                                  enforce_sorted=False)
    out, state = module(packed)
    out, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=T)
    return out, state


def final_states(model, carry):
    """Our final carry as [layers * directions, B, H] arrays, ordered like torch's h_n
    (and c_n for an LSTM; None otherwise)."""
    hs, cs = [], []
    for layer, c in zip(model.layers, carry):
        cells = (layer.fwd, layer.bwd) if isinstance(layer, rj.Bidirectional) else (layer,)
        carries = c if isinstance(layer, rj.Bidirectional) else (c,)
        for cell, cc in zip(cells, carries):
            if isinstance(cell, rj.LSTM):
                hs.append(cc.h)
                cs.append(cc.c)
            else:
                hs.append(cc)
    return np.stack(hs), (np.stack(cs) if cs else None)


def assert_states_match(model, carry, state):
    h_n, c_n = final_states(model, carry)
    if isinstance(state, tuple):  # LSTM: (h_n, c_n)
        assert max_diff(h_n, to_np(state[0])) <= TOL
        assert max_diff(c_n, to_np(state[1])) <= TOL
    else:
        assert c_n is None
        assert max_diff(h_n, to_np(state)) <= TOL


@pytest.mark.parametrize("kind,num_layers,bidirectional,batch_first", configs(0),
                         ids=config_ids(configs(0)))
def test_outputs_and_final_state_match_torch(kind, num_layers, bidirectional, batch_first):
    module = make_module(kind, num_layers, bidirectional, batch_first)
    model, params = from_torch(module)
    assert isinstance(model, rj.Stacked) and model.time_major is (not batch_first)
    assert len(model.layers) == len(params) == num_layers
    x = make_inputs(batch_first)
    with torch.no_grad():
        expected, state = module(x)
    carry, ys = unroll(model, params, jnp.asarray(to_np(x)))  # the module's own layout
    assert ys.shape == tuple(expected.shape) and ys.dtype == jnp.float32
    assert max_diff(ys, to_np(expected)) <= TOL
    assert_states_match(model, carry, state)


@pytest.mark.parametrize("kind,num_layers,bidirectional,batch_first", configs(1),
                         ids=config_ids(configs(1)))
def test_packed_lengths_match_torch(kind, num_layers, bidirectional, batch_first):
    module = make_module(kind, num_layers, bidirectional, batch_first, seed=2)
    model, params = from_torch(module)
    x = make_inputs(batch_first, seed=3)
    with torch.no_grad():
        expected, state = torch_packed(module, x, LENGTHS)
    carry, ys = unroll(model, params, jnp.asarray(to_np(x)), seq_lengths=jnp.array(LENGTHS))
    assert max_diff(ys, to_np(expected)) <= TOL
    ys_bt = np.asarray(ys) if batch_first else np.swapaxes(ys, 0, 1)
    for b, n in enumerate(LENGTHS):
        assert (ys_bt[b, n:] == 0).all()  # zero past each length, like the padding
    assert_states_match(model, carry, state)


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn_relu"])
def test_bias_false_gives_zero_biases(kind):
    module = make_module(kind, num_layers=2, bias=False)
    model, params = from_torch(module)
    for path, value in jax.tree_util.tree_leaves_with_path(params):
        if path[-1].key in ("b", "b_hn"):
            assert (np.asarray(value) == 0).all()
    x = make_inputs(False)
    with torch.no_grad():
        expected, _ = module(x)
    _, ys = unroll(model, params, jnp.asarray(to_np(x)))
    assert max_diff(ys, to_np(expected)) <= TOL


def test_gru_bias_split():
    """b = b_ih + [b_hh_r, b_hh_z, 0] and b_hn = b_hh_n, exactly as documented."""
    module = make_module("gru")
    _, (p,) = from_torch(module)
    b_ih, b_hh = to_np(module.bias_ih_l0), to_np(module.bias_hh_l0)
    np.testing.assert_allclose(p["b"][:2 * H], b_ih[:2 * H] + b_hh[:2 * H], rtol=0, atol=1e-7)
    np.testing.assert_array_equal(p["b"][2 * H:], b_ih[2 * H:])
    np.testing.assert_array_equal(p["b_hn"], b_hh[2 * H:])
    np.testing.assert_array_equal(p["W_x"], to_np(module.weight_ih_l0).T)
    np.testing.assert_array_equal(p["W_h"], to_np(module.weight_hh_l0).T)


@pytest.mark.parametrize("kind,num_layers,bidirectional,batch_first", [
    ("rnn_tanh", 1, False, True), ("rnn_relu", 2, True, False),
    ("lstm", 2, True, True), ("gru", 2, False, False)])
def test_round_trip_from_torch_to_torch(kind, num_layers, bidirectional, batch_first):
    module = make_module(kind, num_layers, bidirectional, batch_first, seed=4)
    back = to_torch(*from_torch(module)).eval()
    assert type(back) is type(module)
    for attr in ("input_size", "hidden_size", "num_layers", "bidirectional", "batch_first"):
        assert getattr(back, attr) == getattr(module, attr)
    if kind.startswith("rnn"):
        assert back.nonlinearity == module.nonlinearity
    x = make_inputs(batch_first, seed=5)
    with torch.no_grad():
        expected, state = module(x)
        got, got_state = back(x)
    assert max_diff(to_np(got), to_np(expected)) <= TOL
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(got_state)):
        assert max_diff(to_np(a), to_np(b)) <= TOL


ROUND_TRIP_MODELS = {
    "tanh_cell": rj.SimpleRNN(H),
    "irnn_cell": rj.IRNN(H),
    "gru_bi": rj.Bidirectional(rj.GRU(H, reset_after=True), rj.GRU(H, reset_after=True)),
    "relu_stack_tm": rj.Stacked((rj.SimpleRNN(H, activation="relu"),) * 2, time_major=True),
    "lstm_bi_stack": rj.Stacked((rj.Bidirectional(rj.LSTM(H), rj.LSTM(H)),) * 2),
    "gru_stack_bf": rj.Stacked((rj.GRU(H, reset_after=True),) * 2, time_major=False),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP_MODELS))
def test_round_trip_to_torch_from_torch(name):
    model = ROUND_TRIP_MODELS[name]
    params = random_params(model, I, seed=1)
    module = to_torch(model, params).eval()
    time_major = bool(getattr(model, "time_major", None))
    assert module.batch_first is (not time_major)
    back_model, back_params = from_torch(module)

    # b_hh is zero and b_ih = b, so the params come back exactly.
    expected_params = params if isinstance(model, rj.Stacked) else (params,)
    equal = jax.tree_util.tree_map(lambda a, b: np.array_equal(a, b),
                                   back_params, expected_params)
    assert all(jax.tree_util.tree_leaves(equal))
    layers = model.layers if isinstance(model, rj.Stacked) else (model,)
    for layer, back in zip(layers, back_model.layers):
        assert isinstance(back, type(layer)) or isinstance(layer, type(back))  # IRNN -> SimpleRNN

    xs = jnp.asarray(np.random.default_rng(2).standard_normal(
        (T, B, I) if time_major else (B, T, I)), jnp.float32)
    lengths = jnp.array(LENGTHS)
    _, ys = unroll(model, params, xs, seq_lengths=lengths, time_major=time_major)
    _, ys_back = unroll(back_model, back_params, xs, seq_lengths=lengths)
    assert max_diff(ys_back, ys) <= TOL
    with torch.no_grad():
        out, _ = torch_packed(module, torch.from_numpy(np.array(xs)), LENGTHS)
    assert max_diff(to_np(out), ys) <= TOL


def test_dropout_carried_over_and_off_without_key():
    module = make_module("lstm", num_layers=2, dropout=0.3)
    model, params = from_torch(module)
    assert model.dropout == pytest.approx(0.3)
    x = make_inputs(False)
    with torch.no_grad():
        expected, _ = module(x)  # eval mode: no dropout
    _, ys = unroll(model, params, jnp.asarray(to_np(x)))
    assert max_diff(ys, to_np(expected)) <= TOL
    assert to_torch(model, params).dropout == pytest.approx(0.3)


def test_float64_module_keeps_float64():
    module = make_module("gru", num_layers=2, bidirectional=True).double()
    x = make_inputs(False, dtype=torch.float64)
    with torch.no_grad():
        expected, _ = module(x)
    with jax.enable_x64(True):
        model, params = from_torch(module)
        assert all(p.dtype == jnp.float64 for p in jax.tree_util.tree_leaves(params))
        _, ys = unroll(model, params, jnp.asarray(to_np(x)))
        assert ys.dtype == jnp.float64
        assert max_diff(ys, to_np(expected)) <= 1e-12
        assert to_torch(model, params).weight_ih_l0.dtype == torch.float64


def test_input_gradients_match_torch_lstm():
    module = make_module("lstm", bidirectional=True, batch_first=True, seed=6)
    model, params = from_torch(module)
    x = make_inputs(True, seed=7).requires_grad_(True)
    out, _ = torch_packed(module, x, LENGTHS)
    out.sum().backward()

    def loss(xs):
        return unroll(model, params, xs, seq_lengths=jnp.array(LENGTHS))[1].sum()

    grad = jax.grad(loss)(jnp.asarray(to_np(x)))
    assert max_diff(grad, to_np(x.grad)) <= TOL
    assert (np.asarray(grad)[2, 1:] == 0).all()  # past its length an input has no effect


# -- errors -------------------------------------------------------------------------

@pytest.mark.parametrize("module,match", [
    (lambda: torch.nn.LSTM(I, H, proj_size=2), "proj_size"),
    (lambda: torch.nn.Linear(I, H), "torch.nn.RNN"),
    (lambda: torch.nn.LSTMCell(I, H), "LSTMCell"),
    (lambda: "not a module", "str"),
])
def test_from_torch_rejects_unsupported(module, match):
    with pytest.raises(ValueError, match=match):
        from_torch(module())


GRU_T = rj.GRU(H, reset_after=True)


@pytest.mark.parametrize("model,match", [
    (rj.GRU(H), "reset_after=False"),
    (rj.PeepholeLSTM(H), "PeepholeLSTM"),
    (rj.ClockworkRNN(H + 1, periods=(1, 2, 4)), "ClockworkRNN"),
    (rj.SimpleRNN(H, activation="identity"), "activation"),
    (rj.SimpleRNN(H, activation=jax.nn.gelu), "activation"),
    (rj.Stacked((rj.LSTM(H), rj.LSTM(H + 1))), "hidden size"),
    (rj.Stacked((rj.Bidirectional(GRU_T, GRU_T), GRU_T)), "bidirectional"),
    (rj.Stacked((rj.LSTM(H), GRU_T)), "same cell type"),
    (rj.Bidirectional(rj.LSTM(H), GRU_T), "same cell type"),
    (rj.Bidirectional(GRU_T, GRU_T, merge="sum"), "merge"),
    (rj.Stacked((rj.Stacked((GRU_T,)),)), "Stacked"),
])
def test_to_torch_rejects_unrepresentable(model, match):
    params = random_params(model, I, seed=0)
    with pytest.raises(ValueError, match=match):
        to_torch(model, params)


def test_to_torch_rejects_bad_params():
    cell = rj.LSTM(H)
    params = random_params(cell, I, seed=0)
    with pytest.raises(ValueError, match="W_h"):
        to_torch(cell, {**params, "W_h": params["W_h"][:, :-1]})
    with pytest.raises(ValueError, match="b_hn"):
        gru = rj.GRU(H, reset_after=True)
        p = random_params(gru, I, seed=0)
        del p["b_hn"]
        to_torch(gru, p)
    stack = rj.Stacked((cell, cell))
    with pytest.raises(ValueError, match="one entry per layer"):
        to_torch(stack, (params,))
