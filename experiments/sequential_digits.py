"""Sequential digits: IRNN, LSTM, GRU and tanh RNN classify 8x8 handwritten digits
read row by row or pixel by pixel, in raster order or permuted.

The small cousin of sequential and permuted MNIST (Le, Jaitly and Hinton 2015):
scikit-learn's 1797 digits on a fixed stratified split (1347 training, 450 test
images; see `rnnjax.tasks.digits`). Rows: 8 steps of 8 pixels; pixels: 64 steps of 1
pixel. Permuted: the 64 pixels in a fixed random order (`--permutation-seed`), so
that the strokes' neighbours lie far apart in time. The final state goes through a
Dense layer to the 10 classes; pixels are standardised with the training set's
statistics.

    python -m experiments.sequential_digits --quick     # about two minutes on a CPU
    python -m experiments.sequential_digits --readings pixels,pixels-permuted

Writes results/sequential_digits/{results.json, report.md, accuracy.png}; every run
(reading x cell) checkpoints to its own folder.
"""

from __future__ import annotations

from experiments import classify, common
from rnnjax.tasks.digits import load_digits_sequences

NAME = "sequential_digits"
#: reading name -> (how the image is read, permuted or not)
READINGS = {"rows": ("rows", False), "pixels": ("pixels", False),
            "rows-permuted": ("rows", True), "pixels-permuted": ("pixels", True)}
DEFAULTS = dict(cells=["irnn", "lstm", "gru", "tanh"], seeds=5, steps=2000,
                readings=list(READINGS), permutation_seed=0, hidden=64, batch=64, lr=1e-3,
                clip=1.0, eval_every=200, checkpoint_every=500)
QUICK = dict(seeds=2, steps=150, cells=["irnn", "lstm"], hidden=32, lr=3e-3, eval_every=50,
             checkpoint_every=150)


def add_arguments(parser):
    parser.add_argument("--readings", type=common.names_among(READINGS),
                        help=f"comma-separated, among {','.join(READINGS)}")
    parser.add_argument("--permutation-seed", dest="permutation_seed", type=int,
                        help="seed of the fixed pixel order of the permuted readings")


def check(args) -> None:
    """Fail on a bad reading, cell or --steps before any work."""
    common.check_cells(args)


def load(reading: str, permutation_seed: int):
    """The standardised (train, test) digits as `reading` (a key of READINGS) reads them."""
    how, permuted = READINGS[reading]
    seed = permutation_seed if permuted else None
    return classify.standardised(load_digits_sequences("train", how, seed),
                                 load_digits_sequences("test", how, seed))


def whole_image_references() -> dict[str, float]:
    """Test accuracy of two classifiers that see the whole image at once, fitted by
    scikit-learn on the same split: how far reading in sequence is from the easy case."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    train, test = (load_digits_sequences(split, "pixels") for split in ("train", "test"))
    flat = lambda data: data.xs.reshape(len(data.xs), -1)
    models = {"SVC (RBF kernel)": SVC(), "logistic regression": LogisticRegression(max_iter=5000)}
    return {name: float((m.fit(flat(train), train.labels).predict(flat(test))
                         == test.labels).mean()) for name, m in models.items()}


def report(results: dict, references: dict[str, float], args) -> str:
    header = ["cell", *args.readings]
    rows = [[results[f"{args.readings[0]}/{cell}"]["cell_class"],
             *(common.spread(results[f"{reading}/{cell}"]["final"]["test_accuracy"])
               + (" (diverged)" if results[f"{reading}/{cell}"]["nonfinite"] else "")
               for reading in args.readings)]
            for cell in args.cells]
    train_rows = [[results[f"{args.readings[0]}/{cell}"]["cell_class"],
                   *(common.spread(results[f"{reading}/{cell}"]["final"]["train_accuracy"])
                     for reading in args.readings)]
                  for cell in args.cells]
    return "\n".join([
        "# Sequential digits", "",
        f"Command: `{common.command_line()}`", "",
        f"Hidden size {args.hidden}; {args.seeds} seeds per cell; Adam lr {args.lr}, "
        f"global-norm clip {args.clip}, batch {args.batch}, {args.steps} steps; pixel "
        f"permutation seed {args.permutation_seed}. rows: 8 steps x 8 pixels; pixels: "
        "64 steps x 1 pixel; permuted: the 64 pixels in a fixed random order.", "",
        "Test accuracy on the 450 held-out images, median (min-max) over seeds; every "
        "seed counts, including those that failed to learn (diverged: a loss went "
        "non-finite, scored as NaN). Chance: 0.1.", "",
        common.markdown_table(header, rows), "",
        "Whole images at once, scikit-learn on the same split: "
        + "; ".join(f"{name} {acc:.3f}" for name, acc in references.items()) + ". "
        "Le, Jaitly and Hinton (2015) report on MNIST read pixel by pixel (784 steps) "
        "97% for the IRNN and 65% for the LSTM, and 82% and 36% when permuted.", "",
        "Training accuracy (1347 images):", "",
        common.markdown_table(header, train_rows), "",
        "Plot: accuracy.png.", ""])


def plot(results: dict, args) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(args.cells) * len(args.readings)
                                        / 2), 4.2))
    groups = {reading: [results[f"{reading}/{cell}"] for cell in args.cells]
              for reading in args.readings}
    classify.plot_accuracy(ax, groups, args.cells, "sequential digits: test accuracy")
    ax.legend(fontsize=7)
    common.save_figure(fig, args.out / "accuracy.png")


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], DEFAULTS, QUICK, argv,
                             add_arguments, check=check)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for reading in args.readings:
        train, test = load(reading, args.permutation_seed)
        for cell in args.cells:
            key = f"{reading}/{cell}"
            results[key] = classify.run(
                train, test, cell, False, args, args.out / common.folder(key), label=reading,
                settings={"permutation_seed": args.permutation_seed})
    plot(results, args)
    references = whole_image_references()
    common.write_results(args, {"results": results, "whole_image_references": references},
                         report(results, references, args))
    return results


if __name__ == "__main__":
    main()
