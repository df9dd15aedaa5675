"""Training checkpoints: one plain dict per file (model, optimizer, scheduler, RNG states, the
step, which also fixes the data position), written whole or not at all.

A file is written beside its final name and renamed, so a kill mid-save leaves the previous
checkpoint as the latest. The newest `keep` files stay; older ones go once a newer one landed.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np

from mlstack.io import atomic_file

NAME = re.compile(r"^step-(\d{8})\.pt$")


def path_of(folder: Path, step: int) -> Path:
    return folder / f"step-{step:08d}.pt"


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if NAME.match(p.name))


def latest(folder: Path) -> Path | None:
    found = checkpoints(folder)
    return found[-1] if found else None


def rng_states() -> dict[str, Any]:
    import torch

    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    import torch

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(folder: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    import torch

    final = path_of(folder, step)
    with atomic_file(final) as tmp:
        torch.save({**state, "step": step, "rng": rng_states()}, tmp)
    for old in checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def load(path: Path) -> dict[str, Any]:
    import torch

    # Our own files, holding RNG states and optimizer dicts, which weights_only refuses.
    return torch.load(path, map_location="cpu", weights_only=False)
