"""One combinator for the `init` of a model made of named parts, and a parameter count.

A model lists its parts in order; `combine` splits the key once among the parts that
draw random numbers and gives each its own, like `jax.example_libraries.stax.serial`
does for layers. A part a model leaves out in some configuration (the tagger's word
embedding, the captioner's projections of the image) keeps its key: the other parts
get the same keys, and hence the same params, whichever optional parts are present.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class Part:
    """One named part of a model's params.

    Arguments:
        name: the part's key in the params dict.
        init: `init(key) -> params` (or `init() -> params` when `keyed` is False);
            None leaves the part out of the params (a keyed part still takes its key).
        keyed: whether the part draws random numbers, and so takes a key of the split.
    """

    name: str
    init: Callable | None
    keyed: bool = True


def part(name: str, init: Callable | None) -> Part:
    """A part initialised from its own key: `init(key) -> params`, or None to leave it
    out (its key is split off all the same)."""
    return Part(name, init)


def fixed(name: str, init: Callable | None) -> Part:
    """A part whose params need no randomness: `init() -> params` (e.g. zeros); it takes
    no key of the split. None leaves it out."""
    return Part(name, init, keyed=False)


def combine(*parts: Part) -> Callable:
    """`init(key) -> {name: params}` of a model made of `parts`.

    The key is split once into as many keys as there are keyed parts (present or
    not), handed out in the order given; fixed parts are built without a key. The
    params dict holds the present parts in the order given.

    Arguments:
        *parts: `Part`s (see `part` and `fixed`), names unique.

    >>> import jax, rnnjax as rj
    >>> init = combine(part("embed", rj.Embedding(5, 3).init),
    ...                part("head", lambda k: rj.Dense(2).init(k, 3)))
    >>> {k: v["E" if k == "embed" else "W"].shape for k, v in init(jax.random.key(0)).items()}
    {'embed': (5, 3), 'head': (3, 2)}
    """
    if not all(isinstance(p, Part) for p in parts):
        raise TypeError(f"parts must be Part values (see part and fixed), got "
                        f"{[type(p).__name__ for p in parts]}")
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"parts must have distinct names, got {names}")
    keyed = [p.name for p in parts if p.keyed]

    def init(key):
        keys = dict(zip(keyed, jax.random.split(key, len(keyed)))) if keyed else {}
        return {p.name: p.init(keys[p.name]) if p.keyed else p.init()
                for p in parts if p.init is not None}

    return init


def param_count(params) -> int:
    """The number of scalars in a pytree of arrays (a model's params)."""
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))
