"""Optional third-party packages, imported on first use: a missing one is an ImportError
that says who needs it and which extra installs it."""

from __future__ import annotations

import importlib


def require(module: str, extra: str, *, needed_by: str):
    """Import `module`, or raise an ImportError naming its package and the extra to install.

    `needed_by` names what asked for it, as the message's subject ("this loader",
    "TensorBoardLogger").
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{needed_by} needs the package {module.split('.')[0]!r}, which is not "
            f"installed: pip install 'rnnjax[{extra}]'") from error
