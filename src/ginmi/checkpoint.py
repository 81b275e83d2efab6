"""Training checkpoints that survive faults.

A checkpoint is one file, ``RUN/checkpoint.pt``, holding plain data only: model and optimizer
state dicts, the schedule position, epoch and step, the RNG states, the loss history and the
training options it was written with. It is written atomically (temporary file in the same
folder, fsync, rename; :func:`ginmi.io.atomic_torch_save`), so a process killed at any moment,
even in the middle of a save, leaves the previous checkpoint intact. It is read with
``torch.load(weights_only=True)``: a file holding anything else (pickled code) or a truncated
file gives a ``ValueError`` that says so, and nothing is executed.

Example:
    >>> import tempfile, pathlib, torch
    >>> from ginmi.checkpoint import save_checkpoint, load_checkpoint
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.pt"
    >>> save_checkpoint(path, {"model": {"w": torch.ones(2)}, "epoch": 3, "step": 30})
    >>> load_checkpoint(path)["epoch"]
    3
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ginmi.io import atomic_torch_save, safe_torch_load

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_NAME = "checkpoint.pt"
"""File name of the checkpoint inside a run folder."""

CHECKPOINT_VERSION = 1
_REQUIRED = ("model", "epoch", "step")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (plain data and tensors) to ``path`` atomically; stale temporaries are removed."""
    path = Path(path)
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise ValueError(f"a checkpoint needs the entries {list(_REQUIRED)}; missing {missing}")
    if path.parent.is_dir():
        # temporaries of a save that was killed: never read, safe to remove
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
    atomic_torch_save({"checkpoint_version": CHECKPOINT_VERSION, **state}, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` without unpickling code.

    Raises ``FileNotFoundError`` if it is missing and ``ValueError`` if it is corrupt, truncated,
    holds objects other than plain data, or is not a ginmi checkpoint.
    """
    state = safe_torch_load(path, map_location=map_location)
    if not isinstance(state, dict) or "checkpoint_version" not in state:
        raise ValueError(f"{path} is not a ginmi training checkpoint (no checkpoint_version entry)")
    if state["checkpoint_version"] > CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} was written by a newer ginmi (checkpoint version {state['checkpoint_version']}); "
            "upgrade ginmi to resume from it"
        )
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise ValueError(f"{path} is an incomplete checkpoint: missing {missing}")
    return state
