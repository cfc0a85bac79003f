"""Character-level language models of Shakespeare: LSTM vs GRU vs tanh RNN on held-out plays.

The three cell types are compared in nats and bits per character on whole plays that
training never sees.

Each model is an embedding, a stack of recurrent layers (2 by default) and a Dense
readout over the characters. It trains with truncated BPTT on B parallel streams
through the training plays: stream b starts at 1/B-th of the text, each batch holds
the next `--seq-len` characters of every stream, and the carry of one batch starts
the next (it is reset to zeros when the streams wrap around to their starts). The
carry is part of the training state, so a checkpoint resumes exactly. Adam with a
cosine decay of the learning rate to a tenth, and global-norm clipping.

Held-out text is read the same way, statefully: `--eval-streams` streams through the
validation (or test) plays in chunks of `--eval-chunk` characters, the carry handed
on between chunks. The validation plays are scored during training; the test plays
once at the end. Samples of `--sample-len` characters at each `--temperatures` value
continue `--prompt` with a fixed key.

    python -m experiments.char_lm --quick        # one to two minutes on a 2-core CPU
    python -m experiments.char_lm --minutes 30   # 30 minutes of training per cell
    python -m experiments.char_lm --cells lstm   # 4500 steps, about 30 minutes on 2 cores

`--minutes M` times the compiled step and one validation on the machine at the start
of each cell's run and trains as many steps as fit M minutes (a resumed run keeps
the number it chose); without it every cell trains `--steps` steps.

Writes results/char_lm/{results.json, report.md, bits_per_char.png}; each cell's run
checkpoints to its own folder (results/char_lm/<cell>/), so a rerun of the same
command resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from experiments import common
from rnnjax import decode
from rnnjax.cells import make
from rnnjax.models import CharLM, char_lm, param_count
from rnnjax.tasks.shakespeare import HELD_OUT, CharVocab, split_plays
from rnnjax.train import (
    TrainState,
    bits_per_char,
    fit,
    make_train_step,
    read_metrics,
    softmax_cross_entropy,
    sweep_states,
    sweep_step,
)

NAME = "char_lm"
DEFAULTS = dict(cells=["lstm", "gru", "tanh"], seeds=1, steps=4500, minutes=None, hidden=256,
                layers=2, embed=64, batch=32, seq_len=100, lr=2e-3, clip=1.0, eval_every=500,
                checkpoint_every=500, eval_streams=32, eval_chunk=500, min_count=10,
                prompt="JULIET:\n", sample_len=400, temperatures=[0.5, 1.0])
QUICK = dict(steps=300, hidden=64, embed=16, batch=16, seq_len=50, lr=5e-3,
             eval_every=100, checkpoint_every=300, eval_streams=64, eval_chunk=400,
             sample_len=200)

#: nanoGPT's character-level Shakespeare (Karpathy, github.com/karpathy/nanoGPT, the
#: README's figures): validation loss in nats per character on a random 90/10 split
#: of the 1 MB "tiny shakespeare" text
ANCHOR_NATS = {"on a GPU (a 6-layer, 384-wide transformer)": 1.47,
               "with its CPU configuration (4 layers, 128 wide, 2000 iterations)": 1.88}
#: timed steps when `--minutes` sets the number of steps
CALIBRATION_STEPS = 10
#: the full-size goal: the best cell's test nats per character at most this
GOAL_NATS = 1.6


def add_arguments(parser) -> None:
    parser.add_argument("--layers", type=common.positive_int, help="recurrent layers in the stack")
    parser.add_argument("--embed", type=common.positive_int, help="embedding size of a character")
    parser.add_argument("--seq-len", dest="seq_len", type=common.positive_int,
                        help="characters per stream per batch (the truncation length)")
    parser.add_argument("--minutes", type=common.positive_float,
                        help="training minutes per cell, validation included: the steps "
                        "are set from the timed step on this machine (overrides --steps)")
    parser.add_argument("--eval-streams", dest="eval_streams", type=common.positive_int,
                        help="parallel streams through the held-out text")
    parser.add_argument("--eval-chunk", dest="eval_chunk", type=common.positive_int,
                        help="characters per stream per evaluation chunk")
    parser.add_argument("--min-count", dest="min_count", type=common.positive_int,
                        help="characters seen fewer times in training map to unknown")
    parser.add_argument("--prompt", help="the text samples continue")
    parser.add_argument("--sample-len", dest="sample_len", type=common.positive_int,
                        help="characters per sample")
    parser.add_argument("--temperatures", type=lambda s: [float(x) for x in s.split(",")],
                        help="sampling temperatures, comma-separated")


# -- the data -------------------------------------------------------------------------
class Data(NamedTuple):
    vocab: CharVocab
    train: np.ndarray          # int32 [batch, L]: the training streams
    validation: np.ndarray     # int32 [eval_streams, n * eval_chunk + 1]
    test: np.ndarray
    chars: dict                # split -> characters in its text


def streams(ids: np.ndarray, count: int, multiple: int = 1) -> np.ndarray:
    """ids cut into `count` consecutive streams [count, n * multiple + 1] (the tail
    that does not fill a stream is dropped): a model reads every stream from its
    first character to its last, scoring all but the first."""
    length = (len(ids) // count - 1) // multiple * multiple + 1
    if length < multiple + 1:
        raise ValueError(f"the text ({len(ids)} characters) is too short for {count} "
                         f"streams of {multiple} characters or more")
    return ids[:count * length].reshape(count, length)


def load_data(args) -> Data:
    texts = {split: "\n\n".join(plays.values()) for split, plays in split_plays().items()}
    vocab = CharVocab.from_text(texts["train"], args.min_count)
    encoded = {split: vocab.encode(text) for split, text in texts.items()}
    return Data(vocab, streams(encoded["train"], args.batch, args.seq_len),
                streams(encoded["validation"], args.eval_streams, args.eval_chunk),
                streams(encoded["test"], args.eval_streams, args.eval_chunk),
                {split: len(text) for split, text in texts.items()})


def batch_fn(train: np.ndarray, seq_len: int, lr: float, steps: int):
    """`batch(step) -> (tokens [B, seq_len + 1], reset, learning rate)`: the next
    characters of every stream, whether the streams start over (the carry then
    restarts at zeros), and the step's learning rate, `lr` decayed along a cosine to
    a tenth over `steps` (in the batch, so that the compiled step does not depend on
    the number of steps)."""
    per_epoch = (train.shape[1] - 1) // seq_len
    schedule = optax.cosine_decay_schedule(lr, steps, alpha=0.1)
    data = jnp.asarray(train)

    @jax.jit   # the text is an argument, not a constant folded into the program
    def cut(data, step):
        position = step % per_epoch
        tokens = lax.dynamic_slice_in_dim(data, position * seq_len, seq_len + 1, axis=1)
        return tokens, position == 0, schedule(step)

    return lambda step: cut(data, step)


def held_out_scorer(model: CharLM, chunk: int):
    """`score(params, data) -> [models]`: the mean nats per character of each model
    (params with a leading models axis) on held-out streams, a NumPy array
    [S, n * chunk + 1] (each chunk goes to the device as it is read), read
    statefully chunk by chunk (every character but each stream's first). One compiled
    chunk serves every text and length."""
    def one_model(params, carry, tokens):
        carry, logits = model.logits(params, carry, tokens[:, :-1])
        return carry, softmax_cross_entropy(logits, tokens[:, 1:])

    read = jax.jit(jax.vmap(one_model, in_axes=(0, 0, None)))

    def score(params, data):
        models = jax.tree_util.tree_leaves(params)[0].shape[0]
        carry = jax.vmap(lambda _: model.initial_carry(data.shape[0]))(jnp.arange(models))
        chunks = (data.shape[1] - 1) // chunk
        total = 0.0
        for j in range(chunks):
            carry, nats = read(params, carry, data[:, j * chunk:(j + 1) * chunk + 1])
            total = total + nats
        return total / chunks

    return score


# -- training -------------------------------------------------------------------------
class StreamState(NamedTuple):
    """A `TrainState` and the carry that the next batch starts from."""
    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array
    carry: Any


def stream_step(model: CharLM, optimizer, clip: float):
    """One model's training step on `(tokens, reset, learning rate)` that hands the
    carry on; `optimizer` is built with `optax.inject_hyperparams`."""
    def loss_fn(params, batch, key):
        tokens, carry = batch
        carry, logits = model.logits(params, carry, tokens[:, :-1])
        return softmax_cross_entropy(logits, tokens[:, 1:]), {"carry": carry}

    inner = make_train_step(loss_fn, optimizer, clip_norm=clip)

    def step(state: StreamState, batch):
        tokens, reset, learning_rate = batch
        carry = jax.tree_util.tree_map(lambda c: jnp.where(reset, jnp.zeros_like(c), c),
                                       state.carry)
        opt_state = state.opt_state._replace(
            hyperparams={**state.opt_state.hyperparams, "learning_rate": learning_rate})
        new, metrics = inner(TrainState(state.params, opt_state, state.step, state.key),
                             (tokens, lax.stop_gradient(carry)))
        carry = lax.stop_gradient(metrics.pop("carry"))
        return StreamState(*new, carry), metrics

    return step


def steps_for(minutes: float, step, state, batch, evaluate, eval_every: int) -> int:
    """The training steps that fit `minutes` of wall time, validation included: the
    compiled step and one validation are timed (after compiling) on this machine
    now; a multiple of `eval_every`, at least one."""
    jax.block_until_ready(step(state, batch))          # compiles
    jax.block_until_ready(evaluate(state.params))
    start = time.perf_counter()
    for _ in range(CALIBRATION_STEPS):
        jax.block_until_ready(step(state, batch))
    per_step = (time.perf_counter() - start) / CALIBRATION_STEPS
    start = time.perf_counter()
    jax.block_until_ready(evaluate(state.params))
    per_eval = time.perf_counter() - start
    steps = int(minutes * 60 / (per_step + per_eval / eval_every))
    return max(eval_every, steps // eval_every * eval_every)


def train_cell(cell: str, data: Data, args) -> dict:
    """Train `args.seeds` models of one cell type at once (vmapped), validation scored
    every `eval_every` steps; then the final validation and test scores and samples."""
    model = char_lm(cell, vocab_size=data.vocab.size, hidden=args.hidden, embed=args.embed,
                    layers=args.layers)
    run_dir = args.out / cell
    optimizer_fn = optax.inject_hyperparams(optax.adam)
    initial, grid = sweep_states(model.init, optimizer_fn, seeds=list(range(args.seeds)),
                                 hyperparams={"learning_rate": [args.lr]})
    carry = jax.vmap(lambda _: model.initial_carry(args.batch))(jnp.arange(args.seeds))
    state = StreamState(*initial, carry)
    score = held_out_scorer(model, args.eval_chunk)
    evaluate = lambda p: {"validation_nats": score(p, data.validation)}
    step = sweep_step(stream_step(model, optimizer_fn(learning_rate=args.lr), args.clip))

    steps = args.steps
    if args.minutes is not None:
        steps = _saved_steps(run_dir, args.minutes) or steps_for(
            args.minutes, step, state, batch_fn(data.train, args.seq_len, args.lr, 1)(0),
            evaluate, args.eval_every)
    settings = {"cell": cell, "hidden": args.hidden, "layers": args.layers,
                "embed": args.embed, "batch": args.batch, "seq_len": args.seq_len,
                "lr": args.lr, "clip": args.clip, "steps": steps, "minutes": args.minutes,
                "seeds": args.seeds, "min_count": args.min_count, "vocab": data.vocab.chars,
                "eval_every": args.eval_every}
    common.claim_run_dir(run_dir, settings, steps)
    try:
        state, history = fit(step, state, batch_fn(data.train, args.seq_len, args.lr, steps),
                             steps, run_dir, checkpoint_every=args.checkpoint_every,
                             log_every=math.gcd(args.eval_every, max(1, args.eval_every // 10)),
                             evaluate=evaluate, eval_every=args.eval_every,
                             loggers=common.trackers(run_dir, args, settings),
                             desc=f"char_lm {cell}")
        params = state.params
    except FloatingPointError as error:   # reported as diverged, with what was logged
        print(f"char_lm {cell}: {error}", file=sys.stderr)
        history, params = read_metrics(run_dir), None

    nan = [math.nan] * args.seeds
    final = {"validation_nats": nan, "test_nats": nan}
    samples = {}
    if params is not None:
        final = {"validation_nats": np.asarray(score(params, data.validation)).tolist(),
                 "test_nats": np.asarray(score(params, data.test)).tolist()}
        first = jax.tree_util.tree_map(lambda x: x[0], params)
        samples = generate(model, first, data.vocab, args.prompt, args.sample_len,
                           args.temperatures)
    curve_steps, values = common.series(history, "validation_nats")
    train_steps, train_loss = common.series(history, "loss")
    seconds = common.train_seconds(history)
    return {
        "cell": cell, "cell_class": common.cell_label(cell), "grid": grid, "steps": steps,
        "params": param_count(initial.params) // args.seeds,
        "curve": [*zip(curve_steps, values.tolist()), (steps, final["validation_nats"])],
        "train_curve": list(zip(train_steps, train_loss.tolist())),
        "final": {**final, **{k.replace("nats", "bpc"): [float(bits_per_char(v)) for v in vs]
                              for k, vs in final.items()}},
        "nonfinite": params is None, "samples": samples, "seconds": seconds,
    }


def _saved_steps(run_dir: Path, minutes: float) -> int | None:
    """The steps a `--minutes` run in run_dir chose, when it holds a checkpoint of one
    with the same budget: a resumed run keeps its plan."""
    path = run_dir / "settings.json"
    if not path.exists() or not any((run_dir / "checkpoints").glob("[0-9]*")):
        return None
    saved = json.loads(path.read_text())
    return saved.get("steps") if saved.get("minutes") == minutes else None


def generate(model: CharLM, params, vocab: CharVocab, prompt: str, length: int,
             temperatures, seed: int = 0) -> dict[str, str]:
    """temperature -> `prompt` and `length` characters sampled after it with the key
    `seed` (temperature 0: greedy). One compiled sampler serves every temperature."""
    ids = jnp.asarray(vocab.encode(prompt))[None]
    carry = model.initial_carry(1)
    if ids.shape[1] > 1:   # the prompt but its last character, which starts the sampler
        carry, _ = model.logits(params, carry, ids[:, :-1])

    @jax.jit
    def draw(params, carry, temperature):
        return decode.sample(lambda c, t: model.step(params, c, t), carry, ids[:, -1],
                             length, jax.random.key(seed), temperature=temperature)

    return {str(t): prompt + vocab.decode(np.asarray(draw(params, carry, t)[0]))
            for t in temperatures}


# -- reporting ------------------------------------------------------------------------
def plot(results: dict, out: Path) -> None:
    """bits_per_char.png: training loss and validation bits per character against step."""
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, r in enumerate(results.values()):
        for ax, key in zip(axes, ("train_curve", "curve")):
            if r[key]:
                common.band(ax, [s for s, _ in r[key]],
                            bits_per_char(np.asarray([v for _, v in r[key]], np.float64)),
                            f"C{i}", r["cell_class"])
    for ax, title in zip(axes, ("training batches", "validation plays")):
        ax.set(xlabel="training step", ylabel="bits per character", title=title)
        ax.grid(alpha=0.3)
    axes[1].axhline(bits_per_char(GOAL_NATS), color="k", ls="--", lw=1,
                    label=f"goal {GOAL_NATS} nats")
    axes[1].legend(fontsize=8)
    common.save_figure(fig, out / "bits_per_char.png")


def report(results: dict, data: Data, args) -> str:
    rows = []
    for r in results.values():
        scores = [common.spread(r["final"][key], 4) for key in
                  ("validation_nats", "validation_bpc", "test_nats", "test_bpc")]
        rows.append([r["cell_class"], f"{r['params']:,}", *scores, r["steps"],
                     f"{r['seconds'] / 60:.1f}", "diverged" if r["nonfinite"] else "finished"])
    best = min((np.nanmin(r["final"]["test_nats"]) for r in results.values()
                if not r["nonfinite"]), default=math.nan)
    held = "; ".join(f"{split}: {', '.join(names)}" for split, names in HELD_OUT.items())
    anchors = " and ".join(f"{nats} nats per character {where}"
                           for where, nats in ANCHOR_NATS.items())
    lines = [
        "# Character-level language models of Shakespeare", "",
        f"Command: `{common.command_line()}`", "",
        f"{args.layers} layers of {args.hidden} units, embedding {args.embed}, "
        f"{data.vocab.size} symbols (characters seen at least {args.min_count} times in "
        f"training, and one unknown); {args.seeds} seed(s) per cell; batches of "
        f"{args.batch} streams x {args.seq_len} characters (truncated BPTT, the carry "
        f"handed on); Adam lr {args.lr} with cosine decay to a tenth, global-norm clip "
        f"{args.clip}. " + (f"Steps: as many as fit {args.minutes} minutes per cell "
                            "(timed on this machine at the start)." if args.minutes
                            else f"{args.steps} steps per cell."), "",
        f"Held-out whole plays ({held}); training on the other plays, "
        f"{data.chars['train']:,} characters; validation {data.chars['validation']:,}, "
        f"test {data.chars['test']:,}, each read statefully in {args.eval_streams} streams "
        f"in chunks of {args.eval_chunk}.", "",
        common.markdown_table(["cell", "params", "validation nats/char", "validation bits/char",
                               "test nats/char", "test bits/char", "steps", "train minutes",
                               "run"],
                              rows), "",
        f"Best test score {best:.3f} nats per character; the full-size goal is at most "
        f"{GOAL_NATS} ({'met' if best <= GOAL_NATS else 'not met'} in this run).", "",
        f"Anchor: nanoGPT's character-level Shakespeare reaches a validation loss of "
        f"{anchors}, on a random 90/10 split of the 1 MB tiny-shakespeare excerpt, where the "
        "validation text shares the training text's plays, speakers and scenes. The split "
        "here holds out whole plays, which is harder: their names, places and turns of "
        "phrase never appear in training.", "",
        "Plot: bits_per_char.png (training-batch loss and validation bits per character "
        "against step; median, band: min-max over seeds).", "",
        "## Samples", "",
        f"From the first seed's model, {args.sample_len} characters after the prompt "
        f"{args.prompt!r}, key 0.", ""]
    for r in results.values():
        for temperature, text in r["samples"].items():
            lines += [f"### {r['cell_class']}, temperature {temperature}", "", "```",
                      text, "```", ""]
    return "\n".join(lines)


def check_args(args) -> None:
    """Fail on a bad cell name or setting before any work."""
    for name in args.cells:
        make(name, args.hidden)
    if any(t < 0 for t in args.temperatures):
        raise ValueError(f"--temperatures must be >= 0, got {args.temperatures}")
    if not args.prompt:
        raise ValueError("--prompt must hold at least one character")


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check_args)
    data = load_data(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {cell: train_cell(cell, data, args) for cell in args.cells}
    plot(results, args.out)
    payload = {"data": {"held_out": HELD_OUT, "chars": data.chars, "vocab": data.vocab.chars,
                        "vocab_size": data.vocab.size},
               "goal_nats": GOAL_NATS, "anchor_nats": ANCHOR_NATS, "results": results}
    common.write_results(args, payload, report(results, data, args))
    return results


if __name__ == "__main__":
    main()
