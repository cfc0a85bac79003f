"""Weights to and from other libraries' layouts (PyTorch); the peers stay optional.

`from_torch` and `to_torch` import torch only when called.
"""

from rnnjax.interop.torch import from_torch, to_torch

__all__ = ["from_torch", "to_torch"]
