"""The translation study: its data from a user's TSV corpus, the length bins and sample
rows, and one tiny end-to-end run on the numbers."""

import json
import math

import numpy as np
import pytest
from helpers import assert_usage_error

from experiments import common, translation
from rnnjax.tasks import pairs

pytest.importorskip("num2words")
pytest.importorskip("sacrebleu")


def corpus_args(path, **sizes):
    argv = ["--pairs", str(path), "--out", str(path.parent / "out")]
    for key, value in sizes.items():
        argv += ["--" + key.replace("_", "-"), str(value)]
    return common.parse_args(translation.NAME, "", translation.DEFAULTS, translation.QUICK,
                             argv, translation.add_arguments)


def test_a_tsv_corpus_is_shuffled_into_disjoint_splits(tmp_path):
    path = tmp_path / "corpus.tsv"
    lines = [f"word{i} Number {i}.\tmot{i} nombre {i} !\tCC-BY" for i in range(40)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = corpus_args(path, test_size=5, validation_size=4, train_size=100, min_count=2)
    translation.check(args)
    data = translation.load_data(args)
    sizes = {split: len(data.tokens[split]) for split in pairs.SPLITS}
    assert sizes == {"train": 31, "validation": 4, "test": 5}     # train: all the rest
    seen = [s for split in pairs.SPLITS for s, _ in data.tokens[split]]
    assert sorted(map(tuple, seen)) == sorted(
        tuple(pairs.tokenize(line.split("\t")[0])) for line in lines)
    # the vocabulary comes from the training side only, with --min-count 2: the shared
    # words and digits, never a word{i} seen once
    assert {"number", "."} <= set(data.source_vocab.words)
    assert not any(w.startswith("word") for w in data.source_vocab.words)
    test = data.arrays["test"]
    assert test.source.shape[0] == 5 and np.all(test.target_in[:, 0] == pairs.SOS)
    again = translation.load_data(args)
    assert again.tokens == data.tokens                           # --data-seed fixes it
    with pytest.raises(ValueError, match="holds 40 pairs, not more than"):
        translation.load_data(corpus_args(path, test_size=30, validation_size=10))


def test_length_bins_and_sample_rows():
    assert translation.length_bins([1, 14, 3]) == [(1, 3), (4, 6), (7, 9), (10, 12),
                                                   (13, 14)]
    assert translation.length_bins([2, 4]) == [(1, 1), (2, 2), (3, 3), (4, 4)]
    lengths = [5, 1, 9, 3, 7]
    assert translation.sample_rows(lengths, 3) == [1, 0, 2]       # shortest, middle, longest
    assert translation.sample_rows(lengths, 10) == [1, 3, 0, 4, 2]


# one seed of the tanh cell: the cheapest to compile (the init's random draws dominate)
TINY = ["--cells", "tanh", "--attention", "additive", "--encoder", "uni", "--seeds", "1",
        "--steps", "40", "--eval-every", "20", "--hidden", "16", "--embed", "8",
        "--batch", "32", "--lr", "0.02", "--train-size", "300", "--validation-size", "20",
        "--test-size", "40", "--high", "1000", "--beam", "2", "--samples", "3"]


def test_translation_study_at_a_tiny_size(tmp_path, capsys):
    out = tmp_path / "run"
    results = translation.main([*TINY, "--out", str(out)])
    for name in ("results.json", "report.md", "by_length.png", "training.png",
                 "attention.png", "tanh/additive/metrics.jsonl"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["data"]["sizes"] == {"train": 300, "validation": 20, "test": 40}
    assert "tok:13a" in saved["bleu_signature"]
    r = saved["results"]["tanh/additive"]
    assert r["label"] == "SimpleRNN (tanh), attention" and not r["nonfinite"]
    assert [s for s, _ in r["curve"]] == [0, 20, 40]
    chance = saved["data"]["uniform_token_accuracy"]
    for decoder in ("greedy", "beam"):
        final = r["final"][decoder]
        assert len(final["token_accuracy"]) == 1
        assert all(2 * chance < a <= 1 for a in final["token_accuracy"])   # above chance
        assert all(0 <= m <= a for m, a in zip(final["exact_match"], final["token_accuracy"]))
        assert all(0 <= b <= 100 for b in final["bleu"])
    assert sum(r["by_length"]["count"]) == 40
    bleu_by_bin = np.asarray(r["by_length"]["beam"]["bleu"])
    assert bleu_by_bin.shape == (len(r["by_length"]["bins"]), 1)
    assert len(r["samples"]) == 3 and r["samples"][0]["source"] in {
        s for s, _ in pairs.number_pairs(range(10))}                    # the shortest one
    weights = np.asarray(r["alignment"]["weights"])
    assert weights.shape == (len(r["alignment"]["output"]), len(r["alignment"]["source"]))
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-3)
    report = (out / "report.md").read_text()
    assert "| SimpleRNN (tanh), attention | beam |" in report and "## Sample translations" in report
    # a rerun of the same command reuses the finished model
    capsys.readouterr()
    again = translation.main([*TINY, "--out", str(out)])
    assert again["tanh/additive"]["final"] == results["tanh/additive"]["final"]
    assert "step/s" not in capsys.readouterr().err
    assert math.isfinite(again["tanh/additive"]["seconds"])


def test_bad_settings_fail_before_any_work(tmp_path, capsys):
    assert_usage_error(capsys, translation.main, ["--attention", "dot", "--out",
                                                  str(tmp_path / "x")],
                       "argument --attention: must be among none,additive")
    assert_usage_error(capsys, translation.main, ["--pairs", str(tmp_path / "missing.tsv"),
                                                  "--out", str(tmp_path / "x")],
                       "--pairs must name a file")
    assert not (tmp_path / "x").exists()
