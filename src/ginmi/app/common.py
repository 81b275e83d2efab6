"""Run folders shared by the commands: creating, locking and releasing them, the stage lines on
stderr, the environment record and ``config.toml``. (The model-building stages are the library's
:mod:`ginmi.vector`.)"""

from __future__ import annotations

import atexit
import datetime
import os
import platform
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ginmi
from ginmi import distributed
from ginmi.config import config_from_dict, flatten, read_config_file, write_config_file
from ginmi.training import RESUME_FREE_OPTIONS, TrainConfig, check_resume, resolve_device

__all__ = [
    "make_run_dir",
    "check_run_dir",
    "release_run_dir",
    "environment",
    "write_run_config",
    "stage",
]


LOCK_NAME = ".ginmi.lock"
PATH_OPTIONS = ("data", "test_data", "ood_data", "model_path", "data_dir")  # stored absolute in config.toml
# options a resumed run may change: where and how it runs, not what it computes
_RUN_ONLY = frozenset({*RESUME_FREE_OPTIONS, "out", "progress", "report", "tensorboard", "jobs"})


def make_run_dir(
    out: str | None, command: str, train: TrainConfig | None = None, *, quiet: bool = False, config: Any = None
) -> Path:
    """The run folder: ``out`` or ``runs/<command>-<timestamp>``; created if missing, locked, announced.

    Checked before anything is written: ``out`` is no file; a folder that holds files is refused
    unless ``train.resume`` (continue it: its checkpoint must have the same training options and,
    given the command's ``config``, its ``config.toml`` the same options) or ``train.overwrite``
    (replace it: only a ginmi run folder, whose files are then deleted); a folder another live ginmi
    process has locked is refused. The lock (``.ginmi.lock``, holding the process id) is released by
    :func:`release_run_dir` or at exit. The path is printed to stderr first.
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(out) if out else Path("runs") / f"{command}-{stamp}"
    if not _main_process():  # under torchrun rank 0 checks, locks and announces the folder
        path.mkdir(parents=True, exist_ok=True)
        return path
    contents = check_run_dir(path, train, config)
    path.mkdir(parents=True, exist_ok=True)
    _take_lock(path)
    if train is not None and train.overwrite:
        for p in contents:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    if not quiet:
        print(f"run folder: {path}", file=sys.stderr, flush=True)
    return path


def _main_process() -> bool:
    """Rank 0 of a ``torchrun`` launch (its ``RANK``, set before the process group exists), or a plain run."""
    return distributed.is_main_process() and int(os.environ.get("RANK", "0")) == 0


def check_run_dir(out: str | os.PathLike | None, train: TrainConfig | None = None, config: Any = None) -> list[Path]:
    """The checks of :func:`make_run_dir` without its side effects (nothing is created); returns what
    the folder holds (to be deleted with ``train.overwrite``)."""
    if out is None or not _main_process():
        return []
    path = Path(out)
    resume, overwrite = bool(train is not None and train.resume), bool(train is not None and train.overwrite)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file, not a folder; name a new folder")
    if train is not None and train.device != "auto":
        resolve_device(train.device)  # CUDA asked for but absent: refuse before anything is written
    contents = [p for p in path.iterdir() if p.name != LOCK_NAME] if path.is_dir() else []
    _check_lock(path)
    if contents and not (resume or overwrite):
        raise ValueError(
            f"--out {path} already holds files (an earlier run?); add --resume to continue that run, "
            "--overwrite to replace it, or name a new folder"
        )
    if contents and overwrite and not any((path / name).exists() for name in ("config.toml", "results.json")):
        raise ValueError(
            f"--out {path} holds files but no ginmi run (no config.toml or results.json); "
            "--overwrite deletes only run folders: name a new folder"
        )
    if resume:
        check_resume(train, path)
        if config is not None:
            _check_same_options(path, config)
    return contents


def _check_same_options(run_dir: Path, config: Any) -> None:
    """Refuse to resume ``run_dir`` with options (data, model, evaluation) other than its ``config.toml``'s:
    the checkpoint holds the training options only, and a changed model or data set would fail (or train on
    other data) after the folder's record of the run had been overwritten."""
    path = run_dir / "config.toml"
    if not path.is_file():
        return
    cls = type(config)
    old, new = flatten(config_from_dict(cls, read_config_file(path, cls))), flatten(config)
    for options in (old, new):
        for key in PATH_OPTIONS:
            if isinstance(options.get(key), str) and options[key]:
                options[key] = os.path.abspath(os.path.expanduser(options[key]))
    changed = [
        f"`{k}` {old.get(k)!r} -> {new[k]!r}" for k in sorted(new) if k not in _RUN_ONLY and old.get(k) != new[k]
    ]
    if changed:
        raise ValueError(
            f"cannot resume {run_dir} with other options than its config.toml: {'; '.join(changed[:6])}; resume "
            f"with that run's options (--config {path} --out {run_dir} --resume) or start a new folder"
        )


def _lock_owner(path: Path) -> int | None:
    """Process id of a live ginmi process (other than this one) holding the lock of ``path``, else None."""
    try:
        pid = int((path / LOCK_NAME).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # stale: that process is gone
    except PermissionError:
        return pid
    return pid


def _check_lock(path: Path) -> None:
    pid = _lock_owner(path)
    if pid is not None:
        raise ValueError(
            f"--out {path} is in use by another ginmi run (process {pid}); wait for it or name "
            f"another folder (if no such run is alive, delete {path / LOCK_NAME})"
        )


def _take_lock(path: Path) -> None:
    lock = path / LOCK_NAME
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        _check_lock(path)  # stale or our own: take it over
        lock.write_text(f"{os.getpid()}\n")
    else:
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        if _lock_owner(path) is not None:  # pragma: no cover - lost a race with another process
            _check_lock(path)
    atexit.register(release_run_dir, path)


def release_run_dir(path: str | os.PathLike) -> None:
    """Remove the lock of the run folder ``path`` if this process holds it."""
    lock = Path(path) / LOCK_NAME
    try:
        if int(lock.read_text().split()[0]) == os.getpid():
            lock.unlink()
    except (OSError, ValueError, IndexError):
        pass


def stage(message: str, enabled: bool = True) -> None:
    """One short line on stderr naming the step that starts now (``ginmi: scoring latents ...``), so that
    the long steps without a progress bar (scoring, evaluation, figures) are not silent; only with
    progress on, and only on the main process."""
    if enabled and distributed.is_main_process():
        print(f"ginmi: {message} ...", file=sys.stderr, flush=True)


def environment(device: str = "auto") -> dict[str, Any]:
    """Versions and hardware of this run."""
    return {
        "ginmi": ginmi.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(resolve_device(device)),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
    }


def write_run_config(run_dir: Path, command: str, config: Any) -> Path:
    """Write ``config.toml``: the run's resolved options, with version, seed and environment as comments.

    ``ginmi COMMAND --config RUN/config.toml --out NEW`` repeats the run. ``out`` is written
    commented out, so that a repeat does not overwrite this folder.
    """
    flat = flatten(config)
    for key in PATH_OPTIONS:  # absolute, so that the file repeats the run from any folder
        if isinstance(flat.get(key), str) and flat[key]:
            flat[key] = os.path.abspath(os.path.expanduser(flat[key]))
    env = environment(flat.get("device", "auto"))
    path = Path(run_dir) / "config.toml"
    header = "\n".join(
        [
            f"resolved configuration of `ginmi {command}`, written by ginmi {ginmi.__version__}",
            f"seed: {flat.get('seed')}",
            "environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if k != "ginmi"),
            f"repeat this run: ginmi {command} --config {shlex.quote(os.path.abspath(path))} --out NEW_FOLDER",
        ]
    )
    write_config_file(path, flat, header=header, comment_out=("out",))
    return path
