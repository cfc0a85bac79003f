"""Audio input (rnnjax.audio): wav files of every sample format in and out, resampling,
the folder of speakers and its errors, the spectrogram against SciPy's STFT, and the
mel filter bank."""

import jax
import numpy as np
import pytest
import scipy.io.wavfile
import scipy.signal

from rnnjax import audio

RATE = 8000


def sine(freq, seconds=0.5, rate=RATE, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(("fmt", "step"), [("int16", 2.0 ** -15), ("int32", 2.0 ** -31),
                                           ("uint8", 2.0 ** -7), ("float32", 0.0)])
def test_wav_round_trip_for_each_format(tmp_path, fmt, step):
    x = np.random.default_rng(0).uniform(-0.9, 0.9, 1000).astype(np.float32)
    path = audio.write_wav(tmp_path / f"{fmt}.wav", x, RATE, fmt)
    stored = scipy.io.wavfile.read(path)[1]
    assert stored.dtype == np.dtype(fmt)
    back, rate = audio.read_wav(path)
    assert rate == RATE and back.dtype == np.float32 and back.shape == x.shape
    # a quantiser rounds to the nearest step: half a step at most
    assert np.max(np.abs(back - x)) <= step / 2 + 1e-7
    if fmt != "float32":   # and the quantisation is not finer than the format's step
        assert np.max(np.abs(back - x)) > step / 10


def test_stereo_is_averaged_into_mono(tmp_path):
    left, right = sine(440), sine(1000, amplitude=0.25)
    path = audio.write_wav(tmp_path / "stereo.wav", np.stack([left, right], 1), RATE)
    assert scipy.io.wavfile.read(path)[1].shape == (len(left), 2)
    back, _ = audio.read_wav(path)
    np.testing.assert_allclose(back, (left + right) / 2, atol=2.0 ** -15)


def test_integer_formats_scale_to_full_range():
    assert audio.to_float(np.array([-32768, 0, 16384], np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert audio.to_float(np.array([0, 128, 192], np.uint8)).tolist() == [-1.0, 0.0, 0.5]
    assert audio.to_float(np.array([-2 ** 31], np.int32)).tolist() == [-1.0]
    with pytest.raises(ValueError, match="dtype int8"):
        audio.to_float(np.array([1], np.int8))


@pytest.mark.parametrize("file_rate", [16000, 11025, 44100])
def test_resampling_keeps_a_sines_frequency(tmp_path, file_rate):
    path = audio.write_wav(tmp_path / "tone.wav", sine(600, 1.0, file_rate), file_rate)
    x, rate = audio.read_wav(path, rate=RATE)
    assert rate == RATE and abs(len(x) - RATE) <= 1
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak = np.argmax(spectrum) * RATE / len(x)
    assert abs(peak - 600) <= 1.0
    # the amplitude survives (no gain or loss from the polyphase filter), away from the ends
    middle = x[RATE // 4: 3 * RATE // 4]
    assert abs(np.sqrt(2 * np.mean(middle ** 2)) - 0.5) < 0.01


def test_resampling_removes_what_the_target_rate_cannot_hold():
    x = audio.resample(sine(6000, 1.0, 16000), 16000, RATE)   # above 4 kHz
    assert np.sqrt(np.mean(x[1000:-1000] ** 2)) < 0.01


def test_unreadable_files_and_bad_folders_are_named(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match=r"cannot read .*bad\.wav"):
        audio.read_wav(bad)
    with pytest.raises(ValueError, match="does not exist"):
        audio.read_folder(tmp_path / "nowhere", RATE)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"empty.* is empty"):
        audio.read_folder(empty, RATE)
    (empty / "alice").mkdir()
    (empty / "alice" / "notes.txt").write_text("no audio")
    with pytest.raises(ValueError, match=r"alice holds no \.wav file"):
        audio.read_folder(empty, RATE)
    bad.rename(empty / "alice" / "broken.wav")
    with pytest.raises(ValueError, match=r"broken\.wav"):
        audio.read_folder(empty, RATE)


def test_folder_reader_labels_by_sorted_sub_folder(tmp_path):
    tones = {"bob": [300, 310], "alice": [500], "carol": [700, 710, 720]}
    for name, freqs in tones.items():
        for i, f in enumerate(freqs):   # each at another rate, format and channel count
            rate, fmt = [(RATE, "int16"), (16000, "float32"), (22050, "uint8")][i]
            x = sine(f, 0.25, rate)
            audio.write_wav(tmp_path / name / f"{i}.wav", x if i != 1 else np.stack([x, x], 1),
                            rate, fmt)
    data = audio.read_folder(tmp_path, RATE)
    assert data.classes == ("alice", "bob", "carol")
    assert data.labels.tolist() == [0, 1, 1, 2, 2, 2]
    assert [p.name for p in data.paths] == ["0.wav", "0.wav", "1.wav", "0.wav", "1.wav", "2.wav"]
    for clip, label, path in zip(data.clips, data.labels, data.paths):
        freq = tones[data.classes[label]][int(path.stem)]
        assert abs(len(clip) - RATE // 4) <= 1 and clip.dtype == np.float32
        peak = np.argmax(np.abs(np.fft.rfft(clip * np.hanning(len(clip))))) * RATE / len(clip)
        assert abs(peak - freq) <= 4.0
    seqs = audio.clips_to_sequences(data, 200, 80)
    assert seqs.xs.shape == (6, 1 + (2000 - 200) // 80, 101)
    assert seqs.labels.tolist() == data.labels.tolist() and seqs.classes == data.classes
    np.testing.assert_array_equal(seqs.lengths, audio.frame_count([len(c) for c in data.clips],
                                                                  200, 80))


@pytest.mark.parametrize("window", audio.WINDOWS)
@pytest.mark.parametrize(("frame_length", "hop"), [(256, 80), (200, 200), (101, 37)])
def test_spectrogram_equals_scipys_stft(window, frame_length, hop):
    x = np.random.default_rng(1).standard_normal((2, 3, 1000)).astype(np.float32)
    _, _, reference = scipy.signal.stft(x, window=window, nperseg=frame_length,
                                        noverlap=frame_length - hop, boundary=None,
                                        padded=False, detrend=False)
    reference = np.abs(reference).swapaxes(-1, -2)      # [..., frames, bins]
    mine = audio.magnitude(x, frame_length, hop, window=window)
    assert mine.shape == reference.shape == (2, 3, 1 + (1000 - frame_length) // hop,
                                             frame_length // 2 + 1)
    np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(audio.window_values(window, frame_length),
                               scipy.signal.get_window(window, frame_length), atol=1e-6)
    # the log spectrogram, jitted: the log of the magnitude above the floor
    logs = jax.jit(audio.spectrogram, static_argnums=(1, 2),
                   static_argnames="window")(x, frame_length, hop, window=window)
    np.testing.assert_allclose(logs, np.log(np.maximum(reference, 1e-5)), rtol=1e-4, atol=1e-4)


def test_spectrogram_equals_scipys_spectrogram_squared():
    """scipy.signal.spectrogram with mode "magnitude" and scaling "spectrum" is the same
    STFT magnitude; its default PSD scaling differs by a constant."""
    x = np.random.default_rng(2).standard_normal(4000)
    _, _, reference = scipy.signal.spectrogram(x, fs=RATE, window="hann", nperseg=256,
                                               noverlap=176, detrend=False,
                                               scaling="spectrum", mode="magnitude")
    np.testing.assert_allclose(audio.magnitude(x.astype(np.float32), 256, 80),
                               reference.T, rtol=1e-4, atol=1e-6)


def test_spectrogram_checks_its_arguments():
    x = np.zeros((2, 100), np.float32)
    with pytest.raises(ValueError, match=r"at least frame_length = 256 .*got shape \(2, 100\)"):
        audio.spectrogram(x, 256, 80)
    with pytest.raises(ValueError, match="hop must be a positive integer"):
        audio.spectrogram(x, 50, 0)
    with pytest.raises(ValueError, match="frame_length must be a positive integer"):
        audio.spectrogram(x, 50.0, 10)
    with pytest.raises(ValueError, match="window must be one of"):
        audio.spectrogram(x, 50, 10, window="kaiser")
    with pytest.raises(ValueError, match="floor must be > 0"):
        audio.spectrogram(x, 50, 10, floor=0.0)
    with pytest.raises(ValueError, match=r"filterbank must have shape \[26, bands\]"):
        audio.spectrogram(x, 50, 10, filterbank=np.ones((25, 4)))
    with pytest.raises(ValueError, match="x must be a floating-point array"):
        audio.spectrogram(np.zeros(100, np.int32), 50, 10)


def test_mel_filter_bank():
    bank = audio.mel_filterbank(20, 256, RATE)
    assert bank.shape == (129, 20) and bank.min() >= 0 and bank.max() <= 1
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel([0, 700, 3000])), [0, 700, 3000])
    assert abs(float(audio.hz_to_mel(1000.0)) - 1000) < 0.1   # the scale's anchor
    centres = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(RATE / 2), 22))[1:-1]
    # a tone at a filter's centre: that filter responds the most
    for j in (2, 10, 17):
        x = sine(centres[j], 0.25)
        bands = np.asarray(audio.spectrogram(x, 256, 80, filterbank=bank)).mean(0)
        assert np.argmax(bands) == j
    # filters are wider in Hz at high frequencies
    widths = (bank > 0).sum(0)
    assert widths[-1] > 3 * widths[1]
    with pytest.raises(ValueError, match="fmin and fmax"):
        audio.mel_filterbank(20, 256, RATE, fmax=5000.0)
