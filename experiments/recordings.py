"""Sequence classification on real recordings: which cells name the speaker of a
Japanese vowel, or the activity from a smartwatch, one way or both ways?

JapaneseVowels (9 speakers, 12 cepstrum channels, 7 to 29 frames: the variable
lengths are real) and BasicMotions (4 activities, 6 motion channels, 100 steps), on
the UEA archive's own train/test splits, as aeon ships them. Each recording is read
to its own length by a cell (or a Bidirectional pair of cells), its final state goes
through a Dense layer to the classes; channels are standardised with the training
set's statistics. Test accuracy beside published accuracies of other classifiers.

    python -m experiments.recordings --quick          # about two minutes on a CPU
    python -m experiments.recordings --datasets JapaneseVowels --cells lstm,gru

Writes results/recordings/{results.json, report.md, accuracy.png}; every run (data
set x cell x direction) checkpoints to its own folder.
"""

from __future__ import annotations

from experiments import classify, common
from rnnjax.tasks.recordings import DATASETS, load_recordings

NAME = "recordings"
DEFAULTS = dict(cells=["tanh", "irnn", "lstm", "peephole", "gru", "clockwork"], seeds=5,
                steps=1000, datasets=list(DATASETS), directions=["uni", "bi"], hidden=64,
                batch=32, lr=1e-3, clip=1.0, eval_every=100, checkpoint_every=500)
QUICK = dict(seeds=2, steps=150, cells=["lstm", "gru"], hidden=32, lr=3e-3,
             eval_every=50, checkpoint_every=150)
DIRECTIONS = {"uni": False, "bi": True}

#: Published test accuracies of other classifiers on these data sets, with their source.
#: (Ruiz et al. 2021's bake-off leaves JapaneseVowels out: its lengths vary.)
PUBLISHED = {
    "JapaneseVowels": {"KSig": 0.986, "GAK": 0.981, "RBF": 0.981},
    "BasicMotions": {"KSig": 1.000, "GAK": 1.000, "RBF": 0.975},
}
PUBLISHED_SOURCE = (
    "Toth, Oberhauser and Szabo, 'Random Fourier Signature Features' (arXiv:2311.12214), "
    "results table on the UEA multivariate data sets with at most 1000 cases, as listed "
    "in the authors' README: kernel classifiers with the signature kernel (KSig), the "
    "global alignment kernel (GAK) and the RBF kernel. Their protocol (splits, repeats) "
    "is that paper's, not checked here.")

def add_arguments(parser):
    parser.add_argument("--datasets", type=common.names_among(DATASETS),
                        help=f"comma-separated, among {','.join(DATASETS)}")
    parser.add_argument("--directions", type=common.names_among(DIRECTIONS),
                        help="comma-separated, among uni,bi")


def check(args) -> None:
    """Fail on a bad data set, direction, cell or --steps before any work."""
    common.check_cells(args)


def report(results: dict, args) -> str:
    rows = []
    for dataset in args.datasets:
        for cell in args.cells:
            for direction in args.directions:
                r = results[f"{dataset}/{cell}/{direction}"]
                rows.append([dataset, r["cell_class"], direction,
                             common.spread(r["final"]["test_accuracy"]),
                             common.spread(r["final"]["train_accuracy"]),
                             "yes" if r["nonfinite"] else "no", f"{r['wall_seconds']:.0f}"])
    if PUBLISHED:
        methods = sorted({m for figures in PUBLISHED.values() for m in figures})
        published = [common.markdown_table(
            ["data set", *methods],
            [[d, *(f"{PUBLISHED[d].get(m, float('nan')):.3f}" for m in methods)]
             for d in args.datasets if d in PUBLISHED]), "", f"Source: {PUBLISHED_SOURCE}"]
    else:
        published = ["No published figure for these data sets was found in the sources "
                     "searched; none is quoted."]
    chance = {d: results[f"{d}/{args.cells[0]}/{args.directions[0]}"]["chance"]
              for d in args.datasets}
    return "\n".join([
        "# Sequence classification on real recordings", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden} (per direction); {args.seeds} seeds per cell; Adam lr "
        f"{args.lr}, global-norm clip {args.clip}, batch {args.batch}, {args.steps} steps. "
        "Channels standardised with the training set's mean and deviation; each recording "
        "read to its own length (bi: the forward and backward final states joined).", "",
        "Accuracy on the archive's test split (train: on its training split), median "
        "(min-max) over seeds; every seed counts, including those that failed to learn. "
        "Majority-class accuracy: "
        + ", ".join(f"{d} {c:.3f}" for d, c in chance.items()) + ".", "",
        common.markdown_table(["data set", "cell", "direction", "test accuracy",
                               "train accuracy", "diverged", "wall seconds"], rows), "",
        "## Published accuracies of other classifiers", "", *published, "",
        "Plot: accuracy.png.", ""])


def plot(results: dict, args) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(args.datasets), figsize=(6 * len(args.datasets), 4.2),
                             squeeze=False)
    for ax, dataset in zip(axes[0], args.datasets):
        groups = {direction: [results[f"{dataset}/{cell}/{direction}"] for cell in args.cells]
                  for direction in args.directions}
        classify.plot_accuracy(ax, groups, args.cells, dataset, PUBLISHED.get(dataset))
    axes[0, 0].legend(fontsize=7)
    common.save_figure(fig, args.out / "accuracy.png")


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for dataset in args.datasets:
        train, test = classify.standardised(load_recordings(dataset, "train"),
                                            load_recordings(dataset, "test"))
        for cell in args.cells:
            for direction in args.directions:
                key = f"{dataset}/{cell}/{direction}"
                results[key] = classify.run(train, test, cell, DIRECTIONS[direction], args,
                                            args.out / common.folder(key), label=dataset)
    plot(results, args)
    common.write_results(args, {"results": results, "published": PUBLISHED,
                                "published_source": PUBLISHED_SOURCE},
                         report(results, args))
    return results


if __name__ == "__main__":
    main()
