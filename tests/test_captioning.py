"""The captioning study: the scoring of generated captions, the decoder's teacher-forced
path against its one-step path, and the study end to end at a tiny size."""

import json
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sacrebleu
from helpers import assert_usage_error

from experiments import captioning
from rnnjax.tasks import scenes as sc
from rnnjax.tasks.vocab import EOS, PAD, SOS


def ids(text: str, length: int = sc.CAPTION_LEN, pad: int = PAD) -> list[int]:
    words = sc.VOCAB.encode(text.split()).tolist() + [EOS]
    return words + [pad] * (length - len(words))


def test_exact_matches_either_reference_whatever_the_padding():
    references = jnp.asarray([[ids("a red circle above a blue square"),
                               ids("a blue square below a red circle")]] * 3)
    generated = jnp.asarray([
        ids("a blue square below a red circle", pad=EOS),       # the converse: right
        ids("a blue square below a red circle", pad=PAD)[:-1] + [7],  # junk after eos
        ids("a red circle above a blue circle", pad=EOS)])       # wrong object
    assert captioning.exact_matches(generated, references).tolist() == [True, False, False]


def test_named_objects_parses_captions():
    assert captioning.named_objects("a red circle left of a blue square") == (
        ("blue", "square"), ("red", "circle"))
    assert captioning.named_objects("a blue square below a red circle") == (
        ("blue", "square"), ("red", "circle"))
    for bad in ("a red circle", "a red circle near a blue square",
                "a red red above a blue square", "the red circle above a blue square", ""):
        assert captioning.named_objects(bad) is None


def test_text_scores_against_sacrebleu():
    references = [["a red circle above a blue square", "a blue square below a red circle"],
                  ["a green triangle left of a red circle", "a red circle right of a green "
                   "triangle"]]
    hypotheses = ["a blue square below a red circle", "a green triangle left of a red square"]
    scores = captioning.text_scores(hypotheses, references)
    assert scores["exact"] == 0.5 and scores["objects"] == 0.5
    assert scores["held_out"] == 0.5          # the second names a green triangle, a red square
    streams = [[r[0] for r in references], [r[1] for r in references]]
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, streams).score)
    assert 0 < scores["bleu"] < 100
    perfect = captioning.text_scores([r[1] for r in references], references)
    assert perfect == {"exact": 1.0, "bleu": pytest.approx(100.0), "objects": 1.0,
                       "held_out": 0.5}


@pytest.mark.parametrize("condition", ["state", "both"])
def test_teacher_forcing_equals_the_decoding_steps(condition):
    """logits(images, captions)[:, t] is what `step` gives after `start` and the tokens
    sos, captions[:, :t] one at a time: training and generation run the same model."""
    args = SimpleNamespace(features=6, channels=[2], hidden=5, embed=3, condition=condition,
                           image_size=20)
    model = captioning.build("gru", args)
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map(
        lambda s: (0.5 * rng.standard_normal(s.shape)).astype(s.dtype),
        jax.eval_shape(model.init, jax.random.key(0)))
    assert ("to_input" in params) == (condition == "both") and "to_state" in params
    images = rng.uniform(size=(2, 20, 20, 3)).astype(np.float32)
    captions = jnp.asarray([ids("a red circle left of a blue square"),
                            ids("a blue square below a red circle")])
    forced = model.logits(params, images, captions)
    carry, token = model.start(params, images), jnp.full((2,), SOS)
    for t in range(sc.CAPTION_LEN):
        carry, logits = model.step(params, carry, token)
        np.testing.assert_allclose(forced[:, t], logits, rtol=1e-4, atol=1e-5)
        token = captions[:, t]
    # the image reaches the logits
    assert not np.allclose(model.logits(params, images[::-1], captions), forced)


def test_captioning_study_at_a_tiny_size(tmp_path, capsys):
    """With an IRNN, whose identity init compiles in a fraction of the LSTM's."""
    out = tmp_path / "cap"
    captioning.main(["--cells", "irnn", "--seeds", "2", "--steps", "4", "--eval-every", "2",
                     "--hidden", "8", "--features", "8", "--embed", "4", "--channels", "2",
                     "--batch", "4", "--test-size", "6", "--shown", "2", "--beam", "2",
                     "--out", str(out)])
    for name in ("results.json", "report.md", "captions.png", "training.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    r = saved["results"]["irnn"]
    # by hand: conv 3*3*3*2 + 2; projection of 16 x 16 x 2 to 8; embedding 17 x 4; IRNN
    # 8 x (4 + 8 + 1); head 9 x 17; v to the state 9 x 8 and to the input 9 x 4
    assert r["params"] == 56 + 513 * 8 + 17 * 4 + 8 * 13 + 9 * 17 + 9 * 8 + 9 * 4
    assert [s for s, _ in r["curves"]["seen"]] == [0, 2, 4] and not r["nonfinite"]
    for name in ("seen", "unseen"):
        final = r["final"][name]
        for decoder in ("greedy", "beam"):
            exact = np.asarray(final[f"{decoder}_exact"])
            assert exact.shape == (2,) and np.allclose(exact * 6, np.round(exact * 6))
            assert all(0 <= b <= 100 for b in final[f"{decoder}_bleu"])
            for key in ("objects", "held_out"):
                assert all(0 <= v <= 1 for v in final[f"{decoder}_{key}"])
        shown = r["shown"][name]
        assert len(shown) == 2
        for s in shown:
            assert set(s) == {"references", "greedy", "beam"} and len(s["references"]) == 2
    test = sc.scene_batch(jax.random.key(captioning.TEST_KEYS["unseen"]), 6, "unseen")
    assert r["shown"]["unseen"][0]["references"] == sc.reference_texts(test)[0]
    assert saved["held_out"] == [list(o) for o in sc.HELD_OUT]
    report = (out / "report.md").read_text()
    assert "| IRNN | seen |" in report and "| IRNN | unseen |" in report
    assert_usage_error(capsys, captioning.main,
                       ["--shown", "7", "--test-size", "6", "--out", str(tmp_path / "x")],
                       "--shown must lie in")
