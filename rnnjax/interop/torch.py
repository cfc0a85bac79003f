"""PyTorch interop (being written)."""


def from_torch(module):
    raise NotImplementedError


def to_torch(model, params):
    raise NotImplementedError
