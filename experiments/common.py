"""What every experiment script shares: the command line, the results folder, the report.

Every script takes `--cells`, `--seeds`, `--steps`, `--out DIR` (default
results/<name>) and `--quick`, writes `DIR/results.json` (numbers, config, versions),
PNG plots and `DIR/report.md`, and keeps each finished unit of work in `DIR/parts/`
so that a rerun of the same command skips what is done.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import jax


def parse_args(name: str, description: str, defaults: dict, quick: dict, argv=None,
               add_arguments=None):
    """The shared command line. `quick` overrides `defaults` for `--quick` runs,
    except where a flag is given explicitly."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}",
                                     description=description)
    parser.add_argument("--cells", type=lambda s: s.split(","),
                        help=f"comma-separated cell names (default: {','.join(defaults['cells'])})")
    parser.add_argument("--seeds", type=int, help=f"seeds per cell (default {defaults['seeds']})")
    parser.add_argument("--steps", type=int, help=f"training steps (default {defaults['steps']})")
    parser.add_argument("--out", type=Path, default=Path("results") / name,
                        help="output folder (default results/%(prog)s)".replace(
                            "%(prog)s", name))
    parser.add_argument("--quick", action="store_true",
                        help="a small configuration that runs on a laptop CPU in minutes")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    chosen = {**defaults, **(quick if args.quick else {})}
    for key, value in chosen.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def environment() -> dict:
    """Versions and devices, recorded in every results.json."""
    versions = {}
    for package in ("rnnjax", "jax", "jaxlib", "flax", "optax", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "devices": [str(d) for d in jax.devices()], "versions": versions,
            "command": command_line()}


def command_line() -> str:
    """The command as typed: `python -m experiments.NAME ARGS` for a script run with -m."""
    script = Path(sys.argv[0])
    if script.parent.name == "experiments":
        return " ".join([f"python -m experiments.{script.stem}", *sys.argv[1:]])
    return " ".join(sys.argv)


def write_json(path: Path, obj) -> None:
    """Write whole or not at all: a temporary file renamed over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    os.replace(tmp, path)


def load_part(out: Path, key: str, config: dict):
    """A finished unit of work saved by `save_part` under the same config, or None."""
    path = out / "parts" / f"{key}.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    return saved["result"] if saved.get("config") == config else None


def save_part(out: Path, key: str, config: dict, result) -> None:
    write_json(out / "parts" / f"{key}.json", {"config": config, "result": result})


def config_of(args) -> dict:
    """The run's settings as JSON-ready values."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def write_results(args, payload: dict, report_text: str) -> None:
    """DIR/results.json (config, environment and `payload`) and DIR/report.md."""
    write_json(args.out / "results.json",
               {"config": config_of(args), "environment": environment(), **payload})
    (args.out / "report.md").write_text(report_text)
    print(f"wrote {args.out}/report.md")


def save_figure(fig, path: Path) -> None:
    """Lay out, write as PNG and close a matplotlib figure."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
