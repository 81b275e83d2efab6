"""Stages shared by the commands: input checks, label encoding, training a vector model, latents,
run folders and the environment record."""

from __future__ import annotations

import atexit
import datetime
import os
import platform
import shlex
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

import ginmi
from ginmi import distributed
from ginmi.config import flatten, option, write_config_file
from ginmi.model import STATS, GINModel
from ginmi.training import (
    SmallDataWarning,
    TrainConfig,
    check_resume,
    fit_linear_stage,
    fit_standardization,
    resolve_device,
    schedule_note,
    train,
    train_many,
    training_device,
)

__all__ = [
    "VectorModelConfig",
    "check_features",
    "encode_labels",
    "init_vector_model",
    "train_vector_model",
    "train_vector_models",
    "compute_latents",
    "make_run_dir",
    "check_run_dir",
    "release_run_dir",
    "environment",
    "write_run_config",
    "stage",
]


@dataclass
class VectorModelConfig:
    """Architecture of the flow for vector data (defaults: the GIN paper's 10-D network)."""

    flow: str = option("gin", "coupling type: gin (volume-preserving) or glow (ablation)", choices=("gin", "glow"))
    n_blocks: int = option(8, "number of coupling blocks")
    width: int = option(10, "hidden width of the coupling subnets")
    clamp: float = option(2.0, "soft clamp of the coupling log-scales")
    stats: str = option("trainable", "class statistics: trainable (Eq. 5) or batch (Appendix C)", choices=STATS)
    standardize: bool = option(True, "standardise inputs robustly (median / MAD), stored in the model")
    linear_stage: bool = option(False, "fit a volume-preserving linear map (|det| = 1) by the likelihood of Eq. 5 "
                                       "before training the flow, stored in the model: undoes linear mixing the "
                                       "couplings get stuck on (measured: recovery 0.85 -> 0.96-0.99 on rotated "
                                       "data), but hurts on heavy-tailed data (see README); needs at least "
                                       "2 x dims samples per class")

    def __post_init__(self) -> None:
        for name in ("n_blocks", "width"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.clamp > 0:
            raise ValueError(f"clamp must be positive, got {self.clamp}")

    def arch(self, dim: int, seed: int) -> dict[str, Any]:
        return {"name": "vector", "dim": dim, "n_blocks": self.n_blocks, "width": self.width,
                "coupling": self.flow, "clamp": self.clamp, "seed": seed}


def check_features(x: Any, name: str = "features") -> np.ndarray:
    """A finite, non-empty 2-D float array, or a ValueError saying what is wrong."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}; convert or drop non-numeric columns")
    x = x.astype(np.float64, copy=False)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (n_samples, n_features) array, got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(
            f"{name} contain {bad.sum()} NaN/inf value(s) (first at row {rows[0]}, column {cols[0]}); "
            "remove or impute them"
        )
    return x


def encode_labels(u: Any, n_samples: int, *, min_per_class: int = 2) -> tuple[np.ndarray, list[Any]]:
    """Class indices ``0..K-1`` and the sorted original labels, with the checks training needs."""
    u = np.asarray(u)
    if u.ndim != 1:
        u = u.reshape(-1) if u.size == n_samples else u
    if len(u) != n_samples:
        raise ValueError(f"labels and features have different lengths: {len(u)} labels for {n_samples} samples")
    classes, idx, counts = np.unique(u, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"only one class ({classes[0]!r}) in the labels; need at least 2 classes")
    small = [(c, n) for c, n in zip(classes.tolist(), counts.tolist()) if n < min_per_class]
    if small:
        raise ValueError(
            f"class(es) with fewer than {min_per_class} samples: {small[:5]}; "
            "drop them or collect more data"
        )
    return idx.astype(np.int64), [c.item() if hasattr(c, "item") else c for c in classes]


def init_vector_model(x: np.ndarray, u: np.ndarray, classes: Sequence[Any], model_config: VectorModelConfig,
                      seed: int) -> tuple[GINModel, torch.Tensor, torch.Tensor]:
    """A GIN model for vectors with everything fixed before training set from the data: the class prior,
    the standardisation and the linear stage (each if configured). Returns the model and the data as tensors.

    The linear stage is left at the identity when a class has fewer than ``2 * dims`` samples (its
    covariance, which the fit needs, is then too poorly determined).
    """
    model = GINModel(model_config.arch(x.shape[1], seed), len(classes), stats=model_config.stats, classes=classes,
                     linear_stage=model_config.linear_stage)
    xt = torch.as_tensor(x, dtype=torch.float32)
    ut = torch.as_tensor(u, dtype=torch.long)
    counts = torch.bincount(ut, minlength=len(classes))
    if model_config.standardize:
        fit_standardization(model, xt)
    with torch.no_grad():
        model.log_prior.copy_(torch.log(counts.float() / len(ut)))
    if model_config.linear_stage and int(counts.min()) >= 2 * x.shape[1]:
        fit_linear_stage(model, torch.as_tensor(x), ut, seed=seed)
    return model, xt, ut


def train_vector_model(
    x: np.ndarray,
    u: np.ndarray,
    classes: Sequence[Any],
    model_config: VectorModelConfig,
    train_config: TrainConfig,
    *,
    progress: bool = True,
    **callbacks: Any,
) -> tuple[GINModel, dict[str, list[float]], float]:
    """Build and train a GIN model on vectors; returns the model, loss history and seconds.

    ``callbacks`` (``on_step``, ``on_epoch``) are passed to :func:`ginmi.training.train`.
    """
    model, xt, ut = init_vector_model(x, u, classes, model_config, train_config.seed)
    note = schedule_note(train_config, len(x), sum(p.numel() for p in model.parameters() if p.requires_grad),
                         x.shape[1])
    if note is not None:
        warnings.warn(note, SmallDataWarning, stacklevel=2)
    _announce_compile(model, train_config, progress)
    t0 = time.perf_counter()
    history = train(model, xt, ut, train_config, progress=progress, **callbacks)
    return model.cpu(), history, time.perf_counter() - t0


def train_vector_models(
    datasets: Sequence[tuple[np.ndarray, np.ndarray]],
    classes: Sequence[Any],
    model_config: VectorModelConfig,
    train_config: TrainConfig,
    seeds: Sequence[int],
    *,
    progress: bool = True,
    **train_options: Any,
) -> tuple[list[GINModel], list[dict[str, list[float]]], float]:
    """:func:`train_vector_model` for several data sets and seeds at once (:func:`ginmi.training.train_many`).

    Model ``k`` is built and trained as ``train_vector_model`` with ``seed = seeds[k]`` would do it.
    ``train_options`` (``checkpoint_dirs``, ``callbacks``) go to :func:`ginmi.training.train_many`.
    Returns the models, their histories and the seconds of the joint training.
    """
    models, xs, us = [], [], []
    for (x, u), seed in zip(datasets, seeds):
        model, xt, ut = init_vector_model(x, u, classes, model_config, seed)
        models.append(model)
        xs.append(xt)
        us.append(ut)
    _announce_compile(models[0], train_config, progress)
    t0 = time.perf_counter()
    histories = train_many(models, xs, us, train_config, seeds=seeds, progress=progress, **train_options)
    return [m.cpu() for m in models], histories, time.perf_counter() - t0


def _announce_compile(model: GINModel, train_config: TrainConfig, progress: bool) -> None:
    """A stage line before training when the fused step will compile first (its first epoch is slow)."""
    from ginmi import fused

    if (progress and train_config.fused and not fused.compiled() and fused.supports(model)
            and training_device(train_config, model).type == "cpu"):
        stage("compiling the fused training step (about 20-30 s on the first run, then read from numba's cache; "
              "the first epoch's time estimate includes it)")


@torch.no_grad()
def compute_latents(model: GINModel, x: np.ndarray | torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """``w = g(x)`` in batches (bounded memory), as a float64 array."""
    model.eval()
    device = next(model.parameters()).device
    xt = torch.as_tensor(x, dtype=torch.float32)
    out = [model.transform(xb.to(device)).double().cpu() for xb in xt.split(batch_size)]
    return torch.cat(out).numpy()


LOCK_NAME = ".ginmi.lock"
PATH_OPTIONS = ("data", "test_data", "ood_data", "model_path", "data_dir")  # stored absolute in config.toml


def make_run_dir(out: str | None, command: str, train: TrainConfig | None = None, *, quiet: bool = False) -> Path:
    """The run folder: ``out`` or ``runs/<command>-<timestamp>``; created if missing, locked, announced.

    Checked before anything is written: ``out`` is no file; a folder that holds files is refused
    unless ``train.resume`` (continue it: its checkpoint must have the same training options) or
    ``train.overwrite`` (replace it: only a ginmi run folder, whose files are then deleted); a folder
    another live ginmi process has locked is refused. The lock (``.ginmi.lock``, holding the process
    id) is released by :func:`release_run_dir` or at exit. The path is printed to stderr first.
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(out) if out else Path("runs") / f"{command}-{stamp}"
    if not _main_process():  # under torchrun rank 0 checks, locks and announces the folder
        path.mkdir(parents=True, exist_ok=True)
        return path
    contents = check_run_dir(path, train)
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


def check_run_dir(out: str | os.PathLike | None, train: TrainConfig | None = None) -> list[Path]:
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
        raise ValueError(f"--out {path} already holds files (an earlier run?); add --resume to continue that run, "
                         "--overwrite to replace it, or name a new folder")
    if contents and overwrite and not any((path / name).exists() for name in ("config.toml", "results.json")):
        raise ValueError(f"--out {path} holds files but no ginmi run (no config.toml or results.json); "
                         "--overwrite deletes only run folders: name a new folder")
    if resume:
        check_resume(train, path)
    return contents


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
        raise ValueError(f"--out {path} is in use by another ginmi run (process {pid}); wait for it or name "
                         f"another folder (if no such run is alive, delete {path / LOCK_NAME})")


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
    header = "\n".join([
        f"resolved configuration of `ginmi {command}`, written by ginmi {ginmi.__version__}",
        f"seed: {flat.get('seed')}",
        "environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if k != "ginmi"),
        f"repeat this run: ginmi {command} --config {shlex.quote(os.path.abspath(path))} --out NEW_FOLDER",
    ])
    write_config_file(path, flat, header=header, comment_out=("out",))
    return path
