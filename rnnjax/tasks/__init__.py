"""Data for the sequence tasks: synthetic tasks as pure functions of a PRNG key, and
loaders of real data sets shipped inside packages' wheels (each needs an extra:
`text` for the plays, `recordings` for the UEA archive, `digits`, `forecasting`; a
missing package raises an ImportError naming the extra)."""

from rnnjax.tasks.adding import ADDING_BASELINE_MSE, adding_batch
from rnnjax.tasks.bouncing import Bouncing, bouncing_batch
from rnnjax.tasks.clips import Clips, clip_batch
from rnnjax.tasks.copy_memory import copy_memory_baseline, copy_memory_batch
from rnnjax.tasks.delayed_xor import delayed_xor_batch
from rnnjax.tasks.digits import load_digits_sequences, pixel_permutation
from rnnjax.tasks.double_dependency import double_dependency_batch, reference_cross_entropies
from rnnjax.tasks.echo import echo_batch
from rnnjax.tasks.entities import EntityCorpus, generated_entities, read_conll
from rnnjax.tasks.hidden_state import cycle_model, pet_model
from rnnjax.tasks.labelled import LabelledSequences
from rnnjax.tasks.questions import Questions, question_batch
from rnnjax.tasks.recordings import load_recordings
from rnnjax.tasks.scenes import Scenes, scene_batch
from rnnjax.tasks.series import Series, airline, sunspots
from rnnjax.tasks.shakespeare import CharVocab, shakespeare_plays, split_plays
from rnnjax.tasks.vocab import WordVocab

__all__ = [
    "ADDING_BASELINE_MSE",
    "Bouncing",
    "CharVocab",
    "Clips",
    "EntityCorpus",
    "LabelledSequences",
    "Questions",
    "Scenes",
    "Series",
    "WordVocab",
    "adding_batch",
    "airline",
    "bouncing_batch",
    "clip_batch",
    "copy_memory_baseline",
    "copy_memory_batch",
    "cycle_model",
    "delayed_xor_batch",
    "double_dependency_batch",
    "echo_batch",
    "generated_entities",
    "load_digits_sequences",
    "load_recordings",
    "pet_model",
    "pixel_permutation",
    "question_batch",
    "read_conll",
    "reference_cross_entropies",
    "scene_batch",
    "shakespeare_plays",
    "split_plays",
    "sunspots",
]
