"""Optional packages that ship real data sets: imported when a loader needs them."""

from __future__ import annotations

import importlib


def require(module: str, extra: str):
    """Import `module`, or raise an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"this loader needs the package {module.split('.')[0]!r}, which is not "
            f"installed: pip install 'rnnjax[{extra}]'") from error
