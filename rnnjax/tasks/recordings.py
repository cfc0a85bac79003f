"""Multivariate recordings of the UEA archive that `aeon` ships in its wheel (no
download): JapaneseVowels and BasicMotions, on the archive's own train/test split.

JapaneseVowels (Kudo, Toyama and Shimbo 1999): nine Japanese male speakers say the
vowels /ae/; each utterance is a series of 12 LPC cepstrum coefficients, 7 to 29
frames long. The task is to name the speaker: 9 classes, 270 training (30 per
speaker) and 370 test utterances.

BasicMotions: four students wear a smartwatch while standing, walking, running and
playing badminton; 3-D accelerometer and 3-D gyroscope at 10 Hz for 10 s, so 6
channels and 100 steps. 4 classes, 40 training and 40 test recordings.

Needs the `recordings` extra: pip install 'rnnjax[recordings]'.
"""

from __future__ import annotations

import numpy as np

from rnnjax.tasks._optional import require
from rnnjax.tasks.labelled import LabelledSequences, pad

#: data set -> (aeon loader, class names in label order)
DATASETS = {
    "JapaneseVowels": ("load_japanese_vowels", tuple("123456789")),
    "BasicMotions": ("load_basic_motions", ("badminton", "running", "standing", "walking")),
}
SPLITS = ("train", "test")


def load_recordings(name: str, split: str) -> LabelledSequences:
    """The `split` ("train" or "test") of the UEA data set `name` (a key of DATASETS).

    Returns `LabelledSequences`: xs float32 [N, T_max, channels] zero past each
    recording's length (T_max: the longest in this split), lengths int32 [N], labels
    int32 [N] (0-based, indices into `classes`), the class names, and each recording's
    position in aeon's split (`index`). Values are as aeon gives them (not scaled).
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    loader, classes = DATASETS[name]
    series, labels = getattr(require("aeon.datasets", "recordings"), loader)(split=split)
    unknown = sorted(set(map(str, labels)) - set(classes))
    if unknown:
        raise ValueError(f"{name} holds labels {unknown} outside its classes {classes}")
    xs, lengths = pad([np.asarray(s).T for s in series])   # aeon: [channels, T_i] each
    label_ids = np.asarray([classes.index(str(y)) for y in labels], np.int32)
    return LabelledSequences(xs, lengths, label_ids, classes, np.arange(len(label_ids)))
