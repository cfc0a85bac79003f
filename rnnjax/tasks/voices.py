"""Generated voices: speakers saying strings of vowels, by source-filter synthesis.

The source-filter model of speech production (Fant 1960): a source, here the glottal
pulse train of the vocal folds, is shaped by the resonances (formants) of the vocal
tract. Each speaker of `draw_speakers` has

- a fundamental frequency (f0) range: each utterance's base f0 is drawn in it; the
  ranges of different speakers overlap;
- an f0 contour: a glide of a speaker-specific number of semitones from the start of
  an utterance to its end (rising or falling), plus a slow random drift;
- jitter: the relative standard deviation of each glottal period's length;
- a vocal-tract length: formant frequencies scale as 1 / length (a uniform tube's
  resonances are (2k - 1) c / 4L), from the vowels of an adult male tract of 17.5 cm
  (`VOWELS`, Peterson and Barney 1952's averages), with a small per-utterance variation;
- a vowel order: a speaker says vowels in its own cyclic order, from a random start;
- timing and dynamics: its own mean vowel duration and the time its formants take to
  move from one vowel to the next.

An utterance is 3 to 5 vowels; the glottal source (impulses at the pulse times, a
two-pole low-pass for the glottal pulse's spectral tilt, a first difference for the
radiation at the lips) goes through three formant resonators in cascade whose
frequencies follow the vowels, block by block (`vocal_tract`); white noise is added
at a given signal-to-noise ratio. Every clip is a pure function of a seed, the
speaker and the clip's index; the clean voice does not depend on the noise level.

What it does not model: consonants, nasals and fricatives; any language (the vowel
strings carry no meaning); intensity, stress and rhythm beyond a speaker's vowel
durations; prosody beyond the f0 glide and drift; shimmer, breathiness and the
glottal pulse's shape beyond a fixed spectral tilt; formants above the third; room
acoustics, microphones and any noise but white noise.

The speakers differ in static traits (f0 range, tract length) that overlap between
speakers and vary per utterance, and in temporal ones (vowel order, timing, the
direction of the f0 glide) that only the order of events shows.

>>> speakers = draw_speakers(2, seed=0)
>>> clips, labels = voice_clips(speakers, per_speaker=2, seed=1, snr_db=20.0)
>>> labels.tolist(), clips[0].dtype.name
([0, 0, 1, 1], 'float32')
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.signal

from rnnjax import _checks
from rnnjax.audio import write_wav

RATE = 8000
#: the tract length the formant table is for (an adult male's), in cm
REFERENCE_TRACT_CM = 17.5
#: formants F1, F2, F3 in Hz for a 17.5 cm tract (Peterson and Barney 1952, men's
#: averages): /i/ as in "heed", /e/ "head", /a/ "hod", /o/ "hawed", /u/ "who'd"
VOWELS = {"i": (270.0, 2290.0, 3010.0), "e": (530.0, 1840.0, 2480.0),
          "a": (730.0, 1090.0, 2440.0), "o": (570.0, 840.0, 2410.0),
          "u": (300.0, 870.0, 2240.0)}
#: formant bandwidths in Hz (F1, F2, F3)
BANDWIDTHS = (80.0, 100.0, 140.0)
#: samples per block of constant formants and f0 in the synthesis (5 ms at 8 kHz)
BLOCK = 40


class Speaker(NamedTuple):
    """One speaker's traits (see the module)."""

    name: str
    f0_range: tuple[float, float]   # Hz: an utterance's base f0 is uniform in it
    glide: float                     # semitones from an utterance's start to its end
    jitter: float                    # relative std of each glottal period
    tract_cm: float                  # vocal-tract length
    vowel_order: tuple[str, ...]     # the cyclic order of the vowels
    vowel_ms: float                  # mean vowel duration
    transition_ms: float             # time constant of the formants' move to a vowel


def formants(vowel: str, tract_cm: float) -> np.ndarray:
    """F1, F2, F3 [3] in Hz of `vowel` (a key of VOWELS) said by a tract of `tract_cm`:
    the table's values times REFERENCE_TRACT_CM / tract_cm."""
    if vowel not in VOWELS:
        raise ValueError(f"vowel must be one of {sorted(VOWELS)}, got {vowel!r}")
    if not tract_cm > 0:
        raise ValueError(f"tract_cm must be > 0, got {tract_cm}")
    return np.asarray(VOWELS[vowel]) * REFERENCE_TRACT_CM / tract_cm


def draw_speakers(n: int, seed: int = 0) -> list[Speaker]:
    """`n` speakers drawn from `seed` (the first k of n are the speakers of
    `draw_speakers(k, seed)`): f0 range centred uniformly in 100-200 Hz, +-15% wide;
    glide uniform in -4..4 semitones; jitter 0.5-3%; tract 15.5-17.5 cm; a random
    vowel order; vowels of 100-200 ms; formant transitions of 15-60 ms."""
    n = _checks.positive_int("n", n)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        centre = rng.uniform(110.0, 160.0)
        out.append(Speaker(
            name=f"speaker{i:02d}", f0_range=(0.8 * centre, 1.2 * centre),
            glide=float(rng.uniform(-4.0, 4.0)), jitter=float(rng.uniform(0.005, 0.03)),
            tract_cm=float(rng.uniform(16.0, 17.0)),
            vowel_order=tuple(rng.permutation(list(VOWELS)).tolist()),
            vowel_ms=float(rng.uniform(100.0, 200.0)),
            transition_ms=float(rng.uniform(15.0, 60.0))))
    return out


def pulse_train(f0, rate: int, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Glottal impulses float32 [N] for an f0 track [N] in Hz: a unit impulse at each
    glottal closure; the next comes one period rate / f0(t) later, each period's length
    times (1 + jitter * a standard normal draw). The first falls in the first period,
    at a random phase."""
    f0 = np.asarray(f0, np.float64)
    if f0.ndim != 1 or not np.all(f0 > 0):
        raise ValueError(f"f0 must be a positive [N] track in Hz, got shape {f0.shape}")
    out = np.zeros(f0.shape, np.float32)
    t = rng.uniform(0.0, rate / f0[0])
    while t < len(f0):
        out[int(t)] = 1.0
        t += rate / f0[int(t)] * max(0.5, 1.0 + jitter * rng.standard_normal())
    return out


def glottal_source(pulses: np.ndarray) -> np.ndarray:
    """Impulses [N] -> the source at the lips [N]: a double pole at 0.95 (the glottal
    pulse's -12 dB per octave), then a first difference (the lips' radiation, +6 dB
    per octave)."""
    shaped = scipy.signal.lfilter([1.0], [1.0, -1.9, 0.9025], pulses)
    return scipy.signal.lfilter([1.0, -1.0], [1.0], shaped)


def resonator(freq: float, bandwidth: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(b, a) of a two-pole resonance at `freq` Hz of `bandwidth` Hz, unit gain at 0 Hz:
    poles r e^(+-i theta) with r = exp(-pi bandwidth / rate), theta = 2 pi freq / rate."""
    r = np.exp(-np.pi * bandwidth / rate)
    a = np.array([1.0, -2.0 * r * np.cos(2.0 * np.pi * freq / rate), r * r])
    return np.array([a.sum()]), a


def vocal_tract(source: np.ndarray, tracks: np.ndarray, rate: int,
                bandwidths=BANDWIDTHS, block: int = BLOCK) -> np.ndarray:
    """source [N] through formant resonators in cascade whose frequencies follow
    tracks [N, formants] in Hz: coefficients are set per block of `block` samples (from
    the block's first sample) and the filter's state carries over between blocks.
    Frequencies are kept below 0.45 * rate."""
    source = np.asarray(source, np.float64)
    tracks = np.asarray(tracks, np.float64)
    if tracks.shape != (len(source), len(bandwidths)):
        raise ValueError(f"tracks must have shape [N, formants] = {(len(source), len(bandwidths))}"
                         f" (one frequency per sample and bandwidth), got {tracks.shape}")
    out = np.empty_like(source)
    state = np.zeros(2 * len(bandwidths))
    for start in range(0, len(source), block):
        b, a = np.array([1.0]), np.array([1.0])
        for freq, width in zip(tracks[start], bandwidths):
            bk, ak = resonator(min(freq, 0.45 * rate), width, rate)
            b, a = np.convolve(b, bk), np.convolve(a, ak)
        out[start:start + block], state = scipy.signal.lfilter(
            b, a, source[start:start + block], zi=state)
    return out


def utterance(speaker: Speaker, rng: np.random.Generator, rate: int = RATE):
    """One clean utterance of `speaker`: (float32 samples [N] of RMS 0.1, the vowels
    said). 3 to 5 vowels in the speaker's order from a random start, each lasting
    vowel_ms times U(0.8, 1.2); the formants approach each vowel's (scaled by the
    tract, times 1 + 0.02 N(0, 1) for the utterance) exponentially with the speaker's
    transition time; f0 = base * 2^(glide / 12 * (t / T - 1/2)) * (1 + drift), the
    drift a random walk of 0.3% per block; 10 ms fades at both ends."""
    count = int(rng.integers(3, 6))
    start = int(rng.integers(len(speaker.vowel_order)))
    said = [speaker.vowel_order[(start + k) % len(speaker.vowel_order)] for k in range(count)]
    blocks_per_ms = rate / 1000.0 / BLOCK
    lengths = [max(1, round(speaker.vowel_ms * rng.uniform(0.8, 1.2) * blocks_per_ms))
               for _ in said]
    blocks = sum(lengths)
    tract = speaker.tract_cm * (1.0 + 0.03 * rng.standard_normal())
    targets = np.concatenate([np.tile(formants(v, tract), (n, 1)) for v, n in zip(said, lengths)])
    keep = np.exp(-1.0 / max(speaker.transition_ms * blocks_per_ms, 1e-6))
    tracks = scipy.signal.lfilter([1.0 - keep], [1.0, -keep], targets, axis=0,
                                  zi=targets[:1] * keep)[0]
    base = rng.uniform(*speaker.f0_range)
    position = (np.arange(blocks) + 0.5) / blocks - 0.5
    drift = np.cumsum(0.003 * rng.standard_normal(blocks))
    f0 = base * 2.0 ** (speaker.glide / 12.0 * position) * (1.0 + drift - drift.mean())
    f0 = np.clip(f0, 50.0, 0.4 * rate)
    per_sample = lambda x: np.repeat(x, BLOCK, axis=0)
    source = glottal_source(pulse_train(per_sample(f0), rate, speaker.jitter, rng))
    voice = vocal_tract(source, per_sample(tracks), rate)
    fade = min(int(0.01 * rate), len(voice) // 2)
    ramp = np.linspace(0.0, 1.0, fade)
    voice[:fade] *= ramp
    voice[len(voice) - fade:] *= ramp[::-1]
    voice *= 0.1 / np.sqrt(np.mean(voice ** 2))
    return voice.astype(np.float32), said


def add_noise(clean: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """clean [N] plus white Gaussian noise whose power is the clean signal's mean power
    divided by 10^(snr_db / 10); float32, clipped to [-1, 1]. snr_db = inf adds none."""
    clean = np.asarray(clean, np.float64)
    if np.isinf(snr_db) and snr_db > 0:
        return clean.astype(np.float32)
    level = np.sqrt(np.mean(clean ** 2) / 10.0 ** (snr_db / 10.0))
    return np.clip(clean + level * rng.standard_normal(clean.shape), -1, 1).astype(np.float32)


def voice_clips(speakers: list[Speaker], per_speaker: int, seed: int, snr_db: float,
                rate: int = RATE) -> tuple[list, np.ndarray]:
    """`per_speaker` noisy utterances of each speaker: (clips, a list of float32 [N_i];
    labels int32 [n * per_speaker], the speaker's index), speaker by speaker. Clip j
    of speaker i comes from the seed [seed, i, j] (the voice) and [seed, i, j, 1] (the
    noise), so the same voices come at every noise level."""
    per_speaker = _checks.positive_int("per_speaker", per_speaker)
    if not speakers:
        raise ValueError("speakers must hold at least one Speaker, got none")
    clips, labels = [], []
    for i, speaker in enumerate(speakers):
        for j in range(per_speaker):
            clean, _ = utterance(speaker, np.random.default_rng([seed, i, j]), rate)
            clips.append(add_noise(clean, snr_db, np.random.default_rng([seed, i, j, 1])))
            labels.append(i)
    return clips, np.asarray(labels, np.int32)


def write_voice_folder(folder, speakers: list[Speaker], per_speaker: int, seed: int,
                       snr_db: float, rate: int = RATE) -> Path:
    """`voice_clips` written as 16-bit wav files in the layout `rnnjax.audio.read_folder`
    reads: folder/<speaker name>/<j>.wav. Returns the folder."""
    clips, labels = voice_clips(speakers, per_speaker, seed, snr_db, rate)
    counts = {}
    for clip, label in zip(clips, labels):
        j = counts[label] = counts.get(label, -1) + 1
        write_wav(Path(folder) / speakers[label].name / f"{j:04d}.wav", clip, rate)
    return Path(folder)
