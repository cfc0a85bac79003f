"""Audio input: wav files in and out, a folder of speakers' recordings, and the
log-magnitude spectrogram (a pure, jit-able function) with an optional mel filter bank.

The reading side turns any wav file into float32 mono samples in [-1, 1] at one
target rate, so that real recordings and generated ones (`rnnjax.tasks.voices`)
reach a model by the same path:

    read_wav -> read_folder (one sub-folder per speaker) -> clips_to_sequences
             -> LabelledSequences of spectrogram frames [N, frames, bins]

File handling is NumPy and SciPy (`scipy.io.wavfile`, `scipy.signal.resample_poly`;
SciPy comes with JAX); the spectrogram is `jax.numpy`, batched over leading axes.

>>> import numpy as np
>>> x = np.sin(2 * np.pi * 1000 * np.arange(800) / 8000).astype(np.float32)
>>> spectrogram(x, frame_length=200, hop=80).shape      # 1 + (800 - 200) // 80 frames
(8, 101)
>>> int(np.argmax(spectrogram(x, frame_length=200, hop=80)[0]))   # 1000 Hz / 40 Hz per bin
25
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import scipy.io.wavfile
import scipy.signal

from rnnjax import _checks
from rnnjax.tasks.labelled import LabelledSequences, pad

#: the windows `spectrogram` knows (periodic forms, as scipy.signal.get_window makes them)
WINDOWS = ("hann", "hamming", "boxcar")
#: sample formats `write_wav` writes (and `read_wav` reads), with their full scale
FORMATS = {"int16": 2.0 ** 15, "int32": 2.0 ** 31, "uint8": 2.0 ** 7, "float32": 1.0}


# -- wav files ----------------------------------------------------------------------------
def to_float(samples: np.ndarray) -> np.ndarray:
    """Integer or float samples [N] or [N, channels] as float32 in [-1, 1]: int16 and
    int32 divided by their full scale (2^15, 2^31), uint8 centred on 128 and divided by
    128, floats as they are."""
    samples = np.asarray(samples)
    if samples.dtype == np.uint8:
        return ((samples.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if samples.dtype == np.int16 or samples.dtype == np.int32:
        return (samples.astype(np.float64) / FORMATS[samples.dtype.name]).astype(np.float32)
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32)
    raise ValueError(f"samples must be int16, int32, uint8 or floating point, got dtype "
                     f"{samples.dtype}")


def to_mono(samples: np.ndarray) -> np.ndarray:
    """[N] as it is; [N, channels] averaged over the channels -> [N]."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        return samples
    if samples.ndim == 2:
        return samples.mean(axis=1, dtype=np.float64).astype(samples.dtype)
    raise ValueError(f"samples must have shape [N] or [N, channels], got {samples.shape}")


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """samples [N] at `rate` Hz -> float32 [ceil(N * target / rate)] at `target` Hz, by
    polyphase filtering (`scipy.signal.resample_poly` with up/down reduced by their
    greatest common divisor; its default Kaiser-windowed low-pass removes what lies
    above the lower Nyquist frequency)."""
    rate, target = (_checks.positive_int(n, v) for n, v in (("rate", rate), ("target", target)))
    samples = np.asarray(samples, np.float32)
    if rate == target:
        return samples
    common = math.gcd(rate, target)
    return scipy.signal.resample_poly(samples, target // common, rate // common).astype(
        np.float32)


def read_wav(path, rate: int | None = None) -> tuple[np.ndarray, int]:
    """A wav file as (float32 mono samples [N] in [-1, 1], sample rate).

    Any format `scipy.io.wavfile` reads (PCM int16, int32, uint8; IEEE float), mono or
    with several channels (averaged into one). With `rate`, the samples are resampled
    to it (`resample`) and `rate` is returned. A file that cannot be read raises a
    ValueError naming it.
    """
    path = Path(path)
    try:
        file_rate, data = scipy.io.wavfile.read(path)
    except (ValueError, OSError, EOFError) as error:   # not a wav, truncated, missing
        raise ValueError(f"cannot read {path} as a wav file: {error}") from error
    samples = to_mono(to_float(data))
    if samples.size == 0:
        raise ValueError(f"{path} holds no samples")
    if rate is None:
        return samples, int(file_rate)
    return resample(samples, int(file_rate), rate), int(rate)


def write_wav(path, samples, rate: int, format: str = "int16") -> Path:
    """Write samples [N] (mono) or [N, channels] in [-1, 1] as a wav file of `format`
    (a key of FORMATS: integers are scaled to their full range, rounded and clipped;
    uint8 is offset by 128). Creates the parent folder; returns the path."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {format!r}")
    rate = _checks.positive_int("rate", rate)
    samples = np.asarray(samples, np.float64)
    if samples.ndim not in (1, 2) or samples.shape[0] == 0:
        raise ValueError(f"samples must have shape [N] or [N, channels] with N > 0, got "
                         f"{samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise ValueError("samples must be finite")
    scale = FORMATS[format]
    if format == "float32":
        data = samples.astype(np.float32)
    elif format == "uint8":
        data = np.clip(np.round(samples * scale + 128.0), 0, 255).astype(np.uint8)
    else:
        data = np.clip(np.round(samples * scale), -scale, scale - 1).astype(format)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.wavfile.write(path, rate, data)
    return path


# -- a folder of speakers -----------------------------------------------------------------
class AudioClips(NamedTuple):
    """Clips with one class label each, as read from a folder.

    `clips` a list of float32 [N_i] (mono, at `rate`), `labels` int32 [N] indices into
    `classes` (the sub-folder names, sorted), `paths` each clip's file.
    """

    clips: list
    labels: np.ndarray
    classes: tuple[str, ...]
    paths: tuple[Path, ...]
    rate: int


def read_folder(folder, rate: int) -> AudioClips:
    """Every `*.wav` of `folder/<speaker>/` (one sub-folder per class, sorted by name;
    files sorted by name within each), read as mono and resampled to `rate` Hz.

    Raises a ValueError for a folder that does not exist, one without sub-folders, a
    sub-folder without wav files, and a file that cannot be read (naming it).
    """
    folder = Path(folder)
    rate = _checks.positive_int("rate", rate)
    if not folder.is_dir():
        raise ValueError(f"folder {folder} does not exist or is not a folder")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"folder {folder} is empty: it must hold one sub-folder of wav "
                         f"files per speaker (class)")
    clips, labels, paths = [], [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir()
                       if p.is_file() and p.suffix.lower() == ".wav")
        if not files:
            raise ValueError(f"{folder / name} holds no .wav file (every sub-folder of "
                             f"{folder} is a class and needs at least one)")
        for path in files:
            clips.append(read_wav(path, rate)[0])
            labels.append(label)
            paths.append(path)
    return AudioClips(clips, np.asarray(labels, np.int32), tuple(classes), tuple(paths), rate)


def frame_count(length, frame_length: int, hop: int):
    """Frames `spectrogram` cuts from `length` samples (int or int array):
    1 + (length - frame_length) // hop, and 0 for a clip shorter than one frame."""
    length = np.asarray(length)
    return np.where(length >= frame_length, 1 + (length - frame_length) // hop, 0)


def clips_to_sequences(data: AudioClips, frame_length: int, hop: int, *,
                       window: str = "hann", mels: int | None = None,
                       fmin: float = 0.0, fmax: float | None = None,
                       floor: float = 1e-5) -> LabelledSequences:
    """Each clip's log spectrogram (`spectrogram`; with `mels`, of the mel bands of
    `mel_filterbank`) as labelled sequences: xs float32 [N, max frames, bins or mels]
    zero past each clip's frame count, lengths int32 [N] (`frame_count`), the labels
    and classes of `data`. Raises a ValueError naming a clip shorter than one frame."""
    frames = frame_count([len(c) for c in data.clips], frame_length, hop)
    if (frames == 0).any():
        short = data.paths[int(np.argmin(frames))]
        raise ValueError(f"{short} is shorter than one frame ({frame_length} samples at "
                         f"{data.rate} Hz)")
    bank = None if mels is None else mel_filterbank(mels, frame_length, data.rate, fmin, fmax)
    audio, _ = pad([c[:, None] for c in data.clips])
    spec = np.asarray(spectrogram(audio[..., 0], frame_length, hop, window=window,
                                  floor=floor, filterbank=bank))
    sequences = [s[:n] for s, n in zip(spec, frames)]
    xs, lengths = pad(sequences)
    return LabelledSequences(xs, lengths, data.labels, data.classes, np.arange(len(lengths)))


# -- spectrogram --------------------------------------------------------------------------
def window_values(name: str, length: int):
    """The periodic window `name` (one of WINDOWS) of `length` samples, float32 [length]:
    the same values as `scipy.signal.get_window(name, length)` (fftbins=True), the form
    whose shifted copies at hop length / 4 add up to a constant for the Hann window."""
    if name not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {name!r}")
    n = jnp.arange(length, dtype=jnp.float32)
    phase = jnp.cos(2 * jnp.pi * n / length)
    if name == "hann":
        return 0.5 - 0.5 * phase
    if name == "hamming":
        return 0.54 - 0.46 * phase
    return jnp.ones(length, jnp.float32)


def frames_of(x, frame_length: int, hop: int):
    """x [..., N] -> [..., frames, frame_length]: frame f holds samples f * hop ... f * hop
    + frame_length - 1; frames = 1 + (N - frame_length) // hop (no padding: a trailing
    part shorter than a frame is dropped)."""
    count = 1 + (x.shape[-1] - frame_length) // hop
    index = hop * np.arange(count)[:, None] + np.arange(frame_length)[None, :]
    return x[..., index]


def magnitude(x, frame_length: int, hop: int, *, window: str = "hann"):
    """|STFT| of x [..., N] -> float32 [..., frames, frame_length // 2 + 1].

    Each frame (`frames_of`) is multiplied by the window and Fourier transformed (the
    real FFT), and the magnitude divided by the window's sum, so that a sine of
    amplitude A centred on a bin shows A / 2: the values of `scipy.signal.stft(x,
    window=window, nperseg=frame_length, noverlap=frame_length - hop, boundary=None,
    padded=False)` (its default scaling "spectrum"), frames on the second-last axis.
    """
    x = _check_spectrogram_input(x, frame_length, hop)
    win = window_values(window, frame_length)
    spectrum = jnp.fft.rfft(frames_of(x, frame_length, hop) * win, axis=-1)
    return jnp.abs(spectrum) / jnp.sum(win)


def spectrogram(x, frame_length: int, hop: int, *, window: str = "hann", floor: float = 1e-5,
                filterbank=None):
    """Log-magnitude spectrogram of x [..., N] (any leading axes): float32
    [..., frames, bins] with frames = 1 + (N - frame_length) // hop and bins =
    frame_length // 2 + 1, or [..., frames, mels] with a `filterbank` [bins, mels]
    (`mel_filterbank`), applied to the magnitude before the log.

    log(max(m, floor)) of the `magnitude` m: the floor (> 0) keeps silence finite and
    sets the quietest level the features tell apart. Pure and jit-able (the sizes and
    the window are static).

    Arguments:
        x: float samples [..., N], N >= frame_length.
        frame_length: samples per frame (the FFT size).
        hop: samples between the starts of two frames.
        window: one of WINDOWS.
        floor: the magnitude below which values are clipped, > 0.
        filterbank: None, or [frame_length // 2 + 1, bands] weights of each bin.
    """
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    m = magnitude(x, frame_length, hop, window=window)
    if filterbank is not None:
        filterbank = jnp.asarray(filterbank, jnp.float32)
        bins = frame_length // 2 + 1
        if filterbank.ndim != 2 or filterbank.shape[0] != bins:
            raise ValueError(f"filterbank must have shape [{bins}, bands] (frame_length "
                             f"{frame_length} gives {bins} bins), got shape "
                             f"{tuple(filterbank.shape)}")
        m = m @ filterbank
    return jnp.log(jnp.maximum(m, floor))


def _check_spectrogram_input(x, frame_length: int, hop: int):
    _checks.positive_int("frame_length", frame_length)
    _checks.positive_int("hop", hop)
    x = _checks.float_array("x", x, min_rank=1, layout="[..., N]")
    if x.shape[-1] < frame_length:
        raise ValueError(f"x must hold at least frame_length = {frame_length} samples in its "
                         f"last axis [..., N], got shape {tuple(x.shape)}")
    return x


def hz_to_mel(f):
    """The mel scale of O'Shaughnessy (1987), as HTK uses it: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    """The inverse of `hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(mels: int, frame_length: int, rate: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular filters [frame_length // 2 + 1, mels], float32: filter j rises from
    0 at centre j - 1 to 1 at centre j and falls to 0 at centre j + 1, with mels + 2
    centres equally spaced on the mel scale from fmin to fmax (default rate / 2); each
    FFT bin k lies at k * rate / frame_length Hz. Heights are 1 (not area-normalised),
    so a tone at a filter's centre passes it whole."""
    mels, frame_length, rate = (_checks.positive_int(n, v) for n, v in
                                (("mels", mels), ("frame_length", frame_length),
                                 ("rate", rate)))
    fmax = rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= rate / 2:
        raise ValueError(f"fmin and fmax must satisfy 0 <= fmin < fmax <= rate / 2 = "
                         f"{rate / 2}, got fmin {fmin}, fmax {fmax}")
    centres = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), mels + 2))
    freqs = np.arange(frame_length // 2 + 1) * rate / frame_length
    lower, centre, upper = centres[:-2], centres[1:-1], centres[2:]
    rising = (freqs[:, None] - lower) / (centre - lower)
    falling = (upper - freqs[:, None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
