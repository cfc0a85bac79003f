"""Visual question answering: a CNN encodes the image into v, a recurrent encoder
reads the question into q (its state at the question's length), and the two, fused,
go through an MLP to the answer's class scores (Antol et al. 2015, "VQA: Visual
Question Answering": a CNN, an LSTM, an elementwise product, an MLP).

Each encoding first goes through a Dense layer and tanh to `fused` units; "product"
fusion multiplies the two, "concat" puts them side by side. The baselines are the
same model with one input: "blind" (the question alone) and "image" (the image
alone); they keep the params of the parts they use.

This module uses `rnnjax.vision` (Flax convolutions); `rnnjax.models` loads it only
when `VQA` or `vqa` is first used.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rnnjax import _checks, vision
from rnnjax.cells import Cell, make
from rnnjax.layers import Dense, Embedding
from rnnjax.loop import unroll
from rnnjax.models.compose import combine, part
from rnnjax.seq2seq import final_state

#: what the model sees: both, the question alone, the image alone
INPUTS = ("full", "blind", "image")
FUSIONS = ("product", "concat")


@dataclasses.dataclass(frozen=True)
class VQA:
    """images [B, H, W, C] and questions int [B, L] with lengths [B] -> answer scores
    [B, answers]. Params: `encoder` (the CNN) and `image_proj` unless blind; `embed`,
    `cell` and `question_proj` unless image-only; `mlp` and `head`.

    Arguments:
        inputs: one of INPUTS.
        encoder: images -> v [B, features].
        embed: word ids -> vectors.
        cell: the question encoder (any cell; its hidden state at each question's
            length is q).
        fused: units of each encoding after its Dense and tanh.
        fusion: one of FUSIONS (with both inputs).
        mlp: the hidden Dense layer (ReLU) after the fusion.
        head: Dense to the answers.
        image_shape: (H, W, C) of the images.
    """

    inputs: str
    encoder: vision.ImageEncoder
    embed: Embedding
    cell: Cell
    fused: int
    fusion: str
    mlp: Dense
    head: Dense
    image_shape: tuple[int, int, int]

    def __post_init__(self):
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {self.inputs!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        _checks.positive_int("fused", self.fused)

    @property
    def sees_image(self) -> bool:
        return self.inputs != "blind"

    @property
    def reads_question(self) -> bool:
        return self.inputs != "image"

    @property
    def fused_size(self) -> int:
        """The width of the MLP's input."""
        both = self.sees_image and self.reads_question and self.fusion == "concat"
        return 2 * self.fused if both else self.fused

    def init(self, key):
        """Params from one key split in seven (encoder, image_proj, embed, cell,
        question_proj, mlp, head; a part the inputs leave out still takes its key, so
        the baselines share the full model's params of the parts they keep)."""
        image = self.sees_image
        question = self.reads_question
        proj = Dense(self.fused)
        return combine(
            part("encoder", (lambda k: self.encoder.init(k, self.image_shape))
                 if image else None),
            part("image_proj", (lambda k: proj.init(k, self.encoder.features))
                 if image else None),
            part("embed", self.embed.init if question else None),
            part("cell", (lambda k: self.cell.init(k, self.embed.features))
                 if question else None),
            part("question_proj", (lambda k: proj.init(k, self.cell.hidden_size))
                 if question else None),
            part("mlp", lambda k: self.mlp.init(k, self.fused_size)),
            part("head", lambda k: self.head.init(k, self.mlp.features)))(key)

    def _check(self, images, questions, lengths):
        batch = None
        if self.sees_image:
            images = _checks.float_array("images", images, rank=4, layout="[B, H, W, C]")
            if tuple(images.shape[1:]) != tuple(self.image_shape):
                raise ValueError(f"images must be [B, {', '.join(map(str, self.image_shape))}]"
                                 f", got shape {tuple(images.shape)}")
            batch = images.shape[0]
        if self.reads_question:
            questions = jnp.asarray(questions) if not hasattr(questions, "shape") else questions
            if questions.ndim != 2 or not jnp.issubdtype(questions.dtype, jnp.integer):
                raise _checks.InputTypeError(
                    f"questions must be an integer array [B, L] of word ids, got dtype "
                    f"{questions.dtype} with shape {tuple(questions.shape)}")
            if batch is not None and questions.shape[0] != batch:
                raise ValueError(f"questions must have the images' batch size {batch}, got "
                                 f"shape {tuple(questions.shape)} for images of shape "
                                 f"{tuple(images.shape)}")
            lengths = _checks.seq_lengths(lengths, questions.shape[0], questions.shape[1])
        return images, questions, lengths

    def encode_image(self, params, images):
        """tanh(v W + b) [B, fused] of images [B, H, W, C]."""
        v = self.encoder(params["encoder"], images)
        return jnp.tanh(Dense(self.fused)(params["image_proj"], v))

    def encode_question(self, params, questions, lengths):
        """tanh(q W + b) [B, fused]: q is the cell's hidden state after each question's
        `lengths` [B] words of questions [B, L]."""
        carry, _ = unroll(self.cell, params["cell"], self.embed(params["embed"], questions),
                          seq_lengths=lengths)
        q = final_state(self.cell, carry)
        return jnp.tanh(Dense(self.fused)(params["question_proj"], q))

    def logits(self, params, images, questions, lengths):
        """Answer scores [B, answers]; a baseline ignores the input it does not see
        (pass None for it)."""
        images, questions, lengths = self._check(images, questions, lengths)
        codes = []
        if self.sees_image:
            codes.append(self.encode_image(params, images))
        if self.reads_question:
            codes.append(self.encode_question(params, questions, lengths))
        if len(codes) == 1:
            joint = codes[0]
        elif self.fusion == "product":
            joint = codes[0] * codes[1]
        else:
            joint = jnp.concatenate(codes, axis=-1)
        hidden = jax.nn.relu(self.mlp(params["mlp"], joint))
        return self.head(params["head"], hidden)


def vqa(inputs: str, cell: str, *, answers: int, vocab_size: int, hidden: int, embed: int,
        features: int, channels: tuple[int, ...], image_size: int, fused: int, mlp: int,
        fusion: str = "product") -> VQA:
    """A `VQA` model over square RGB images of `image_size` pixels: an
    `vision.ImageEncoder(features, channels)`, a question cell of type `cell` (see
    `rnnjax.cells.make`) with `hidden` units reading `embed`-wide word vectors, an MLP
    of `mlp` units to `answers` classes."""
    return VQA(inputs, vision.ImageEncoder(features, tuple(channels)),
               Embedding(vocab_size, embed), make(cell, hidden), fused, fusion, Dense(mlp),
               Dense(answers), (image_size, image_size, 3))
