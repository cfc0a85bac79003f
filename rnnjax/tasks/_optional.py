"""Optional packages that ship real data sets: imported when a loader needs them."""

from __future__ import annotations

from rnnjax import _optional


def require(module: str, extra: str):
    """Import `module`, or raise an ImportError that names the extra to install."""
    return _optional.require(module, extra, needed_by="this loader")
