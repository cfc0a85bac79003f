"""Generated voices (rnnjax.tasks.voices): the f0 asked is the f0 measured, formants
scale with the vocal tract's length, noise at the SNR asked, determinism, the wav
folder read back; the spectrogram classifier's three kinds against the computation
by hand; and the voices study at a tiny size."""

import json
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_usage_error

import rnnjax as rj
from experiments import voices as study
from rnnjax import audio
from rnnjax.models import spectrogram_classifier
from rnnjax.tasks import voices as vc

RATE = vc.RATE


def autocorrelation_f0(x, rate=RATE, low=60.0, high=400.0):
    """f0 of x by the peak of its autocorrelation between lags rate / high and rate / low,
    refined by a parabola through the peak and its neighbours."""
    x = x - x.mean()
    corr = np.correlate(x, x, "full")[len(x) - 1:]
    lo, hi = int(rate / high), int(rate / low)
    k = lo + int(np.argmax(corr[lo:hi]))
    a, b, c = corr[k - 1:k + 2]
    return rate / (k + 0.5 * (a - c) / (a - 2 * b + c))


@pytest.mark.parametrize("f0", [95.0, 150.0, 230.0])
def test_pulse_train_has_the_f0_asked(f0):
    rng = np.random.default_rng(0)
    pulses = vc.pulse_train(np.full(RATE, f0), RATE, 0.0, rng)
    assert abs(autocorrelation_f0(vc.glottal_source(pulses)) - f0) < 0.01 * f0
    # jitter: each period's length varies by the relative deviation asked
    jittery = vc.pulse_train(np.full(4 * RATE, f0), RATE, 0.03, rng)
    periods = np.diff(np.flatnonzero(jittery))
    assert abs(RATE / periods.mean() - f0) < 0.01 * f0
    assert 0.022 < periods.std() / periods.mean() < 0.04


def test_an_utterance_has_its_speakers_f0():
    """A speaker with one f0 and no glide or jitter: the utterance's f0, measured on the
    voice itself (formants and all), is that f0 within the slow drift."""
    speaker = vc.draw_speakers(1)[0]._replace(f0_range=(140.0, 140.0), glide=0.0, jitter=0.0)
    for seed in range(3):
        voice, said = vc.utterance(speaker, np.random.default_rng(seed))
        assert 3 <= len(said) <= 5 and set(said) <= set(vc.VOWELS)
        assert abs(autocorrelation_f0(voice) - 140.0) < 0.03 * 140.0
        assert abs(np.sqrt(np.mean(voice ** 2)) - 0.1) < 1e-3


def spectral_peaks(x, bands):
    """The frequency of the largest spectral magnitude of x within each (low, high) band."""
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    magnitude = np.abs(np.fft.rfft(x))
    return [freqs[(freqs > lo) & (freqs < hi)][np.argmax(magnitude[(freqs > lo) & (freqs < hi)])]
            for lo, hi in bands]


@pytest.mark.parametrize("vowel", ["a", "i", "u"])
def test_formants_scale_with_the_vocal_tracts_length(vowel):
    """An impulse through the tract filter of a steady vowel: the peaks of its response
    lie at the formants asked, and a 14 cm tract's are 17.5 / 14 times a 17.5 cm
    tract's."""
    impulse = np.zeros(2 * RATE)
    impulse[0] = 1.0
    measured = {}
    for length in (17.5, 14.0):
        asked = vc.formants(vowel, length)
        response = vc.vocal_tract(impulse, np.tile(asked, (len(impulse), 1)), RATE)
        measured[length] = np.asarray(spectral_peaks(response, [(0.8 * f, 1.2 * f)
                                                                for f in asked[:2]]))
        np.testing.assert_allclose(measured[length], asked[:2], rtol=0.04)
    np.testing.assert_allclose(measured[14.0] / measured[17.5], 17.5 / 14.0, rtol=0.03)
    np.testing.assert_allclose(vc.formants(vowel, 14.0) / vc.formants(vowel, 17.5), 1.25)


def test_noise_has_the_snr_asked_and_the_voice_does_not_change_with_it():
    speakers = vc.draw_speakers(3, seed=5)
    clean, labels = vc.voice_clips(speakers, 2, seed=3, snr_db=np.inf)
    for snr in (20.0, 0.0):
        noisy, again = vc.voice_clips(speakers, 2, seed=3, snr_db=snr)
        np.testing.assert_array_equal(labels, again)
        for c, x in zip(clean, noisy):
            measured = 10 * np.log10(np.mean(c.astype(np.float64) ** 2)
                                     / np.mean((x - c).astype(np.float64) ** 2))
            assert abs(measured - snr) < 0.5
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_voices_are_deterministic_and_speakers_nest():
    first = vc.draw_speakers(5, seed=2)
    assert vc.draw_speakers(3, seed=2) == first[:3]
    assert vc.draw_speakers(3, seed=4) != first[:3]
    a, _ = vc.voice_clips(first[:2], 2, seed=7, snr_db=10.0)
    b, _ = vc.voice_clips(first[:2], 2, seed=7, snr_db=10.0)
    c, _ = vc.voice_clips(first[:2], 2, seed=8, snr_db=10.0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not any(len(x) == len(z) and np.array_equal(x, z) for x, z in zip(a, c))
    for s in first:   # traits within the documented ranges; each vowel once in an order
        assert 0.8 * 110 <= s.f0_range[0] < s.f0_range[1] <= 1.2 * 160
        assert 16.0 <= s.tract_cm <= 17.0 and sorted(s.vowel_order) == sorted(vc.VOWELS)
    with pytest.raises(ValueError, match="vowel must be one of"):
        vc.formants("y", 17.5)
    with pytest.raises(ValueError, match="per_speaker must be a positive integer"):
        vc.voice_clips(first, 0, seed=0, snr_db=0.0)


def test_the_wav_folder_reads_back_as_the_clips(tmp_path):
    speakers = vc.draw_speakers(2, seed=1)
    vc.write_voice_folder(tmp_path, speakers, 3, seed=4, snr_db=15.0)
    data = audio.read_folder(tmp_path, RATE)
    clips, labels = vc.voice_clips(speakers, 3, seed=4, snr_db=15.0)
    assert data.classes == ("speaker00", "speaker01")
    np.testing.assert_array_equal(data.labels, labels)
    for read, made in zip(data.clips, clips):
        np.testing.assert_allclose(read, made, atol=2.0 ** -15)   # 16-bit quantisation


def random_params(model):
    rng = np.random.default_rng(0)
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype),
        jax.eval_shape(model.init, jax.random.key(0)))


@pytest.mark.parametrize("kind", ["cnn_rnn", "cnn_average", "rnn"])
def test_spectrogram_classifier_equals_the_computation_by_hand(kind):
    """Each kind against the CNN's columns (or the frames) read step by step up to each
    clip's length; padding past a length, of any length and value, leaves the scores
    unchanged."""
    model = spectrogram_classifier(kind, 12, 3, "gru", hidden=5, channels=(2, 3))
    params = random_params(model)
    lengths = np.array([16, 9, 4])
    xs = np.random.default_rng(1).standard_normal((3, 16, 12)).astype(np.float32)
    xs[np.arange(16)[None, :] >= lengths[:, None]] = 0.0
    got = np.asarray(model.logits(params, xs, lengths))
    for pad in (np.zeros((3, 8, 12), np.float32), np.full((3, 5, 12), 7.0, np.float32)):
        longer = np.concatenate([xs, pad], 1)
        if pad.any():
            longer[np.arange(21)[None, :] >= lengths[:, None]] = 7.0
        np.testing.assert_allclose(model.logits(params, longer, lengths), got, atol=1e-5)
    if kind == "rnn":
        seqs, steps = xs, lengths
    else:
        seqs, steps = np.asarray(model.columns(params, xs, lengths)), lengths // 4   # 2 poolings
        assert seqs.shape == (3, 4, (12 // 4) * 3) == (3, 4, model.column_size)
    head = rj.Dense(3)
    for b in range(3):
        if kind == "cnn_average":
            frame = rj.Dense(5)
            hidden = [np.maximum(frame(params["frame"], jnp.asarray(seqs[b, t])), 0)
                      for t in range(steps[b])]
            expected = head(params["head"], np.mean(hidden, axis=0))
        else:
            carry = model.cell.initial_carry(())
            for t in range(steps[b]):
                carry, _ = model.cell(params["cell"], carry, jnp.asarray(seqs[b, t]))
            expected = head(params["head"], model.cell.hidden(carry))
        np.testing.assert_allclose(got[b], expected, rtol=1e-4, atol=1e-5)


def test_spectrogram_classifier_checks_its_inputs():
    model = spectrogram_classifier("cnn_rnn", 12, 3, "gru", hidden=5, channels=(2,))
    params = random_params(model)
    with pytest.raises(ValueError, match=r"xs must have 12 features .*got shape \(2, 8, 10\)"):
        model.logits(params, np.zeros((2, 8, 10), np.float32), np.array([8, 8]))
    with pytest.raises(ValueError, match="seq_lengths must lie in"):
        model.logits(params, np.zeros((2, 8, 12), np.float32), np.array([9, 8]))
    with pytest.raises(ValueError, match="kind must be one of"):
        spectrogram_classifier("transformer", 12, 3, "gru")
    with pytest.raises(ValueError, match="too few"):
        spectrogram_classifier("cnn_average", 3, 3, channels=(2, 2))


def test_voices_study_at_a_tiny_size(tmp_path, capsys):
    """Every model on generated voices of 2 speakers at two noise levels (through wav
    files), the mean-spectrum reference, the target table, the plots."""
    out = tmp_path / "voices"
    argv = ["--cells", "irnn", "--seeds", "2", "--steps", "4", "--eval-every", "2",
            "--speakers", "2", "--snrs", "30,0", "--train-clips", "4", "--test-clips", "5",
            "--hidden", "4", "--channels", "2", "--mels", "8", "--batch", "4",
            "--timing-batch", "3", "--timing-repeats", "1", "--real", "", "--out", str(out)]
    returned = study.main(argv)
    for name in ("results.json", "report.md", "accuracy.png", "spectrograms.png"):
        assert (out / name).stat().st_size > 0
    assert len(list((out / "data").rglob("*.wav"))) == 2 * 2 * (4 + 5)
    saved = json.loads((out / "results.json").read_text())
    assert [s["key"] for s in saved["settings"]] == ["2 speakers/30 dB", "2 speakers/0 dB"]
    runs = saved["results"]["2 speakers/30 dB"]
    assert list(runs) == ["cnn_rnn/irnn", "cnn_average", "rnn/irnn"]
    # parameters by hand: conv 3*3*1*2 + 2 = 20; 8 mels pooled to 4 x 2 channels = 8
    # column features; IRNN 4 x (8 + 4 + 1); head 4 x 2 + 2
    assert runs["cnn_rnn/irnn"]["params"] == 20 + 4 * (8 + 4 + 1) + 10
    assert runs["cnn_average"]["params"] == 20 + (8 + 1) * 4 + 10
    assert runs["rnn/irnn"]["params"] == 4 * (8 + 4 + 1) + 10
    for r in runs.values():
        acc = np.asarray(r["final"]["test_accuracy"])
        assert acc.shape == (2,) and np.allclose(acc * 10, np.round(acc * 10))
        assert [step for step, _ in r["curve"]] == [0, 2, 4] and not r["nonfinite"]
        assert 0 < r["seconds_per_clip"] < 1
    for s in saved["settings"]:
        assert s["train_size"] == 8 and s["test_size"] == 10
        assert 0 <= s["mean_spectrum_accuracy"] <= 1
    assert set(saved["target"]) == {"2 speakers/30 dB/irnn", "2 speakers/0 dB/irnn"}
    assert returned["target"] == saved["target"]
    report = (out / "report.md").read_text()
    assert "| CNN + RNN (IRNN) |" in report and "mean spectrum (ridge" in report
    assert "Not modelled: consonants" in report
    assert_usage_error(capsys, study.main, ["--models", "cnn,rnn", "--out", str(tmp_path / "x")],
                       "argument --models: must be among")
    assert_usage_error(capsys, study.main, ["--hop", "300", "--out", str(tmp_path / "x")],
                       "--hop .* must not exceed --frame-length")


def test_generated_folders_are_remade_when_their_settings_change(tmp_path):
    args = SimpleNamespace(out=tmp_path, voice_seed=0, train_clips=2, test_clips=1,
                           rate=RATE)
    train, test = study.generated(2, -5.0, args)
    assert "minus5" in str(train) and len(list(train.rglob("*.wav"))) == 4
    first = (train / "speaker00" / "0000.wav").read_bytes()
    assert study.generated(2, -5.0, args)[0] == train        # the same: kept
    assert (train / "speaker00" / "0000.wav").read_bytes() == first
    args.train_clips = 3
    study.generated(2, -5.0, args)
    assert len(list(train.rglob("*.wav"))) == 6 and len(list(test.rglob("*.wav"))) == 2
    assert study.setting_folder("4 speakers/-5 dB") != study.setting_folder("4 speakers/5 dB")


def test_real_recordings_are_skipped_with_a_message_without_their_extra(monkeypatch, capsys):
    def missing(name, split):
        raise ImportError("this loader needs the package 'aeon', which is not installed: "
                          "pip install 'rnnjax[recordings]'")
    monkeypatch.setattr(study, "load_recordings", missing)
    args = SimpleNamespace(real=["JapaneseVowels"], models=["rnn"])
    assert "rnnjax[recordings]" in study.real_recordings(args)["skipped"]
    assert "real recordings skipped" in capsys.readouterr().out
    args.models = ["cnn_rnn"]      # the RNN on frames not asked: nothing to run
    assert study.real_recordings(args) == {}


def test_a_folder_of_ones_own_recordings_becomes_one_setting(tmp_path):
    """--data-dir: DIR/train and DIR/test read as they are (here written by the
    generator, at another rate), padded to one length, standardised by the training set."""
    speakers = vc.draw_speakers(3, seed=9)
    vc.write_voice_folder(tmp_path / "train", speakers, 3, seed=1, snr_db=20.0, rate=16000)
    vc.write_voice_folder(tmp_path / "test", speakers, 2, seed=2, snr_db=20.0, rate=16000)
    args = SimpleNamespace(data_dir=tmp_path, rate=RATE, frame_length=256, hop=80, mels=20)
    (setting,) = study.settings(args)
    assert setting.key == "recordings" and setting.speakers == 3 and setting.snr is None
    assert setting.train.classes == setting.test.classes == tuple(s.name for s in speakers)
    assert setting.train.xs.shape[1:] == setting.test.xs.shape[1:]
    assert setting.train.xs.shape[2] == 20 and len(setting.test.labels) == 6
    valid = np.arange(setting.train.xs.shape[1])[None, :] < setting.train.lengths[:, None]
    frames = setting.train.xs[valid]                       # standardised per band
    np.testing.assert_allclose(frames.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(frames.std(0), 1, atol=1e-3)
    assert not setting.train.xs[~valid].any()
