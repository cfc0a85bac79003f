"""What the classification studies share (recordings, sequential_digits; tagging uses
`epoch_batches`): training many-to-one classifiers (`rnnjax.models.Classifier`: a
recurrent encoder read at each sequence's own length, a Dense layer to the classes)
with cross-entropy, several seeds at once through `common.train`, and their plot.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from rnnjax.models import classifier
from rnnjax.tasks.labelled import LabelledSequences, channel_stats, standardise
from rnnjax.train import accuracy
from rnnjax.train import softmax_cross_entropy as cross_entropy


def standardised(train: LabelledSequences, *others: LabelledSequences):
    """`train` and `others` with every channel standardised by the training set's mean
    and standard deviation (over valid steps; padding stays zero)."""
    stats = channel_stats(train)
    return [standardise(data, *stats) for data in (train, *others)]


def epoch_batches(data: LabelledSequences, batch: int, seed: int = 1):
    """`batch_fn(step)`: a pure jax function of the step that reads the device-resident
    `data` in epochs, each a fresh permutation (from `seed` and the epoch) cut into
    len(data) // batch batches; returns (xs, lengths, labels)."""
    arrays = tuple(jnp.asarray(a) for a in (data.xs, data.lengths, data.labels))
    size = len(data.labels)
    if not 0 < batch <= size:
        raise ValueError(f"batch must lie in [1, {size}] (the training set's size), got {batch}")
    per_epoch = size // batch

    def batch_fn(step):
        order = jax.random.permutation(jax.random.fold_in(jax.random.key(seed),
                                                          step // per_epoch), size)
        rows = jax.lax.dynamic_slice_in_dim(order, (step % per_epoch) * batch, batch)
        return tuple(a[rows] for a in arrays)

    return batch_fn


def run(train: LabelledSequences, test: LabelledSequences, cell: str, bidirectional: bool,
        args, run_dir: Path, *, label: str, settings: dict | None = None) -> dict:
    """Train `args.seeds` classifiers of cell type `cell` on `train` (standardised
    already) and score them on `test`: the test accuracy every `args.eval_every` steps,
    and at the end the test and training accuracy and loss of every seed. `seconds`:
    training time (first to last logged step); `wall_seconds`: this call, compiling
    included."""
    started = time.perf_counter()
    model = classifier(cell, args.hidden, train.xs.shape[-1], len(train.classes),
                       bidirectional)

    def loss_fn(params, batch, key):
        xs, lengths, labels = batch
        return cross_entropy(model.logits(params, xs, lengths), labels), {}

    def scores(data: LabelledSequences):
        xs, lengths, labels = (jnp.asarray(a) for a in (data.xs, data.lengths, data.labels))

        def one(params):
            logits = model.logits(params, xs, lengths)
            return {"accuracy": accuracy(logits, labels),
                    "loss": cross_entropy(logits, labels)}
        return jax.jit(jax.vmap(one))

    test_scores, train_scores = scores(test), scores(train)
    trained = common.train(
        run_dir, model.init, loss_fn, epoch_batches(train, min(args.batch, len(train.labels))),
        args, hyper={"learning_rate": args.lr}, clip=args.clip,
        evaluate=lambda p: {"test_accuracy": test_scores(p)["accuracy"]},
        eval_every=common.eval_interval(args),
        settings={"data": label, "cell": cell, "bidirectional": bidirectional,
                  "hidden": args.hidden, "batch": args.batch, **(settings or {})},
        desc=f"{label}, {cell}{' bi' if bidirectional else ''}")
    final = {}
    for split, fn in (("test", test_scores), ("train", train_scores)):
        values = None if trained.params is None else fn(trained.params)   # None: diverged
        for metric in ("accuracy", "loss"):
            final[f"{split}_{metric}"] = ([math.nan] * args.seeds if values is None
                                          else np.asarray(values[metric]).tolist())
    steps, values = common.series(trained.history, "test_accuracy")
    return {"data": label, "cell": cell, "cell_class": common.cell_label(cell),
            "bidirectional": bidirectional,
            "curve": [*zip(steps, values.tolist()), (args.steps, final["test_accuracy"])],
            "final": final, "nonfinite": trained.params is None,
            "chance": float(np.max(np.bincount(test.labels)) / len(test.labels)),
            "seconds": common.train_seconds(trained.history),
            "wall_seconds": time.perf_counter() - started}


def plot_accuracy(ax, groups: dict[str, list[dict]], cells: list[str], title: str,
                  references: dict[str, float] | None = None) -> None:
    """Test accuracy per cell: for each group (e.g. uni- and bidirectional) side by side,
    the median over seeds (a marker), min to max (a line) and every seed (dots; a
    diverged seed counts as 0); dashed lines for the `references` (name -> accuracy)."""
    offset = 0.6 / max(len(groups), 1)
    for g, (name, results) in enumerate(groups.items()):
        x = np.arange(len(cells)) + (g - (len(groups) - 1) / 2) * offset
        acc = [np.nan_to_num(np.asarray(r["final"]["test_accuracy"], np.float64))
               for r in results]
        ax.vlines(x, [a.min() for a in acc], [a.max() for a in acc], color=f"C{g}", lw=2)
        ax.plot(x, [np.median(a) for a in acc], "o", color=f"C{g}", label=name)
        for xi, a in zip(x, acc):
            ax.plot(np.full(a.shape, xi), a, ".", color="k", ms=3)
    for i, (name, value) in enumerate((references or {}).items()):
        ax.axhline(value, color=f"C{len(groups) + i}", ls="--", lw=1, label=name)
    ax.set_xticks(np.arange(len(cells)), [common.cell_label(c) for c in cells], rotation=30,
                  ha="right", fontsize=8)
    ax.set(ylabel="test accuracy", title=title)
    ax.grid(alpha=0.3, axis="y")
