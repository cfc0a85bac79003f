"""What the memory-task studies share (compare_cells, echo, double_dependency,
copy_memory, adding, linear_recurrences): each memory task as a training problem, and
one training run of a cell on a problem: several seeds at once, test curves, the
gradient-flow probe before and after training.

A `Problem` couples a task's data (a generator of `rnnjax.tasks`) with its loss, its
test metrics and its reference levels (what a model without memory scores, and the
best possible). `run` trains one cell type on one problem; `run_all` runs a list of
such units, each in its own checkpointed folder, so that a rerun of a study resumes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import multiprocessing
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from experiments import common
from rnnjax import probe
from rnnjax.models import cell_with_head
from rnnjax.tasks import (
    ADDING_BASELINE_MSE,
    adding_batch,
    copy_memory_baseline,
    copy_memory_batch,
    delayed_xor_batch,
    double_dependency_batch,
    echo_batch,
    reference_cross_entropies,
)
from rnnjax.tasks.copy_memory import COPY_LENGTH, LONG_COPY, NUM_CLASSES
from rnnjax.tasks.double_dependency import SECOND_LAG
from rnnjax.train import Flossing, SubParams, tbptt_loss

#: a run "learned" a task whose metric is a loss when it ends below this fraction of
#: the memoryless baseline
LEARNED_FRACTION = 0.1
#: a run learned echo when its accuracy on the echoed steps is at least this
ECHO_LEARNED_ACCURACY = 0.95
#: a run learned a double dependency when its loss is within this of the level
LEVEL_TOLERANCE = 0.005
#: held-out sequences for the test metrics, and sequences for the probe
TEST_SIZE, PROBE_SIZE = 1000, 32
#: the training sequences of a batch (its first ones) that flossing's exponents follow
FLOSS_SEQUENCES = 16


@dataclasses.dataclass(frozen=True)
class Problem:
    """A memory task as the studies train it: data, loss, metrics and reference levels.

    `batch(key, size) -> (xs [B, T, input_size], targets)`. Per-step problems have int
    targets [B, T] scored with the cross-entropy from step `first_scored` on; the
    adding problem (`last_only`) reads the final state and scores the MSE.
    `metric` names the headline test metric (`loss`, `mse` or `accuracy`);
    `baseline` is what a model without memory scores, `optimum` the best expected
    score; `span` the most steps the memory must bridge, from an input to the output
    that needs it.
    """

    label: str
    input_size: int
    outputs: int
    batch: Callable
    metric: str
    baseline: float
    optimum: float
    first_scored: int = 0
    last_only: bool = False
    recall_steps: int = 0          # copy: the last steps, whose accuracy is `recall`

    span: int = 0                  # most steps from an input to the output that needs it

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    @property
    def threshold(self) -> float:
        """The metric's level for 'learned': accuracy at least this; a loss at most
        this (the level's tolerance above the double dependency's optimum), or below it
        (a fraction of the memoryless baseline)."""
        if self.metric == "accuracy":
            return ECHO_LEARNED_ACCURACY
        if self.optimum > 0:
            return self.optimum + LEVEL_TOLERANCE
        return LEARNED_FRACTION * self.baseline

    def learned(self, value: float) -> bool:
        if self.higher_is_better or self.optimum > 0:
            return bool(value >= self.threshold if self.higher_is_better
                        else value <= self.threshold)
        return bool(value < self.threshold)

    def criterion(self) -> str:
        """'learned' in words, for reports."""
        if self.metric == "accuracy":
            return f"accuracy >= {self.threshold}"
        if self.optimum > 0:
            return f"loss <= {self.threshold:.4f} (optimum + {LEVEL_TOLERANCE})"
        return f"{self.metric} < {LEARNED_FRACTION} x baseline"

    # -- losses -----------------------------------------------------------------------
    def weights(self, steps: int):
        """[T]: 1 on the scored steps, 0 before `first_scored`."""
        return (jnp.arange(steps) >= self.first_scored).astype(jnp.float32)

    def loss(self, out, targets):
        """The training loss of readouts `out` [B, T, outputs] ([B, 1, 1] last_only)."""
        if self.last_only:
            return jnp.mean((out[:, -1, 0] - targets) ** 2)
        weights = jnp.broadcast_to(self.weights(targets.shape[1]), targets.shape)
        return _weighted_cross_entropy(out, targets, weights, jnp.sum(weights))

    def metrics(self, out, targets) -> dict:
        """The test metrics: `loss` (or `mse`), and `accuracy` and `recall` where defined."""
        if self.last_only:
            return {"mse": self.loss(out, targets)}
        weights = self.weights(targets.shape[1])
        correct = (jnp.argmax(out, -1) == targets).astype(jnp.float32)
        result = {"loss": self.loss(out, targets),
                  "accuracy": jnp.sum(correct * weights) / (jnp.sum(weights) * len(targets))}
        if self.recall_steps:
            result["recall"] = jnp.mean(correct[:, -self.recall_steps:])
        return result

    def final_step_loss(self, out, targets):
        """The loss at the last step only: the probe's loss, whose gradient dL/dh_k
        is the signal sent back T-1-k steps."""
        if self.last_only:
            return self.loss(out, targets)
        return jnp.mean(_cross_entropy(out[:, -1], targets[:, -1]))


def _cross_entropy(logits, labels):
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], -1)[..., 0]


def _weighted_cross_entropy(logits, labels, weights, total):
    """sum(weights * cross-entropy) / total: a chunk's share of a weighted mean."""
    return jnp.sum(weights * _cross_entropy(logits, labels)) / total


# -- the problems -----------------------------------------------------------------------
def adding(steps: int) -> Problem:
    """The adding problem (Hochreiter and Schmidhuber 1997) on sequences of `steps`."""
    return Problem(f"adding T={steps}", 2, 1, functools.partial(adding_batch, steps=steps),
                "mse", ADDING_BASELINE_MSE, 0.0, last_only=True, span=steps - 1)


def copy_memory(steps: int, copy_length: int = COPY_LENGTH) -> Problem:
    """Copy memory (Hochreiter and Schmidhuber 1997; Arjovsky, Shah and Bengio 2016):
    recall `copy_length` symbols after T = `steps` steps."""
    label = (f"copy T={steps}" if copy_length == COPY_LENGTH
             else f"copy {copy_length} symbol{'s' * (copy_length > 1)}, T={steps}")
    return Problem(label, NUM_CLASSES, NUM_CLASSES,
                   functools.partial(copy_memory_batch, steps=steps, copy_length=copy_length),
                   "loss", copy_memory_baseline(steps, copy_length), 0.0,
                   recall_steps=copy_length, span=steps + copy_length)


def long_copy_memory() -> Problem:
    """Copy memory of `LONG_COPY`: 40 symbols recalled after 20 steps (100 steps in all)."""
    return copy_memory(**LONG_COPY)


def echo(delay: int, scored: int = 50) -> Problem:
    """Echo at delay k, y_t = x_{t-k}, on sequences of k + `scored` steps (the scored
    ones)."""
    return Problem(f"echo k={delay}", 1, 2,
                functools.partial(echo_batch, steps=delay + scored, delay=delay),
                "accuracy", 0.5, 1.0, first_scored=delay, span=delay)


def delayed_xor(delay: int, scored: int = 50) -> Problem:
    """Delayed XOR at delay d, y_t = x_(t-d) XOR x_(t-d-1), on sequences of d + 1 +
    `scored` steps (the scored ones)."""
    return Problem(f"delayed XOR d={delay}", 1, 2,
                   functools.partial(delayed_xor_batch, steps=delay + 1 + scored, delay=delay),
                   "accuracy", 0.5, 1.0, first_scored=delay + 1, span=delay + 1)


def double_dependency(steps: int) -> Problem:
    """A target that depends on two past inputs (see `rnnjax.tasks.double_dependency`);
    learned at the level of both dependencies."""
    levels = reference_cross_entropies()
    return Problem("double dependency", 1, 2,
                functools.partial(double_dependency_batch, steps=steps),
                "loss", levels["none"], levels["both"], first_scored=SECOND_LAG,
                span=SECOND_LAG)


def double_dependency_level(loss: float) -> str:
    """Which dependencies a loss shows learned: 'both', 't-3' or 'none'."""
    levels = reference_cross_entropies()
    if loss <= levels["both"] + LEVEL_TOLERANCE:
        return "both"
    if loss <= levels["first"] + LEVEL_TOLERANCE:
        return "t-3"
    return "none"


# -- one run ----------------------------------------------------------------------------
def run(problem: Problem, cell: str, args, run_dir: Path, *, truncation: int | None = None,
        cell_options: dict | None = None, flossing: dict | None = None, lyapunov: int = 0,
        desc: str = "") -> dict:
    """Train `args.seeds` models of cell type `cell` on `problem` (one compiled step,
    vmapped over seeds); `truncation` k trains with TBPTT(k, k) instead of full BPTT;
    `flossing` (the keyword arguments of `rnnjax.train.Flossing` but the cell and
    `select`: k, weight, every, before) adds gradient flossing on the training inputs;
    `lyapunov` k > 0 adds the k largest Lyapunov exponents on the probe's sequences at
    initialisation and after training (`lyapunov_init`, `lyapunov_trained`: [seeds, k]).

    Returns per-seed results: the headline metric's test curve, every final test
    metric, learned or not, and the gradient flow at initialisation and after
    training (||dL/dh_k|| of the last step's loss, its fitted decay rate per step and
    half-life).
    """
    options = cell_options or {}
    model = cell_with_head(cell, args.hidden, problem.input_size, problem.outputs, **options)

    def readouts(params, xs):
        if problem.last_only:
            return model.last(params, xs)[:, None]
        return model.outputs(params, xs)

    def loss_fn(params, batch, key):
        xs, targets = batch
        if truncation is None:
            return problem.loss(readouts(params, xs), targets), {}
        weights = jnp.broadcast_to(problem.weights(targets.shape[1]), targets.shape)
        total = jnp.sum(weights)
        chunk_loss = lambda p, ys, t: _weighted_cross_entropy(
            model.head(p["head"], ys), t[0], t[1], total)
        return tbptt_loss(SubParams(model.cell, "cell"), params, xs, (targets, weights),
                          chunk_loss, truncation, truncation), {}

    test_xs, test_y = problem.batch(jax.random.key(10_000), TEST_SIZE)
    probe_xs, probe_y = problem.batch(jax.random.key(20_000), PROBE_SIZE)
    test = jax.jit(jax.vmap(lambda p: problem.metrics(readouts(p, test_xs), test_y)))
    flow = jax.jit(jax.vmap(lambda p: model.grad_flow(
        p, probe_xs, lambda out: problem.final_step_loss(
            out[:, -1:] if problem.last_only else out, probe_y))))
    lr_decay = getattr(args, "lr_decay", 1.0)
    trained = common.train(
        run_dir, model.init, loss_fn,
        lambda i: problem.batch(jax.random.fold_in(jax.random.key(1), i), args.batch), args,
        hyper={"learning_rate": args.lr}, clip=args.clip,
        optimizer=optax.adam if lr_decay == 1 else common.cosine_adam(args.steps, lr_decay),
        flossing=None if flossing is None else Flossing(
            model.cell, lambda params, batch: (params["cell"], batch[0][:FLOSS_SEQUENCES]),
            **flossing),
        evaluate=lambda p: {"test_" + problem.metric: test(p)[problem.metric]},
        eval_every=common.eval_interval(args),
        settings={"task": problem.label, "cell": cell, "options": options,
                  "truncation": truncation, "hidden": args.hidden, "batch": args.batch,
                  "lr_decay": lr_decay, "flossing": flossing},
        desc=desc or f"{problem.label}, {cell}")
    steps, values = common.series(trained.history, "test_" + problem.metric)
    if trained.params is None:   # diverged: every final metric is NaN
        final = {k: [math.nan] * args.seeds for k in jax.eval_shape(test, trained.initial)}
    else:
        final = {k: np.asarray(v).tolist() for k, v in test(trained.params).items()}
    norms_init = np.asarray(flow(trained.initial))
    norms_trained = common.on_trained(flow, trained)
    fits_init = [probe.decay_fit(n) for n in norms_init]
    fits_trained = [probe.decay_fit(n) for n in norms_trained]
    spectra = {}
    if lyapunov:
        spectrum = jax.jit(jax.vmap(lambda p: probe.lyapunov_spectrum(
            model.cell, p["cell"], probe_xs, k=lyapunov)))
        spectra = {"lyapunov_init": np.asarray(spectrum(trained.initial)).tolist(),
                   "lyapunov_trained": common.on_trained(spectrum, trained).tolist()}
    return {
        "task": problem.label, "cell": cell, "cell_class": common.cell_label(cell),
        "options": options,
        "truncation": truncation, "flossing": flossing, "metric": problem.metric,
        "baseline": problem.baseline,
        "optimum": problem.optimum, "threshold": problem.threshold, "span": problem.span,
        "curve": [*zip(steps, values.tolist()), (args.steps, final[problem.metric])],
        "final": final,
        "learned": [problem.learned(v) for v in final[problem.metric]],
        "nonfinite": trained.params is None,
        "grad_rate_init": [f.rate for f in fits_init],
        "half_life_init": [f.half_life for f in fits_init],
        "grad_rate_trained": [f.rate for f in fits_trained],
        "half_life_trained": [f.half_life for f in fits_trained],
        "grad_norms_init": norms_init.tolist(),         # [seeds, T], k = 0 .. T-1
        "grad_norms_trained": norms_trained.tolist(),
        "seconds": common.train_seconds(trained.history),
        **spectra,
    }


def run_all(units: list[tuple[str, Problem, str, dict]], args) -> dict:
    """Run each `(key, problem, cell, run options)` in its folder `args.out / common.folder(key)`,
    in `args.workers` processes; returns key -> result, in the order of `units`.

    Small runs spend most of their time compiling, which XLA does on one core: a
    second process keeps a second core busy.
    """
    jobs = [(problem, cell, args, args.out / common.folder(key)) for key, problem, cell, _ in units]
    if args.workers <= 1:
        done = [run(*job, **options) for job, (*_, options) in
                zip(tqdm(jobs, desc="runs"), units)]
    else:
        context = multiprocessing.get_context("spawn")   # fork and jax do not mix
        with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context) as pool:
            futures = [pool.submit(run, *job, **options)
                       for job, (*_, options) in zip(jobs, units)]
            for _ in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                          desc="runs"):
                pass
            done = [f.result() for f in futures]
    return {key: result for (key, *_), result in zip(units, done)}


def add_arguments(parser) -> None:
    """The flags every memory-task study has besides the shared ones."""
    parser.add_argument("--workers", type=common.positive_int,
                        help="runs at once, each in its own process (compiling uses one core)")


# -- reporting ----------------------------------------------------------------------------
def learned_count(result: dict) -> str:
    return f"{sum(result['learned'])}/{len(result['learned'])}"


def rate(values) -> str:
    """The median over seeds of fitted decay rates, per step."""
    return f"{np.median(np.asarray(values, np.float64)):.3f}"


def half_life(values) -> str:
    v = np.median(np.asarray(values, np.float64))
    return "inf" if not math.isfinite(v) else f"{v:.3g}"


def detail_row(result: dict) -> list:
    """Cell, metric (median, range), learned, decay rate and half-life before/after."""
    return [result["cell_class"], common.spread(result["final"][result["metric"]]),
            learned_count(result),
            rate(result["grad_rate_init"]), half_life(result["half_life_init"]),
            rate(result["grad_rate_trained"]),
            half_life(result["half_life_trained"])]


DETAIL_HEADER = ["cell", "metric: median (range)", "learned", "rate, init",
                 "half-life, init", "rate, trained", "half-life, trained"]

GRADIENT_NOTE = (
    "Gradient flow: ||dL/dh_k|| of the loss at the last step, over k; rate: the fitted "
    "slope of ln ||dL/dh_k|| against the distance T-1-k, per step (median over seeds; "
    "negative: vanishing); half-life: steps for the gradient to halve (inf: no decay).")


def plot_curves(ax, results: list[dict], problem: Problem) -> None:
    """Test metric against training step, one band per result, with the reference lines."""
    for i, r in enumerate(results):
        common.band(ax, [s for s, _ in r["curve"]], [m for _, m in r["curve"]], f"C{i}",
                    r["cell_class"] + (f", TBPTT {r['truncation']}" if r["truncation"] else ""))
    ax.axhline(problem.baseline, color="k", ls="--", lw=1, label="no memory")
    if problem.optimum > 0 or problem.higher_is_better:
        ax.axhline(problem.optimum, color="k", ls=":", lw=1, label="optimum")
    if not problem.higher_is_better and problem.optimum == 0:
        ax.set_yscale("log")
    ax.set(xlabel="training step", ylabel=f"test {problem.metric}", title=problem.label)
    ax.grid(alpha=0.3)


#: the line styles of the gradient flow at initialisation and after training
FLOW_STYLES = {"grad_norms_init": ("--", "at initialisation"),
               "grad_norms_trained": ("-", "after training")}


def plot_grad_flow(ax, results: list[dict], title: str) -> None:
    """log10 ||dL/dh_k|| relative to the last step against the distance, at
    initialisation (dashed) and after training (solid); the legend names both."""
    for i, r in enumerate(results):
        for key, (style, _) in FLOW_STYLES.items():
            ax.plot(np.nanmean(common.log10_relative(r[key]), axis=0), style, color=f"C{i}",
                    label=r["cell_class"] if key == "grad_norms_trained" else None)
    for style, when in FLOW_STYLES.values():   # legend entries for the two styles
        ax.plot([], [], style, color="k", label=when)
    ax.set(xlabel="distance T-1-k", ylabel="log10 ||dL/dh_k|| / ||dL/dh_T-1||", title=title)
    ax.grid(alpha=0.3)


def plot_problems(results: dict, problems: list[Problem], cells: list[str], out: Path) -> None:
    """training.png (test metric against step) and grad_flow.png, one panel per problem,
    one line per cell; results keyed by '<problem label>/<cell>'."""
    plt = common.pyplot()
    n = len(problems)
    for file in ("training.png", "grad_flow.png"):
        fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 4), squeeze=False)
        for ax, problem in zip(axes[0], problems):
            runs = [results[f"{problem.label}/{cell}"] for cell in cells]
            if file == "training.png":
                plot_curves(ax, runs, problem)
            else:
                plot_grad_flow(ax, runs, problem.label)
        axes[0, 0].legend(fontsize=8)
        common.save_figure(fig, out / file)
