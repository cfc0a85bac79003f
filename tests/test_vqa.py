"""Visual question answering: the model (rnnjax.models.vqa) against its parts run by
hand, its baselines, its checks; the study's scoring and the study end to end at a
tiny size."""

import json
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_usage_error

from experiments import vqa as study
from rnnjax.models import param_count
from rnnjax.tasks import questions as qs

ARGS = SimpleNamespace(hidden=5, embed=3, features=6, channels=[2], fused=4, mlp=7,
                       image_size=30)


def random_params(model, scale=0.5):
    """Params of the model's structure drawn by NumPy (the tests are about the
    computation, not the init)."""
    rng = np.random.default_rng(0)
    return jax.tree_util.tree_map(lambda s: (scale * rng.standard_normal(s.shape)).astype(s.dtype),
                                  jax.eval_shape(model.init, jax.random.key(0)))


def inputs(batch=3):
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(batch, 30, 30, 3)).astype(np.float32)
    questions = rng.integers(4, qs.VOCAB.size, size=(batch, qs.QUESTION_LEN)).astype(np.int32)
    lengths = np.array([10, 6, 7][:batch], np.int32)
    return images, questions, lengths


def relu_mlp(params, x):
    """The MLP in NumPy float64: Dense, ReLU, Dense."""
    hidden = np.maximum(x @ np.float64(params["mlp"]["W"]) + params["mlp"]["b"], 0)
    return hidden @ np.float64(params["head"]["W"]) + params["head"]["b"]


@pytest.mark.parametrize("fusion", ["product", "concat"])
def test_full_model_is_its_parts_in_turn(fusion):
    """The CNN's code and the LSTM stepped by hand up to each question's length, each
    projected with tanh, fused, then the MLP in float64: the model's logits."""
    model = study.build("full", "lstm", SimpleNamespace(**vars(ARGS), fusion=fusion))
    params = random_params(model)
    images, questions, lengths = inputs()
    logits = model.logits(params, images, questions, lengths)
    assert logits.shape == (3, len(qs.ANSWERS))
    v = np.float64(model.encoder.apply(params["encoder"], jnp.asarray(images)))
    q = []
    for b in range(3):
        carry = model.cell.initial_carry((1,))
        for t in range(lengths[b]):
            word = params["embed"]["E"][questions[b:b + 1, t]]
            carry, h = model.cell(params["cell"], carry, word)
        q.append(np.float64(h[0]))
    project = lambda p, x: np.tanh(x @ np.float64(p["W"]) + p["b"])
    image_code = project(params["image_proj"], v)
    question_code = project(params["question_proj"], np.stack(q))
    joint = (image_code * question_code if fusion == "product"
             else np.concatenate([image_code, question_code], axis=1))
    np.testing.assert_allclose(logits, relu_mlp(params, joint), rtol=1e-4, atol=1e-5)
    # the padding past a question's length changes nothing
    noisy = questions.copy()
    noisy[1, 6:] = 5
    np.testing.assert_allclose(model.logits(params, images, noisy, lengths), logits, rtol=1e-6)


def test_baselines_see_one_input_and_share_the_full_models_params():
    full, blind, image = (study.build(k, "gru", SimpleNamespace(**vars(ARGS), fusion="product"))
                          for k in ("full", "blind", "image"))
    key = jax.random.key(3)
    p_full, p_blind, p_image = full.init(key), blind.init(key), image.init(key)
    assert set(p_blind) == {"embed", "cell", "question_proj", "mlp", "head"}
    assert set(p_image) == {"encoder", "image_proj", "mlp", "head"}
    for name in p_blind:   # one key split the same way: the same params per part
        jax.tree_util.tree_map(np.testing.assert_array_equal, p_blind[name], p_full[name])
    for name in ("encoder", "image_proj"):
        jax.tree_util.tree_map(np.testing.assert_array_equal, p_image[name], p_full[name])
    images, questions, lengths = inputs()
    # each baseline's scores are its one branch through the MLP, the other input unused
    code = blind.encode_question(p_blind, questions, lengths)
    np.testing.assert_allclose(blind.logits(p_blind, None, questions, lengths),
                               relu_mlp(p_blind, np.float64(code)), rtol=1e-4, atol=1e-5)
    code = image.encode_image(p_image, images)
    np.testing.assert_allclose(image.logits(p_image, images, None, None),
                               relu_mlp(p_image, np.float64(code)), rtol=1e-4, atol=1e-5)
    # parameter counts by hand: CNN 3*3*3*2 + 2 = 56, pooled 15 x 15 x 2 = 450 features to
    # 6; image_proj 7 x 4; embed 31 x 3 (4 specials, 27 words); GRU 3 x 5 x (3 + 5 + 1);
    # question_proj 6 x 4; mlp 5 x 7; head 8 x 13
    cnn, image_proj = 56 + 451 * 6, 7 * 4
    question = qs.VOCAB.size * 3 + 3 * 5 * 9 + 6 * 4
    mlp = 5 * 7 + 8 * len(qs.ANSWERS)
    assert qs.VOCAB.size == 31
    assert param_count(p_full) == cnn + image_proj + question + mlp
    assert param_count(p_blind) == question + mlp
    assert param_count(p_image) == cnn + image_proj + mlp


def test_bad_inputs_name_the_argument_and_shapes():
    model = study.build("full", "lstm", SimpleNamespace(**vars(ARGS), fusion="product"))
    params = random_params(model)
    images, questions, lengths = inputs()
    with pytest.raises(ValueError, match=r"images must be \[B, 30, 30, 3\], got shape "
                                         r"\(3, 32, 32, 3\)"):
        model.logits(params, np.zeros((3, 32, 32, 3), np.float32), questions, lengths)
    with pytest.raises(TypeError, match="questions must be an integer array"):
        model.logits(params, images, np.float32(questions), lengths)
    with pytest.raises(ValueError, match=r"questions must have the images' batch size 3"):
        model.logits(params, images, questions[:2], lengths[:2])
    with pytest.raises(ValueError, match=r"seq_lengths must have shape \(3,\)"):
        model.logits(params, images, questions, lengths[:2])
    with pytest.raises(ValueError, match="inputs must be one of"):
        study.build("both", "lstm", SimpleNamespace(**vars(ARGS), fusion="product"))
    with pytest.raises(ValueError, match="fusion must be one of"):
        study.build("full", "lstm", SimpleNamespace(**vars(ARGS), fusion="sum"))


def test_per_kind_accuracy_and_the_target():
    kinds = np.array([0, 0, 1, 2, 3, 3, 4])
    correct = np.array([[1, 0, 1, 1, 0, 0, 1], [1, 1, 1, 1, 1, 1, 1]], bool)
    scores = study.per_kind(correct, kinds)
    assert scores["all"] == [4 / 7, 1.0] and scores["colour"] == [0.5, 1.0]
    assert scores["exist"] == [0.0, 1.0] and scores["position"] == [1.0, 1.0]
    assert np.isnan(study.per_kind(correct[:, :2], kinds[:2])["count"]).all()
    result = lambda inputs, value, cell="lstm": {
        "inputs": inputs, "cell": cell,
        "final": {"seen": {k: [value, value + 0.1, 0.0] for k in qs.KINDS}}}
    results = {"full/lstm": result("full", 0.6), "blind/lstm": result("blind", 0.5),
               "image": result("image", 0.3, None)}
    assert study.target(results) == {"lstm": dict.fromkeys(qs.KINDS, True)}
    results["image"]["final"]["seen"]["count"] = [0.7, 0.7, 0.7]
    assert not study.target(results)["lstm"]["count"]
    del results["image"]
    assert study.target(results) == {"lstm": None}


def test_question_prior_takes_the_most_frequent_answer_of_a_text():
    batch = qs.question_batch(jax.random.key(0), 64)
    predict = study.question_prior([batch])
    predicted = predict(batch)
    texts = [qs.question_text(t) for t in np.asarray(batch.questions)]
    for text, answer in zip(texts, predicted):
        answers = [int(a) for t, a in zip(texts, np.asarray(batch.answers)) if t == text]
        assert answers.count(answer) == max(answers.count(a) for a in set(answers))
    unseen = qs.question_batch(jax.random.key(1), 64, "unseen")   # mostly texts never seen
    assert predict(unseen).shape == (64,)


def test_vqa_study_at_a_tiny_size(tmp_path, capsys):
    out = tmp_path / "vqa"
    argv = ["--cells", "irnn", "--seeds", "2", "--steps", "4", "--eval-every", "2",
            "--hidden", "4", "--embed", "3", "--features", "4", "--channels", "2",
            "--fused", "4", "--mlp", "4", "--batch", "16", "--image-size", "30",
            "--test-size", "16", "--prior-batches", "1", "--shown", "2", "--out", str(out)]
    study.main(argv)
    for name in ("results.json", "report.md", "examples.png", "accuracy.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    results = saved["results"]
    assert list(results) == ["full/irnn", "blind/irnn", "image"]
    assert results["image"]["params"] < results["full/irnn"]["params"]
    for r in results.values():
        for split in study.TEST_KEYS:
            scores = r["final"][split]
            assert set(scores) == {"all", *qs.KINDS}
            for value in scores["all"]:   # a fraction of 16 questions
                assert 0 <= value <= 1 and value * 16 == pytest.approx(round(value * 16))
            assert [s for s, _ in r["curves"][split]] == [0, 2, 4]
            assert len(r["shown"][split]) == 2 and set(r["shown"][split]) <= set(qs.ANSWERS)
        assert not r["nonfinite"]
    assert set(saved["target_met"]) == {"irnn"}
    prior = saved["question_prior"]["seen"]
    assert 0 <= prior["all"] <= 1 and saved["config"]["prior_batches"] == 1
    report = (out / "report.md").read_text()
    assert "| full (IRNN) | seen |" in report and "| image only | unseen |" in report
    assert "question prior (lookup)" in report and "Target:" in report
    assert report.count("| blind (IRNN) | unseen | ") == 3       # the summary and 2 seeds
    assert_usage_error(capsys, study.main, ["--models", "full,both", "--out",
                                            str(tmp_path / "x")], "argument --models")
    assert_usage_error(capsys, study.main, ["--min-objects", "4", "--max-objects", "3",
                                            "--out", str(tmp_path / "x")],
                       "--min-objects and --max-objects must satisfy")

