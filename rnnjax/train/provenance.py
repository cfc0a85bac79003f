"""How a run was made: the software, the machine and the code it ran with, recorded
beside its results (`fit` appends one record per start to `out_dir/runs.jsonl`; the
studies put it in their results.json)."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata

import jax

PACKAGES = ("rnnjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def environment(root=None) -> dict:
    """Python, platform, devices, package versions, the PRNG implementation, whether
    x64 is on, the git commit of the checkout holding `root` (default: the working
    directory) and the command line."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "devices": [str(d) for d in jax.devices()], "versions": versions,
            "prng": jax.config.jax_default_prng_impl, "x64": jax.config.jax_enable_x64,
            "git": git_revision(os.getcwd() if root is None else root),
            "command": shlex.join(sys.argv)}


def git_revision(root) -> str | None:
    """The commit of the checkout holding `root`, with "-dirty" when tracked files
    differ from it; None outside git or without git."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")
