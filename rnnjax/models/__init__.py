"""Reusable models built from the library's parts, one module per model; each model's
`init(key)` is composed from its parts by `combine`.

| name | what |
|---|---|
| `CellWithHead` | a cell with a Dense head at every step (the memory-task studies) |
| `Classifier` | many-to-one: an encoder read at each sequence's length, a Dense head |
| `Tagger` | character and word encoders, a softmax or CRF head per word |
| `LookupTagger` | the training entities as a table (a baseline without parameters) |
| `CharLM` | embedding, stacked cells, logits of the next character |
| `Captioner` | a CNN encoder and a recurrent decoder (loaded on first use: Flax) |
| `BoxTracker` | frame and template CNNs, a cell, a box per frame (loaded on first use: Flax) |
| `SpectrogramClassifier` | CNN columns of a spectrogram into a cell or averaged; a cell on frames |
| `EncoderDecoder` | the encoder-decoder of `rnnjax.seq2seq` |
| `VideoClassifier` | LRCN, 3D CNN, frame by frame, two-stream (loaded on first use: Flax) |
| `VQA` | image and question encoders fused, an MLP to the answers (loaded on first use) |
| `FramePredictor` | next frames of videos: ConvLSTM, or CNN + LSTM + Dense (Flax, lazy) |
| `copy_last` | the frame predictors' baseline: the last observed frame, repeated |
"""

from __future__ import annotations

import importlib

from rnnjax.models.cell_with_head import CellWithHead, cell_with_head
from rnnjax.models.char_lm import CharLM, char_lm
from rnnjax.models.classifier import Classifier, classifier
from rnnjax.models.compose import Part, combine, fixed, param_count, part
from rnnjax.models.lookup_tagger import LookupTagger
from rnnjax.models.tagger import Tagger, pack_words, tagger
from rnnjax.seq2seq import EncoderDecoder

#: names whose modules import flax.linen: loaded on first use
_LAZY = {"Captioner": "rnnjax.models.image_captioner", "captioner": "rnnjax.models.image_captioner",
         "VideoClassifier": "rnnjax.models.video_classifier",
         "video_classifier": "rnnjax.models.video_classifier",
         "VQA": "rnnjax.models.vqa", "vqa": "rnnjax.models.vqa",
         "BoxTracker": "rnnjax.models.box_tracker", "box_tracker": "rnnjax.models.box_tracker",
         "FramePredictor": "rnnjax.models.frame_predictor",
         "copy_last": "rnnjax.models.frame_predictor",
         "SpectrogramClassifier": "rnnjax.models.spectrogram_classifier",
         "spectrogram_classifier": "rnnjax.models.spectrogram_classifier"}

__all__ = ["VQA", "BoxTracker", "Captioner", "CellWithHead", "CharLM", "Classifier",
           "EncoderDecoder", "FramePredictor", "LookupTagger", "Part", "SpectrogramClassifier",
           "Tagger", "VideoClassifier", "box_tracker", "captioner", "cell_with_head", "char_lm",
           "classifier", "combine", "copy_last", "fixed", "pack_words", "param_count", "part",
           "spectrogram_classifier", "tagger", "video_classifier", "vqa"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rnnjax.models' has no attribute {name!r}")
