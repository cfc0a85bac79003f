"""Markdown tables of the peer timings: median ms and the ratios rnnjax / peer (< 1: rnnjax
faster), per configuration and, at the end, per cell and mode over all configurations."""

from __future__ import annotations

from benchmarks.peers.builders import CELLS, JAX_PEERS
from benchmarks.peers.calls import MODES

SHORT = {"rnnjax": "rj", "flax": "flax", "equinox": "eqx", "haiku": "hk", "torch": "torch",
         "torch1": "torch1"}


def median_ms(rows, lib, config, cell, mode):
    """The latest median of `lib` at `config` (B, T, I, H), or None."""
    want = (lib, cell, mode, *config)
    for r in reversed(rows):
        if r.get("study") is None and \
                tuple(r.get(k) for k in ("library", "cell", "mode", "B", "T", "I", "H")) == want:
            return r["median_ms"]
    return None


def print_config_table(rows, config, cells, modes, libs):
    b, t, i, h = config
    peers = [lib for lib in libs if lib != "rnnjax"]
    print(f"\nB={b} T={t} I={i} H={h} (median ms; ratio rnnjax/peer, < 1: rnnjax faster)")
    print("| cell | mode | " + " | ".join(f"{lib} ms" for lib in ["rnnjax"] + peers) + " | "
          + " | ".join(f"rj/{SHORT[p]}" for p in peers) + " |")
    print("|---|---|" + "---:|" * (1 + 2 * len(peers)))
    for cell in cells:
        for mode in modes:
            ours = median_ms(rows, "rnnjax", config, cell, mode)
            values = [median_ms(rows, lib, config, cell, mode) for lib in peers]
            ms = ["-" if v is None else f"{v:.2f}" for v in [ours] + values]
            ratios = ["-" if v is None or ours is None else f"{ours / v:.2f}" for v in values]
            print(f"| {cell} | {mode} | " + " | ".join(ms) + " | " + " | ".join(ratios) + " |")


def print_summary(rows, configs, libs):
    """Per cell and mode: each config, each library's ms, rnnjax / best JAX peer and
    rnnjax / torch."""
    peers = [lib for lib in libs if lib != "rnnjax"]
    for cell in CELLS:
        for mode in MODES[::-1]:
            if not any(median_ms(rows, "rnnjax", c, cell, mode) for c in configs):
                continue
            print(f"\n{cell} {mode} (median ms)")
            print("| B | T | I | H | " + " | ".join(["rnnjax"] + peers)
                  + " | rj/best JAX peer | rj/torch | rj/torch1 |")
            print("|---:|---:|---:|---:|" + "---:|" * (len(peers) + 4))
            for config in configs:
                ours = median_ms(rows, "rnnjax", config, cell, mode)
                if ours is None:
                    continue
                values = {lib: median_ms(rows, lib, config, cell, mode) for lib in peers}
                jax_values = {k: v for k, v in values.items() if k in JAX_PEERS and v}
                best = min(jax_values, key=jax_values.get) if jax_values else None
                best_txt = "-" if best is None else f"{ours / jax_values[best]:.2f} ({best})"
                torch_txt = " | ".join("-" if not values.get(t) else f"{ours / values[t]:.2f}"
                                       for t in ("torch", "torch1"))
                ms = " | ".join("-" if values[lib] is None else f"{values[lib]:.2f}"
                                for lib in peers)
                print(f"| {' | '.join(map(str, config))} | {ours:.2f} | {ms} | "
                      f"{best_txt} | {torch_txt} |")
